//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {}

/// Runs the command.
pub fn run(_args: EstimateArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

// TEMP SHIM (not committed)
use crate::pricing::{CostPair, PriceTable};
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BodyFormat {
    Json,
    Jsonl,
}
pub struct EstimateOptions {
    pub at: jiff::Timestamp,
    pub expected_output_fraction: f64,
}
impl EstimateOptions {
    pub fn new(at: jiff::Timestamp, f: f64) -> Self {
        EstimateOptions { at, expected_output_fraction: f }
    }
}
#[derive(Debug, thiserror::Error)]
#[error("x")]
pub struct EstimateError;
#[derive(Clone, Debug, serde::Serialize)]
pub struct Estimate {
    pub format: BodyFormat,
    pub requests: u64,
    pub custom_id_fingerprint: u64,
    pub models: Vec<ModelEstimate>,
    #[serde(skip)]
    pub worst: CostPair,
    #[serde(skip)]
    pub expected: CostPair,
}
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelEstimate {
    pub provider: String,
    pub model: String,
    pub requests: u64,
    pub input_tokens_upper: u64,
    pub input_tokens_expected: u64,
    pub cache_write_5m_tokens_upper: u64,
    pub cache_write_1h_tokens_upper: u64,
    pub output_tokens_worst: u64,
    pub output_tokens_expected: u64,
    #[serde(skip)]
    pub worst: CostPair,
    #[serde(skip)]
    pub expected: CostPair,
}
pub fn estimate_bytes(
    _b: &[u8],
    _t: &PriceTable,
    _o: &EstimateOptions,
) -> Result<Estimate, EstimateError> {
    Err(EstimateError)
}

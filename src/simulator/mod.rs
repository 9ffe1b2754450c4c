//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

/// Runs the command.
pub async fn run(_args: SimulateArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

// TEMP SHIM (replaced by the simulator branch)
#[derive(Clone, Debug, Default)]
pub struct SimConfig {
    pub api_key: String,
    pub time_scale: f64,
    pub seed: u64,
    pub errored_fraction: f64,
}
pub struct SimHandle;
impl SimHandle {
    pub fn base_url(&self) -> String {
        String::new()
    }
    pub async fn shutdown(self) {}
}
pub async fn spawn(_c: SimConfig, _l: tokio::net::TcpListener) -> anyhow::Result<SimHandle> {
    anyhow::bail!("shim")
}

//! Worst-case and expected cost of a batch body before it is sent: the provider-neutral
//! part. Each provider's body front-end (`providers/NAME/estimate`, the OpenAI batch
//! file's `providers/openai/batchfile`) walks its own wire format and validates it; this
//! module gives them the token bounds of text ([`Tokens`]), the running tally of a prompt
//! section with its cache breakpoints ([`Tally`]), the per-model folding and pricing
//! ([`fold::Folder`]) and the result every caller reads ([`Estimate`]).
//!
//! The worst case is what the gateway reserves: input tokens as a hard upper bound (see
//! `tokens`), every cache breakpoint's prefix priced as a cache write, the output cap. The
//! expectation is for people: a fitted token estimate, cache hits for prefixes repeated in
//! the batch, and a fraction of the cap as output. Details and measured accuracy: the
//! README (estimating section).

mod error;
pub mod fold;
mod tally;
mod tokens;

use std::path::Path;

pub use error::{EstimateError, MAX_MAX_TOKENS, MAX_REQUESTS, Problem, RequestAt};
pub use tally::{Mark, Tally, Ttl, WebSearch};
/// Token bounds of text, for every provider's body front-end.
pub use tokens::Tokens;

use crate::pricing::CostPair;

/// Output assumed when nothing better is known: half of `max_tokens`. Real outputs are
/// often shorter, but `max_tokens` is usually set with some room; compare with
/// `batchcost_settlement_estimate_ratio` and tune per deployment.
pub const DEFAULT_EXPECTED_OUTPUT_FRACTION: f64 = 0.5;

/// How to price a body.
#[derive(Clone, Copy, Debug)]
pub struct EstimateOptions {
    /// Prices in force at this instant (the submission time).
    pub at: jiff::Timestamp,
    /// Expected output as a fraction of `max_tokens`, in [0, 1].
    pub expected_output_fraction: f64,
    /// Only this provider's models are accepted (a gateway endpoint serves one provider:
    /// another's model in the price table is still refused). `None`: any priced model.
    pub provider: Option<&'static str>,
}

impl EstimateOptions {
    pub fn new(at: jiff::Timestamp, expected_output_fraction: f64) -> Self {
        EstimateOptions { at, expected_output_fraction, provider: None }
    }

    /// Refuses models of any other provider.
    pub fn for_provider(mut self, provider: &'static str) -> Self {
        self.provider = Some(provider);
        self
    }
}

/// The estimate of one batch body.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Estimate {
    pub requests: u64,
    pub format: BodyFormat,
    /// Wrapping sum of `xxh3_64(custom_id)`: order-independent, matches a batch with its
    /// results after a crash. A decimal string in JSON (it does not fit a double).
    #[serde(serialize_with = "u64_string")]
    pub custom_id_fingerprint: u64,
    pub models: Vec<ModelEstimate>,
    #[serde(serialize_with = "cost_json")]
    pub worst: CostPair,
    #[serde(serialize_with = "cost_json")]
    pub expected: CostPair,
}

/// One model's share of a batch. `input_tokens_*` include cache writes and reads.
#[derive(Clone, Debug, serde::Serialize)]
pub struct ModelEstimate {
    pub provider: String,
    /// Canonical id from the price table (aliases are folded in).
    pub model: String,
    pub requests: u64,
    pub input_tokens_upper: u64,
    pub input_tokens_expected: u64,
    pub cache_write_5m_tokens_upper: u64,
    pub cache_write_1h_tokens_upper: u64,
    pub cache_write_tokens_expected: u64,
    pub cache_read_tokens_expected: u64,
    pub output_tokens_worst: u64,
    pub output_tokens_expected: u64,
    pub web_search_requests_worst: u64,
    /// At batch price (`cost_usd`) and standard price (`list_cost_usd`).
    #[serde(serialize_with = "cost_json")]
    pub worst: CostPair,
    #[serde(serialize_with = "cost_json")]
    pub expected: CostPair,
}

/// The two body formats: a JSON object with a `requests` array, or one request per line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// `{"requests": [...]}`, what the SDKs send.
    Json,
    /// One request object per line.
    Jsonl,
}

/// Reads a body file for a front-end. It is read whole: bodies are at most 256 MB and the
/// walks borrow every string from the buffer instead of copying it.
pub fn read_body(path: &Path) -> Result<Vec<u8>, EstimateError> {
    read_whole(path)
        .map_err(|source| EstimateError::Io { path: path.display().to_string(), source })
}

/// Files at least this large are read by two threads.
const PARALLEL_READ: u64 = 32 << 20;

/// Reads a whole file. A large regular file is read as two halves on two threads: the
/// kernel's copy out of the page cache and the faults of a fresh buffer were a third of
/// `batchcost estimate` on a 200 MB body, and they split cleanly.
fn read_whole(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    use std::os::unix::fs::FileExt;
    let mut file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() || meta.len() < PARALLEL_READ {
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)?;
        return Ok(buf);
    }
    let len = usize::try_from(meta.len()).map_err(std::io::Error::other)?;
    let mut buf = vec![0u8; len];
    let (head, tail) = buf.split_at_mut(len / 2);
    let at = head.len() as u64;
    std::thread::scope(|s| {
        let second = s.spawn(|| file.read_exact_at(tail, at));
        file.read_exact_at(head, 0)?;
        second.join().unwrap_or_else(|_| Err(std::io::Error::other("file reader panicked")))
    })?;
    // Anything appended since the stat (a file still being written) is read too.
    file.seek(SeekFrom::Start(len as u64))?;
    file.read_to_end(&mut buf)?;
    Ok(buf)
}

fn u64_string<S: serde::Serializer>(v: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(v)
}

/// `{"cost_usd": "1.5", "list_cost_usd": "3"}`: exact decimal strings, so finance
/// scripts never see a float.
fn cost_json<S: serde::Serializer>(c: &CostPair, s: S) -> Result<S::Ok, S::Error> {
    use serde::ser::SerializeStruct;
    let mut st = s.serialize_struct("Cost", 2)?;
    st.serialize_field("cost_usd", &c.cost.usd_exact())?;
    st.serialize_field("list_cost_usd", &c.list_cost.usd_exact())?;
    st.end()
}

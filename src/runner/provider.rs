//! The runner's provider seam: what differs between batch APIs (request-line shape, create
//! body, batch object, result lines, limits) behind one trait, so the plan, state, retry
//! and output code is provider-neutral: Anthropic ([`super::anthropic`]), OpenAI Files +
//! Batches ([`super::openai`]) and Gemini ([`super::gemini`]). `create` hides any upload,
//! `download` merges whatever files (or inline answers) hold a batch's results.

use std::future::Future;
use std::path::Path;

use super::client::CallError;

/// A provider's per-batch limits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_requests: usize,
    pub max_bytes: u64,
}

/// Where a batch is in its life, in the runner's words.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    Running,
    Ended,
}

/// Requests of one batch by state, as the provider's batch object counts them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counts {
    pub processing: u64,
    pub succeeded: u64,
    pub errored: u64,
    pub canceled: u64,
    pub expired: u64,
}

impl Counts {
    pub fn total(&self) -> u64 {
        self.processing + self.succeeded + self.errored + self.canceled + self.expired
    }
}

/// A batch object reduced to what the runner needs.
#[derive(Clone, Debug)]
pub struct BatchView {
    pub id: String,
    pub phase: Phase,
    pub counts: Counts,
    /// The upstream's clock, RFC 3339: only compared with other upstream timestamps.
    pub created_at: String,
    /// Why the whole batch failed, when it ended that way: the reason of every request
    /// without a result line.
    pub failure: Option<Failure>,
}

/// A batch that failed as a whole (OpenAI `failed`, Gemini `error`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub reason: String,
    /// Whether its requests may succeed in another batch (the upstream's trouble).
    pub retryable: bool,
}

/// One page of the project's batches, newest first.
pub struct Page {
    pub batches: Vec<BatchView>,
    pub next: Option<String>,
}

/// Billed tokens of one succeeded item.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Tokens {
    pub input: u64,
    pub output: u64,
    pub cache_write: u64,
    pub cache_read: u64,
}

impl Tokens {
    pub fn add(&mut self, o: &Tokens) {
        self.input += o.input;
        self.output += o.output;
        self.cache_write += o.cache_write;
        self.cache_read += o.cache_read;
    }
}

/// What became of one item in one batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ItemResult {
    Succeeded(Tokens),
    /// The provider's error type (e.g. `invalid_request_error`) and message, and whether
    /// the provider's own classification says another attempt may succeed (overloaded,
    /// server errors; never invalid requests).
    Errored {
        kind: String,
        message: String,
        retryable: bool,
    },
    Canceled,
    Expired,
}

/// One batch API, as the runner uses it through the gateway.
pub trait Provider: Send + Sync {
    /// The provider's name, as `--provider` spells it.
    fn name(&self) -> &'static str;
    /// The per-batch limits, as the references give them.
    fn limits(&self) -> Limits;
    /// Whether [`Provider::limits`] are documented maxima (flags may only lower them) or
    /// UNCONFIRMED defaults (flags may raise them too).
    fn limits_documented(&self) -> bool {
        true
    }
    /// The `custom_id` (or key) of one input line in this provider's request shape.
    fn custom_id(&self, line: &[u8]) -> Result<String, String>;
    /// Turns a plain item into a request line from the template (`params` or body).
    fn templated(&self, custom_id: &str, params: serde_json::Value) -> serde_json::Value;
    /// The create body holding these request lines, as the estimate API also takes it.
    fn body(&self, lines: &[&[u8]]) -> Vec<u8>;
    /// Bytes `body` adds per line and once, for splitting by size without building it.
    fn body_overhead(&self) -> (u64, u64);
    /// Query parameters of `/api/estimate` for a body of these lines (which upstream's
    /// format it is in; Gemini also the batch's model).
    fn estimate_query(&self, lines: &[&[u8]]) -> Vec<(&'static str, String)>;
    fn create(&self, body: Vec<u8>) -> impl Future<Output = Result<BatchView, CallError>> + Send;
    fn get(&self, id: &str) -> impl Future<Output = Result<BatchView, CallError>> + Send;
    /// A page of at most `limit` of the project's batches, newest first, from `after` (a
    /// page cursor).
    fn list(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> impl Future<Output = Result<Page, CallError>> + Send;
    /// Streams the results to `path` (written whole or not at all).
    fn download(&self, id: &str, path: &Path)
    -> impl Future<Output = Result<(), CallError>> + Send;
    /// The `custom_id` and outcome of one result line.
    fn result(&self, line: &[u8]) -> Result<(String, ItemResult), String>;
    /// An errored result line in this provider's shape, for an item the upstream never
    /// answered (its batch refused, or no line for it).
    fn errored_line(&self, custom_id: &str, kind: &str, message: &str) -> serde_json::Value;
}

/// Request lines as JSONL, each ending in a newline (an input file's bytes).
pub fn jsonl(lines: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        out.extend_from_slice(l);
        out.push(b'\n');
    }
    out
}

//! The provider seam. The core (submit, tracker, settle, recover, ledger, pricing,
//! metrics) speaks only the neutral types below; each provider module under
//! `providers/NAME/` owns its wire types (shared with its simulator surface), its upstream
//! client and retry rules, status and usage mapping, result-line decoding, and how it
//! finds a batch it accepted but never recorded. A new provider is a new folder plus one
//! arm in [`build`].
//!
//! How the three batch APIs map onto the seam (reference: batch-apis.md, providers-next.md):
//!
//! | seam                      | Anthropic Message Batches        | OpenAI Batch (Files + Batches)                                   | Gemini batch mode (LRO)                                     |
//! |---------------------------|----------------------------------|------------------------------------------------------------------|-------------------------------------------------------------|
//! | admission input           | the create body itself           | the uploaded input file (priced while it streams in; its hash and fingerprint kept by the surface), admitted at `POST /v1/batches` | inline `requests` in the create body, or an uploaded file as for OpenAI |
//! | [`Provider::create`]      | `POST /v1/messages/batches`, one step | `POST /v1/batches {input_file_id, endpoint, metadata}` after the surface relayed the upload | `POST /{v}/models/{m}:batchGenerateContent` |
//! | created id                | `id` (`msgbatch_…`)              | `id` (`batch_…`)                                                 | `name` (`batches/…`)                                         |
//! | [`BatchPhase::Pending`]   | -                                | `validating`                                                     | `BATCH_STATE_PENDING`                                        |
//! | [`BatchPhase::Running`]   | `in_progress`                    | `in_progress`, `finalizing`                                      | `BATCH_STATE_RUNNING`                                        |
//! | [`BatchPhase::Canceling`] | `canceling`                      | `cancelling`                                                     | - (cancel is immediate)                                      |
//! | [`BatchPhase::Ended`]     | `ended`                          | `completed`, `failed`, `expired`, `cancelled`                    | `SUCCEEDED`, `FAILED`, `CANCELLED`, `EXPIRED`                |
//! | [`BatchCounts`]           | `request_counts` (5 counters)    | `request_counts {total, completed, failed}`                      | `batchStats` (int64 strings, zeros omitted)                  |
//! | results ([`Provider::results`]) | `results_url` JSONL        | output file then error file, both JSONL, concatenated           | `responsesFile` JSONL, or `inlinedResponses` in the batch object re-emitted as lines |
//! | [`ResultItem`] outcome    | `result.type`                    | output line with 2xx `response` = succeeded; error line = errored, `batch_expired` = expired, `batch_cancelled` = canceled | `response` = succeeded; `error` = errored |
//! | [`ResultItem::usage`]     | `message.usage` (`TokenUsage::from_anthropic`) | `response.body.usage` (cached inside prompt tokens) | `usageMetadata` (thoughts billed as output, cached inside prompt) |
//! | orphan [`Candidate`]      | list, match by request count, then custom-id fingerprint of the results | list, `metadata.batchcost_submission` = the submission id (exact) | list operations, `displayName` = the submission id (exact) |
//!
//! The core never sees a wire type: a surface (gateway/surfaces/NAME.rs) turns the
//! client's request into a priced admission and a [`CreateCall`], and relays the rest of
//! the provider's API (list, cancel, delete, downloads) with its own envelopes.

pub mod anthropic;
pub mod gemini;
pub mod http;
pub mod openai;

use std::sync::Arc;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use jiff::Timestamp;

use crate::usage::TokenUsage;

pub use http::{Forward, UpstreamError, UpstreamReply};

/// Provider names as they appear in the price table, metrics and reports.
pub const ANTHROPIC: &str = "anthropic";
pub const OPENAI: &str = "openai";
pub const GEMINI: &str = "gemini";

/// Which wire format an upstream speaks (`[upstream.NAME] kind`); the price table's
/// provider kinds are the same set.
pub use crate::pricing::ProviderKind;

/// Where a batch is in its life, whatever the provider calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPhase {
    /// Accepted, not started (OpenAI validating, Gemini pending).
    Pending,
    Running,
    Canceling,
    /// Nothing more will happen: the results (if any) can be read.
    Ended,
}

/// Requests by state. `total` is the batch's request count.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BatchCounts {
    pub total: u64,
    pub processing: u64,
    pub succeeded: u64,
    pub errored: u64,
    pub canceled: u64,
    pub expired: u64,
}

/// A batch as the core needs it, read from the provider's batch object.
#[derive(Debug, Clone)]
pub struct BatchStatus {
    pub id: String,
    pub phase: BatchPhase,
    /// The provider's own status word, for the ledger's `last_status` and logs.
    pub status: String,
    pub counts: BatchCounts,
    pub created_at: Option<Timestamp>,
    pub ended_at: Option<Timestamp>,
    /// Where the results are, in the provider's terms (paths or file ids); with the raw
    /// object for providers that inline results (Gemini).
    pub results: ResultsRef,
}

/// How to read an ended batch's results, opaque to the core.
#[derive(Debug, Clone, Default)]
pub enum ResultsRef {
    /// Nothing to read (not ended, or ended without results).
    #[default]
    None,
    /// Paths on the upstream, read in order as one JSONL stream.
    Paths(Vec<String>),
    /// The results are inside the batch object itself.
    Inline(Bytes),
}

/// What became of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Outcome {
    Succeeded,
    Errored,
    Canceled,
    Expired,
}

impl Outcome {
    pub const ALL: [Outcome; 4] =
        [Outcome::Succeeded, Outcome::Errored, Outcome::Canceled, Outcome::Expired];

    /// The `result` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Succeeded => "succeeded",
            Outcome::Errored => "errored",
            Outcome::Canceled => "canceled",
            Outcome::Expired => "expired",
        }
    }
}

/// One result line, decoded. Borrows from the line: settlement allocates nothing per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResultItem<'l> {
    pub custom_id: std::borrow::Cow<'l, str>,
    pub outcome: Outcome,
    /// The model that answered (succeeded lines); `None` where the line does not say.
    pub model: Option<std::borrow::Cow<'l, str>>,
    /// Billable usage in the neutral classes; zero unless succeeded (or billed anyway).
    pub usage: TokenUsage,
}

/// Decodes one results line (without its newline). Pure, so tests and benchmarks use it
/// without a client.
pub trait LineDecoder: Send + Sync {
    fn decode<'l>(&self, line: &'l [u8]) -> Result<ResultItem<'l>, String>;
}

/// An upstream batch the ledger may not know: for finding a batch whose acceptance was
/// never recorded.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub status: BatchStatus,
    /// The submission id the gateway stamped on the batch, where the provider keeps one
    /// (OpenAI metadata, Gemini display name). Anthropic has none.
    pub tag: Option<String>,
}

/// What a surface hands the core to create the batch upstream.
#[derive(Debug, Clone)]
pub struct CreateCall {
    /// The path relative to the upstream's base URL (Gemini puts the model in it).
    pub path: String,
    pub body: Bytes,
    pub fwd: Forward,
}

/// Why results could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("upstream answered HTTP {0}")]
    Status(u16),
}

/// A results download: JSONL chunks, in order.
pub type ResultStream = BoxStream<'static, Result<Bytes, UpstreamError>>;

/// One configured upstream. Object-safe: the app holds them as `Arc<dyn Provider>` by name.
pub trait Provider: Send + Sync {
    /// The upstream's configured name: the `provider` label, the ledger's provider column
    /// and the price table's provider.
    fn name(&self) -> &str;
    fn kind(&self) -> ProviderKind;
    /// Sends a create, retrying only what cannot have created anything.
    fn create<'a>(
        &'a self,
        call: &'a CreateCall,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>>;
    /// Whether a non-2xx create answer means nothing was created (safe to retry).
    fn refused_outright(&self, status: reqwest::StatusCode) -> bool;
    /// The batch id in a successful create (or retrieve) answer.
    fn batch_id(&self, body: &[u8]) -> Option<String>;
    /// Fetches one batch object (retried; the raw answer, any status).
    fn retrieve<'a>(
        &'a self,
        id: &'a str,
        fwd: &'a Forward,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>>;
    /// Reads a batch object.
    fn status(&self, body: &[u8]) -> Result<BatchStatus, String>;
    /// Opens the results of an ended batch as one JSONL stream.
    fn results<'a>(
        &'a self,
        status: &'a BatchStatus,
    ) -> BoxFuture<'a, Result<ResultStream, FetchError>>;
    fn decoder(&self) -> &dyn LineDecoder;
    /// The newest upstream batches (up to about a thousand), for orphan matching.
    fn recent<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Candidate>, String>>;
    /// The upstream's HTTP client: every provider retries by its rules (see [`http`]).
    fn http(&self) -> &http::HttpUpstream;
    /// Waits before retrying a create whose outcome the batch list proved absent.
    fn pause<'a>(&'a self, attempt: u32, reply: Option<&'a UpstreamReply>) -> BoxFuture<'a, ()> {
        Box::pin(self.http().pause(attempt, reply))
    }
    fn max_attempts(&self) -> u32 {
        self.http().max_attempts()
    }
    /// For a surface to reach its own provider's concrete type (`Arc::downcast`).
    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync>;
}

/// Builds the provider an upstream's `kind` names; `Err` for kinds not served yet.
pub fn build(
    up: &crate::config::UpstreamSettings,
    metrics: Arc<crate::metrics::Metrics>,
) -> anyhow::Result<Arc<dyn Provider>> {
    let kind = ProviderKind::parse(&up.kind)
        .ok_or_else(|| anyhow::anyhow!("upstream.{}: unknown kind `{}`", up.name, up.kind))?;
    match kind {
        ProviderKind::Anthropic => {
            Ok(Arc::new(anthropic::AnthropicProvider::new(up, metrics)?) as Arc<dyn Provider>)
        }
        ProviderKind::OpenAi => {
            Ok(Arc::new(openai::provider::OpenAiProvider::new(up, metrics)?) as Arc<dyn Provider>)
        }
        ProviderKind::Gemini => {
            Ok(Arc::new(gemini::GeminiProvider::new(up, metrics)?) as Arc<dyn Provider>)
        }
    }
}

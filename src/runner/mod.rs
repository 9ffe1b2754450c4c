//! `batchcost run`: the batch runner every team writes by hand, done once. It reads the
//! input, prices the plan with the gateway's estimate API and checks it against the
//! budgets before anything is sent, splits it into batches within the provider's limits,
//! creates them exactly once (see `submit.rs`), follows them, downloads their results,
//! retries what is worth retrying as new batches, writes one result per item and sums the
//! batches' ledger costs. Every step is saved (`state.rs`), so a crash or Ctrl-C loses
//! nothing and the same command resumes.

mod anthropic;
mod client;
mod collect;
mod drive;
mod gemini;
mod input;
mod ledger;
mod openai;
mod output;
mod plan;
mod plan_text;
mod progress;
pub mod provider;
mod retry;
mod split;
mod state;
mod submit;
mod summary;

use std::path::PathBuf;
use std::time::Duration;

use crate::money::Money;

pub use drive::run;
pub use output::Order;

/// Everything `batchcost run` was asked to do.
#[derive(Debug)]
pub struct Options {
    pub file: PathBuf,
    pub gateway: String,
    /// `None`: the provider the input looks like.
    pub provider: Option<String>,
    /// Gemini: the batch's model when the requests do not name it.
    pub model: Option<String>,
    /// Gemini: batches up to this many bytes are sent inline, larger ones as a file.
    pub gemini_inline_bytes: Option<u64>,
    pub key: crate::config::Secret,
    /// The variable the key came from, for messages.
    pub key_env: String,
    pub admin_token: Option<crate::config::Secret>,
    pub project: Option<String>,
    pub template: Option<PathBuf>,
    pub out: PathBuf,
    pub order: Order,
    pub state: PathBuf,
    pub yes: bool,
    pub dry_run: bool,
    pub max_attempts: u32,
    pub max_batch_requests: Option<usize>,
    pub max_batch_bytes: Option<u64>,
    pub max_batch_usd: Option<Money>,
    pub summary_json: Option<PathBuf>,
    pub poll_min: Duration,
    pub poll_max: Duration,
    /// How long to wait for the ledger to settle the last batches before summing.
    pub settle_timeout: Duration,
}

/// How a run ended, short of success.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Bad arguments or input; nothing was sent.
    #[error("{0}")]
    Usage(String),
    /// The plan does not fit a budget; nothing was sent.
    #[error("{0}")]
    Budget(String),
    /// Ctrl-C: batches left running, state saved.
    #[error("{0}")]
    Interrupted(String),
    /// Some items did not succeed (listed in the summary).
    #[error("{0} items did not succeed (see the summary)")]
    ItemsFailed(usize),
    #[error("{0:#}")]
    Failed(#[from] anyhow::Error),
}

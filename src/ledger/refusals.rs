//! Budget refusals as the ledger keeps them, and the filter `GET /api/batches` lists
//! batches and refusals with. A refusal reserves nothing and is never settled: it is a
//! record of a decision, kept so an operator can explain it later.

use jiff::Timestamp;
use serde::Serialize;

use super::BatchState;
use crate::money::Money;

/// One refused submission.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Refusal {
    /// `ref_` + 24 hex digits; the 429 carries it as `error.refusal_id`.
    pub refusal_id: String,
    pub project: String,
    pub provider: String,
    pub refused_at: Timestamp,
    /// The `request-id` of the refused request.
    pub request_id: String,
    /// Always `budget_exceeded` today (the only refusal with amounts worth keeping).
    pub reason: String,
    pub budget: String,
    pub period: String,
    /// `usd`, `input_tokens` or `output_tokens`.
    pub limit_kind: String,
    pub request_count: u64,
    pub requested: Money,
    pub limit: Option<Money>,
    pub spent: Money,
    pub reserved: Money,
    pub window_end: Timestamp,
    pub body_hash: String,
    /// The 429's message: the amounts, the reset and what would fit.
    pub message: String,
}

/// What to list: every field narrows; `None` does not.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BatchFilter {
    pub project: Option<String>,
    /// A batch state, or `refused` for refusals only.
    pub state: Option<ListState>,
    /// Submitted (or refused) at or after this instant.
    pub since: Option<Timestamp>,
    /// Submitted (or refused) before this instant.
    pub until: Option<Timestamp>,
    /// At most this many of each kind, newest first.
    pub limit: u32,
}

/// The `state` filter: a batch state or `refused`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListState {
    Batch(BatchState),
    Refused,
}

impl ListState {
    pub fn parse(s: &str) -> Option<ListState> {
        match s {
            "refused" => Some(ListState::Refused),
            other => BatchState::parse(other).map(ListState::Batch),
        }
    }
}

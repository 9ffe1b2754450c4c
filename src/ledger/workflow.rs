//! What budgets add to the ledger beyond admission and settlement: approvals of large
//! batches (who asked, who approved, when, and which batch used it) and the notification
//! outbox (one row per budget window, alert threshold and webhook, so a threshold is
//! announced once per window however many replicas see it cross).

use jiff::Timestamp;
use serde::Serialize;

use crate::money::Money;

/// Where an approval is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    /// Refused and waiting for an admin.
    Pending,
    /// Approved and not yet used; admits one resubmission of the same body until it expires.
    Approved,
    /// A batch was admitted with it.
    Used,
    /// Approved but not used before `expires_at`.
    Expired,
}

/// One approval request, as the ledger keeps it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Approval {
    pub id: String,
    pub project: String,
    pub body_hash: String,
    /// The first budget whose `approval_above_usd` the hold was above.
    pub budget: String,
    pub hold: Money,
    pub threshold: Money,
    /// When the batch was first refused, and how often the same body was refused since.
    pub requested_at: Timestamp,
    pub refusals: u64,
    pub last_refused_at: Timestamp,
    pub approved_by: Option<String>,
    pub approved_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub used_by: Option<String>,
    pub used_at: Option<Timestamp>,
}

impl Approval {
    pub fn state(&self, now: Timestamp) -> ApprovalState {
        match (self.approved_at, self.used_by.is_some(), self.expires_at) {
            (_, true, _) => ApprovalState::Used,
            (None, _, _) => ApprovalState::Pending,
            (Some(_), false, Some(exp)) if exp <= now => ApprovalState::Expired,
            (Some(_), false, _) => ApprovalState::Approved,
        }
    }
}

/// A refusal that needs an approval.
#[derive(Clone, Debug)]
pub struct ApprovalRequest {
    /// Used when no pending request for this project and body exists yet.
    pub new_id: String,
    pub project: String,
    pub body_hash: String,
    pub budget: String,
    pub hold: Money,
    pub threshold: Money,
    pub at: Timestamp,
}

/// Outcome of [`crate::ledger::Ledger::approve`].
#[derive(Clone, Debug, PartialEq)]
pub enum Approve {
    NotFound,
    /// Approved now, or already approved earlier (approving twice changes nothing).
    Approved(Approval),
    /// Used or expired: a new refusal makes a new request.
    Closed(Approval),
}

/// A budget window as the outbox step reads it: its use (spent + reserved) against its
/// limit.
#[derive(Clone, Debug, PartialEq)]
pub struct WindowUse {
    pub budget: String,
    pub project: String,
    pub period: String,
    pub start: Timestamp,
    pub end: Timestamp,
    pub limit: Option<Money>,
    pub spent: Money,
    pub reserved: Money,
}

/// An outbox row: one threshold of one window, for one webhook.
#[derive(Clone, Debug, PartialEq)]
pub struct Notification {
    pub budget: String,
    pub project: String,
    pub period: String,
    pub window_start: Timestamp,
    pub window_end: Timestamp,
    /// The `alert_at` fraction as configured, e.g. `"0.8"`.
    pub threshold: String,
    /// Position of the webhook in `[[notify]]`.
    pub target: u32,
    pub limit: Money,
    /// Spent + reserved when the crossing was recorded.
    pub used: Money,
    pub created_at: Timestamp,
    pub attempts: u32,
}

/// Outbox counts for the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OutboxCounts {
    pub pending: u64,
    pub delivered: u64,
}

/// One model's bounds in a submitted batch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelBound {
    pub model: String,
    pub input_upper: u64,
    pub output_worst: u64,
    pub worst: Money,
    /// The part of `worst` that is output tokens.
    pub worst_output: Money,
}

/// A settled batch of one model: its bounds and what it used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CalibrationSample {
    pub input_upper: u64,
    pub output_worst: u64,
    pub input_actual: u64,
    pub output_actual: u64,
}

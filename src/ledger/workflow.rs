//! What budgets add to the ledger beyond admission and settlement: approvals of large
//! batches (who asked, who approved, when, and which batch used it) and the notification
//! outbox (one row per budget window, alert threshold and webhook, so a threshold is
//! announced once per window however many replicas see it cross).

use jiff::Timestamp;
use serde::Serialize;

use super::{LedgerError, LedgerFuture, WindowRef};
use crate::money::Money;

/// The ledger calls of approvals, notifications and calibrated holds. Every [`super::Ledger`]
/// is one; the default bodies refuse (`LedgerError::Unsupported`), so a backend can add
/// them one by one (`impl WorkflowLedger for MyLedger {}` compiles).
pub trait WorkflowLedger: Send + Sync {
    /// The newest approval request for this project and body.
    fn approval_for<'a>(
        &'a self,
        _project: &'a str,
        _body_hash: &'a str,
    ) -> LedgerFuture<'a, Option<Approval>> {
        Box::pin(async { Err(LedgerError::Unsupported("approvals")) })
    }
    /// Records a refusal for approval: the open request for the body, or a new one.
    fn request_approval<'a>(&'a self, _req: &'a ApprovalRequest) -> LedgerFuture<'a, Approval> {
        Box::pin(async { Err(LedgerError::Unsupported("approvals")) })
    }
    /// Approves a request by `by`, valid until `expires_at`.
    fn approve<'a>(
        &'a self,
        _id: &'a str,
        _by: &'a str,
        _now: Timestamp,
        _expires_at: Timestamp,
    ) -> LedgerFuture<'a, Approve> {
        Box::pin(async { Err(LedgerError::Unsupported("approvals")) })
    }
    /// Uses an approved, unexpired, unused approval for `sub_id`; false if it cannot.
    fn use_approval<'a>(
        &'a self,
        _id: &'a str,
        _sub_id: &'a str,
        _now: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(async { Err(LedgerError::Unsupported("approvals")) })
    }
    /// Undoes [`Ledger::use_approval`] when the batch was not admitted after all.
    fn unuse_approval<'a>(&'a self, _id: &'a str, _sub_id: &'a str) -> LedgerFuture<'a, ()> {
        Box::pin(async { Err(LedgerError::Unsupported("approvals")) })
    }
    /// The newest approval requests.
    fn approvals(&self, _limit: u32) -> LedgerFuture<'_, Vec<Approval>> {
        Box::pin(async { Err(LedgerError::Unsupported("approvals")) })
    }
    /// Budget windows ending after `since`, with spent and reserved.
    fn window_uses(&self, _since: Timestamp) -> LedgerFuture<'_, Vec<WindowUse>> {
        Box::pin(async { Err(LedgerError::Unsupported("notifications")) })
    }
    /// Inserts the crossings not yet in the outbox; returns how many were new.
    fn record_crossings<'a>(&'a self, _rows: &'a [Notification]) -> LedgerFuture<'a, u64> {
        Box::pin(async { Err(LedgerError::Unsupported("notifications")) })
    }
    /// Claims due, undelivered outbox rows for `worker` until `lease_until`.
    fn claim_notifications<'a>(
        &'a self,
        _worker: &'a str,
        _now: Timestamp,
        _lease_until: Timestamp,
        _limit: u32,
    ) -> LedgerFuture<'a, Vec<Notification>> {
        Box::pin(async { Err(LedgerError::Unsupported("notifications")) })
    }
    /// Records a delivery attempt: `Ok` delivered, `Err((reason, retry_at))` failed.
    fn notification_attempt<'a>(
        &'a self,
        _n: &'a Notification,
        _worker: &'a str,
        _now: Timestamp,
        _outcome: Result<(), (&'a str, Timestamp)>,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(async { Err(LedgerError::Unsupported("notifications")) })
    }
    fn outbox_counts(&self) -> LedgerFuture<'_, OutboxCounts> {
        Box::pin(async { Err(LedgerError::Unsupported("notifications")) })
    }
    /// The newest settled batches of a project and model, for calibrated holds.
    fn calibration_samples<'a>(
        &'a self,
        _project: &'a str,
        _model: &'a str,
        _limit: u32,
    ) -> LedgerFuture<'a, Vec<CalibrationSample>> {
        Box::pin(async { Err(LedgerError::Unsupported("calibrated holds")) })
    }
    /// Per window: sum over batches held in it of (worst case - hold).
    fn possible_overshoot<'a>(&'a self, _refs: &'a [WindowRef]) -> LedgerFuture<'a, Vec<Money>> {
        Box::pin(async { Err(LedgerError::Unsupported("calibrated holds")) })
    }
}

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

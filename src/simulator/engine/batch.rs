//! One batch of any surface and the types its lifecycle is told in: settings, outcomes,
//! counts, why it ended. A leaf the registry and every surface import.

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};

use super::time::secs;

/// Timing and outcome settings the lifecycle needs (from `SimConfig`).
#[derive(Clone, Copy, Debug)]
pub struct Lifecycle {
    pub seed: u64,
    /// Simulated seconds before the first request completes.
    pub startup_secs: f64,
    /// Requests completed per simulated second, per batch.
    pub requests_per_second: f64,
    /// Simulated seconds between a cancel and the end of the batch; requests that complete
    /// within it were in flight and still count.
    pub cancel_grace_secs: f64,
    /// Share of valid requests that fail with an internal error.
    pub errored_fraction: f64,
    /// Share of valid requests that fail as overloaded.
    pub overloaded_fraction: f64,
    /// Share of valid requests that fail as invalid.
    pub invalid_fraction: f64,
}

impl Lifecycle {
    /// The documented defaults (no failures).
    pub const DEFAULT: Lifecycle = Lifecycle {
        seed: 0,
        startup_secs: 60.0,
        requests_per_second: 50.0,
        cancel_grace_secs: 5.0,
        errored_fraction: 0.0,
        overloaded_fraction: 0.0,
        invalid_fraction: 0.0,
    };
}

/// Every provider's batches expire 24 h after creation.
pub const EXPIRY: SignedDuration = SignedDuration::from_hours(24);
/// Results stay downloadable for 29 days.
pub const RETENTION: SignedDuration = SignedDuration::from_hours(29 * 24);

/// Why a request failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The request was invalid as sent (its record says why).
    Request,
    /// A drawn internal error (`errored_fraction`).
    Internal,
    /// A drawn overload (`overloaded_fraction`).
    Overloaded,
    /// A drawn validation failure (`invalid_fraction`).
    Invalid,
}

/// Final state of one request, fixed when its batch ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Cache use in tokens: read, 5-minute write, 1-hour write.
    Succeeded {
        read: u32,
        write_5m: u32,
        write_1h: u32,
    },
    Errored(Failure),
    Canceled,
    Expired,
}

/// How a batch's requests ended, by kind.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    pub succeeded: u64,
    pub errored: u64,
    pub canceled: u64,
    pub expired: u64,
}

/// Why a batch ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndCause {
    /// Every request ran.
    Completed,
    /// A cancel was asked (requests in flight still ran).
    Cancelled,
    /// The 24 h window ran out first.
    Expired,
}

/// The end of a batch: when, its counts, and (until archival) every outcome.
#[derive(Debug)]
pub struct Ended {
    pub at: Timestamp,
    pub counts: Counts,
    pub outcomes: Option<Arc<Vec<Outcome>>>,
}

/// One batch of any surface. `R` is the surface's compact request record; `M` is what
/// the surface keeps beside it (endpoint, input file, display name, ...).
#[derive(Debug)]
pub struct Batch<R, M> {
    pub seq: u64,
    pub id: String,
    pub created_at: Timestamp,
    pub n: u64,
    pub cancel_at: Option<Timestamp>,
    pub records: Option<Arc<Vec<R>>>,
    pub ended: Option<Ended>,
    /// Indexes of the requests that will fail, ascending (for progressive counts).
    pub(super) failing: Vec<u32>,
    pub meta: M,
}

impl<R, M> Batch<R, M> {
    pub fn expires_at(&self) -> Timestamp {
        self.created_at.saturating_add(EXPIRY).unwrap_or(self.created_at)
    }

    pub fn archive_at(&self) -> Timestamp {
        self.created_at.saturating_add(RETENTION).unwrap_or(self.created_at)
    }

    /// When request `i` (in processing order) completes if nothing stops it.
    pub fn completion(&self, i: u64, lc: &Lifecycle) -> Timestamp {
        let offset = lc.startup_secs + (i + 1) as f64 / lc.requests_per_second;
        self.created_at.saturating_add(secs(offset)).unwrap_or(Timestamp::MAX)
    }

    /// When processing started (the first request is picked up).
    pub fn started_at(&self, lc: &Lifecycle) -> Timestamp {
        self.created_at.saturating_add(secs(lc.startup_secs)).unwrap_or(Timestamp::MAX)
    }

    /// When the last request completes if nothing stops it.
    pub fn last_completion(&self, lc: &Lifecycle) -> Timestamp {
        self.completion(self.n.saturating_sub(1), lc)
    }

    /// Requests completed by `now`, had nothing stopped them.
    pub fn completed_by(&self, now: Timestamp, lc: &Lifecycle) -> u64 {
        let elapsed = now.duration_since(self.created_at).as_secs_f64() - lc.startup_secs;
        if elapsed <= 0.0 {
            return 0;
        }
        ((elapsed * lc.requests_per_second).floor() as u64).min(self.n)
    }

    pub(super) fn cancel_end(&self, lc: &Lifecycle) -> Option<Timestamp> {
        self.cancel_at.map(|c| c.saturating_add(secs(lc.cancel_grace_secs)).unwrap_or(c))
    }

    pub fn end_time(&self, lc: &Lifecycle) -> Timestamp {
        let mut end = self.last_completion(lc).min(self.expires_at());
        if let Some(c) = self.cancel_end(lc) {
            end = end.min(c);
        }
        end
    }

    pub fn is_ended(&self) -> bool {
        self.ended.is_some()
    }

    /// Why the batch ended, once it has.
    pub fn end_cause(&self, lc: &Lifecycle) -> Option<EndCause> {
        let e = self.ended.as_ref()?;
        Some(if self.cancel_at.is_some() {
            EndCause::Cancelled
        } else if e.at < self.last_completion(lc) {
            EndCause::Expired
        } else {
            EndCause::Completed
        })
    }

    /// Requests done by `now` while the batch runs: those that completed, split into
    /// succeeded and errored (cancel and expiry are only known at the end).
    pub fn progress(&self, now: Timestamp, lc: &Lifecycle) -> Counts {
        let k = self.completed_by(now, lc);
        let errored = self.failing.partition_point(|&i| u64::from(i) < k) as u64;
        Counts { succeeded: k - errored, errored, ..Counts::default() }
    }
}

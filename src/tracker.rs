//! The tracker: polls every open batch through its provider until it ends and settles it,
//! and has [`crate::recover`] reconcile submissions whose upstream answer was never
//! recorded. It keeps no state of its own: everything it needs is in the ledger, so a
//! restarted process simply carries on. With several replicas, each polls only the
//! batches it has claimed (a lease in the ledger), so the upstream sees one poll stream per
//! batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};

use crate::app::App;
use crate::ledger::{BatchRecord, PollPlan};
use crate::providers::BatchPhase;
pub use crate::recover::reconcile_pending;
use crate::settle::{SettleError, fetch_status, provider_of};

/// Runs until the app shuts down.
pub async fn run(app: Arc<App>) {
    let mut last_reconcile: Option<Instant> = None;
    let reconcile_every =
        Duration::from_secs((app.settings.tracker.reconcile_after_secs / 3).clamp(1, 60));
    let tick = Duration::from_millis(app.settings.tracker.poll_min_ms.clamp(50, 1_000));
    loop {
        if app.shutdown.is_cancelled() {
            break;
        }
        if last_reconcile.is_none_or(|t| t.elapsed() >= reconcile_every) {
            reconcile_pending(&app).await;
            last_reconcile = Some(Instant::now());
        }
        match app.ledger.claim_due(&crate::replica::lease(&app), 64).await {
            Ok(due) => {
                let mut plans = Vec::with_capacity(due.len());
                for rec in due {
                    if app.shutdown.is_cancelled() {
                        break;
                    }
                    plans.extend(poll_one(&app, rec).await);
                }
                if let Err(e) = app.ledger.schedule_polls(&app.replica_id, &plans).await {
                    tracing::warn!(error = %e, polls = plans.len(), "cannot schedule the next polls");
                }
            }
            Err(e) => tracing::warn!(error = %e, "tracker cannot read the ledger"),
        }
        tokio::select! {
            _ = app.wake_tracker.notified() => {}
            _ = tokio::time::sleep(tick) => {}
            _ = app.shutdown.cancelled() => break,
        }
    }
}

/// Next poll: starts at `poll_min`, grows 1.6x per poll to `poll_max`, +/-20% jitter so
/// many batches submitted together don't poll in lockstep.
pub fn next_poll_delay(min_ms: u64, max_ms: u64, attempts: u32, jitter: f64) -> Duration {
    let grown = (min_ms as f64) * 1.6f64.powi(attempts.min(40) as i32);
    let capped = grown.min(max_ms as f64);
    Duration::from_millis((capped * (0.8 + 0.4 * jitter.clamp(0.0, 1.0))) as u64)
}

fn jitter_for(id: &str, attempts: u32) -> f64 {
    let h = xxhash_rust::xxh3::xxh3_64(format!("{id}/{attempts}").as_bytes());
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// The next poll of `rec`, written with the rest of its claim round.
fn schedule(app: &App, rec: &BatchRecord, status: Option<&str>, error: Option<&str>) -> PollPlan {
    let t = &app.settings.tracker;
    let attempts = rec.poll_attempts.saturating_add(1);
    let delay =
        next_poll_delay(t.poll_min_ms, t.poll_max_ms, attempts, jitter_for(&rec.sub_id, attempts));
    let next = app
        .clock
        .now()
        .saturating_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(Timestamp::MAX);
    PollPlan {
        sub_id: rec.sub_id.clone(),
        next_poll_at: next,
        attempts,
        last_status: status.map(str::to_string),
        error: error.map(str::to_string),
    }
}

/// Polls `rec` and settles it if it ended; its next poll unless it settled.
#[tracing::instrument(skip_all, fields(sub_id = %rec.sub_id))]
async fn poll_one(app: &App, rec: BatchRecord) -> Option<PollPlan> {
    let id = rec.upstream_id.clone()?;
    let provider = match provider_of(app, &rec) {
        Ok(p) => p,
        Err(e) => return Some(schedule(app, &rec, None, Some(&e.to_string()))),
    };
    let status = match fetch_status(provider, &id).await {
        Ok(s) => s,
        Err(SettleError::Status(code)) => {
            let msg = format!("upstream answered HTTP {code} while polling");
            tracing::warn!(upstream_id = %id, status = code, "poll failed");
            return Some(schedule(app, &rec, None, Some(&msg)));
        }
        Err(e) => return Some(schedule(app, &rec, None, Some(&e.to_string()))),
    };
    if status.phase != BatchPhase::Ended {
        return Some(schedule(app, &rec, Some(&status.status), None));
    }
    match crate::settle::settle_now(app, &rec).await {
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(upstream_id = %id, error = %e, "settlement deferred");
            Some(schedule(app, &rec, Some(&status.status), Some(&e.to_string())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn poll_delay_grows_to_the_cap_with_bounded_jitter() {
        let first = next_poll_delay(5_000, 300_000, 0, 0.5);
        assert_eq!(first, Duration::from_millis(5_000));
        assert!(next_poll_delay(5_000, 300_000, 5, 0.5) > first);
        let capped = next_poll_delay(5_000, 300_000, 40, 1.0);
        assert_eq!(capped, Duration::from_millis(360_000));
        assert!(next_poll_delay(5_000, 300_000, 40, 0.0) >= Duration::from_millis(240_000));
    }
}

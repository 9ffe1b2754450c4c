//! The tracker: polls every open batch until it ends and settles it, and reconciles
//! submissions whose upstream answer was never recorded (a crash or a lost response between
//! the upstream's acceptance and our write). It keeps no state of its own: everything it
//! needs is in the ledger, so a restarted process simply carries on. With several
//! replicas, each polls only the batches it has claimed (a lease in the ledger), so the
//! upstream sees one poll stream per batch.

use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use reqwest::Method;

use crate::gateway::App;
use crate::ledger::{BatchRecord, BatchState};
use crate::providers::anthropic::client::Forward;
use crate::providers::anthropic::wire::{BatchPage, MessageBatch, ProcessingStatus};

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
                for rec in due {
                    if app.shutdown.is_cancelled() {
                        break;
                    }
                    poll_one(&app, rec).await;
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

async fn schedule(app: &App, rec: &BatchRecord, status: Option<&str>, error: Option<&str>) {
    let t = &app.settings.tracker;
    let attempts = rec.poll_attempts.saturating_add(1);
    let delay =
        next_poll_delay(t.poll_min_ms, t.poll_max_ms, attempts, jitter_for(&rec.sub_id, attempts));
    let next = app
        .clock
        .now()
        .saturating_add(SignedDuration::try_from(delay).unwrap_or(SignedDuration::ZERO))
        .unwrap_or(Timestamp::MAX);
    if let Err(e) = app.ledger.schedule_poll(&rec.sub_id, next, attempts, status, error).await {
        tracing::warn!(sub_id = %rec.sub_id, error = %e, "cannot schedule the next poll");
    }
}

#[tracing::instrument(skip_all, fields(sub_id = %rec.sub_id))]
async fn poll_one(app: &App, rec: BatchRecord) {
    let Some(id) = rec.upstream_id.clone() else { return };
    let reply = app
        .upstream
        .call("retrieve", Method::GET, &format!("/v1/messages/batches/{id}"), &Forward::default())
        .await;
    let reply = match reply {
        Ok(r) => r,
        Err(e) => return schedule(app, &rec, None, Some(&e.to_string())).await,
    };
    if !reply.status.is_success() {
        let msg = format!("upstream answered HTTP {} while polling", reply.status.as_u16());
        tracing::warn!(upstream_id = %id, status = reply.status.as_u16(), "poll failed");
        return schedule(app, &rec, None, Some(&msg)).await;
    }
    let batch: MessageBatch = match serde_json::from_slice(&reply.body) {
        Ok(b) => b,
        Err(e) => {
            return schedule(app, &rec, None, Some(&format!("unreadable batch object: {e}"))).await;
        }
    };
    if batch.processing_status != ProcessingStatus::Ended {
        return schedule(app, &rec, Some(batch.processing_status.as_str()), None).await;
    }
    match crate::settle::settle_now(app, &rec).await {
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(upstream_id = %id, error = %e, "settlement deferred");
            schedule(app, &rec, Some("ended"), Some(&e.to_string())).await;
        }
    }
}

/// Finds, for every submission still `submitting` after `reconcile_after_secs`, the
/// upstream batch it became, or releases its hold when the upstream has none.
pub async fn reconcile_pending(app: &App) {
    let min_age = SignedDuration::from_secs(app.settings.tracker.reconcile_after_secs as i64);
    let lease = crate::replica::lease(app);
    let before = lease.now.saturating_sub(min_age).unwrap_or(Timestamp::MIN);
    // Only submissions no live replica is creating (or reconciling) come back.
    let pending = match app.ledger.claim_pending(&lease, before, 64).await {
        Ok(p) => p,
        Err(e) => return tracing::warn!(error = %e, "cannot claim pending submissions"),
    };
    for rec in pending {
        if let Err(e) = reconcile_one(app, &rec).await {
            tracing::warn!(sub_id = %rec.sub_id, error = %e, "reconciliation deferred");
        }
        // Adopted: ours to track. Released: no lease left. Undecided: the next round
        // (this replica's or another's) tries again.
        if let Ok(Some(r)) = app.ledger.batch(&rec.sub_id).await {
            if r.state == BatchState::Submitting {
                let _ = app.ledger.drop_leases(&app.replica_id, Some(&rec.sub_id)).await;
            }
        }
    }
}

/// What the upstream's batch list says about a submission whose answer was never recorded.
#[derive(Debug, PartialEq, Eq)]
pub enum Match {
    /// This upstream batch is the one.
    Found(String),
    /// The upstream has no batch it could be.
    Absent,
    /// Several same-sized batches could be it; their custom ids tell once they end.
    Undecided(usize),
}

/// Adopts the upstream batch `rec` became, or releases `rec` if there is none. Returns the
/// adopted id; an error when it cannot be decided yet (retried on the next round).
#[tracing::instrument(skip_all, fields(sub_id = %rec.sub_id))]
pub async fn reconcile_one(app: &App, rec: &BatchRecord) -> Result<Option<String>, String> {
    match find_upstream_match(app, rec).await? {
        Match::Found(id) => {
            adopt(app, rec, &id).await?;
            Ok(Some(id))
        }
        Match::Absent => {
            let released = app
                .ledger
                .release(&rec.sub_id, "the upstream never created this batch")
                .await
                .map_err(|e| e.to_string())?;
            if released {
                tracing::warn!("released the hold of a submission the upstream never created");
            }
            Ok(None)
        }
        Match::Undecided(n) => Err(format!(
            "{n} upstream batches of {} requests could be this one; waiting for them to end \
             to compare custom ids",
            rec.request_count
        )),
    }
}

/// Records `id` as the upstream batch of `rec` (no-op if `rec` is no longer submitting).
pub async fn adopt(app: &App, rec: &BatchRecord, id: &str) -> Result<(), String> {
    let adopted = app
        .ledger
        .mark_submitted(&rec.sub_id, id, app.clock.now())
        .await
        .map_err(|e| e.to_string())?;
    if adopted {
        app.metrics.submitted(&rec.project, &rec.provider);
        tracing::warn!(upstream_id = %id, "adopted an upstream batch whose acceptance was never recorded");
        app.wake_tracker.notify_one();
    }
    Ok(())
}

/// Finds the batch `rec` became among upstream batches the ledger does not know with its
/// request count. One candidate is it when no other pending submission has that count;
/// otherwise (two processes' creates cut short at once, say) only the custom ids in the
/// results can tell, so the candidate must have ended: matching by size alone could
/// charge one project's batch to another.
pub async fn find_upstream_match(app: &App, rec: &BatchRecord) -> Result<Match, String> {
    let candidates = unknown_upstream(app, rec.request_count).await?;
    if candidates.is_empty() {
        return Ok(Match::Absent);
    }
    let pending =
        app.ledger.batches_in_state(BatchState::Submitting).await.map_err(|e| e.to_string())?;
    let rivals = pending
        .iter()
        .filter(|p| p.sub_id != rec.sub_id && p.request_count == rec.request_count)
        .count();
    if rivals == 0 && candidates.len() == 1 {
        return Ok(Match::Found(candidates[0].id.clone()));
    }
    tracing::info!(
        candidates = candidates.len(),
        rivals,
        "same-sized upstream batches: comparing custom ids"
    );
    let mut open = 0;
    for b in &candidates {
        if b.processing_status != ProcessingStatus::Ended {
            open += 1;
            continue;
        }
        let fp = crate::settle::results_fingerprint(app, b).await.map_err(|e| e.to_string())?;
        if fp == rec.custom_id_fingerprint {
            return Ok(Match::Found(b.id.clone()));
        }
    }
    Ok(if open == 0 { Match::Absent } else { Match::Undecided(candidates.len()) })
}

/// Upstream batches of `requests` requests the ledger does not know (newest 1000).
async fn unknown_upstream(app: &App, requests: u64) -> Result<Vec<MessageBatch>, String> {
    let mut after: Option<String> = None;
    let mut found = Vec::new();
    for _ in 0..10 {
        let query = match &after {
            Some(a) => format!("limit=100&after_id={a}"),
            None => "limit=100".into(),
        };
        let fwd = Forward { query: Some(query), ..Default::default() };
        let reply = app
            .upstream
            .call("list", Method::GET, "/v1/messages/batches", &fwd)
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status.is_success() {
            return Err(format!("upstream answered HTTP {} to list", reply.status.as_u16()));
        }
        let page: BatchPage = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        let ids: Vec<String> = page.data.iter().map(|b| b.id.clone()).collect();
        let known = app.ledger.known_upstream_ids(&ids).await.map_err(|e| e.to_string())?;
        found.extend(
            page.data
                .into_iter()
                .filter(|b| !known.contains(&b.id) && b.request_counts.total() == requests),
        );
        if !page.has_more {
            break;
        }
        after = page.last_id.clone();
    }
    Ok(found)
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

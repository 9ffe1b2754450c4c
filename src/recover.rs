//! Finding batches an upstream accepted but the ledger never recorded (a crash or a lost
//! answer between the upstream's acceptance and our write), through the provider seam:
//! the provider lists its newest batches; a batch stamped with the submission's id is it;
//! otherwise (Anthropic keeps no stamp) one unknown batch of the same size is it when no
//! other pending submission has that size, and only the custom ids in the results can
//! tell several apart.

use crate::app::App;
use crate::ledger::{BatchRecord, BatchState};
use crate::providers::{BatchPhase, Candidate, Provider};
use jiff::SignedDuration;

/// Finds, for every submission still `submitting` after `reconcile_after_secs`, the
/// upstream batch it became, or releases its hold when the upstream has none.
pub async fn reconcile_pending(app: &App) {
    let min_age = SignedDuration::from_secs(app.settings.tracker.reconcile_after_secs as i64);
    let lease = crate::replica::lease(app);
    let before = lease.now.saturating_sub(min_age).unwrap_or(jiff::Timestamp::MIN);
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

/// Finds the batch `rec` became among upstream batches the ledger does not know. One
/// candidate is it when no other pending submission has its request count; otherwise
/// (two processes' creates cut short at once, say) only the custom ids in the results can
/// tell, so the candidate must have ended: matching by size alone could charge one
/// project's batch to another.
pub async fn find_upstream_match(app: &App, rec: &BatchRecord) -> Result<Match, String> {
    let provider = app
        .provider(&rec.provider)
        .ok_or_else(|| format!("no upstream named `{}` is configured", rec.provider))?
        .as_ref();
    let all = unknown_upstream(app, provider).await?;
    if let Some(c) = all.iter().find(|c| c.tag.as_deref() == Some(rec.sub_id.as_str())) {
        return Ok(Match::Found(c.status.id.clone()));
    }
    // Batches stamped for another submission are not candidates.
    let candidates: Vec<&Candidate> = all
        .iter()
        .filter(|c| c.tag.is_none() && c.status.counts.total == rec.request_count)
        .collect();
    if candidates.is_empty() {
        return Ok(Match::Absent);
    }
    let pending =
        app.ledger.batches_in_state(BatchState::Submitting).await.map_err(|e| e.to_string())?;
    let rivals = pending
        .iter()
        .filter(|p| {
            p.sub_id != rec.sub_id
                && p.provider == rec.provider
                && p.request_count == rec.request_count
        })
        .count();
    if rivals == 0 && candidates.len() == 1 {
        return Ok(Match::Found(candidates[0].status.id.clone()));
    }
    tracing::info!(
        candidates = candidates.len(),
        rivals,
        "same-sized upstream batches: comparing custom ids"
    );
    let mut open = 0;
    for c in &candidates {
        if c.status.phase != BatchPhase::Ended {
            open += 1;
            continue;
        }
        let fp = crate::settle::results_fingerprint(provider, &c.status)
            .await
            .map_err(|e| e.to_string())?;
        if fp == rec.custom_id_fingerprint {
            return Ok(Match::Found(c.status.id.clone()));
        }
    }
    Ok(if open == 0 { Match::Absent } else { Match::Undecided(candidates.len()) })
}

/// The provider's newest batches that the ledger does not know.
async fn unknown_upstream(app: &App, provider: &dyn Provider) -> Result<Vec<Candidate>, String> {
    let recent = provider.recent().await?;
    let ids: Vec<String> = recent.iter().map(|c| c.status.id.clone()).collect();
    let known =
        app.ledger.known_upstream_ids(provider.name(), &ids).await.map_err(|e| e.to_string())?;
    Ok(recent.into_iter().filter(|c| !known.contains(&c.status.id)).collect())
}

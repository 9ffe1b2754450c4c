//! This process as one replica of several sharing a ledger: its id, its leases, and the
//! heartbeat that keeps them alive. A lease covers work in hand (a create, a claimed poll,
//! a settlement), not a batch waiting for its next poll, so a renewal rewrites only those
//! rows. A replica that dies stops renewing, and the others take what it held over once
//! `[tracker] lease_secs` has passed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::app::App;
use crate::ledger::Lease;

/// A lease for this replica from now until `[tracker] lease_secs` from now.
pub fn lease(app: &App) -> Lease {
    let now = app.clock.now();
    let secs = app.settings.tracker.lease_secs as i64;
    let until = now.saturating_add(SignedDuration::from_secs(secs)).unwrap_or(Timestamp::MAX);
    Lease { owner: app.replica_id.clone(), now, until }
}

/// A name for one task's settling mark: this replica and a number unique in it.
pub fn task_token(app: &App) -> String {
    format!("{}#{}", app.replica_id, app.seq.fetch_add(1, Ordering::Relaxed))
}

/// Renews the leases this replica holds every third of their length until shutdown.
pub async fn heartbeat(app: std::sync::Arc<App>) {
    let every = Duration::from_millis(app.settings.tracker.lease_secs.max(1) * 1000 / 3);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.cancelled() => return,
        }
        let l = lease(&app);
        if let Err(e) = app.ledger.renew_leases(&l.owner, l.until).await {
            tracing::warn!(error = %e, "cannot renew this replica's leases");
        }
    }
}

/// Gives every lease of this replica up (a clean shutdown): the others need not wait.
pub async fn drop_all(app: &App) {
    match app.ledger.drop_leases(&app.replica_id, None).await {
        Ok(n) if n > 0 => tracing::info!(batches = n, "handed this replica's batches over"),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot hand this replica's batches over"),
    }
}

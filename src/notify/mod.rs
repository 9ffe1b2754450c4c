//! Budget threshold notifications. A worker in every replica (1) records each budget
//! window's crossed `alert_at` thresholds in the ledger's outbox, where a unique key makes
//! a threshold one row per window and webhook however many replicas record it; (2) claims
//! due rows with a lease, so two replicas never send the same row at once; (3) posts them
//! and marks them delivered, or schedules a retry with exponential backoff and jitter.
//! Undelivered rows stay in the ledger across restarts.
//!
//! A threshold is crossed when spent + reserved (what the budget has committed) reaches
//! it, not spent alone: holds last up to a day, and by the time the spend settles the
//! budget may already be refusing work. Delivery is at least once: a receiver whose 2xx
//! is lost gets the row again, with the same `x-batchcost-delivery` id.

pub mod body;

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::config::NotifyFormat;
use crate::gateway::App;
use crate::ledger::workflow::{Notification, WindowUse};
use crate::money::Money;

/// A claimed row is this replica's for this long; one that dies lets it go after it.
const LEASE: SignedDuration = SignedDuration::from_secs(60);
/// Windows that ended within this long are still checked, so a crossing recorded just
/// before midnight is not lost to the reset.
const LOOKBACK: SignedDuration = SignedDuration::from_hours(24);
/// Backoff: 5 s, 10 s, 20 s ... up to 15 min, each with 50-100 % jitter.
const BACKOFF_BASE_SECS: u64 = 5;
const BACKOFF_MAX_SECS: u64 = 900;
/// Per-attempt HTTP timeout.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Runs until shutdown; does nothing when no `[[notify]]` is configured.
pub async fn run(app: Arc<App>) {
    if app.settings.workflow.notify.is_empty() {
        return;
    }
    let worker = worker_id();
    let http = match reqwest::Client::builder().timeout(SEND_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "notifications disabled: cannot build an HTTP client");
            return;
        }
    };
    let every = Duration::from_millis(app.settings.workflow.notify_poll_ms.max(10));
    loop {
        if let Err(e) = tick(&app, &http, &worker).await {
            tracing::warn!(error = %e, "notification round failed; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = app.shutdown.cancelled() => return,
        }
    }
}

fn worker_id() -> String {
    let t = Timestamp::now().as_nanosecond();
    let h = xxhash_rust::xxh3::xxh3_64(format!("{t}/{}", std::process::id()).as_bytes());
    format!("w{h:016x}")
}

/// Records in the outbox every threshold the budgets' windows have reached and that is not
/// there yet. Called after each admission (a hold is when a window's use peaks) and in
/// every worker round (which also covers a replica that died between the two).
pub async fn record_crossings(app: &App) -> Result<u64, crate::ledger::LedgerError> {
    if app.settings.workflow.notify.is_empty() {
        return Ok(0);
    }
    let now = app.clock.now();
    let since = now.saturating_sub(LOOKBACK).unwrap_or(now);
    let uses = app.ledger.window_uses(since).await?;
    let rows = crossings(app, &uses, now);
    let new = app.ledger.record_crossings(&rows).await?;
    if new > 0 {
        tracing::info!(new, "budget thresholds crossed");
    }
    Ok(new)
}

/// One round: record crossings, claim, send.
pub async fn tick(
    app: &App,
    http: &reqwest::Client,
    worker: &str,
) -> Result<(), crate::ledger::LedgerError> {
    record_crossings(app).await?;
    let now = app.clock.now();
    let lease = now.saturating_add(LEASE).unwrap_or(now);
    for n in app.ledger.claim_notifications(worker, now, lease, 32).await? {
        let result = send(app, http, &n).await;
        let at = app.clock.now();
        let outcome = match &result {
            Ok(()) => Ok(()),
            Err(reason) => Err((reason.as_str(), at.saturating_add(backoff(&n)).unwrap_or(at))),
        };
        app.ledger.notification_attempt(&n, worker, at, outcome).await?;
        let label = if result.is_ok() { "delivered" } else { "failed" };
        app.metrics.workflow.notification(label);
        match result {
            Ok(()) => {
                tracing::info!(budget = %n.budget, threshold = %n.threshold, "notification delivered")
            }
            Err(reason) => {
                tracing::warn!(budget = %n.budget, threshold = %n.threshold, attempts = n.attempts + 1, %reason, "notification failed; will retry")
            }
        }
    }
    Ok(())
}

/// Every (threshold, webhook) a window's committed use has reached.
fn crossings(app: &App, uses: &[WindowUse], now: Timestamp) -> Vec<Notification> {
    let targets = app.settings.workflow.notify.len() as u32;
    let mut out = Vec::new();
    for w in uses {
        let Some(b) = app.settings.budgets.iter().find(|b| b.name == w.budget) else {
            continue;
        };
        let Some(limit) = w.limit.filter(|l| l.picos() > 0) else {
            continue;
        };
        let used = w.spent + w.reserved;
        for f in &b.alert_at {
            if !reached(used, limit, *f) {
                continue;
            }
            for target in 0..targets {
                out.push(Notification {
                    budget: w.budget.clone(),
                    project: w.project.clone(),
                    period: w.period.clone(),
                    window_start: w.start,
                    window_end: w.end,
                    threshold: format!("{f}"),
                    target,
                    limit,
                    used,
                    created_at: now,
                    attempts: 0,
                });
            }
        }
    }
    out
}

/// `used >= fraction × limit`, in integer pico-dollars (the fraction scaled by 10^9).
fn reached(used: Money, limit: Money, fraction: f64) -> bool {
    let scaled = (fraction * 1e9).round() as i128;
    used.picos() * 1_000_000_000 >= limit.picos() * scaled
}

/// Exponential backoff with 50-100 % jitter, from the row's key and attempt count (no
/// random source needed, and replicas retrying different rows spread out).
fn backoff(n: &Notification) -> SignedDuration {
    let exp = BACKOFF_BASE_SECS.saturating_mul(1u64 << n.attempts.min(20)).min(BACKOFF_MAX_SECS);
    let seed = format!("{}/{}/{}", body::delivery_id(n), n.target, n.attempts);
    let jitter = xxhash_rust::xxh3::xxh3_64(seed.as_bytes()) % 500;
    SignedDuration::from_millis((exp * (500 + jitter)) as i64)
}

/// Posts one row; the error names the status or the kind of failure, never the URL.
async fn send(app: &App, http: &reqwest::Client, n: &Notification) -> Result<(), String> {
    let Some(target) = app.settings.workflow.notify.get(n.target as usize) else {
        return Err("no such [[notify]] entry any more".into());
    };
    let (payload, format) = match target.format {
        NotifyFormat::Slack => (body::slack(n), "slack"),
        NotifyFormat::Json => (body::event(n), "json"),
    };
    let mut req = http
        .post(target.url.expose())
        .header("content-type", "application/json")
        .header("user-agent", concat!("batchcost/", env!("CARGO_PKG_VERSION")))
        .header(body::DELIVERY_HEADER, body::delivery_id(n));
    if let Some(secret) = &target.secret {
        let at = app.clock.now();
        req = req
            .header(body::TIMESTAMP_HEADER, at.as_second().to_string())
            .header(body::SIGNATURE_HEADER, body::sign(secret.expose().as_bytes(), at, &payload));
    }
    match req.body(payload).send().await {
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => Err(format!("{format} webhook answered HTTP {}", r.status().as_u16())),
        Err(e) if e.is_timeout() => Err(format!("{format} webhook timed out")),
        Err(e) if e.is_connect() => Err(format!("{format} webhook unreachable")),
        Err(_) => Err(format!("{format} webhook request failed")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_compare_exactly() {
        let limit = Money::from_usd(50);
        assert!(!reached(Money::parse_usd("39.999999999999").unwrap(), limit, 0.8));
        assert!(reached(Money::from_usd(40), limit, 0.8));
        assert!(reached(Money::from_usd(50), limit, 1.0));
        assert!(!reached(Money::parse_usd("49.99").unwrap(), limit, 1.0));
    }
}

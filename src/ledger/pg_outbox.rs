//! PostgreSQL statements for the notification outbox and calibrated holds (the same as
//! `sqlite_outbox.rs`, made safe for several replicas under READ COMMITTED).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::PgPool;

use super::super::rows::u;
use super::super::workflow::*;
use super::super::{LedgerError, WindowRef, to_db, ts_from_db, ts_to_db};
use super::workflow::notification_from_row;
use crate::money::Money;

pub(super) async fn window_uses(
    pool: &PgPool,
    since: Timestamp,
) -> Result<Vec<WindowUse>, LedgerError> {
    let rows = sqlx::query(
        "SELECT budget, project, period, window_start, window_end, limit_pico, spent_pico, \
         reserved_pico FROM budget_windows WHERE window_end > $1 AND limit_pico IS NOT NULL",
    )
    .bind(ts_to_db(since))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(WindowUse {
                budget: r.try_get("budget")?,
                project: r.try_get("project")?,
                period: r.try_get("period")?,
                start: ts_from_db(r.try_get("window_start")?),
                end: ts_from_db(r.try_get("window_end")?),
                limit: r.try_get::<Option<i64>, _>("limit_pico")?.map(Money::from_i64),
                spent: Money::from_i64(r.try_get("spent_pico")?),
                reserved: Money::from_i64(r.try_get("reserved_pico")?),
            })
        })
        .collect()
}

/// Inserts crossings not recorded yet; returns how many were new. Each row is its own
/// statement (no transaction): replicas inserting the same crossings in different orders
/// then cannot deadlock, and the unique key still keeps one row per crossing.
pub(super) async fn record_crossings(
    pool: &PgPool,
    rows: &[Notification],
) -> Result<u64, LedgerError> {
    let mut new = 0;
    for n in rows {
        let r = sqlx::query(
            "INSERT INTO notifications (budget, project, window_start, threshold, target, \
             period, window_end, limit_pico, used_pico, created_at, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
             ON CONFLICT (budget, project, window_start, threshold, target) DO NOTHING",
        )
        .bind(&n.budget)
        .bind(&n.project)
        .bind(ts_to_db(n.window_start))
        .bind(&n.threshold)
        .bind(i64::from(n.target))
        .bind(&n.period)
        .bind(ts_to_db(n.window_end))
        .bind(to_db(n.limit)?)
        .bind(to_db(n.used)?)
        .bind(ts_to_db(n.created_at))
        .execute(pool)
        .await?;
        new += r.rows_affected();
    }
    Ok(new)
}

/// Claims up to `limit` due, undelivered rows for `worker` until `lease_until`. The inner
/// select locks what it picks and skips rows another replica is claiming; the outer
/// condition repeats it, so a row whose claim committed meanwhile is not taken twice.
pub(super) async fn claim(
    pool: &PgPool,
    worker: &str,
    now: Timestamp,
    lease_until: Timestamp,
    limit: u32,
) -> Result<Vec<Notification>, LedgerError> {
    let rows = sqlx::query(
        "UPDATE notifications SET claimed_by = $1, claimed_until = $3 \
         WHERE delivered_at IS NULL AND (claimed_until IS NULL OR claimed_until <= $2) \
         AND (budget, project, window_start, threshold, target) IN ( \
           SELECT budget, project, window_start, threshold, target FROM notifications \
           WHERE delivered_at IS NULL AND next_attempt_at <= $2 \
           AND (claimed_until IS NULL OR claimed_until <= $2) \
           ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
         RETURNING *",
    )
    .bind(worker)
    .bind(ts_to_db(now))
    .bind(ts_to_db(lease_until))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(notification_from_row).collect()
}

/// Records an attempt by `worker`: delivered, or failed and due again at `retry_at`. Only
/// the claim holder's attempt counts.
pub(super) async fn attempt(
    pool: &PgPool,
    n: &Notification,
    worker: &str,
    now: Timestamp,
    outcome: Result<(), (&str, Timestamp)>,
) -> Result<bool, LedgerError> {
    let (delivered, error, next) = match outcome {
        Ok(()) => (Some(ts_to_db(now)), None, ts_to_db(now)),
        Err((e, retry_at)) => (None, Some(e), ts_to_db(retry_at)),
    };
    let r = sqlx::query(
        "UPDATE notifications SET attempts = attempts + 1, delivered_at = $7, last_error = $8, \
         next_attempt_at = $9, claimed_by = NULL, claimed_until = NULL \
         WHERE budget = $1 AND project = $2 AND window_start = $3 AND threshold = $4 \
         AND target = $5 AND claimed_by = $6 AND delivered_at IS NULL",
    )
    .bind(&n.budget)
    .bind(&n.project)
    .bind(ts_to_db(n.window_start))
    .bind(&n.threshold)
    .bind(i64::from(n.target))
    .bind(worker)
    .bind(delivered)
    .bind(error)
    .bind(next)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub(super) async fn counts(pool: &PgPool) -> Result<OutboxCounts, LedgerError> {
    let r = sqlx::query(
        "SELECT COUNT(*) FILTER (WHERE delivered_at IS NULL) AS p, \
         COUNT(*) FILTER (WHERE delivered_at IS NOT NULL) AS d FROM notifications",
    )
    .fetch_one(pool)
    .await?;
    Ok(OutboxCounts { pending: u(r.try_get("p")?), delivered: u(r.try_get("d")?) })
}

/// The newest `limit` settled batches of `project` with `model`, bounds and usage.
pub(super) async fn calibration_samples(
    pool: &PgPool,
    project: &str,
    model: &str,
    limit: u32,
) -> Result<Vec<CalibrationSample>, LedgerError> {
    let rows = sqlx::query(
        "SELECT k.input_upper, k.output_worst, \
         u.input_tokens + u.cache_write_5m + u.cache_write_1h + u.cache_read AS input_actual, \
         u.output_tokens AS output_actual \
         FROM batch_bounds k JOIN batches b ON b.sub_id = k.sub_id \
         JOIN batch_usage u ON u.sub_id = k.sub_id AND u.model = k.model \
         WHERE b.project = $1 AND k.model = $2 AND b.state = 'settled' \
         ORDER BY b.settled_at DESC LIMIT $3",
    )
    .bind(project)
    .bind(model)
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(CalibrationSample {
                input_upper: u(r.try_get("input_upper")?),
                output_worst: u(r.try_get("output_worst")?),
                input_actual: u(r.try_get("input_actual")?),
                output_actual: u(r.try_get("output_actual")?),
            })
        })
        .collect()
}

/// Per window: the sum over batches still held in it of worst case minus hold (cast back
/// to BIGINT; PostgreSQL sums BIGINT into NUMERIC).
pub(super) async fn possible_overshoot(
    pool: &PgPool,
    refs: &[WindowRef],
) -> Result<Vec<Money>, LedgerError> {
    let mut out = Vec::with_capacity(refs.len());
    for w in refs {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(b.hold_pico - r.hold_pico), 0)::BIGINT AS gap \
             FROM reservations r JOIN batches b ON b.sub_id = r.sub_id \
             WHERE r.budget = $1 AND r.window_start = $2 AND r.state = 'held' \
             AND b.hold_pico > r.hold_pico",
        )
        .bind(&w.budget)
        .bind(ts_to_db(w.start))
        .fetch_one(pool)
        .await?;
        out.push(Money::from_i64(r.try_get("gap")?));
    }
    Ok(out)
}

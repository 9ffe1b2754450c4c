//! SQLite statements for the notification outbox and calibrated holds ($N placeholders and
//! `ON CONFLICT`/`RETURNING`, valid in PostgreSQL too).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::rows::u;
use super::workflow::*;
use super::*;

fn notification_from_row(r: &SqliteRow) -> Result<Notification, LedgerError> {
    Ok(Notification {
        budget: r.try_get("budget")?,
        project: r.try_get("project")?,
        period: r.try_get("period")?,
        window_start: ts_from_db(r.try_get("window_start")?),
        window_end: ts_from_db(r.try_get("window_end")?),
        threshold: r.try_get("threshold")?,
        target: u(r.try_get("target")?) as u32,
        limit: Money::from_i64(r.try_get("limit_pico")?),
        used: Money::from_i64(r.try_get("used_pico")?),
        created_at: ts_from_db(r.try_get("created_at")?),
        attempts: u(r.try_get("attempts")?) as u32,
    })
}

impl SqliteLedger {
    /// Budget windows that ended after `since` (or have not ended), with their use.
    pub(super) async fn wf_window_uses(
        &self,
        since: Timestamp,
    ) -> Result<Vec<WindowUse>, LedgerError> {
        let rows = sqlx::query(
            "SELECT budget, project, period, window_start, window_end, limit_pico, spent_pico, \
             reserved_pico FROM budget_windows WHERE window_end > $1 AND limit_pico IS NOT NULL",
        )
        .bind(ts_to_db(since))
        .fetch_all(&mut *self.w().await)
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

    /// Inserts crossings not recorded yet; returns how many were new.
    pub(super) async fn wf_record_crossings(
        &self,
        rows: &[Notification],
    ) -> Result<u64, LedgerError> {
        if rows.is_empty() {
            return Ok(0);
        }
        let mut w = self.w().await;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
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
            .execute(&mut *tx)
            .await?;
            new += r.rows_affected();
        }
        tx.commit().await?;
        Ok(new)
    }

    /// Claims up to `limit` due, undelivered rows for `worker` until `lease_until`: a row
    /// claimed by a live worker is skipped by the others. The outer condition repeats the
    /// inner one so that on PostgreSQL (READ COMMITTED re-checks the updated row) two
    /// replicas racing for a row cannot both claim it.
    pub(super) async fn wf_claim_notifications(
        &self,
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
               ORDER BY next_attempt_at LIMIT $4) \
             RETURNING *",
        )
        .bind(worker)
        .bind(ts_to_db(now))
        .bind(ts_to_db(lease_until))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.w().await)
        .await?;
        rows.iter().map(notification_from_row).collect()
    }

    /// Records an attempt by `worker`: delivered, or failed and due again at `retry_at`.
    pub(super) async fn wf_notification_attempt(
        &self,
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
        .execute(&mut *self.w().await)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    pub(super) async fn wf_outbox_counts(&self) -> Result<OutboxCounts, LedgerError> {
        let r = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN delivered_at IS NULL THEN 1 ELSE 0 END), 0) AS p, \
             COALESCE(SUM(CASE WHEN delivered_at IS NULL THEN 0 ELSE 1 END), 0) AS d \
             FROM notifications",
        )
        .fetch_one(&self.reader)
        .await?;
        Ok(OutboxCounts { pending: u(r.try_get("p")?), delivered: u(r.try_get("d")?) })
    }

    /// The newest `limit` settled batches of `project` with `model`, bounds and usage.
    pub(super) async fn wf_calibration_samples(
        &self,
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
        .fetch_all(&self.reader)
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

    /// Per window: the sum over batches still held in it of worst case minus hold.
    pub(super) async fn wf_possible_overshoot(
        &self,
        refs: &[WindowRef],
    ) -> Result<Vec<Money>, LedgerError> {
        let mut out = Vec::with_capacity(refs.len());
        for w in refs {
            let r = sqlx::query(
                "SELECT COALESCE(SUM(b.hold_pico - r.hold_pico), 0) AS gap FROM reservations r \
                 JOIN batches b ON b.sub_id = r.sub_id \
                 WHERE r.budget = $1 AND r.window_start = $2 AND r.state = 'held' \
                 AND b.hold_pico > r.hold_pico",
            )
            .bind(&w.budget)
            .bind(ts_to_db(w.start))
            .fetch_one(&self.reader)
            .await?;
            out.push(Money::from_i64(r.try_get("gap")?));
        }
        Ok(out)
    }
}

//! PostgreSQL side of approvals, the notification outbox and calibrated holds (the same
//! statements as `sqlite_workflow.rs` and `sqlite_outbox.rs`; migration 5 creates the
//! tables). What differs is that several replicas write at once under READ COMMITTED:
//! refusals of one body serialise on an advisory lock, outbox claims skip locked rows, and
//! sums are cast back to BIGINT (PostgreSQL sums BIGINT into NUMERIC).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::super::rows::u;
use super::super::workflow::*;
use super::super::{LedgerError, LedgerFuture, WindowRef, to_db, ts_from_db, ts_to_db};
use super::{PgLedger, outbox};
use crate::money::Money;

const APPROVAL_COLUMNS: &str = "id, project, body_hash, budget, hold_pico, threshold_pico, \
    requested_at, refusals, last_refused_at, approved_by, approved_at, expires_at, used_by, used_at";

fn approval_from_row(r: &PgRow) -> Result<Approval, LedgerError> {
    let opt_ts = |c: &str| -> Result<Option<Timestamp>, LedgerError> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(ts_from_db))
    };
    Ok(Approval {
        id: r.try_get("id")?,
        project: r.try_get("project")?,
        body_hash: r.try_get("body_hash")?,
        budget: r.try_get("budget")?,
        hold: Money::from_i64(r.try_get("hold_pico")?),
        threshold: Money::from_i64(r.try_get("threshold_pico")?),
        requested_at: ts_from_db(r.try_get("requested_at")?),
        refusals: u(r.try_get("refusals")?),
        last_refused_at: ts_from_db(r.try_get("last_refused_at")?),
        approved_by: r.try_get("approved_by")?,
        approved_at: opt_ts("approved_at")?,
        expires_at: opt_ts("expires_at")?,
        used_by: r.try_get("used_by")?,
        used_at: opt_ts("used_at")?,
    })
}

pub(super) fn notification_from_row(r: &PgRow) -> Result<Notification, LedgerError> {
    Ok(Notification {
        budget: r.try_get("budget")?,
        project: r.try_get("project")?,
        period: r.try_get("period")?,
        window_start: ts_from_db(r.try_get("window_start")?),
        window_end: ts_from_db(r.try_get("window_end")?),
        threshold: r.try_get("threshold")?,
        target: u32::try_from(u(r.try_get("target")?)).unwrap_or(u32::MAX),
        limit: Money::from_i64(r.try_get("limit_pico")?),
        used: Money::from_i64(r.try_get("used_pico")?),
        created_at: ts_from_db(r.try_get("created_at")?),
        attempts: u32::try_from(u(r.try_get("attempts")?)).unwrap_or(u32::MAX),
    })
}

async fn approval_for(
    pool: &PgPool,
    project: &str,
    body_hash: &str,
) -> Result<Option<Approval>, LedgerError> {
    let row = sqlx::query(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE project = $1 AND body_hash = $2 \
         ORDER BY requested_at DESC, id DESC LIMIT 1"
    ))
    .bind(project)
    .bind(body_hash)
    .fetch_optional(pool)
    .await?;
    row.as_ref().map(approval_from_row).transpose()
}

/// Bumps the open request for this body or opens a new one. Under READ COMMITTED two
/// replicas refusing the same body at once would both find no open request and both insert;
/// a transaction-scoped advisory lock on (project, body) makes the second wait and bump.
async fn request_approval(pool: &PgPool, req: &ApprovalRequest) -> Result<Approval, LedgerError> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(10) || $2, 16))")
        .bind(&req.project)
        .bind(&req.body_hash)
        .execute(&mut *tx)
        .await?;
    let open = sqlx::query(
        "UPDATE approvals SET refusals = refusals + 1, last_refused_at = $3 \
         WHERE id = (SELECT id FROM approvals WHERE project = $1 AND body_hash = $2 \
         AND used_by IS NULL AND (expires_at IS NULL OR expires_at > $3) \
         ORDER BY requested_at DESC LIMIT 1) RETURNING id",
    )
    .bind(&req.project)
    .bind(&req.body_hash)
    .bind(ts_to_db(req.at))
    .fetch_optional(&mut *tx)
    .await?;
    let id = match open {
        Some(r) => r.try_get::<String, _>("id")?,
        None => {
            sqlx::query(
                "INSERT INTO approvals (id, project, body_hash, budget, hold_pico, \
                 threshold_pico, requested_at, last_refused_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            )
            .bind(&req.new_id)
            .bind(&req.project)
            .bind(&req.body_hash)
            .bind(&req.budget)
            .bind(to_db(req.hold)?)
            .bind(to_db(req.threshold)?)
            .bind(ts_to_db(req.at))
            .execute(&mut *tx)
            .await?;
            req.new_id.clone()
        }
    };
    let row = sqlx::query(&format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"))
        .bind(&id)
        .fetch_one(&mut *tx)
        .await?;
    tx.commit().await?;
    approval_from_row(&row)
}

/// The conditional UPDATE is re-checked against the committed row, so of two admins
/// approving at once the first wins and the second changes nothing.
async fn approve(
    pool: &PgPool,
    id: &str,
    by: &str,
    now: Timestamp,
    expires_at: Timestamp,
) -> Result<Approve, LedgerError> {
    let mut tx = pool.begin().await?;
    sqlx::query(
        "UPDATE approvals SET approved_by = $2, approved_at = $3, expires_at = $4 \
         WHERE id = $1 AND approved_at IS NULL",
    )
    .bind(id)
    .bind(by)
    .bind(ts_to_db(now))
    .bind(ts_to_db(expires_at))
    .execute(&mut *tx)
    .await?;
    let row = sqlx::query(&format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE id = $1"))
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
    tx.commit().await?;
    let Some(a) = row.as_ref().map(approval_from_row).transpose()? else {
        return Ok(Approve::NotFound);
    };
    Ok(match a.state(now) {
        ApprovalState::Approved => Approve::Approved(a),
        _ => Approve::Closed(a),
    })
}

/// One conditional statement: of two resubmissions racing, the second re-checks
/// `used_by IS NULL` after the first commits and updates nothing.
async fn use_approval(
    pool: &PgPool,
    id: &str,
    sub_id: &str,
    now: Timestamp,
) -> Result<bool, LedgerError> {
    let r = sqlx::query(
        "UPDATE approvals SET used_by = $2, used_at = $3 WHERE id = $1 AND used_by IS NULL \
         AND approved_at IS NOT NULL AND expires_at > $3",
    )
    .bind(id)
    .bind(sub_id)
    .bind(ts_to_db(now))
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

async fn unuse_approval(pool: &PgPool, id: &str, sub_id: &str) -> Result<(), LedgerError> {
    sqlx::query(
        "UPDATE approvals SET used_by = NULL, used_at = NULL WHERE id = $1 AND used_by = $2",
    )
    .bind(id)
    .bind(sub_id)
    .execute(pool)
    .await?;
    Ok(())
}

async fn approvals(pool: &PgPool, limit: u32) -> Result<Vec<Approval>, LedgerError> {
    let rows = sqlx::query(&format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals ORDER BY requested_at DESC, id LIMIT $1"
    ))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await?;
    rows.iter().map(approval_from_row).collect()
}

impl WorkflowLedger for PgLedger {
    fn approval_for<'a>(
        &'a self,
        project: &'a str,
        body_hash: &'a str,
    ) -> LedgerFuture<'a, Option<Approval>> {
        Box::pin(approval_for(&self.pool, project, body_hash))
    }
    fn request_approval<'a>(&'a self, req: &'a ApprovalRequest) -> LedgerFuture<'a, Approval> {
        Box::pin(request_approval(&self.pool, req))
    }
    fn approve<'a>(
        &'a self,
        id: &'a str,
        by: &'a str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> LedgerFuture<'a, Approve> {
        Box::pin(approve(&self.pool, id, by, now, expires_at))
    }
    fn use_approval<'a>(
        &'a self,
        id: &'a str,
        sub_id: &'a str,
        now: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(use_approval(&self.pool, id, sub_id, now))
    }
    fn unuse_approval<'a>(&'a self, id: &'a str, sub_id: &'a str) -> LedgerFuture<'a, ()> {
        Box::pin(unuse_approval(&self.pool, id, sub_id))
    }
    fn approvals(&self, limit: u32) -> LedgerFuture<'_, Vec<Approval>> {
        Box::pin(approvals(&self.pool, limit))
    }
    fn window_uses(&self, since: Timestamp) -> LedgerFuture<'_, Vec<WindowUse>> {
        Box::pin(outbox::window_uses(&self.pool, since))
    }
    fn record_crossings<'a>(&'a self, rows: &'a [Notification]) -> LedgerFuture<'a, u64> {
        Box::pin(outbox::record_crossings(&self.pool, rows))
    }
    fn claim_notifications<'a>(
        &'a self,
        worker: &'a str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<Notification>> {
        Box::pin(outbox::claim(&self.pool, worker, now, lease_until, limit))
    }
    fn notification_attempt<'a>(
        &'a self,
        n: &'a Notification,
        worker: &'a str,
        now: Timestamp,
        outcome: Result<(), (&'a str, Timestamp)>,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(outbox::attempt(&self.pool, n, worker, now, outcome))
    }
    fn outbox_counts(&self) -> LedgerFuture<'_, OutboxCounts> {
        Box::pin(outbox::counts(&self.pool))
    }
    fn calibration_samples<'a>(
        &'a self,
        project: &'a str,
        model: &'a str,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<CalibrationSample>> {
        Box::pin(outbox::calibration_samples(&self.pool, project, model, limit))
    }
    fn possible_overshoot<'a>(&'a self, refs: &'a [WindowRef]) -> LedgerFuture<'a, Vec<Money>> {
        Box::pin(outbox::possible_overshoot(&self.pool, refs))
    }
}

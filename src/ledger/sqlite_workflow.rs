//! SQLite statements for approvals, and the [`WorkflowLedger`] impl that routes to them
//! and to `sqlite_outbox` ($N placeholders and `ON CONFLICT`/`RETURNING`, valid in
//! PostgreSQL too).

use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use super::rows::u;
use super::workflow::*;
use super::*;

const APPROVAL_COLUMNS: &str = "id, project, body_hash, budget, hold_pico, threshold_pico, \
    requested_at, refusals, last_refused_at, approved_by, approved_at, expires_at, used_by, used_at";

fn approval_from_row(r: &SqliteRow) -> Result<Approval, LedgerError> {
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

impl SqliteLedger {
    /// The newest approval for this project and body.
    pub(super) async fn wf_approval_for(
        &self,
        project: &str,
        body_hash: &str,
    ) -> Result<Option<Approval>, LedgerError> {
        let row = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE project = $1 AND body_hash = $2 \
             ORDER BY requested_at DESC, id DESC LIMIT 1"
        ))
        .bind(project)
        .bind(body_hash)
        .fetch_optional(&mut *self.w().await)
        .await?;
        row.as_ref().map(approval_from_row).transpose()
    }

    /// Records a refusal: bumps the open request for this body (pending or approved and
    /// unused, unexpired) or opens a new one. One transaction, so concurrent refusals of
    /// the same body share one request.
    pub(super) async fn wf_request_approval(
        &self,
        req: &ApprovalRequest,
    ) -> Result<Approval, LedgerError> {
        let mut w = self.w().await;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
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

    pub(super) async fn wf_approve(
        &self,
        id: &str,
        by: &str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> Result<Approve, LedgerError> {
        let mut w = self.w().await;
        let mut tx = sqlx::Connection::begin(&mut *w).await?;
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

    /// Marks an approved, unexpired, unused approval as used by `sub_id`: one conditional
    /// statement, so two resubmissions racing each other cannot both use it.
    pub(super) async fn wf_use_approval(
        &self,
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
        .execute(&mut *self.w().await)
        .await?;
        Ok(r.rows_affected() == 1)
    }

    /// Gives an approval back when the batch it admitted was refused by a limit after all.
    pub(super) async fn wf_unuse_approval(
        &self,
        id: &str,
        sub_id: &str,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE approvals SET used_by = NULL, used_at = NULL WHERE id = $1 AND used_by = $2",
        )
        .bind(id)
        .bind(sub_id)
        .execute(&mut *self.w().await)
        .await?;
        Ok(())
    }

    pub(super) async fn wf_approvals(&self, limit: u32) -> Result<Vec<Approval>, LedgerError> {
        let rows = sqlx::query(&format!(
            "SELECT {APPROVAL_COLUMNS} FROM approvals ORDER BY requested_at DESC, id LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(approval_from_row).collect()
    }
}

impl WorkflowLedger for SqliteLedger {
    fn approval_for<'a>(
        &'a self,
        project: &'a str,
        body_hash: &'a str,
    ) -> LedgerFuture<'a, Option<Approval>> {
        Box::pin(self.wf_approval_for(project, body_hash))
    }
    fn request_approval<'a>(&'a self, req: &'a ApprovalRequest) -> LedgerFuture<'a, Approval> {
        Box::pin(self.wf_request_approval(req))
    }
    fn approve<'a>(
        &'a self,
        id: &'a str,
        by: &'a str,
        now: Timestamp,
        expires_at: Timestamp,
    ) -> LedgerFuture<'a, Approve> {
        Box::pin(self.wf_approve(id, by, now, expires_at))
    }
    fn use_approval<'a>(
        &'a self,
        id: &'a str,
        sub_id: &'a str,
        now: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(self.wf_use_approval(id, sub_id, now))
    }
    fn unuse_approval<'a>(&'a self, id: &'a str, sub_id: &'a str) -> LedgerFuture<'a, ()> {
        Box::pin(self.wf_unuse_approval(id, sub_id))
    }
    fn approvals(&self, limit: u32) -> LedgerFuture<'_, Vec<Approval>> {
        Box::pin(self.wf_approvals(limit))
    }
    fn window_uses(&self, since: Timestamp) -> LedgerFuture<'_, Vec<WindowUse>> {
        Box::pin(self.wf_window_uses(since))
    }
    fn record_crossings<'a>(&'a self, rows: &'a [Notification]) -> LedgerFuture<'a, u64> {
        Box::pin(self.wf_record_crossings(rows))
    }
    fn claim_notifications<'a>(
        &'a self,
        worker: &'a str,
        now: Timestamp,
        lease_until: Timestamp,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<Notification>> {
        Box::pin(self.wf_claim_notifications(worker, now, lease_until, limit))
    }
    fn notification_attempt<'a>(
        &'a self,
        n: &'a Notification,
        worker: &'a str,
        now: Timestamp,
        outcome: Result<(), (&'a str, Timestamp)>,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(self.wf_notification_attempt(n, worker, now, outcome))
    }
    fn outbox_counts(&self) -> LedgerFuture<'_, OutboxCounts> {
        Box::pin(self.wf_outbox_counts())
    }
    fn calibration_samples<'a>(
        &'a self,
        project: &'a str,
        model: &'a str,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<CalibrationSample>> {
        Box::pin(self.wf_calibration_samples(project, model, limit))
    }
    fn possible_overshoot<'a>(&'a self, refs: &'a [WindowRef]) -> LedgerFuture<'a, Vec<Money>> {
        Box::pin(self.wf_possible_overshoot(refs))
    }
}

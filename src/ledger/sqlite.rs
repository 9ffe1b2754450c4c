//! SQLite backend: WAL journal, one writer connection (SQLite has one writer anyway, and a
//! single connection never meets a lock-upgrade deadlock) and a small reader pool.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};

use super::rows::{batch_from_row, empty_window, opt_count, u, usage_from_row, window_from_row};
use super::*;
use crate::config::Durability;

use super::sql::{self, BATCH_COLUMNS};

#[path = "sqlite_refusals.rs"]
mod refusals;

/// The SQLite ledger.
pub struct SqliteLedger {
    pub(super) writer: SqlitePool,
    pub(super) reader: SqlitePool,
}

impl SqliteLedger {
    /// Opens (creating if missing) and migrates, with the default durability.
    pub async fn open(url: &str) -> Result<Self, LedgerError> {
        Self::open_with(url, Durability::Normal).await
    }

    /// In WAL mode NORMAL loses nothing when the process dies (the WAL is in the page
    /// cache at commit); FULL also flushes it to disk, surviving power loss.
    pub async fn open_with(url: &str, durability: Durability) -> Result<Self, LedgerError> {
        let memory = url.contains(":memory:");
        let sync = match durability {
            Durability::Normal => SqliteSynchronous::Normal,
            Durability::Full => SqliteSynchronous::Full,
        };
        let opts = SqliteConnectOptions::from_str(url)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(sync)
            .busy_timeout(Duration::from_secs(10));
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(opts.clone())
            .await?;
        match schema_state(&writer).await? {
            SchemaState::Empty => {
                migrate::migrator(Backend::Sqlite, None).run(&writer).await?;
            }
            state => state.require_current(Backend::Sqlite)?,
        }
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(true)).await?
        };
        Ok(SqliteLedger { writer, reader })
    }

    async fn window_state(
        tx: &mut Transaction<'_, Sqlite>,
        w: &WindowRef,
    ) -> Result<WindowState, LedgerError> {
        let row =
            sqlx::query("SELECT * FROM budget_windows WHERE budget = $1 AND window_start = $2")
                .bind(&w.budget)
                .bind(ts_to_db(w.start))
                .fetch_optional(&mut **tx)
                .await?;
        Ok(match row {
            Some(r) => window_from_row(&r, w)?,
            None => empty_window(w),
        })
    }
}

/// Where the database stands against this binary's migrations.
async fn schema_state(pool: &SqlitePool) -> Result<SchemaState, LedgerError> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(pool)
            .await?;
    let has = |t: &str| tables.iter().any(|n| n == t);
    let applied = if has("_sqlx_migrations") {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(pool)
        .await?
    } else {
        None
    };
    Ok(SchemaState::of(Backend::Sqlite, has("batches"), applied))
}

/// `batchcost migrate` on SQLite: (state before, version after).
pub(super) async fn migrate(
    url: &str,
    upto: Option<i64>,
) -> Result<(SchemaState, i64), LedgerError> {
    let opts = SqliteConnectOptions::from_str(url)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new().max_connections(1).connect_with(opts).await?;
    let before = schema_state(&pool).await?;
    if let SchemaState::Newer(_) = before {
        before.require_current(Backend::Sqlite)?;
    }
    migrate::migrator(Backend::Sqlite, upto).run(&pool).await?;
    let after: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok((before, after.unwrap_or(0)))
}

/// Ends every hold of `sub_id`: each window it sat in gives back the hold and takes what
/// the batch spent there (nothing for a release; for a settlement, the cost and tokens of
/// the models the window's budget counts, see [`Settlement::spent_by`]). Both paths go
/// through here, so a release and a settlement can never disagree on which windows a
/// batch counted against.
async fn close_holds(
    tx: &mut Transaction<'_, Sqlite>,
    sub_id: &str,
    settled: Option<&Settlement>,
    state: &str,
) -> Result<(), LedgerError> {
    let holds = sqlx::query(
        "SELECT budget, window_start, hold_pico, hold_input, hold_output FROM reservations \
         WHERE sub_id = $1 AND state = 'held' ORDER BY budget, window_start",
    )
    .bind(sub_id)
    .fetch_all(&mut **tx)
    .await?;
    for h in &holds {
        let budget: String = h.try_get("budget")?;
        let spent = settled.map(|s| s.spent_by(&budget)).unwrap_or_default();
        sqlx::query(
            "UPDATE budget_windows SET reserved_pico = reserved_pico - $3, \
             reserved_input = reserved_input - $4, reserved_output = reserved_output - $5, \
             spent_pico = spent_pico + $6, spent_input = spent_input + $7, \
             spent_output = spent_output + $8 WHERE budget = $1 AND window_start = $2",
        )
        .bind(&budget)
        .bind(h.try_get::<i64, _>("window_start")?)
        .bind(h.try_get::<i64, _>("hold_pico")?)
        .bind(h.try_get::<i64, _>("hold_input")?)
        .bind(h.try_get::<i64, _>("hold_output")?)
        .bind(to_db(spent.cost)?)
        .bind(count_to_db(spent.input_tokens)?)
        .bind(count_to_db(spent.output_tokens)?)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("UPDATE reservations SET state = $2 WHERE sub_id = $1 AND state = 'held'")
        .bind(sub_id)
        .bind(state)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Ledger for SqliteLedger {
    fn admit<'a>(&'a self, s: &'a NewSubmission) -> LedgerFuture<'a, Admit> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            // The unique key decides: a second identical body inserts nothing.
            let fresh = sqlx::query(sql::DEDUPE_CLAIM)
                .bind(&s.project)
                .bind(&s.body_hash)
                .bind(&s.sub_id)
                .bind(ts_to_db(s.submitted_at))
                .bind(ts_to_db(s.dedupe_since))
                .execute(&mut *tx)
                .await?;
            if fresh.rows_affected() != 1 {
                let row = sqlx::query(&sql::dedupe_batch())
                    .bind(&s.project)
                    .bind(&s.body_hash)
                    .fetch_optional(&mut *tx)
                    .await?;
                tx.rollback().await?;
                let row = row
                    .ok_or_else(|| LedgerError::Range("a dedupe key names no batch".to_string()))?;
                return Ok(Admit::Duplicate(Box::new(batch_from_row(&row)?)));
            }
            // Always in one order, on every path that touches windows.
            for w in sql::lock_order(&s.windows) {
                // A window may hold less than the whole worst case (models filter, calibrated).
                let hold = w.hold.unwrap_or(s.hold);
                let (usd, inp, out) = (
                    to_db(hold.usd)?,
                    count_to_db(hold.input_tokens)?,
                    count_to_db(hold.output_tokens)?,
                );
                sqlx::query(
                    "INSERT INTO budget_windows (budget, window_start, window_end, project, period, \
                     limit_pico, limit_input, limit_output) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
                     ON CONFLICT (budget, window_start) DO UPDATE SET limit_pico = excluded.limit_pico, \
                     limit_input = excluded.limit_input, limit_output = excluded.limit_output",
                )
                .bind(&w.budget)
                .bind(ts_to_db(w.start))
                .bind(ts_to_db(w.end))
                .bind(&w.project)
                .bind(w.period.as_str())
                .bind(w.limit.map(to_db).transpose()?)
                .bind(opt_count(w.limit_input_tokens)?)
                .bind(opt_count(w.limit_output_tokens)?)
                .execute(&mut *tx)
                .await?;
                // The decisive step: one conditional statement per window.
                let reserved = sqlx::query(
                    "UPDATE budget_windows SET reserved_pico = reserved_pico + $3, \
                     reserved_input = reserved_input + $4, reserved_output = reserved_output + $5 \
                     WHERE budget = $1 AND window_start = $2 \
                     AND (limit_pico IS NULL OR spent_pico + reserved_pico + $3 <= limit_pico) \
                     AND (limit_input IS NULL OR spent_input + reserved_input + $4 <= limit_input) \
                     AND (limit_output IS NULL OR spent_output + reserved_output + $5 <= limit_output)",
                )
                .bind(&w.budget)
                .bind(ts_to_db(w.start))
                .bind(usd)
                .bind(inp)
                .bind(out)
                .execute(&mut *tx)
                .await?;
                if reserved.rows_affected() != 1 {
                    let state = Self::window_state(&mut tx, w).await?;
                    tx.rollback().await?;
                    return Ok(Admit::Refused(Box::new(state)));
                }
                sqlx::query(
                    "INSERT INTO reservations (sub_id, budget, window_start, hold_pico, hold_input, \
                     hold_output, state) VALUES ($1, $2, $3, $4, $5, $6, 'held')",
                )
                .bind(&s.sub_id)
                .bind(&w.budget)
                .bind(ts_to_db(w.start))
                .bind(usd)
                .bind(inp)
                .bind(out)
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO batches (sub_id, project, provider, state, submitted_at, request_count, \
                 hold_pico, hold_input, hold_output, custom_id_fp, body_hash, estimate_json, \
                 lease_owner, lease_until) \
                 VALUES ($1, $2, $3, 'submitting', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
            )
            .bind(&s.sub_id)
            .bind(&s.project)
            .bind(&s.provider)
            .bind(ts_to_db(s.submitted_at))
            .bind(count_to_db(s.request_count)?)
            .bind(to_db(s.hold.usd)?)
            .bind(count_to_db(s.hold.input_tokens)?)
            .bind(count_to_db(s.hold.output_tokens)?)
            .bind(s.custom_id_fingerprint as i64)
            .bind(&s.body_hash)
            .bind(&s.estimate_json)
            .bind(s.lease.as_ref().map(|l| l.owner.as_str()))
            .bind(s.lease.as_ref().map(|l| ts_to_db(l.until)))
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(Admit::Admitted)
        })
    }

    fn mark_submitted<'a>(
        &'a self,
        sub_id: &'a str,
        upstream_id: &'a str,
        next_poll_at: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query(
                "UPDATE batches SET state = 'in_flight', upstream_id = $2, next_poll_at = $3 \
                 WHERE sub_id = $1 AND state = 'submitting'",
            )
            .bind(sub_id)
            .bind(upstream_id)
            .bind(ts_to_db(next_poll_at))
            .execute(&self.writer)
            .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn release<'a>(&'a self, sub_id: &'a str, reason: &'a str) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self.writer.begin().await?;
            let r = sqlx::query(
                "UPDATE batches SET state = 'failed', error = $2, lease_owner = NULL, \
                 lease_until = NULL WHERE sub_id = $1 AND state = 'submitting'",
            )
            .bind(sub_id)
            .bind(reason)
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            sqlx::query(sql::DEDUPE_FORGET).bind(sub_id).execute(&mut *tx).await?;
            close_holds(&mut tx, sub_id, None, "released").await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn batch<'a>(&'a self, sub_id: &'a str) -> LedgerFuture<'a, Option<BatchRecord>> {
        Box::pin(async move {
            let row =
                sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE sub_id = $1"))
                    .bind(sub_id)
                    .fetch_optional(&self.reader)
                    .await?;
            row.as_ref().map(batch_from_row).transpose()
        })
    }

    fn batch_by_upstream<'a>(
        &'a self,
        provider: &'a str,
        upstream_id: &'a str,
    ) -> LedgerFuture<'a, Option<BatchRecord>> {
        Box::pin(async move {
            let row = sqlx::query(&format!(
                "SELECT {BATCH_COLUMNS} FROM batches WHERE provider = $1 AND upstream_id = $2"
            ))
            .bind(provider)
            .bind(upstream_id)
            .fetch_optional(&self.reader)
            .await?;
            row.as_ref().map(batch_from_row).transpose()
        })
    }

    fn project_batches<'a>(
        &'a self,
        provider: &'a str,
        project: &'a str,
        cursor: ListCursor<'a>,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(async move {
            // Newest first by (submitted_at, sub_id); a cursor is an upstream id of the
            // same project, and rows strictly older (after) or newer (before) are taken.
            let mine = "provider = $1 AND project = $2 AND upstream_id IS NOT NULL";
            let at = "(SELECT submitted_at, sub_id FROM batches WHERE provider = $1 AND \
                      project = $2 AND upstream_id = $3)";
            let (filter, order) = match cursor {
                ListCursor::Newest => (String::new(), "DESC"),
                ListCursor::After(_) => (format!("AND (submitted_at, sub_id) < {at}"), "DESC"),
                ListCursor::Before(_) => (format!("AND (submitted_at, sub_id) > {at}"), "ASC"),
            };
            let sql = format!(
                "SELECT {BATCH_COLUMNS} FROM batches WHERE {mine} {filter} \
                 ORDER BY submitted_at {order}, sub_id {order} LIMIT {limit}"
            );
            let mut q = sqlx::query(&sql).bind(provider).bind(project);
            if let ListCursor::After(id) | ListCursor::Before(id) = cursor {
                q = q.bind(id);
            }
            let rows = q.fetch_all(&self.reader).await?;
            let mut out: Vec<BatchRecord> =
                rows.iter().map(batch_from_row).collect::<Result<_, _>>()?;
            if matches!(cursor, ListCursor::Before(_)) {
                out.reverse();
            }
            Ok(out)
        })
    }

    fn batches_in_state(&self, state: BatchState) -> LedgerFuture<'_, Vec<BatchRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "SELECT {BATCH_COLUMNS} FROM batches WHERE state = $1 ORDER BY submitted_at"
            ))
            .bind(state.as_str())
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(batch_from_row).collect()
        })
    }

    fn due_batches(&self, now: Timestamp, limit: u32) -> LedgerFuture<'_, Vec<BatchRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(&format!(
                "SELECT {BATCH_COLUMNS} FROM batches WHERE state = 'in_flight' \
                 AND (next_poll_at IS NULL OR next_poll_at <= $1) ORDER BY next_poll_at LIMIT $2"
            ))
            .bind(ts_to_db(now))
            .bind(limit as i64)
            .fetch_all(&self.reader)
            .await?;
            rows.iter().map(batch_from_row).collect()
        })
    }

    fn schedule_poll<'a>(
        &'a self,
        sub_id: &'a str,
        next_poll_at: Timestamp,
        attempts: u32,
        last_status: Option<&'a str>,
        error: Option<&'a str>,
    ) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(
                "UPDATE batches SET next_poll_at = $2, poll_attempts = $3, \
                 last_status = COALESCE($4, last_status), error = $5 WHERE sub_id = $1",
            )
            .bind(sub_id)
            .bind(ts_to_db(next_poll_at))
            .bind(attempts as i64)
            .bind(last_status)
            .bind(error)
            .execute(&self.writer)
            .await?;
            Ok(())
        })
    }

    fn settle<'a>(&'a self, sub_id: &'a str, s: &'a Settlement) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let (cost, list) = (to_db(s.cost())?, to_db(s.list_cost())?);
            let mut tx = self.writer.begin().await?;
            // Exactly once: only an in-flight batch can become settled.
            let r = sqlx::query(
                "UPDATE batches SET state = 'settled', cost_pico = $2, list_cost_pico = $3, \
                 ended_at = $4, settled_at = $5, last_status = 'ended', error = NULL, \
                 next_poll_at = NULL, lease_owner = NULL, lease_until = NULL, settling_by = NULL \
                 WHERE sub_id = $1 AND state = 'in_flight'",
            )
            .bind(sub_id)
            .bind(cost)
            .bind(list)
            .bind(ts_to_db(s.ended_at))
            .bind(ts_to_db(s.settled_at))
            .execute(&mut *tx)
            .await?;
            if r.rows_affected() != 1 {
                tx.rollback().await?;
                return Ok(false);
            }
            for m in &s.models {
                let t = &m.tokens;
                let q = &m.requests;
                sqlx::query(
                    "INSERT INTO batch_usage (sub_id, model, input_tokens, output_tokens, \
                     cache_write_5m, cache_write_1h, cache_read, web_searches, succeeded, errored, \
                     canceled, expired, cost_pico, list_cost_pico) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(sub_id)
                .bind(&m.model)
                .bind(count_to_db(t.input)?)
                .bind(count_to_db(t.output)?)
                .bind(count_to_db(t.cache_write_5m)?)
                .bind(count_to_db(t.cache_write_1h)?)
                .bind(count_to_db(t.cache_read)?)
                .bind(count_to_db(t.web_search_requests)?)
                .bind(count_to_db(q.succeeded)?)
                .bind(count_to_db(q.errored)?)
                .bind(count_to_db(q.canceled)?)
                .bind(count_to_db(q.expired)?)
                .bind(to_db(m.cost)?)
                .bind(to_db(m.list_cost)?)
                .execute(&mut *tx)
                .await?;
            }
            close_holds(&mut tx, sub_id, Some(s), "settled").await?;
            tx.commit().await?;
            Ok(true)
        })
    }

    fn model_usage<'a>(&'a self, sub_id: &'a str) -> LedgerFuture<'a, Vec<ModelUsage>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM batch_usage WHERE sub_id = $1 ORDER BY model")
                .bind(sub_id)
                .fetch_all(&self.reader)
                .await?;
            rows.iter().map(usage_from_row).collect()
        })
    }

    fn windows<'a>(&'a self, refs: &'a [WindowRef]) -> LedgerFuture<'a, Vec<WindowState>> {
        Box::pin(async move {
            // One query for all of them: the keys travel as a JSON array.
            let keys = sql::window_keys_json(refs);
            let rows = sqlx::query(
                "SELECT w.* FROM budget_windows w JOIN json_each($1) k \
                 ON w.budget = json_extract(k.value, '$[0]') \
                 AND w.window_start = json_extract(k.value, '$[1]')",
            )
            .bind(keys)
            .fetch_all(&self.reader)
            .await?;
            sql::match_windows(refs, &rows)
        })
    }

    fn in_flight(&self) -> LedgerFuture<'_, Vec<InFlight>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT project, provider, COUNT(*) AS n, SUM(request_count) AS r, \
                 MIN(submitted_at) AS oldest FROM batches \
                 WHERE state IN ('submitting', 'in_flight') GROUP BY project, provider",
            )
            .fetch_all(&self.reader)
            .await?;
            rows.iter()
                .map(|r| {
                    Ok(InFlight {
                        project: r.try_get("project")?,
                        provider: r.try_get("provider")?,
                        batches: u(r.try_get("n")?),
                        requests: u(r.try_get::<Option<i64>, _>("r")?.unwrap_or(0)),
                        oldest_submitted_at: ts_from_db(r.try_get("oldest")?),
                    })
                })
                .collect()
        })
    }

    fn known_upstream_ids<'a>(
        &'a self,
        provider: &'a str,
        ids: &'a [String],
    ) -> LedgerFuture<'a, HashSet<String>> {
        Box::pin(async move {
            let rows: Vec<String> = sqlx::query_scalar(
                "SELECT upstream_id FROM batches WHERE provider = $1 AND upstream_id IN \
                 (SELECT value FROM json_each($2))",
            )
            .bind(provider)
            .bind(sql::ids_json(ids))
            .fetch_all(&self.reader)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }

    // SQLite has one writer connection, so each claim below is one statement that no
    // other can interleave with: the equivalent of PostgreSQL's FOR UPDATE SKIP LOCKED.
    fn claim_due<'a>(&'a self, lease: &'a Lease, limit: u32) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(&sql::claim_due(""))
                .bind(&lease.owner)
                .bind(ts_to_db(lease.now))
                .bind(ts_to_db(lease.until))
                .bind(limit as i64)
                .fetch_all(&self.writer)
                .await?;
            sql::sorted_by_poll(rows.iter().map(batch_from_row).collect())
        })
    }

    fn claim_pending<'a>(
        &'a self,
        lease: &'a Lease,
        before: Timestamp,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(&sql::claim_pending(""))
                .bind(&lease.owner)
                .bind(ts_to_db(lease.now))
                .bind(ts_to_db(lease.until))
                .bind(limit as i64)
                .bind(ts_to_db(before))
                .fetch_all(&self.writer)
                .await?;
            sql::sorted_by_submission(rows.iter().map(batch_from_row).collect())
        })
    }

    fn renew_leases<'a>(&'a self, owner: &'a str, until: Timestamp) -> LedgerFuture<'a, u64> {
        Box::pin(async move {
            let r = sqlx::query(sql::RENEW)
                .bind(owner)
                .bind(ts_to_db(until))
                .execute(&self.writer)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn drop_leases<'a>(&'a self, owner: &'a str, sub_id: Option<&'a str>) -> LedgerFuture<'a, u64> {
        Box::pin(async move {
            let r = sqlx::query(sql::DROP_LEASES)
                .bind(owner)
                .bind(sub_id)
                .execute(&self.writer)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn begin_settling<'a>(
        &'a self,
        sub_id: &'a str,
        lease: &'a Lease,
        token: &'a str,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let r = sqlx::query(sql::BEGIN_SETTLING)
                .bind(sub_id)
                .bind(&lease.owner)
                .bind(ts_to_db(lease.now))
                .bind(ts_to_db(lease.until))
                .bind(token)
                .execute(&self.writer)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn end_settling<'a>(&'a self, sub_id: &'a str, token: &'a str) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(sql::END_SETTLING).bind(sub_id).bind(token).execute(&self.writer).await?;
            Ok(())
        })
    }

    fn ping(&self) -> LedgerFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.reader).await?;
            Ok(())
        })
    }

    fn record_refusal<'a>(&'a self, r: &'a super::Refusal) -> LedgerFuture<'a, ()> {
        Box::pin(refusals::record(&self.writer, r))
    }

    fn refusal<'a>(&'a self, id: &'a str) -> LedgerFuture<'a, Option<super::Refusal>> {
        Box::pin(refusals::one(&self.reader, id))
    }

    fn list_batches<'a>(&'a self, f: &'a super::BatchFilter) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(refusals::batches(&self.reader, f))
    }

    fn list_refusals<'a>(
        &'a self,
        f: &'a super::BatchFilter,
    ) -> LedgerFuture<'a, Vec<super::Refusal>> {
        Box::pin(refusals::list(&self.reader, f))
    }

    fn spend_rows(&self, from: Timestamp, to: Timestamp) -> SpendStream {
        super::spend::sqlite_spend_rows(self.reader.clone(), from, to)
    }

    fn files(&self) -> &dyn super::files::FileLedger {
        self
    }
}

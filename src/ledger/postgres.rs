//! PostgreSQL backend: the ledger several replicas share. Same tables and guarantees as
//! SQLite; what differs is how concurrent writers are kept apart. Admissions go to the
//! server in groups, one call of a function per group (`pg_admit.rs`) that locks the
//! budget-window rows first and in one order, so a window row is held for that call and
//! its commit, not across round trips; claims use
//! `FOR UPDATE SKIP LOCKED`, so two replicas never claim the same batch and never wait on
//! each other to do it.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{Postgres, Row, Transaction};

use super::rows::{batch_from_row, u, usage_from_row};
use super::sql::{self, BATCH_COLUMNS};
use super::*;

const SKIP_LOCKED: &str = "FOR UPDATE SKIP LOCKED";

#[path = "pg_admit.rs"]
mod admit;
#[path = "pg_files.rs"]
mod files_pg;
#[path = "pg_flush.rs"]
mod flush;
#[path = "pg_group.rs"]
mod group;
#[path = "pg_outbox.rs"]
mod outbox;
#[path = "pg_refusals.rs"]
mod refusals;
#[path = "pg_workflow.rs"]
mod workflow;

/// The PostgreSQL ledger.
pub struct PgLedger {
    pool: PgPool,
    /// Commits without waiting for the WAL flush; every write on it is followed by
    /// `flush.wait()` before its call returns (see `pg_flush.rs`).
    fast: PgPool,
    flush: flush::Flush,
    creates: admit::CreateGroups,
}

async fn connect(url: &str, max: u32) -> Result<PgPool, LedgerError> {
    connect_with(url.parse()?, max).await
}

/// A pooled connection idle at least this long is pinged before use. sqlx's default pings
/// on every acquire: a network round trip before each statement, which on the admission
/// path cost as much as the statements. A connection in steady use is not the one that
/// went stale (a restarted server, a dropped socket); one that sat idle may be.
const PING_IF_IDLE: Duration = Duration::from_secs(1);

async fn connect_with(opts: PgConnectOptions, max: u32) -> Result<PgPool, LedgerError> {
    Ok(PgPoolOptions::new()
        .max_connections(max)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .idle_timeout(Duration::from_secs(60))
        .test_before_acquire(false)
        .before_acquire(|conn, meta| {
            Box::pin(async move {
                if meta.idle_for >= PING_IF_IDLE {
                    sqlx::Connection::ping(conn).await?;
                }
                Ok(true)
            })
        })
        .connect_with(opts)
        .await?)
}

/// Where the database stands against this binary's migrations.
async fn schema_state(pool: &PgPool) -> Result<SchemaState, LedgerError> {
    let (has_batches, has_migrations): (bool, bool) = sqlx::query_as(
        "SELECT to_regclass('batches') IS NOT NULL, to_regclass('_sqlx_migrations') IS NOT NULL",
    )
    .fetch_one(pool)
    .await?;
    let applied = if has_migrations {
        sqlx::query_scalar::<_, Option<i64>>(
            "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
        )
        .fetch_one(pool)
        .await?
    } else {
        None
    };
    Ok(SchemaState::of(Backend::Postgres, has_batches, applied))
}

/// `batchcost migrate` on PostgreSQL: (state before, version after). sqlx's migrator holds
/// an advisory lock, so replicas migrating at once apply each step once.
pub(super) async fn migrate(
    url: &str,
    upto: Option<i64>,
) -> Result<(SchemaState, i64), LedgerError> {
    let pool = connect(url, 1).await?;
    let before = schema_state(&pool).await?;
    if let SchemaState::Newer(_) = before {
        before.require_current(Backend::Postgres)?;
    }
    migrate::migrator(Backend::Postgres, upto).run(&pool).await?;
    let after: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok((before, after.unwrap_or(0)))
}

impl PgLedger {
    /// Connects; creates the schema in an empty database, refuses any other version.
    pub async fn open(url: &str) -> Result<Self, LedgerError> {
        let pool = connect(url, 8).await?;
        match schema_state(&pool).await? {
            SchemaState::Empty => {
                migrate::migrator(Backend::Postgres, None).run(&pool).await?;
            }
            state => state.require_current(Backend::Postgres)?,
        }
        let opts: PgConnectOptions = url.parse()?;
        let fast = connect_with(opts.options([("synchronous_commit", "off")]), 8).await?;
        Ok(PgLedger {
            flush: flush::Flush::new(pool.clone()),
            pool,
            fast,
            creates: admit::CreateGroups::default(),
        })
    }

    /// Commits a transaction of the `fast` pool and returns once it is on disk.
    async fn commit_durably(&self, tx: Transaction<'_, Postgres>) -> Result<(), LedgerError> {
        tx.commit().await?;
        self.flush.wait().await
    }
}

/// See the SQLite backend's `close_holds`: both end holds the same way, windows in one
/// order.
async fn close_holds(
    tx: &mut Transaction<'_, Postgres>,
    sub_id: &str,
    settled: Option<&Settlement>,
    state: &str,
) -> Result<(), LedgerError> {
    // What the batch spent in all, and apart for each budget whose filter selects some
    // models (those windows take only that, see `Settlement::spent_by`).
    let (all, parts): (Spent, Vec<(&str, Spent)>) = match settled {
        None => (Spent::default(), Vec::new()),
        Some(s) => (
            s.spent_on(None),
            s.budget_models.iter().map(|(b, ms)| (b.as_str(), s.spent_on(Some(ms)))).collect(),
        ),
    };
    let names: Vec<&str> = parts.iter().map(|(b, _)| *b).collect();
    let mut pico = Vec::with_capacity(parts.len());
    let (mut inp, mut out) = (Vec::with_capacity(parts.len()), Vec::with_capacity(parts.len()));
    for (_, spent) in &parts {
        pico.push(to_db(spent.cost)?);
        inp.push(count_to_db(spent.input_tokens)?);
        out.push(count_to_db(spent.output_tokens)?);
    }
    // One statement: every window the batch held, locked in (budget, window_start) order
    // by the subquery's FOR UPDATE before any is changed.
    sqlx::query(
        "WITH c AS (SELECT * FROM unnest($5::text[], $6::int8[], $7::int8[], $8::int8[]) \
         AS c(budget, pico, inp, outp)), \
         h AS (SELECT r.budget, r.window_start, r.hold_pico, r.hold_input, r.hold_output, \
         COALESCE(c.pico, $2) AS spent_pico, COALESCE(c.inp, $3) AS spent_input, \
         COALESCE(c.outp, $4) AS spent_output \
         FROM reservations r JOIN budget_windows w ON w.budget = r.budget \
         AND w.window_start = r.window_start LEFT JOIN c ON c.budget = r.budget \
         WHERE r.sub_id = $1 AND r.state = 'held' \
         ORDER BY r.budget COLLATE \"C\", r.window_start FOR UPDATE OF w) \
         UPDATE budget_windows w SET reserved_pico = w.reserved_pico - h.hold_pico, \
         reserved_input = w.reserved_input - h.hold_input, \
         reserved_output = w.reserved_output - h.hold_output, \
         spent_pico = w.spent_pico + h.spent_pico, spent_input = w.spent_input + h.spent_input, \
         spent_output = w.spent_output + h.spent_output \
         FROM h WHERE w.budget = h.budget AND w.window_start = h.window_start",
    )
    .bind(sub_id)
    .bind(to_db(all.cost)?)
    .bind(count_to_db(all.input_tokens)?)
    .bind(count_to_db(all.output_tokens)?)
    .bind(&names)
    .bind(&pico)
    .bind(&inp)
    .bind(&out)
    .execute(&mut **tx)
    .await?;
    sqlx::query("UPDATE reservations SET state = $2 WHERE sub_id = $1 AND state = 'held'")
        .bind(sub_id)
        .bind(state)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

impl Ledger for PgLedger {
    fn admit<'a>(&'a self, s: &'a NewSubmission) -> LedgerFuture<'a, Admit> {
        Box::pin(admit::admit(self, s))
    }

    fn mark_submitted<'a>(
        &'a self,
        sub_id: &'a str,
        upstream_id: &'a str,
        next_poll_at: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(admit::mark_submitted(self, sub_id, upstream_id, ts_to_db(next_poll_at)))
    }

    fn release<'a>(&'a self, sub_id: &'a str, reason: &'a str) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let mut tx = self.fast.begin().await?;
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
            self.commit_durably(tx).await?;
            Ok(true)
        })
    }

    fn batch<'a>(&'a self, sub_id: &'a str) -> LedgerFuture<'a, Option<BatchRecord>> {
        Box::pin(async move {
            let row =
                sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE sub_id = $1"))
                    .bind(sub_id)
                    .fetch_optional(&self.pool)
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
            .fetch_optional(&self.pool)
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
            let sql = sql::project_batches(cursor, limit);
            let mut q = sqlx::query(&sql).bind(provider).bind(project);
            if let ListCursor::After(id) | ListCursor::Before(id) = cursor {
                q = q.bind(id);
            }
            let rows = q.fetch_all(&self.pool).await?;
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
            .fetch_all(&self.pool)
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
            .fetch_all(&self.pool)
            .await?;
            rows.iter().map(batch_from_row).collect()
        })
    }

    fn claim_due<'a>(&'a self, lease: &'a Lease, limit: u32) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(async move {
            let rows = sqlx::query(&sql::claim_due(SKIP_LOCKED))
                .bind(&lease.owner)
                .bind(ts_to_db(lease.now))
                .bind(ts_to_db(lease.until))
                .bind(limit as i64)
                .fetch_all(&self.pool)
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
            let rows = sqlx::query(&sql::claim_pending(SKIP_LOCKED))
                .bind(&lease.owner)
                .bind(ts_to_db(lease.now))
                .bind(ts_to_db(lease.until))
                .bind(limit as i64)
                .bind(ts_to_db(before))
                .fetch_all(&self.pool)
                .await?;
            sql::sorted_by_submission(rows.iter().map(batch_from_row).collect())
        })
    }

    fn renew_leases<'a>(&'a self, owner: &'a str, until: Timestamp) -> LedgerFuture<'a, u64> {
        Box::pin(async move {
            let r = sqlx::query(sql::RENEW)
                .bind(owner)
                .bind(ts_to_db(until))
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected())
        })
    }

    fn drop_leases<'a>(&'a self, owner: &'a str, sub_id: Option<&'a str>) -> LedgerFuture<'a, u64> {
        Box::pin(async move {
            let r =
                sqlx::query(sql::DROP_LEASES).bind(owner).bind(sub_id).execute(&self.pool).await?;
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
                .execute(&self.pool)
                .await?;
            Ok(r.rows_affected() == 1)
        })
    }

    fn end_settling<'a>(&'a self, sub_id: &'a str, token: &'a str) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            sqlx::query(sql::END_SETTLING).bind(sub_id).bind(token).execute(&self.pool).await?;
            Ok(())
        })
    }

    fn schedule_polls<'a>(&'a self, owner: &'a str, plans: &'a [PollPlan]) -> LedgerFuture<'a, ()> {
        Box::pin(async move {
            if plans.is_empty() {
                return Ok(());
            }
            // As if run in turn: a batch's later plan stands, keeping the earlier status
            // where it has none.
            let mut last: Vec<PollPlan> = Vec::with_capacity(plans.len());
            for p in plans {
                match last.iter_mut().find(|l| l.sub_id == p.sub_id) {
                    Some(l) => {
                        let status = p.last_status.clone().or(l.last_status.take());
                        *l = PollPlan { last_status: status, ..p.clone() };
                    }
                    None => last.push(p.clone()),
                }
            }
            sqlx::query(&format!(
                "UPDATE batches b SET next_poll_at = p.next_poll_at, \
                 poll_attempts = p.attempts, last_status = COALESCE(p.status, b.last_status), \
                 error = p.error, {} FROM unnest($1::text[], $2::int8[], $3::int8[], \
                 $4::text[], $5::text[]) AS p(sub_id, next_poll_at, attempts, status, error) \
                 WHERE b.sub_id = p.sub_id",
                sql::HAND_BACK_LEASE
            ))
            .bind(last.iter().map(|p| p.sub_id.as_str()).collect::<Vec<_>>())
            .bind(last.iter().map(|p| ts_to_db(p.next_poll_at)).collect::<Vec<_>>())
            .bind(last.iter().map(|p| i64::from(p.attempts)).collect::<Vec<_>>())
            .bind(last.iter().map(|p| p.last_status.as_deref()).collect::<Vec<_>>())
            .bind(last.iter().map(|p| p.error.as_deref()).collect::<Vec<_>>())
            .bind(owner)
            .execute(&self.fast)
            .await?;
            Ok(())
        })
    }

    fn settle<'a>(&'a self, sub_id: &'a str, s: &'a Settlement) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let (cost, list) = (to_db(s.cost())?, to_db(s.list_cost())?);
            let mut tx = self.fast.begin().await?;
            // Exactly once: only an in-flight batch can become settled; the row lock makes
            // a concurrent settlement wait and then find it settled.
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
            self.commit_durably(tx).await?;
            Ok(true)
        })
    }

    fn model_usage<'a>(&'a self, sub_id: &'a str) -> LedgerFuture<'a, Vec<ModelUsage>> {
        Box::pin(async move {
            let rows = sqlx::query("SELECT * FROM batch_usage WHERE sub_id = $1 ORDER BY model")
                .bind(sub_id)
                .fetch_all(&self.pool)
                .await?;
            rows.iter().map(usage_from_row).collect()
        })
    }

    fn windows<'a>(&'a self, refs: &'a [WindowRef]) -> LedgerFuture<'a, Vec<WindowState>> {
        Box::pin(async move {
            let budgets: Vec<&str> = refs.iter().map(|w| w.budget.as_str()).collect();
            let starts: Vec<i64> = refs.iter().map(|w| ts_to_db(w.start)).collect();
            let rows = sqlx::query(
                "SELECT w.* FROM budget_windows w JOIN unnest($1::text[], $2::bigint[]) \
                 AS k(b, s) ON w.budget = k.b AND w.window_start = k.s",
            )
            .bind(&budgets)
            .bind(&starts)
            .fetch_all(&self.pool)
            .await?;
            sql::match_windows(refs, &rows)
        })
    }

    fn in_flight(&self) -> LedgerFuture<'_, Vec<InFlight>> {
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT project, provider, COUNT(*)::BIGINT AS n, SUM(request_count)::BIGINT AS r, \
                 MIN(submitted_at) AS oldest FROM batches \
                 WHERE state IN ('submitting', 'in_flight') GROUP BY project, provider",
            )
            .fetch_all(&self.pool)
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
                "SELECT upstream_id FROM batches WHERE provider = $1 AND upstream_id = ANY($2)",
            )
            .bind(provider)
            .bind(ids)
            .fetch_all(&self.pool)
            .await?;
            Ok(rows.into_iter().collect())
        })
    }

    fn ping(&self) -> LedgerFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.pool).await?;
            Ok(())
        })
    }

    fn durable(&self) -> LedgerFuture<'_, ()> {
        Box::pin(self.flush.wait())
    }

    fn spend_rows(&self, from: Timestamp, to: Timestamp) -> SpendStream {
        super::spend::pg_spend_rows(self.pool.clone(), from, to)
    }

    fn record_refusal<'a>(&'a self, r: &'a super::Refusal) -> LedgerFuture<'a, ()> {
        Box::pin(refusals::record(&self.pool, r))
    }

    fn refusal<'a>(&'a self, id: &'a str) -> LedgerFuture<'a, Option<super::Refusal>> {
        Box::pin(refusals::one(&self.pool, id))
    }

    fn list_batches<'a>(&'a self, f: &'a super::BatchFilter) -> LedgerFuture<'a, Vec<BatchRecord>> {
        Box::pin(refusals::batches(&self.pool, f))
    }

    fn list_refusals<'a>(
        &'a self,
        f: &'a super::BatchFilter,
    ) -> LedgerFuture<'a, Vec<super::Refusal>> {
        Box::pin(refusals::list(&self.pool, f))
    }

    fn files(&self) -> &dyn super::files::FileLedger {
        self
    }
}

//! SQLite backend: WAL journal, one writer connection (SQLite has one writer anyway, and a
//! single connection never meets a lock-upgrade deadlock) and a small reader pool. The
//! writes on every create's path and those that end holds run in place on a second
//! connection, only while the writer connection is held (`sqlite_inplace.rs`).

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::{Connection, Row};

use super::rows::{batch_from_row, u, usage_from_row};
use super::*;
use crate::config::Durability;

use super::sql::{self, BATCH_COLUMNS};

#[path = "sqlite_checkpoint.rs"]
mod checkpoint;
#[path = "sqlite_group.rs"]
mod group;
#[path = "sqlite_inplace.rs"]
mod inplace;
#[path = "sqlite_leases.rs"]
mod leases;
#[path = "sqlite_refusals.rs"]
mod refusals;

use inplace::Admitted;

/// The SQLite ledger.
pub struct SqliteLedger {
    /// The one writer connection, held for good rather than pooled: a pool tests each
    /// connection it takes back with a round trip to the driver's thread, and the group
    /// commit took it back after every group.
    writer: tokio::sync::Mutex<SqliteConnection>,
    pub(super) reader: SqlitePool,
    inplace: inplace::Writer,
    group: group::Group,
    /// `None` for an in-memory database, which has no WAL.
    checkpoints: Option<checkpoint::Checkpointer>,
}

impl SqliteLedger {
    /// The writer connection, for a write of its own (a statement or a transaction).
    pub(super) async fn w(&self) -> tokio::sync::MutexGuard<'_, SqliteConnection> {
        let held = self.writer.lock().await;
        if self.checkpoints.as_ref().is_some_and(checkpoint::Checkpointer::wrote) {
            // The in-place connection is free while the writer connection is held; a
            // failed checkpoint is logged by `finish` and retried by the next one.
            let _ = self.inplace.run(|conn| {
                checkpoint::finish(conn);
                Ok(())
            });
        }
        held
    }

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
            // Checkpoints run on a thread of their own (`sqlite_checkpoint.rs`).
            .pragma("wal_autocheckpoint", "0")
            .busy_timeout(Duration::from_secs(10));
        let mut writer = SqliteConnection::connect_with(&opts).await?;
        match schema_state(&mut writer).await? {
            SchemaState::Empty => {
                migrate::migrator(Backend::Sqlite, None).run(&mut writer).await?;
            }
            state => state.require_current(Backend::Sqlite)?,
        }
        let inplace = inplace::Writer::open(opts.get_filename(), memory, durability)?;
        let checkpoints =
            if memory { None } else { Some(checkpoint::Checkpointer::start(opts.get_filename())?) };
        // An in-memory database is shared by name (and cache) between the connections
        // of this process, so its readers are a pool of their own too.
        let read_opts = if memory { opts } else { opts.read_only(true) };
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            // A local database does not go away between uses: no ping per acquire.
            .test_before_acquire(false)
            .connect_with(read_opts)
            .await?;
        Ok(SqliteLedger {
            writer: tokio::sync::Mutex::new(writer),
            reader,
            inplace,
            group: group::Group::default(),
            checkpoints,
        })
    }

    /// Runs `f` in place in the next group commit (`sqlite_group.rs`): queued, then
    /// either run by whichever caller holds the writer connection next, or by this one
    /// once it gets it. `f` owns what it writes: another caller's task may run it.
    async fn write<T, F>(&self, f: F) -> Result<T, LedgerError>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<(T, bool), LedgerError> + Send + 'static,
    {
        let mut answer = self.group.push(f);
        loop {
            tokio::select! {
                biased;
                out = &mut answer => {
                    return out.unwrap_or_else(|_| {
                        Err(LedgerError::Group("the write was dropped unanswered".into()))
                    });
                }
                held = self.writer.lock() => {
                    self.inplace.run(|c| {
                        let out = self.group.run_all(c);
                        if self.checkpoints.as_ref().is_some_and(checkpoint::Checkpointer::wrote) {
                            checkpoint::finish(c);
                        }
                        Ok(out)
                    })?;
                    drop(held);
                }
            }
        }
    }
}

/// Where the database stands against this binary's migrations.
async fn schema_state(pool: &mut SqliteConnection) -> Result<SchemaState, LedgerError> {
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table'")
            .fetch_all(&mut *pool)
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
    let mut conn = SqliteConnection::connect_with(&opts).await?;
    let before = schema_state(&mut conn).await?;
    if let SchemaState::Newer(_) = before {
        before.require_current(Backend::Sqlite)?;
    }
    migrate::migrator(Backend::Sqlite, upto).run(&mut conn).await?;
    let after: Option<i64> =
        sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations WHERE success")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok((before, after.unwrap_or(0)))
}

impl Ledger for SqliteLedger {
    fn admit<'a>(&'a self, s: &'a NewSubmission) -> LedgerFuture<'a, Admit> {
        Box::pin(async move {
            let owned = s.clone();
            match self.write(move |c| inplace::admit(c, &owned)).await? {
                Admitted::Yes => Ok(Admit::Admitted),
                // As the refusing admission saw them, inside its group.
                Admitted::Refused(w) => Ok(Admit::Refused(w)),
                Admitted::Duplicate => {
                    // Committed with its group: any reader sees the first attempt's row.
                    let row = sqlx::query(&sql::dedupe_batch())
                        .bind(&s.project)
                        .bind(&s.body_hash)
                        .fetch_optional(&self.reader)
                        .await?;
                    let row = row.ok_or_else(|| {
                        LedgerError::Range("a dedupe key names no batch".to_string())
                    })?;
                    Ok(Admit::Duplicate(Box::new(batch_from_row(&row)?)))
                }
            }
        })
    }

    fn mark_submitted<'a>(
        &'a self,
        sub_id: &'a str,
        upstream_id: &'a str,
        next_poll_at: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        Box::pin(async move {
            let next = ts_to_db(next_poll_at);
            let (sub_id, upstream_id) = (sub_id.to_string(), upstream_id.to_string());
            self.write(move |c| inplace::mark_submitted(c, &sub_id, &upstream_id, next)).await
        })
    }

    fn release<'a>(&'a self, sub_id: &'a str, reason: &'a str) -> LedgerFuture<'a, bool> {
        let (sub_id, reason) = (sub_id.to_string(), reason.to_string());
        Box::pin(async move { self.write(move |c| inplace::release(c, &sub_id, &reason)).await })
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

    fn schedule_polls<'a>(&'a self, owner: &'a str, plans: &'a [PollPlan]) -> LedgerFuture<'a, ()> {
        if plans.is_empty() {
            return Box::pin(async { Ok(()) });
        }
        let (owner, plans) = (owner.to_string(), plans.to_vec());
        Box::pin(
            async move { self.write(move |c| inplace::schedule_polls(c, &owner, &plans)).await },
        )
    }

    fn settle<'a>(&'a self, sub_id: &'a str, s: &'a Settlement) -> LedgerFuture<'a, bool> {
        let (sub_id, s) = (sub_id.to_string(), s.clone());
        Box::pin(async move { self.write(move |c| inplace::settle(c, &sub_id, &s)).await })
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

    fn claim_due<'a>(&'a self, lease: &'a Lease, limit: u32) -> LedgerFuture<'a, Vec<BatchRecord>> {
        let lease = lease.clone();
        Box::pin(async move { self.write(move |c| leases::claim_due(c, &lease, limit)).await })
    }

    fn claim_pending<'a>(
        &'a self,
        lease: &'a Lease,
        before: Timestamp,
        limit: u32,
    ) -> LedgerFuture<'a, Vec<BatchRecord>> {
        let lease = lease.clone();
        Box::pin(async move {
            self.write(move |c| leases::claim_pending(c, &lease, before, limit)).await
        })
    }

    fn renew_leases<'a>(&'a self, owner: &'a str, until: Timestamp) -> LedgerFuture<'a, u64> {
        let owner = owner.to_string();
        Box::pin(async move { self.write(move |c| leases::renew(c, &owner, until)).await })
    }

    fn drop_leases<'a>(&'a self, owner: &'a str, sub_id: Option<&'a str>) -> LedgerFuture<'a, u64> {
        let (owner, sub_id) = (owner.to_string(), sub_id.map(str::to_string));
        Box::pin(async move {
            self.write(move |c| leases::drop_leases(c, &owner, sub_id.as_deref())).await
        })
    }

    fn begin_settling<'a>(
        &'a self,
        sub_id: &'a str,
        lease: &'a Lease,
        token: &'a str,
    ) -> LedgerFuture<'a, bool> {
        let (sub_id, lease, token) = (sub_id.to_string(), lease.clone(), token.to_string());
        Box::pin(async move {
            self.write(move |c| leases::begin_settling(c, &sub_id, &lease, &token)).await
        })
    }

    fn end_settling<'a>(&'a self, sub_id: &'a str, token: &'a str) -> LedgerFuture<'a, ()> {
        let (sub_id, token) = (sub_id.to_string(), token.to_string());
        Box::pin(async move { self.write(move |c| leases::end_settling(c, &sub_id, &token)).await })
    }

    fn ping(&self) -> LedgerFuture<'_, ()> {
        Box::pin(async move {
            sqlx::query("SELECT 1").execute(&self.reader).await?;
            Ok(())
        })
    }

    fn record_refusal<'a>(&'a self, r: &'a super::Refusal) -> LedgerFuture<'a, ()> {
        Box::pin(async move { refusals::record(&mut *self.w().await, r).await })
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

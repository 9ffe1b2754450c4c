//! SQLite backend: WAL journal, one writer connection (SQLite has one writer anyway, and a
//! single connection never meets a lock-upgrade deadlock) and a small reader pool.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};

use super::rows::{batch_from_row, empty_window, u, usage_from_row, window_from_row};
use super::sqlite_write::{self, AdmitStep};
use super::writer::Writer;
use super::*;
use crate::config::Durability;

const SCHEMA: &str = include_str!("schema.sql");
/// Issue 16's tables, kept apart so migrations can fold them in as one block.
const SCHEMA_REFUSALS: &str = include_str!("schema_refusals.sql");

#[path = "sqlite_refusals.rs"]
mod refusals;

const BATCH_COLUMNS: &str = "sub_id, upstream_id, project, provider, state, submitted_at, \
    ended_at, settled_at, request_count, hold_pico, hold_input, hold_output, cost_pico, \
    list_cost_pico, custom_id_fp, body_hash, next_poll_at, poll_attempts, last_status, error, \
    estimate_json";

/// The SQLite ledger.
pub struct SqliteLedger {
    /// sqlx's writer connection: creates and migrates the schema, keeps an in-memory
    /// database alive, and runs the single-statement writes not yet moved to `write`
    /// (refusal records); SQLite serialises the two connections (busy timeout).
    writer: SqlitePool,
    reader: SqlitePool,
    /// Group commit on its own connection: every write is one job there.
    write: Writer,
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
        sqlx::raw_sql(SCHEMA).execute(&writer).await?;
        sqlx::raw_sql(SCHEMA_REFUSALS).execute(&writer).await?;
        let conn = sqlite_write::open(opts.get_filename(), memory, durability)?;
        let write = Writer::start(conn)?;
        let reader = if memory {
            writer.clone()
        } else {
            SqlitePoolOptions::new().max_connections(4).connect_with(opts.read_only(true)).await?
        };
        Ok(SqliteLedger { writer, reader, write })
    }
}

impl Ledger for SqliteLedger {
    fn admit<'a>(&'a self, s: &'a NewSubmission) -> LedgerFuture<'a, Admit> {
        Box::pin(async move {
            let sub = s.clone();
            match self.write.write(move |c| sqlite_write::admit_in_tx(c, &sub)).await? {
                AdmitStep::Admitted => Ok(Admit::Admitted),
                AdmitStep::Refused(w) => Ok(Admit::Refused(w)),
                AdmitStep::Duplicate(sub_id) => match self.batch(&sub_id).await? {
                    Some(rec) => Ok(Admit::Duplicate(rec)),
                    None => Err(LedgerError::Writer(format!("batch {sub_id} vanished"))),
                },
            }
        })
    }

    fn mark_submitted<'a>(
        &'a self,
        sub_id: &'a str,
        upstream_id: &'a str,
        next_poll_at: Timestamp,
    ) -> LedgerFuture<'a, bool> {
        let (sub_id, upstream_id) = (sub_id.to_string(), upstream_id.to_string());
        Box::pin(self.write.write(move |c| {
            sqlite_write::mark_submitted_in_tx(c, &sub_id, &upstream_id, next_poll_at)
        }))
    }

    fn release<'a>(&'a self, sub_id: &'a str, reason: &'a str) -> LedgerFuture<'a, bool> {
        let (sub_id, reason) = (sub_id.to_string(), reason.to_string());
        Box::pin(self.write.write(move |c| sqlite_write::release_in_tx(c, &sub_id, &reason)))
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
        let sub_id = sub_id.to_string();
        let (last_status, error) = (last_status.map(str::to_string), error.map(str::to_string));
        Box::pin(self.write.write(move |c| {
            let (status, error) = (last_status.as_deref(), error.as_deref());
            sqlite_write::schedule_poll_in_tx(c, &sub_id, next_poll_at, attempts, status, error)
        }))
    }

    fn settle<'a>(&'a self, sub_id: &'a str, s: &'a Settlement) -> LedgerFuture<'a, bool> {
        let (sub_id, s) = (sub_id.to_string(), s.clone());
        Box::pin(self.write.write(move |c| sqlite_write::settle_in_tx(c, &sub_id, &s)))
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
            let mut out = Vec::with_capacity(refs.len());
            for w in refs {
                let row = sqlx::query(
                    "SELECT * FROM budget_windows WHERE budget = $1 AND window_start = $2",
                )
                .bind(&w.budget)
                .bind(ts_to_db(w.start))
                .fetch_optional(&self.reader)
                .await?;
                out.push(match row {
                    Some(r) => window_from_row(&r, w)?,
                    None => empty_window(w),
                });
            }
            Ok(out)
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
            let mut known = HashSet::new();
            for id in ids {
                let hit =
                    sqlx::query("SELECT 1 FROM batches WHERE provider = $1 AND upstream_id = $2")
                        .bind(provider)
                        .bind(id)
                        .fetch_optional(&self.reader)
                        .await?;
                if hit.is_some() {
                    known.insert(id.clone());
                }
            }
            Ok(known)
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
}

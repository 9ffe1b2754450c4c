//! SQLite side of issue 16's refusal records and batch listing (`schema_refusals.sql`).

use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{QueryBuilder, Row, Sqlite};

use super::super::rows::{batch_from_row, u};
use super::super::{
    BatchFilter, BatchRecord, LedgerError, ListState, Refusal, count_to_db, to_db, ts_from_db,
    ts_to_db,
};
use super::BATCH_COLUMNS;
use crate::money::Money;

pub async fn record(writer: &mut SqliteConnection, r: &Refusal) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO refusals (refusal_id, project, provider, refused_at, request_id, reason, \
         budget, period, limit_kind, request_count, requested_pico, limit_pico, spent_pico, \
         reserved_pico, window_end, body_hash, message) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)",
    )
    .bind(&r.refusal_id)
    .bind(&r.project)
    .bind(&r.provider)
    .bind(ts_to_db(r.refused_at))
    .bind(&r.request_id)
    .bind(&r.reason)
    .bind(&r.budget)
    .bind(&r.period)
    .bind(&r.limit_kind)
    .bind(count_to_db(r.request_count)?)
    .bind(to_db(r.requested)?)
    .bind(r.limit.map(to_db).transpose()?)
    .bind(to_db(r.spent)?)
    .bind(to_db(r.reserved)?)
    .bind(ts_to_db(r.window_end))
    .bind(&r.body_hash)
    .bind(&r.message)
    .execute(writer)
    .await?;
    Ok(())
}

const COLUMNS: &str = "refusal_id, project, provider, refused_at, request_id, reason, budget, \
    period, limit_kind, request_count, requested_pico, limit_pico, spent_pico, reserved_pico, \
    window_end, body_hash, message";

fn from_row(r: &SqliteRow) -> Result<Refusal, LedgerError> {
    Ok(Refusal {
        refusal_id: r.try_get("refusal_id")?,
        project: r.try_get("project")?,
        provider: r.try_get("provider")?,
        refused_at: ts_from_db(r.try_get("refused_at")?),
        request_id: r.try_get("request_id")?,
        reason: r.try_get("reason")?,
        budget: r.try_get("budget")?,
        period: r.try_get("period")?,
        limit_kind: r.try_get("limit_kind")?,
        request_count: u(r.try_get("request_count")?),
        requested: Money::from_i64(r.try_get("requested_pico")?),
        limit: r.try_get::<Option<i64>, _>("limit_pico")?.map(Money::from_i64),
        spent: Money::from_i64(r.try_get("spent_pico")?),
        reserved: Money::from_i64(r.try_get("reserved_pico")?),
        window_end: ts_from_db(r.try_get("window_end")?),
        body_hash: r.try_get("body_hash")?,
        message: r.try_get("message")?,
    })
}

pub async fn one(reader: &SqlitePool, id: &str) -> Result<Option<Refusal>, LedgerError> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM refusals WHERE refusal_id = $1"))
        .bind(id)
        .fetch_optional(reader)
        .await?;
    row.as_ref().map(from_row).transpose()
}

/// `WHERE` clauses for the filter, on the table's time column.
fn narrow(q: &mut QueryBuilder<'_, Sqlite>, f: &BatchFilter, at: &str) {
    q.push(" WHERE 1 = 1");
    if let Some(p) = &f.project {
        q.push(" AND project = ").push_bind(p.clone());
    }
    if let Some(since) = f.since {
        q.push(format!(" AND {at} >= ")).push_bind(ts_to_db(since));
    }
    if let Some(until) = f.until {
        q.push(format!(" AND {at} < ")).push_bind(ts_to_db(until));
    }
}

pub async fn batches(
    reader: &SqlitePool,
    f: &BatchFilter,
) -> Result<Vec<BatchRecord>, LedgerError> {
    if f.state == Some(ListState::Refused) {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {BATCH_COLUMNS} FROM batches"));
    narrow(&mut q, f, "submitted_at");
    if let Some(ListState::Batch(s)) = f.state {
        q.push(" AND state = ").push_bind(s.as_str());
    }
    q.push(" ORDER BY submitted_at DESC, sub_id DESC LIMIT ").push_bind(i64::from(f.limit));
    let rows = q.build().fetch_all(reader).await?;
    rows.iter().map(batch_from_row).collect()
}

pub async fn list(reader: &SqlitePool, f: &BatchFilter) -> Result<Vec<Refusal>, LedgerError> {
    if matches!(f.state, Some(ListState::Batch(_))) {
        return Ok(Vec::new());
    }
    let mut q = QueryBuilder::<Sqlite>::new(format!("SELECT {COLUMNS} FROM refusals"));
    narrow(&mut q, f, "refused_at");
    q.push(" ORDER BY refused_at DESC, refusal_id DESC LIMIT ").push_bind(i64::from(f.limit));
    let rows = q.build().fetch_all(reader).await?;
    rows.iter().map(from_row).collect()
}

//! The tracker's writes (claims, lease renewal and hand-over, settling marks), in place
//! on the writer that admissions use (`sqlite_inplace.rs`), inside its group commits.
//!
//! They used to run on the sqlx writer connection. Besides the thread round trip per
//! statement, held under the same writer lock the admissions wait for, every write
//! from one connection made SQLite drop the other's whole page cache (a WAL database
//! tells a connection only that something changed, not what), so the next admission
//! read its dozens of index pages back in. One connection writes everything now.

use rusqlite::types::ToSql;
use rusqlite::{Connection, Row};

use super::super::rows::u;
use super::super::sql;
use super::super::*;
use super::inplace::{Kept, bind, exec};

/// One `batches` row, its columns in `BATCH_COLUMNS` order.
fn batch(r: &Row<'_>) -> Result<BatchRecord, LedgerError> {
    let state: String = r.get("state")?;
    let ts = |c: &str| -> Result<Option<Timestamp>, LedgerError> {
        Ok(r.get::<_, Option<i64>>(c)?.map(ts_from_db))
    };
    let money = |c: &str| -> Result<Option<Money>, LedgerError> {
        Ok(r.get::<_, Option<i64>>(c)?.map(Money::from_i64))
    };
    Ok(BatchRecord {
        sub_id: r.get("sub_id")?,
        upstream_id: r.get("upstream_id")?,
        project: r.get("project")?,
        provider: r.get("provider")?,
        state: BatchState::parse(&state)
            .ok_or_else(|| LedgerError::Range(format!("unknown batch state `{state}`")))?,
        submitted_at: ts_from_db(r.get("submitted_at")?),
        ended_at: ts("ended_at")?,
        settled_at: ts("settled_at")?,
        request_count: u(r.get("request_count")?),
        hold: Hold {
            usd: Money::from_i64(r.get("hold_pico")?),
            input_tokens: u(r.get("hold_input")?),
            output_tokens: u(r.get("hold_output")?),
        },
        cost: money("cost_pico")?,
        list_cost: money("list_cost_pico")?,
        custom_id_fingerprint: r.get::<_, i64>("custom_id_fp")? as u64,
        body_hash: r.get("body_hash")?,
        next_poll_at: ts("next_poll_at")?,
        poll_attempts: r.get::<_, i64>("poll_attempts")?.clamp(0, u32::MAX as i64) as u32,
        last_status: r.get("last_status")?,
        error: r.get("error")?,
        estimate_json: r.get("estimate_json")?,
        lease_owner: r.get("lease_owner")?,
        lease_until: ts("lease_until")?,
    })
}

/// The rows a `... RETURNING` statement of a claim gives back.
fn returning(
    c: &Connection,
    text: &str,
    args: &[&dyn ToSql],
) -> Result<Vec<BatchRecord>, LedgerError> {
    let mut st = c.prepare_cached(text)?;
    bind(&mut st, args)?;
    let mut rows = st.raw_query();
    let mut out = Vec::new();
    while let Some(r) = rows.next()? {
        out.push(batch(r)?);
    }
    Ok(out)
}

// SQLite has one writer, so each claim below is one statement that no other can
// interleave with: the equivalent of PostgreSQL's FOR UPDATE SKIP LOCKED.
pub(super) fn claim_due(c: &Connection, lease: &Lease, limit: u32) -> Kept<Vec<BatchRecord>> {
    let (now, until, limit) = (ts_to_db(lease.now), ts_to_db(lease.until), i64::from(limit));
    let v = returning(c, &sql::claim_due(""), &[&lease.owner, &now, &until, &limit]);
    Ok((sql::sorted_by_poll(v)?, true))
}

pub(super) fn claim_pending(
    c: &Connection,
    lease: &Lease,
    before: Timestamp,
    limit: u32,
) -> Kept<Vec<BatchRecord>> {
    let (now, until, limit) = (ts_to_db(lease.now), ts_to_db(lease.until), i64::from(limit));
    let before = ts_to_db(before);
    let v = returning(c, &sql::claim_pending(""), &[&lease.owner, &now, &until, &limit, &before]);
    Ok((sql::sorted_by_submission(v)?, true))
}

pub(super) fn renew(c: &Connection, owner: &str, until: Timestamp) -> Kept<u64> {
    Ok((exec(c, sql::RENEW, &[&owner, &ts_to_db(until)])? as u64, true))
}

pub(super) fn drop_leases(c: &Connection, owner: &str, sub_id: Option<&str>) -> Kept<u64> {
    Ok((exec(c, sql::DROP_LEASES, &[&owner, &sub_id])? as u64, true))
}

pub(super) fn begin_settling(
    c: &Connection,
    sub_id: &str,
    lease: &Lease,
    token: &str,
) -> Kept<bool> {
    let (now, until) = (ts_to_db(lease.now), ts_to_db(lease.until));
    let n = exec(c, sql::BEGIN_SETTLING, &[&sub_id, &lease.owner, &now, &until, &token])?;
    Ok((n == 1, true))
}

pub(super) fn end_settling(c: &Connection, sub_id: &str, token: &str) -> Kept<()> {
    exec(c, sql::END_SETTLING, &[&sub_id, &token])?;
    Ok(((), true))
}

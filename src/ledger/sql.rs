//! Statements both backends run as written (`$N` placeholders, `ON CONFLICT`, `RETURNING`
//! exist in SQLite and PostgreSQL alike), and the small helpers around them. Where the
//! backends differ (row locking, array parameters) the backend file has its own text.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::rows::{empty_window, window_from_row};
use super::{BatchRecord, LedgerError, ListCursor, WindowRef, WindowState, ts_to_db};

pub(super) const BATCH_COLUMNS: &str = "sub_id, upstream_id, project, provider, state, \
    submitted_at, ended_at, settled_at, request_count, hold_pico, hold_input, hold_output, \
    cost_pico, list_cost_pico, custom_id_fp, body_hash, next_poll_at, poll_attempts, \
    last_status, error, estimate_json, lease_owner, lease_until";

/// Takes the dedupe key ($1 project, $2 body hash) for submission $3 at $4, unless a live
/// submission submitted at or after $5 holds it: then nothing changes (0 rows).
pub(super) const DEDUPE_CLAIM: &str = "INSERT INTO dedupe (project, body_hash, sub_id, \
    submitted_at) VALUES ($1, $2, $3, $4) ON CONFLICT (project, body_hash) DO UPDATE SET \
    sub_id = excluded.sub_id, submitted_at = excluded.submitted_at \
    WHERE dedupe.submitted_at < $5";

/// The batch holding the dedupe key of ($1 project, $2 body hash).
pub(super) fn dedupe_batch() -> String {
    format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE sub_id = \
         (SELECT sub_id FROM dedupe WHERE project = $1 AND body_hash = $2)"
    )
}

/// A released submission gives its body back: the same body may be sent again. The key is
/// found through the batch row (no index on `dedupe.sub_id` since schema version 10), and
/// only while this submission still holds it.
pub(super) const DEDUPE_FORGET: &str = "DELETE FROM dedupe WHERE sub_id = $1 AND \
    (project, body_hash) IN (SELECT project, body_hash FROM batches WHERE sub_id = $1)";

/// Claims due in-flight batches for $1 at $2 until $3, at most $4. A lease changing hands
/// drops the old owner's settling mark (that replica is gone). `lock` is PostgreSQL's
/// `FOR UPDATE SKIP LOCKED`; SQLite's single writer needs none.
pub(super) fn claim_due(lock: &str) -> String {
    format!(
        "UPDATE batches SET lease_owner = $1, lease_until = $3, settling_by = CASE WHEN \
         lease_owner = $1 THEN settling_by ELSE NULL END WHERE sub_id IN (SELECT sub_id FROM \
         batches WHERE state = 'in_flight' AND (next_poll_at IS NULL OR next_poll_at <= $2) \
         AND (lease_owner IS NULL OR lease_owner = $1 OR lease_until < $2) \
         ORDER BY next_poll_at LIMIT $4 {lock}) RETURNING {BATCH_COLUMNS}"
    )
}

/// Claims `submitting` batches submitted before $5 whose lease is free or expired.
pub(super) fn claim_pending(lock: &str) -> String {
    format!(
        "UPDATE batches SET lease_owner = $1, lease_until = $3 WHERE sub_id IN (SELECT sub_id \
         FROM batches WHERE state = 'submitting' AND submitted_at < $5 AND (lease_owner IS NULL \
         OR lease_until < $2) ORDER BY submitted_at LIMIT $4 {lock}) RETURNING {BATCH_COLUMNS}"
    )
}

/// The assignments a poll's schedule ends with: the lease of replica $6 handed back
/// unless a settlement holds it (see `Ledger::schedule_polls`). The columns are left
/// unqualified so that both backends' statements can use it as written.
pub(super) const HAND_BACK_LEASE: &str = "lease_owner = CASE WHEN lease_owner = $6 AND \
    settling_by IS NULL THEN NULL ELSE lease_owner END, lease_until = CASE WHEN \
    lease_owner = $6 AND settling_by IS NULL THEN NULL ELSE lease_until END";

pub(super) const RENEW: &str = "UPDATE batches SET lease_until = $2 WHERE lease_owner = $1 \
    AND state IN ('submitting', 'in_flight')";

pub(super) const DROP_LEASES: &str = "UPDATE batches SET lease_owner = NULL, lease_until = NULL, \
    settling_by = NULL WHERE lease_owner = $1 AND ($2 IS NULL OR sub_id = $2)";

/// Batch $1, task $5 of replica $2 at $3, lease until $4.
pub(super) const BEGIN_SETTLING: &str = "UPDATE batches SET lease_owner = $2, lease_until = $4, \
    settling_by = $5 WHERE sub_id = $1 AND state = 'in_flight' AND ((lease_owner = $2 AND \
    settling_by IS NULL) OR lease_owner IS NULL OR lease_until < $3)";

pub(super) const END_SETTLING: &str =
    "UPDATE batches SET settling_by = NULL WHERE sub_id = $1 AND settling_by = $2";

/// Windows in the one order every path locks them in: admission, release and settlement
/// alike, so two transactions never wait on each other in a cycle.
pub(super) fn lock_order(windows: &[WindowRef]) -> Vec<&WindowRef> {
    let mut v: Vec<&WindowRef> = windows.iter().collect();
    v.sort_by(|a, b| (&a.budget, a.start).cmp(&(&b.budget, b.start)));
    v
}

/// `[[budget, start], ...]` for SQLite's `json_each`.
pub(super) fn window_keys_json(refs: &[WindowRef]) -> String {
    let keys: Vec<(&str, i64)> =
        refs.iter().map(|w| (w.budget.as_str(), ts_to_db(w.start))).collect();
    serde_json::to_string(&keys).unwrap_or_else(|_| "[]".into())
}

pub(super) fn ids_json(ids: &[String]) -> String {
    serde_json::to_string(ids).unwrap_or_else(|_| "[]".into())
}

/// Each ref's row, in the refs' order (zero where nothing was recorded yet).
pub(super) fn match_windows<R>(
    refs: &[WindowRef],
    rows: &[R],
) -> Result<Vec<WindowState>, LedgerError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let mut keyed = Vec::with_capacity(rows.len());
    for r in rows {
        keyed.push((r.try_get::<String, _>("budget")?, r.try_get::<i64, _>("window_start")?, r));
    }
    refs.iter()
        .map(|w| match keyed.iter().find(|(b, s, _)| *b == w.budget && *s == ts_to_db(w.start)) {
            Some((_, _, r)) => window_from_row(*r, w),
            None => Ok(empty_window(w)),
        })
        .collect()
}

/// `RETURNING` comes in no particular order: poll the longest-due first.
pub(super) fn sorted_by_poll(
    v: Result<Vec<BatchRecord>, LedgerError>,
) -> Result<Vec<BatchRecord>, LedgerError> {
    let mut v = v?;
    v.sort_by_key(|b| (b.next_poll_at, b.submitted_at));
    Ok(v)
}

pub(super) fn sorted_by_submission(
    v: Result<Vec<BatchRecord>, LedgerError>,
) -> Result<Vec<BatchRecord>, LedgerError> {
    let mut v = v?;
    v.sort_by_key(|b| b.submitted_at);
    Ok(v)
}

/// One page of a project's batches on one provider ($1 provider, $2 project, $3 the cursor
/// batch's upstream id), newest first by (submitted_at, sub_id); `Before` pages come out
/// oldest first and the caller reverses them.
pub(super) fn project_batches(cursor: ListCursor<'_>, limit: u32) -> String {
    let mine = "provider = $1 AND project = $2 AND upstream_id IS NOT NULL";
    let at = "(SELECT submitted_at, sub_id FROM batches WHERE provider = $1 AND \
              project = $2 AND upstream_id = $3)";
    let (filter, order) = match cursor {
        ListCursor::Newest => (String::new(), "DESC"),
        ListCursor::After(_) => (format!("AND (submitted_at, sub_id) < {at}"), "DESC"),
        ListCursor::Before(_) => (format!("AND (submitted_at, sub_id) > {at}"), "ASC"),
    };
    format!(
        "SELECT {BATCH_COLUMNS} FROM batches WHERE {mine} {filter} \
         ORDER BY submitted_at {order}, sub_id {order} LIMIT {limit}"
    )
}

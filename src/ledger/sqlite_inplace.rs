//! The SQLite writes on every create's path (admission, `mark_submitted`, calibration
//! bounds) and the two that end holds (release, settlement), run in place.
//!
//! sqlx's SQLite driver runs each connection on a thread of its own and every statement
//! is a round trip to it: an admission was a dozen round trips, about 60 thread switches
//! per create, while SQLite itself took about 2% of the time. These writes instead run
//! on a `rusqlite` connection to the same database, on the caller's thread, with cached
//! statements. The two connections never write at once: a write here first takes the
//! lock on the sqlx writer connection and holds it until it is done, so SQLite's single
//! writer is still one writer and no transaction ever meets a busy lock. The SQL is the
//! same text as before (`$N` placeholders bound by number, as sqlx binds them). Each
//! write below runs in a savepoint of a group commit (`sqlite_group.rs`), never in a
//! transaction of its own.
//!
//! `rusqlite` links the `libsqlite3-sys` that sqlx links (Cargo allows one crate per
//! native library), so this is the same SQLite build.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::types::ToSql;
use rusqlite::{Connection, OpenFlags, Statement};

use super::super::rows::{empty_window, opt_count, u};
use super::super::sql::{self, DEDUPE_CLAIM, DEDUPE_FORGET};
use super::super::workflow::ModelBound;
use super::super::*;
use crate::config::Durability;

/// The in-place connection.
pub(super) struct Writer {
    conn: Mutex<Connection>,
    /// `synchronous = FULL` waits for fsync at commit: run off the async worker thread.
    blocking: bool,
}

impl Writer {
    /// Opens `file` (what sqlx's options resolved the URL to) as the sqlx writer does.
    pub(super) fn open(
        file: &std::path::Path,
        memory: bool,
        durability: Durability,
    ) -> Result<Writer, LedgerError> {
        let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        if memory {
            // sqlx names an in-memory database and opens it with a shared cache, so every
            // connection of the process sees the one database.
            flags |= OpenFlags::SQLITE_OPEN_MEMORY | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
        }
        let conn = Connection::open_with_flags(file, flags)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let sync = match durability {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // A group's savepoints keep the pages they touch in a statement journal: in memory
        // it is a copy, on disk (where SQLite spills one past 64 KiB) a temporary file
        // created, written and removed inside the commit.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        // The ledger's checkpoint thread copies the WAL back (`sqlite_checkpoint.rs`).
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        conn.set_prepared_statement_cache_capacity(32);
        Ok(Writer { conn: Mutex::new(conn), blocking: durability == Durability::Full })
    }

    /// Runs `f` on the connection. The caller holds the sqlx writer connection.
    pub(super) fn run<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LedgerError>,
    ) -> Result<T, LedgerError> {
        let conn = self.conn.lock().unwrap_or_else(PoisonError::into_inner);
        let multi_thread = tokio::runtime::Handle::try_current()
            .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
        if self.blocking && multi_thread {
            tokio::task::block_in_place(|| f(&conn))
        } else {
            f(&conn)
        }
    }
}

/// Binds `$N` to `args[N - 1]` wherever it appears, as sqlx does (SQLite itself numbers
/// `$N` parameters by first appearance).
pub(super) fn bind(st: &mut Statement<'_>, args: &[&dyn ToSql]) -> Result<(), LedgerError> {
    for i in 1..=st.parameter_count() {
        let arg = st
            .parameter_name(i)
            .and_then(|p| p.strip_prefix('$'))
            .and_then(|n| n.parse::<usize>().ok())
            .and_then(|n| args.get(n.wrapping_sub(1)))
            .copied()
            .ok_or_else(|| LedgerError::Range(format!("statement parameter {i} is not bound")))?;
        st.raw_bind_parameter(i, arg)?;
    }
    Ok(())
}

/// Runs one statement; how many rows it changed.
pub(super) fn exec(c: &Connection, sql: &str, args: &[&dyn ToSql]) -> Result<usize, LedgerError> {
    let mut st = c.prepare_cached(sql)?;
    bind(&mut st, args)?;
    Ok(st.raw_execute()?)
}

/// What an admission found.
pub(super) enum Admitted {
    Yes,
    /// The dedupe key is taken: a client retry (nothing was written).
    Duplicate,
    /// This window could not take its hold (nothing was written), as it stood then.
    Refused(Box<WindowState>),
}

/// Each function below runs inside a savepoint of a group's transaction
/// (`sqlite_group.rs`) and says whether its writes stay (`true`) or are undone.
pub(super) type Kept<T> = Result<(T, bool), LedgerError>;

/// Admission: the dedupe key, then each window in lock order (its row, the conditional
/// reserve, the reservation), then the batch row; all or nothing.
pub(super) fn admit(tx: &Connection, s: &NewSubmission) -> Kept<Admitted> {
    let (at, since) = (ts_to_db(s.submitted_at), ts_to_db(s.dedupe_since));
    let claim: [&dyn ToSql; 5] = [&s.project, &s.body_hash, &s.sub_id, &at, &since];
    if exec(tx, DEDUPE_CLAIM, &claim)? != 1 {
        return Ok((Admitted::Duplicate, false));
    }
    for w in sql::lock_order(&s.windows) {
        // A window may hold less than the whole worst case (models filter, calibrated).
        let hold = w.hold.unwrap_or(s.hold);
        let (usd, inp, out) =
            (to_db(hold.usd)?, count_to_db(hold.input_tokens)?, count_to_db(hold.output_tokens)?);
        let (start, end) = (ts_to_db(w.start), ts_to_db(w.end));
        let limits = (
            w.limit.map(to_db).transpose()?,
            opt_count(w.limit_input_tokens)?,
            opt_count(w.limit_output_tokens)?,
        );
        exec(
            tx,
            "INSERT INTO budget_windows (budget, window_start, window_end, project, period, \
             limit_pico, limit_input, limit_output) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (budget, window_start) DO UPDATE SET limit_pico = excluded.limit_pico, \
             limit_input = excluded.limit_input, limit_output = excluded.limit_output",
            &[
                &w.budget,
                &start,
                &end,
                &w.project,
                &w.period.as_str(),
                &limits.0,
                &limits.1,
                &limits.2,
            ],
        )?;
        // The decisive step: one conditional statement per window.
        let reserved = exec(
            tx,
            "UPDATE budget_windows SET reserved_pico = reserved_pico + $3, \
             reserved_input = reserved_input + $4, reserved_output = reserved_output + $5 \
             WHERE budget = $1 AND window_start = $2 \
             AND (limit_pico IS NULL OR spent_pico + reserved_pico + $3 <= limit_pico) \
             AND (limit_input IS NULL OR spent_input + reserved_input + $4 <= limit_input) \
             AND (limit_output IS NULL OR spent_output + reserved_output + $5 <= limit_output)",
            &[&w.budget, &start, &usd, &inp, &out],
        )?;
        if reserved != 1 {
            return Ok((Admitted::Refused(Box::new(window_state(tx, w)?)), false));
        }
        exec(
            tx,
            "INSERT INTO reservations (sub_id, budget, window_start, hold_pico, hold_input, \
             hold_output, state) VALUES ($1, $2, $3, $4, $5, $6, 'held')",
            &[&s.sub_id, &w.budget, &start, &usd, &inp, &out],
        )?;
    }
    let lease_owner = s.lease.as_ref().map(|l| l.owner.as_str());
    let lease_until = s.lease.as_ref().map(|l| ts_to_db(l.until));
    exec(
        tx,
        "INSERT INTO batches (sub_id, project, provider, state, submitted_at, request_count, \
         hold_pico, hold_input, hold_output, custom_id_fp, body_hash, estimate_json, \
         lease_owner, lease_until) \
         VALUES ($1, $2, $3, 'submitting', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        &[
            &s.sub_id,
            &s.project,
            &s.provider,
            &at,
            &count_to_db(s.request_count)?,
            &to_db(s.hold.usd)?,
            &count_to_db(s.hold.input_tokens)?,
            &count_to_db(s.hold.output_tokens)?,
            &(s.custom_id_fingerprint as i64),
            &s.body_hash,
            &s.estimate_json,
            &lease_owner,
            &lease_until,
        ],
    )?;
    // Its calibration bounds, in the same transaction.
    insert_bounds(tx, &s.sub_id, &s.bounds)?;
    Ok((Admitted::Yes, true))
}

/// A window's figures as this transaction sees them.
fn window_state(c: &Connection, w: &WindowRef) -> Result<WindowState, LedgerError> {
    let mut st = c.prepare_cached(
        "SELECT spent_pico, reserved_pico, spent_input, reserved_input, spent_output, \
         reserved_output FROM budget_windows WHERE budget = $1 AND window_start = $2",
    )?;
    bind(&mut st, &[&w.budget, &ts_to_db(w.start)])?;
    let mut rows = st.raw_query();
    let Some(r) = rows.next()? else { return Ok(empty_window(w)) };
    Ok(WindowState {
        spent: Money::from_i64(r.get(0)?),
        reserved: Money::from_i64(r.get(1)?),
        spent_input_tokens: u(r.get(2)?),
        reserved_input_tokens: u(r.get(3)?),
        spent_output_tokens: u(r.get(4)?),
        reserved_output_tokens: u(r.get(5)?),
        ..empty_window(w)
    })
}

pub(super) fn mark_submitted(
    c: &Connection,
    sub_id: &str,
    upstream_id: &str,
    next_poll_at: i64,
) -> Kept<bool> {
    let n = exec(
        c,
        "UPDATE batches SET state = 'in_flight', upstream_id = $2, next_poll_at = $3 \
         WHERE sub_id = $1 AND state = 'submitting'",
        &[&sub_id, &upstream_id, &next_poll_at],
    )?;
    Ok((n == 1, true))
}

pub(super) fn schedule_polls(c: &Connection, owner: &str, plans: &[PollPlan]) -> Kept<()> {
    let text = format!(
        "UPDATE batches SET next_poll_at = $2, poll_attempts = $3, \
         last_status = COALESCE($4, last_status), error = $5, {} WHERE sub_id = $1",
        sql::HAND_BACK_LEASE
    );
    for p in plans {
        let (next, attempts) = (ts_to_db(p.next_poll_at), i64::from(p.attempts));
        exec(c, &text, &[&p.sub_id, &next, &attempts, &p.last_status, &p.error, &owner])?;
    }
    Ok(((), true))
}

/// `submitting` -> `failed`, the dedupe key given back, every hold released.
pub(super) fn release(tx: &Connection, sub_id: &str, reason: &str) -> Kept<bool> {
    let n = exec(
        tx,
        "UPDATE batches SET state = 'failed', error = $2, lease_owner = NULL, \
         lease_until = NULL WHERE sub_id = $1 AND state = 'submitting'",
        &[&sub_id, &reason],
    )?;
    if n != 1 {
        return Ok((false, false));
    }
    exec(tx, DEDUPE_FORGET, &[&sub_id])?;
    close_holds(tx, sub_id, None, "released")?;
    Ok((true, true))
}

/// Settlement: cost, usage per model and every hold moved to spent, exactly once.
pub(super) fn settle(tx: &Connection, sub_id: &str, s: &Settlement) -> Kept<bool> {
    let (cost, list) = (to_db(s.cost())?, to_db(s.list_cost())?);
    // Exactly once: only an in-flight batch can become settled.
    let n = exec(
        tx,
        "UPDATE batches SET state = 'settled', cost_pico = $2, list_cost_pico = $3, \
         ended_at = $4, settled_at = $5, last_status = 'ended', error = NULL, \
         next_poll_at = NULL, lease_owner = NULL, lease_until = NULL, settling_by = NULL \
         WHERE sub_id = $1 AND state = 'in_flight'",
        &[&sub_id, &cost, &list, &ts_to_db(s.ended_at), &ts_to_db(s.settled_at)],
    )?;
    if n != 1 {
        return Ok((false, false));
    }
    for m in &s.models {
        let (t, q) = (&m.tokens, &m.requests);
        exec(
            tx,
            "INSERT INTO batch_usage (sub_id, model, input_tokens, output_tokens, \
             cache_write_5m, cache_write_1h, cache_read, web_searches, succeeded, errored, \
             canceled, expired, cost_pico, list_cost_pico) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            &[
                &sub_id,
                &m.model,
                &count_to_db(t.input)?,
                &count_to_db(t.output)?,
                &count_to_db(t.cache_write_5m)?,
                &count_to_db(t.cache_write_1h)?,
                &count_to_db(t.cache_read)?,
                &count_to_db(t.web_search_requests)?,
                &count_to_db(q.succeeded)?,
                &count_to_db(q.errored)?,
                &count_to_db(q.canceled)?,
                &count_to_db(q.expired)?,
                &to_db(m.cost)?,
                &to_db(m.list_cost)?,
            ],
        )?;
    }
    close_holds(tx, sub_id, Some(s), "settled")?;
    Ok((true, true))
}

/// Ends every hold of `sub_id`: each window it sat in gives back the hold and takes what
/// the batch spent there (nothing for a release; for a settlement, the cost and tokens of
/// the models the window's budget counts, see [`Settlement::spent_by`]). Both paths go
/// through here, so a release and a settlement can never disagree on which windows a
/// batch counted against; windows are changed in lock order.
fn close_holds(
    c: &Connection,
    sub_id: &str,
    settled: Option<&Settlement>,
    state: &str,
) -> Result<(), LedgerError> {
    let holds = {
        let mut st = c.prepare_cached(
            "SELECT budget, window_start, hold_pico, hold_input, hold_output FROM reservations \
             WHERE sub_id = $1 AND state = 'held' ORDER BY budget, window_start",
        )?;
        bind(&mut st, &[&sub_id])?;
        let mut rows = st.raw_query();
        let mut holds: Vec<(String, i64, i64, i64, i64)> = Vec::new();
        while let Some(r) = rows.next()? {
            holds.push((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?));
        }
        holds
    };
    for (budget, start, pico, input, output) in &holds {
        let spent = settled.map(|s| s.spent_by(budget)).unwrap_or_default();
        let spent = (
            to_db(spent.cost)?,
            count_to_db(spent.input_tokens)?,
            count_to_db(spent.output_tokens)?,
        );
        exec(
            c,
            "UPDATE budget_windows SET reserved_pico = reserved_pico - $3, \
             reserved_input = reserved_input - $4, reserved_output = reserved_output - $5, \
             spent_pico = spent_pico + $6, spent_input = spent_input + $7, \
             spent_output = spent_output + $8 WHERE budget = $1 AND window_start = $2",
            &[budget, start, pico, input, output, &spent.0, &spent.1, &spent.2],
        )?;
    }
    exec(
        c,
        "UPDATE reservations SET state = $2 WHERE sub_id = $1 AND state = 'held'",
        &[&sub_id, &state],
    )?;
    Ok(())
}

/// Calibration bounds of a new batch, one row per model.
fn insert_bounds(tx: &Connection, sub_id: &str, bounds: &[ModelBound]) -> Result<(), LedgerError> {
    for b in bounds {
        exec(
            tx,
            "INSERT INTO batch_bounds (sub_id, model, input_upper, output_worst, worst_pico, \
             worst_output_pico) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (sub_id, model) DO NOTHING",
            &[
                &sub_id,
                &b.model,
                &count_to_db(b.input_upper)?,
                &count_to_db(b.output_worst)?,
                &to_db(b.worst)?,
                &to_db(b.worst_output)?,
            ],
        )?;
    }
    Ok(())
}

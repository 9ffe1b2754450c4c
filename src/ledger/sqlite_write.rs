//! The SQLite ledger's writes as jobs for the group-commit [`Writer`](super::writer): each
//! `*_in_tx` function runs inside the group's transaction (in its own savepoint) on the
//! writer thread's connection, with the same statements the sqlx version ran, so the
//! decisive step of each is still one conditional statement.

use std::borrow::Cow;
use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use super::rows::{empty_window, u};
use super::writer::Step;
use super::*;
use crate::config::Durability;

/// What [`admit_in_tx`] found; a duplicate is named, and read back after the commit.
pub(super) enum AdmitStep {
    Admitted,
    Refused(WindowState),
    Duplicate(String),
}

/// Opens the writer's connection to the database sqlx just created and migrated.
pub(super) fn open(
    file: &Path,
    memory: bool,
    durability: Durability,
) -> Result<Connection, LedgerError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if memory {
        // sqlx names its in-memory database as a shared-cache URI; join it.
        flags |= OpenFlags::SQLITE_OPEN_URI
            | OpenFlags::SQLITE_OPEN_MEMORY
            | OpenFlags::SQLITE_OPEN_SHARED_CACHE;
    }
    let conn = Connection::open_with_flags(file, flags)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(64);
    let sync = match durability {
        Durability::Normal => "NORMAL",
        Durability::Full => "FULL",
    };
    // The same settings sqlx gave its connections.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON;"
    ))?;
    Ok(conn)
}

/// The statements are written with `$N` like the sqlx ones (and PostgreSQL's); SQLite
/// reads `$1` as a *named* parameter numbered by first use, so make the number explicit.
fn sql(text: &str) -> Cow<'_, str> {
    let b = text.as_bytes();
    let param = |i: usize| b[i] == b'$' && b.get(i + 1).is_some_and(u8::is_ascii_digit);
    if !(0..b.len()).any(param) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (i, ch) in text.char_indices() {
        out.push(if param(i) { '?' } else { ch });
    }
    Cow::Owned(out)
}

fn exec(c: &Connection, text: &str, p: impl rusqlite::Params) -> Result<usize, LedgerError> {
    Ok(c.prepare_cached(&sql(text))?.execute(p)?)
}

pub(super) fn admit_in_tx(
    c: &Connection,
    s: &NewSubmission,
) -> Result<Step<AdmitStep>, LedgerError> {
    let dup: Option<String> = c
        .prepare_cached(&sql("SELECT sub_id FROM batches WHERE project = $1 AND body_hash = $2 \
             AND submitted_at >= $3 AND state <> 'failed' ORDER BY submitted_at DESC LIMIT 1"))?
        .query_row(params![s.project, s.body_hash, ts_to_db(s.dedupe_since)], |r| r.get(0))
        .optional()?;
    if let Some(sub_id) = dup {
        return Ok(Step::Discard(AdmitStep::Duplicate(sub_id)));
    }
    let (usd, inp, out) =
        (to_db(s.hold.usd)?, count_to_db(s.hold.input_tokens)?, count_to_db(s.hold.output_tokens)?);
    for w in &s.windows {
        // A budget whose `models` filter selects part of the batch holds only that part.
        let (usd, inp, out) = match &w.hold {
            Some(h) => (to_db(h.usd)?, count_to_db(h.input_tokens)?, count_to_db(h.output_tokens)?),
            None => (usd, inp, out),
        };
        exec(
            c,
            "INSERT INTO budget_windows (budget, window_start, window_end, project, period, \
             limit_pico, limit_input, limit_output) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) \
             ON CONFLICT (budget, window_start) DO UPDATE SET limit_pico = excluded.limit_pico, \
             limit_input = excluded.limit_input, limit_output = excluded.limit_output",
            params![
                w.budget,
                ts_to_db(w.start),
                ts_to_db(w.end),
                w.project,
                w.period.as_str(),
                w.limit.map(to_db).transpose()?,
                super::rows::opt_count(w.limit_input_tokens)?,
                super::rows::opt_count(w.limit_output_tokens)?,
            ],
        )?;
        // The decisive step: one conditional statement per window.
        let reserved = exec(
            c,
            "UPDATE budget_windows SET reserved_pico = reserved_pico + $3, \
             reserved_input = reserved_input + $4, reserved_output = reserved_output + $5 \
             WHERE budget = $1 AND window_start = $2 \
             AND (limit_pico IS NULL OR spent_pico + reserved_pico + $3 <= limit_pico) \
             AND (limit_input IS NULL OR spent_input + reserved_input + $4 <= limit_input) \
             AND (limit_output IS NULL OR spent_output + reserved_output + $5 <= limit_output)",
            params![w.budget, ts_to_db(w.start), usd, inp, out],
        )?;
        if reserved != 1 {
            return Ok(Step::Discard(AdmitStep::Refused(window_state(c, w)?)));
        }
        exec(
            c,
            "INSERT INTO reservations (sub_id, budget, window_start, hold_pico, hold_input, \
             hold_output, state) VALUES ($1, $2, $3, $4, $5, $6, 'held')",
            params![s.sub_id, w.budget, ts_to_db(w.start), usd, inp, out],
        )?;
    }
    exec(
        c,
        "INSERT INTO batches (sub_id, project, provider, state, submitted_at, request_count, \
         hold_pico, hold_input, hold_output, custom_id_fp, body_hash, estimate_json) \
         VALUES ($1, $2, $3, 'submitting', $4, $5, $6, $7, $8, $9, $10, $11)",
        params![
            s.sub_id,
            s.project,
            s.provider,
            ts_to_db(s.submitted_at),
            count_to_db(s.request_count)?,
            usd,
            inp,
            out,
            s.custom_id_fingerprint as i64,
            s.body_hash,
            s.estimate_json,
        ],
    )?;
    Ok(Step::Keep(AdmitStep::Admitted))
}

fn window_state(c: &Connection, w: &WindowRef) -> Result<WindowState, LedgerError> {
    let row = c
        .prepare_cached(&sql(
            "SELECT spent_pico, reserved_pico, spent_input, reserved_input, spent_output, \
             reserved_output FROM budget_windows WHERE budget = $1 AND window_start = $2",
        ))?
        .query_row(params![w.budget, ts_to_db(w.start)], |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get::<_, i64>(5)?])
        })
        .optional()?;
    Ok(match row {
        Some([sp, rp, si, ri, so, ro]) => WindowState {
            spent: Money::from_i64(sp),
            reserved: Money::from_i64(rp),
            spent_input_tokens: u(si),
            reserved_input_tokens: u(ri),
            spent_output_tokens: u(so),
            reserved_output_tokens: u(ro),
            ..empty_window(w)
        },
        None => empty_window(w),
    })
}

pub(super) fn mark_submitted_in_tx(
    c: &Connection,
    sub_id: &str,
    upstream_id: &str,
    next_poll_at: Timestamp,
) -> Result<Step<bool>, LedgerError> {
    let n = exec(
        c,
        "UPDATE batches SET state = 'in_flight', upstream_id = $2, next_poll_at = $3 \
         WHERE sub_id = $1 AND state = 'submitting'",
        params![sub_id, upstream_id, ts_to_db(next_poll_at)],
    )?;
    Ok(Step::Keep(n == 1))
}

pub(super) fn release_in_tx(
    c: &Connection,
    sub_id: &str,
    reason: &str,
) -> Result<Step<bool>, LedgerError> {
    let n = exec(
        c,
        "UPDATE batches SET state = 'failed', error = $2 WHERE sub_id = $1 AND state = 'submitting'",
        params![sub_id, reason],
    )?;
    if n != 1 {
        return Ok(Step::Discard(false));
    }
    close_holds(c, sub_id, (0, 0, 0), "released")?;
    Ok(Step::Keep(true))
}

pub(super) fn schedule_poll_in_tx(
    c: &Connection,
    sub_id: &str,
    next_poll_at: Timestamp,
    attempts: u32,
    last_status: Option<&str>,
    error: Option<&str>,
) -> Result<Step<()>, LedgerError> {
    exec(
        c,
        "UPDATE batches SET next_poll_at = $2, poll_attempts = $3, \
         last_status = COALESCE($4, last_status), error = $5 WHERE sub_id = $1",
        params![sub_id, ts_to_db(next_poll_at), i64::from(attempts), last_status, error],
    )?;
    Ok(Step::Keep(()))
}

pub(super) fn settle_in_tx(
    c: &Connection,
    sub_id: &str,
    s: &Settlement,
) -> Result<Step<bool>, LedgerError> {
    let (cost, list) = (to_db(s.cost())?, to_db(s.list_cost())?);
    let (inp, out) = (count_to_db(s.input_tokens())?, count_to_db(s.output_tokens())?);
    // Exactly once: only an in-flight batch can become settled.
    let n = exec(
        c,
        "UPDATE batches SET state = 'settled', cost_pico = $2, list_cost_pico = $3, \
         ended_at = $4, settled_at = $5, last_status = 'ended', error = NULL, \
         next_poll_at = NULL WHERE sub_id = $1 AND state = 'in_flight'",
        params![sub_id, cost, list, ts_to_db(s.ended_at), ts_to_db(s.settled_at)],
    )?;
    if n != 1 {
        return Ok(Step::Discard(false));
    }
    for m in &s.models {
        let (t, q) = (&m.tokens, &m.requests);
        exec(
            c,
            "INSERT INTO batch_usage (sub_id, model, input_tokens, output_tokens, \
             cache_write_5m, cache_write_1h, cache_read, web_searches, succeeded, errored, \
             canceled, expired, cost_pico, list_cost_pico) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            params![
                sub_id,
                m.model,
                count_to_db(t.input)?,
                count_to_db(t.output)?,
                count_to_db(t.cache_write_5m)?,
                count_to_db(t.cache_write_1h)?,
                count_to_db(t.cache_read)?,
                count_to_db(t.web_search_requests)?,
                count_to_db(q.succeeded)?,
                count_to_db(q.errored)?,
                count_to_db(q.canceled)?,
                count_to_db(q.expired)?,
                to_db(m.cost)?,
                to_db(m.list_cost)?,
            ],
        )?;
    }
    close_holds(c, sub_id, (cost, inp, out), "settled")?;
    Ok(Step::Keep(true))
}

/// Ends every hold of `sub_id`: each window it sat in gives back the hold and takes
/// `spent` (zero for a release, the batch's actual cost and tokens for a settlement).
/// Both paths go through here, so a release and a settlement can never disagree on which
/// windows a batch counted against.
fn close_holds(
    c: &Connection,
    sub_id: &str,
    spent: (i64, i64, i64),
    state: &str,
) -> Result<(), LedgerError> {
    let holds: Vec<(String, i64, i64, i64, i64)> = c
        .prepare_cached(&sql(
            "SELECT budget, window_start, hold_pico, hold_input, hold_output FROM reservations \
             WHERE sub_id = $1 AND state = 'held'",
        ))?
        .query_map(params![sub_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })?
        .collect::<Result<_, _>>()?;
    for (budget, start, hp, hi, ho) in &holds {
        exec(
            c,
            "UPDATE budget_windows SET reserved_pico = reserved_pico - $3, \
             reserved_input = reserved_input - $4, reserved_output = reserved_output - $5, \
             spent_pico = spent_pico + $6, spent_input = spent_input + $7, \
             spent_output = spent_output + $8 WHERE budget = $1 AND window_start = $2",
            params![budget, start, hp, hi, ho, spent.0, spent.1, spent.2],
        )?;
    }
    exec(
        c,
        "UPDATE reservations SET state = $2 WHERE sub_id = $1 AND state = 'held'",
        params![sub_id, state],
    )?;
    Ok(())
}

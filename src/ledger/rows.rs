//! Database rows to ledger types, for both backends (both store amounts as 64-bit
//! pico-dollars and instants as 64-bit unix microseconds). Counts never go negative, so a
//! negative read is clamped to zero.

use sqlx::{ColumnIndex, Decode, Row, Type};

use super::*;

pub(super) fn empty_window(w: &WindowRef) -> WindowState {
    WindowState {
        budget: w.budget.clone(),
        project: w.project.clone(),
        period: w.period,
        start: w.start,
        end: w.end,
        limit: w.limit,
        spent: Money::ZERO,
        reserved: Money::ZERO,
        limit_input_tokens: w.limit_input_tokens,
        spent_input_tokens: 0,
        reserved_input_tokens: 0,
        limit_output_tokens: w.limit_output_tokens,
        spent_output_tokens: 0,
        reserved_output_tokens: 0,
    }
}

pub(super) fn u(v: i64) -> u64 {
    v.max(0) as u64
}

pub(super) fn window_from_row<R>(r: &R, w: &WindowRef) -> Result<WindowState, LedgerError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(WindowState {
        spent: Money::from_i64(r.try_get("spent_pico")?),
        reserved: Money::from_i64(r.try_get("reserved_pico")?),
        spent_input_tokens: u(r.try_get("spent_input")?),
        reserved_input_tokens: u(r.try_get("reserved_input")?),
        spent_output_tokens: u(r.try_get("spent_output")?),
        reserved_output_tokens: u(r.try_get("reserved_output")?),
        ..empty_window(w)
    })
}

pub(super) fn batch_from_row<R>(r: &R) -> Result<BatchRecord, LedgerError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    let state: String = r.try_get("state")?;
    let opt_ts = |c: &str| -> Result<Option<Timestamp>, LedgerError> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(ts_from_db))
    };
    let opt_money = |c: &str| -> Result<Option<Money>, LedgerError> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(Money::from_i64))
    };
    Ok(BatchRecord {
        sub_id: r.try_get("sub_id")?,
        upstream_id: r.try_get("upstream_id")?,
        project: r.try_get("project")?,
        provider: r.try_get("provider")?,
        state: BatchState::parse(&state)
            .ok_or_else(|| LedgerError::Range(format!("unknown batch state `{state}`")))?,
        submitted_at: ts_from_db(r.try_get("submitted_at")?),
        ended_at: opt_ts("ended_at")?,
        settled_at: opt_ts("settled_at")?,
        request_count: u(r.try_get("request_count")?),
        hold: Hold {
            usd: Money::from_i64(r.try_get("hold_pico")?),
            input_tokens: u(r.try_get("hold_input")?),
            output_tokens: u(r.try_get("hold_output")?),
        },
        cost: opt_money("cost_pico")?,
        list_cost: opt_money("list_cost_pico")?,
        custom_id_fingerprint: r.try_get::<i64, _>("custom_id_fp")? as u64,
        body_hash: r.try_get("body_hash")?,
        next_poll_at: opt_ts("next_poll_at")?,
        poll_attempts: r.try_get::<i64, _>("poll_attempts")?.clamp(0, u32::MAX as i64) as u32,
        last_status: r.try_get("last_status")?,
        error: r.try_get("error")?,
        estimate_json: r.try_get("estimate_json")?,
        lease_owner: r.try_get("lease_owner")?,
        lease_until: opt_ts("lease_until")?,
    })
}

pub(super) fn usage_from_row<R>(r: &R) -> Result<ModelUsage, LedgerError>
where
    R: Row,
    for<'c> &'c str: ColumnIndex<R>,
    for<'r> i64: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> String: Decode<'r, R::Database> + Type<R::Database>,
{
    Ok(ModelUsage {
        model: r.try_get("model")?,
        tokens: TokenTotals {
            input: u(r.try_get("input_tokens")?),
            output: u(r.try_get("output_tokens")?),
            cache_write_5m: u(r.try_get("cache_write_5m")?),
            cache_write_1h: u(r.try_get("cache_write_1h")?),
            cache_read: u(r.try_get("cache_read")?),
            web_search_requests: u(r.try_get("web_searches")?),
        },
        requests: ResultCounts {
            succeeded: u(r.try_get("succeeded")?),
            errored: u(r.try_get("errored")?),
            canceled: u(r.try_get("canceled")?),
            expired: u(r.try_get("expired")?),
        },
        cost: Money::from_i64(r.try_get("cost_pico")?),
        list_cost: Money::from_i64(r.try_get("list_cost_pico")?),
    })
}

pub(super) fn opt_count(v: Option<u64>) -> Result<Option<i64>, LedgerError> {
    v.map(count_to_db).transpose()
}

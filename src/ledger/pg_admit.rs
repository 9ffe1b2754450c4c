//! Admission on PostgreSQL: one call of `batchcost_admit` (migration 0007), so the budget
//! window rows every admission updates are locked for the rest of one statement, not
//! across several network round trips. The function runs what were separate statements,
//! in their order; this file only lays the submission out as its arguments and reads the
//! outcome back.

use sqlx::postgres::PgArguments;
use sqlx::query::Query;
use sqlx::{Postgres, Row};

use super::super::rows::{batch_from_row, empty_window, opt_count, window_from_row};
use super::super::sql::{self, BATCH_COLUMNS};
use super::super::{Admit, LedgerError, NewSubmission, WindowRef, count_to_db, to_db, ts_to_db};
use super::PgLedger;

const ADMIT: &str = "SELECT * FROM batchcost_admit($1, $2, $3, $4, $5, $6, $7, \
    $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, \
    $26, $27, $28, $29, $30)";

/// Admits `s`: the dedupe key, the batch, its reservations and bounds, and every window's
/// conditional reserve in lock order, all or nothing; durable before it returns.
pub(super) async fn admit(l: &PgLedger, s: &NewSubmission) -> Result<Admit, LedgerError> {
    let windows = sql::lock_order(&s.windows);
    let row = bind(sqlx::query(ADMIT), s, &windows)?.fetch_one(&l.fast).await?;
    let (outcome, detail): (String, Option<String>) =
        (row.try_get("outcome")?, row.try_get("detail")?);
    match (outcome.as_str(), detail) {
        ("admitted", _) => {
            l.flush.wait().await?;
            Ok(Admit::Admitted)
        }
        // The key's holder: its batch row was written with the key, in one transaction.
        ("duplicate", Some(holder)) => {
            let row =
                sqlx::query(&format!("SELECT {BATCH_COLUMNS} FROM batches WHERE sub_id = $1"))
                    .bind(holder)
                    .fetch_optional(&l.fast)
                    .await?
                    .ok_or_else(|| LedgerError::Range("a dedupe key names no batch".into()))?;
            Ok(Admit::Duplicate(Box::new(batch_from_row(&row)?)))
        }
        // The window as it stood when it refused (the function read it under the lock).
        ("refused", Some(n)) => {
            let w = n
                .parse::<usize>()
                .ok()
                .and_then(|n| windows.get(n.checked_sub(1)?).copied())
                .ok_or_else(|| LedgerError::Range(format!("admission refused window {n}")))?;
            let state = match row.try_get::<Option<i64>, _>("spent_pico")? {
                Some(_) => window_from_row(&row, w)?,
                None => empty_window(w),
            };
            Ok(Admit::Refused(Box::new(state)))
        }
        (other, _) => Err(LedgerError::Range(format!("admission answered {other:?}"))),
    }
}

/// The function's arguments: the submission, then one array element per window (in lock
/// order) for each window column, then one per model for each bounds column.
fn bind<'q>(
    q: Query<'q, Postgres, PgArguments>,
    s: &'q NewSubmission,
    windows: &[&WindowRef],
) -> Result<Query<'q, Postgres, PgArguments>, LedgerError> {
    let mut holds = Vec::with_capacity(windows.len());
    let (mut limit_pico, mut limit_input, mut limit_output) = (vec![], vec![], vec![]);
    for w in windows {
        // A window may hold less than the whole worst case (models filter, calibrated).
        let h = w.hold.unwrap_or(s.hold);
        holds.push((to_db(h.usd)?, count_to_db(h.input_tokens)?, count_to_db(h.output_tokens)?));
        limit_pico.push(w.limit.map(to_db).transpose()?);
        limit_input.push(opt_count(w.limit_input_tokens)?);
        limit_output.push(opt_count(w.limit_output_tokens)?);
    }
    let col = |i: usize| holds.iter().map(|h| [h.0, h.1, h.2][i]).collect::<Vec<i64>>();
    let b = &s.bounds;
    let mut bounds: [Vec<i64>; 4] = Default::default();
    for m in b {
        bounds[0].push(count_to_db(m.input_upper)?);
        bounds[1].push(count_to_db(m.output_worst)?);
        bounds[2].push(to_db(m.worst)?);
        bounds[3].push(to_db(m.worst_output)?);
    }
    let [b_input, b_output, b_worst, b_worst_output] = bounds;
    Ok(q.bind(&s.sub_id)
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
        .bind(s.lease.as_ref().map(|l| l.owner.clone()))
        .bind(s.lease.as_ref().map(|l| ts_to_db(l.until)))
        .bind(ts_to_db(s.dedupe_since))
        .bind(windows.iter().map(|w| w.budget.clone()).collect::<Vec<String>>())
        .bind(windows.iter().map(|w| ts_to_db(w.start)).collect::<Vec<i64>>())
        .bind(windows.iter().map(|w| ts_to_db(w.end)).collect::<Vec<i64>>())
        .bind(windows.iter().map(|w| w.project.clone()).collect::<Vec<String>>())
        .bind(windows.iter().map(|w| w.period.as_str().to_string()).collect::<Vec<String>>())
        .bind(limit_pico)
        .bind(limit_input)
        .bind(limit_output)
        .bind(col(0))
        .bind(col(1))
        .bind(col(2))
        .bind(b.iter().map(|m| m.model.clone()).collect::<Vec<String>>())
        .bind(b_input)
        .bind(b_output)
        .bind(b_worst)
        .bind(b_worst_output))
}

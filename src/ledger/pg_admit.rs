//! The create path's writes on PostgreSQL, in groups (`pg_group.rs`): admission, one
//! call of `batchcost_admit_group` (migration 0008) per group, each admission still all
//! or nothing (see the migration for how, and for the lock order); then
//! `mark_submitted`, one UPDATE per group. The budget window row that every admission
//! updates is then taken once per group, not once per pooled connection in turn.

use std::cmp::Ordering;

use sqlx::postgres::{PgPool, PgRow};
use sqlx::{Postgres, Row};

use super::super::rows::{empty_window, opt_count, window_from_row};
use super::super::sql;
use super::super::{Admit, Ledger, LedgerFuture, WindowState};
use super::super::{LedgerError, NewSubmission, WindowRef, count_to_db, to_db, ts_to_db};
use super::PgLedger;
use super::group::{Call, Group};

const ADMIT_GROUP: &str = "SELECT * FROM batchcost_admit_group($1, $2, $3, $4, $5, $6, $7, \
    $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, \
    $26, $27, $28, $29, $30, $31, $32)";

/// What the server answered for one admission, before the follow-up its caller makes.
pub(super) enum Outcome {
    Admitted,
    /// The submission holding the key.
    Duplicate(String),
    Refused(Box<WindowState>),
}

/// Admissions, grouped.
pub(super) struct AdmitCall;

impl Call for AdmitCall {
    type Job = NewSubmission;
    type Out = Outcome;
    const MOST: usize = 32;

    fn call<'a>(pool: &'a PgPool, jobs: &'a [&'a NewSubmission]) -> LedgerFuture<'a, Vec<Outcome>> {
        Box::pin(call(pool, jobs))
    }

    /// Dedupe keys are taken in this order (see the migration).
    fn order(a: &NewSubmission, b: &NewSubmission) -> Ordering {
        (&a.project, &a.body_hash).cmp(&(&b.project, &b.body_hash))
    }
}

/// The replica's groups of create-path writes.
#[derive(Default)]
pub(super) struct CreateGroups {
    admits: Group<AdmitCall>,
    marks: Group<MarkCall>,
}

/// Admits `s`: the dedupe key, the batch, its reservations and bounds, and every window's
/// conditional reserve, all or nothing; durable before it returns.
pub(super) async fn admit(l: &PgLedger, s: &NewSubmission) -> Result<Admit, LedgerError> {
    match l.creates.admits.send(&l.fast, s.clone()).await? {
        Outcome::Admitted => {
            l.flush.wait().await?;
            Ok(Admit::Admitted)
        }
        // The key's holder: its batch row was written with the key, in one transaction.
        Outcome::Duplicate(holder) => {
            let rec = l
                .batch(&holder)
                .await?
                .ok_or_else(|| LedgerError::Range("a dedupe key names no batch".into()))?;
            Ok(Admit::Duplicate(Box::new(rec)))
        }
        Outcome::Refused(w) => Ok(Admit::Refused(w)),
    }
}

/// One batch's upstream answer: (sub_id, upstream id, first poll).
pub(super) struct Mark(String, String, i64);

/// `mark_submitted`, grouped.
pub(super) struct MarkCall;

impl Call for MarkCall {
    type Job = Mark;
    type Out = bool;
    const MOST: usize = 64;

    fn call<'a>(pool: &'a PgPool, jobs: &'a [&'a Mark]) -> LedgerFuture<'a, Vec<bool>> {
        Box::pin(mark_all(pool, jobs))
    }

    fn order(a: &Mark, b: &Mark) -> Ordering {
        a.0.cmp(&b.0)
    }
}

/// Records that the upstream took `sub_id` as `upstream_id`; false when the batch was no
/// longer being submitted. Durable before it returns: on the synchronous pool, as it
/// holds no window row (see `pg_flush.rs`).
pub(super) async fn mark_submitted(
    l: &PgLedger,
    sub_id: &str,
    upstream_id: &str,
    next_poll_at: i64,
) -> Result<bool, LedgerError> {
    let job = Mark(sub_id.to_string(), upstream_id.to_string(), next_poll_at);
    let marked = l.creates.marks.send(&l.pool, job).await?;
    Ok(marked)
}

/// One UPDATE for the group. As if run one after another: of two marks of one batch in a
/// group (its create and a recovery, say) only the first can find it still submitting.
async fn mark_all(pool: &PgPool, jobs: &[&Mark]) -> Result<Vec<bool>, LedgerError> {
    let mut firsts: Vec<&Mark> = Vec::with_capacity(jobs.len());
    for j in jobs {
        if !firsts.iter().any(|f| f.0 == j.0) {
            firsts.push(j);
        }
    }
    let marked: Vec<String> = sqlx::query_scalar(
        "UPDATE batches b SET state = 'in_flight', upstream_id = u.upstream_id, \
         next_poll_at = u.next_poll_at \
         FROM unnest($1::text[], $2::text[], $3::int8[]) AS u(sub_id, upstream_id, next_poll_at) \
         WHERE b.sub_id = u.sub_id AND b.state = 'submitting' RETURNING b.sub_id",
    )
    .bind(firsts.iter().map(|m| m.0.as_str()).collect::<Vec<_>>())
    .bind(firsts.iter().map(|m| m.1.as_str()).collect::<Vec<_>>())
    .bind(firsts.iter().map(|m| m.2).collect::<Vec<_>>())
    .fetch_all(pool)
    .await?;
    Ok(jobs
        .iter()
        .map(|j| firsts.iter().any(|f| std::ptr::eq(*f, *j)) && marked.contains(&j.0))
        .collect())
}

/// One call of the group function; one outcome per submission, in order.
async fn call(fast: &PgPool, subs: &[&NewSubmission]) -> Result<Vec<Outcome>, LedgerError> {
    let windows: Vec<Vec<&WindowRef>> = subs.iter().map(|s| sql::lock_order(&s.windows)).collect();
    let args = Args::of(subs, &windows)?;
    let rows = args.bind().fetch_all(fast).await?;
    if rows.len() != subs.len() {
        return Err(LedgerError::Range(format!(
            "admission of {} answered {} rows",
            subs.len(),
            rows.len()
        )));
    }
    rows.iter().zip(&windows).map(|(row, ws)| outcome(row, ws)).collect()
}

fn outcome(row: &PgRow, windows: &[&WindowRef]) -> Result<Outcome, LedgerError> {
    let (o, detail): (String, Option<String>) = (row.try_get("outcome")?, row.try_get("detail")?);
    match (o.as_str(), detail) {
        ("admitted", _) => Ok(Outcome::Admitted),
        ("duplicate", Some(holder)) => Ok(Outcome::Duplicate(holder)),
        // The window as it stood when it refused (the function read it under the lock).
        ("refused", Some(n)) => {
            let w = n
                .parse::<usize>()
                .ok()
                .and_then(|n| windows.get(n.checked_sub(1)?).copied())
                .ok_or_else(|| LedgerError::Range(format!("admission refused window {n}")))?;
            let state = match row.try_get::<Option<i64>, _>("spent_pico")? {
                Some(_) => window_from_row(row, w)?,
                None => empty_window(w),
            };
            Ok(Outcome::Refused(Box::new(state)))
        }
        (other, _) => Err(LedgerError::Range(format!("admission answered {other:?}"))),
    }
}

/// The function's arguments, one array per column: the submissions, then their windows
/// (each submission's in lock order), then their per-model bounds.
#[derive(Default)]
struct Args {
    sub_id: Vec<String>,
    project: Vec<String>,
    provider: Vec<String>,
    submitted_at: Vec<i64>,
    request_count: Vec<i64>,
    hold: [Vec<i64>; 3],
    custom_id_fp: Vec<i64>,
    body_hash: Vec<String>,
    estimate_json: Vec<String>,
    lease_owner: Vec<Option<String>>,
    lease_until: Vec<Option<i64>>,
    dedupe_since: Vec<i64>,
    n_windows: Vec<i32>,
    n_models: Vec<i32>,
    w_budget: Vec<String>,
    w_start: Vec<i64>,
    w_end: Vec<i64>,
    w_project: Vec<String>,
    w_period: Vec<String>,
    w_limit: [Vec<Option<i64>>; 3],
    w_hold: [Vec<i64>; 3],
    b_model: Vec<String>,
    b: [Vec<i64>; 4],
}

impl Args {
    fn of(subs: &[&NewSubmission], windows: &[Vec<&WindowRef>]) -> Result<Self, LedgerError> {
        let mut a = Args::default();
        for (s, ws) in subs.iter().zip(windows) {
            a.sub_id.push(s.sub_id.clone());
            a.project.push(s.project.clone());
            a.provider.push(s.provider.clone());
            a.submitted_at.push(ts_to_db(s.submitted_at));
            a.request_count.push(count_to_db(s.request_count)?);
            a.hold[0].push(to_db(s.hold.usd)?);
            a.hold[1].push(count_to_db(s.hold.input_tokens)?);
            a.hold[2].push(count_to_db(s.hold.output_tokens)?);
            a.custom_id_fp.push(s.custom_id_fingerprint as i64);
            a.body_hash.push(s.body_hash.clone());
            a.estimate_json.push(s.estimate_json.clone());
            a.lease_owner.push(s.lease.as_ref().map(|l| l.owner.clone()));
            a.lease_until.push(s.lease.as_ref().map(|l| ts_to_db(l.until)));
            a.dedupe_since.push(ts_to_db(s.dedupe_since));
            a.n_windows.push(i32::try_from(ws.len()).unwrap_or(i32::MAX));
            a.n_models.push(i32::try_from(s.bounds.len()).unwrap_or(i32::MAX));
            for w in ws {
                a.w_budget.push(w.budget.clone());
                a.w_start.push(ts_to_db(w.start));
                a.w_end.push(ts_to_db(w.end));
                a.w_project.push(w.project.clone());
                a.w_period.push(w.period.as_str().to_string());
                a.w_limit[0].push(w.limit.map(to_db).transpose()?);
                a.w_limit[1].push(opt_count(w.limit_input_tokens)?);
                a.w_limit[2].push(opt_count(w.limit_output_tokens)?);
                // A window may hold less than the whole worst case (models filter,
                // calibrated).
                let h = w.hold.unwrap_or(s.hold);
                a.w_hold[0].push(to_db(h.usd)?);
                a.w_hold[1].push(count_to_db(h.input_tokens)?);
                a.w_hold[2].push(count_to_db(h.output_tokens)?);
            }
            for m in &s.bounds {
                a.b_model.push(m.model.clone());
                a.b[0].push(count_to_db(m.input_upper)?);
                a.b[1].push(count_to_db(m.output_worst)?);
                a.b[2].push(to_db(m.worst)?);
                a.b[3].push(to_db(m.worst_output)?);
            }
        }
        Ok(a)
    }

    fn bind(self) -> sqlx::query::Query<'static, Postgres, sqlx::postgres::PgArguments> {
        let [hold_pico, hold_input, hold_output] = self.hold;
        let [limit_pico, limit_input, limit_output] = self.w_limit;
        let [w_hold_pico, w_hold_input, w_hold_output] = self.w_hold;
        let [b_input, b_output, b_worst, b_worst_output] = self.b;
        sqlx::query(ADMIT_GROUP)
            .bind(self.sub_id)
            .bind(self.project)
            .bind(self.provider)
            .bind(self.submitted_at)
            .bind(self.request_count)
            .bind(hold_pico)
            .bind(hold_input)
            .bind(hold_output)
            .bind(self.custom_id_fp)
            .bind(self.body_hash)
            .bind(self.estimate_json)
            .bind(self.lease_owner)
            .bind(self.lease_until)
            .bind(self.dedupe_since)
            .bind(self.n_windows)
            .bind(self.n_models)
            .bind(self.w_budget)
            .bind(self.w_start)
            .bind(self.w_end)
            .bind(self.w_project)
            .bind(self.w_period)
            .bind(limit_pico)
            .bind(limit_input)
            .bind(limit_output)
            .bind(w_hold_pico)
            .bind(w_hold_input)
            .bind(w_hold_output)
            .bind(self.b_model)
            .bind(b_input)
            .bind(b_output)
            .bind(b_worst)
            .bind(b_worst_output)
    }
}

//! Money reserved for batches still in flight: not spend yet (a batch has a cost once it
//! settles), but already taken from budgets at its worst case. The table report ends with
//! it so finance sees what is committed, not only what is spent.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::ReportQuery;
use crate::ledger::{BatchRecord, BatchState, Ledger, LedgerError};
use crate::money::Money;

/// Every batch whose hold is still reserved (submitting or in flight). Bounded by what
/// is in flight, never by history.
pub async fn open_batches(ledger: &dyn Ledger) -> Result<Vec<BatchRecord>, LedgerError> {
    let mut all = ledger.batches_in_state(BatchState::Submitting).await?;
    all.extend(ledger.batches_in_state(BatchState::InFlight).await?);
    Ok(all)
}

/// Reserved money per project and provider, for batches submitted in the query's range.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Reserved {
    pub batches: u64,
    pub requests: u64,
    pub usd: Money,
}

/// Groups `open` by (project, provider), keeping those submitted in `[from, to)`.
pub fn reserved(open: &[BatchRecord], q: &ReportQuery) -> BTreeMap<(String, String), Reserved> {
    let mut by = BTreeMap::<(String, String), Reserved>::new();
    for b in open.iter().filter(|b| q.from <= b.submitted_at && b.submitted_at < q.to) {
        let r = by.entry((b.project.clone(), b.provider.clone())).or_default();
        r.batches += 1;
        r.requests += b.request_count;
        r.usd += b.hold.usd;
    }
    by
}

/// The table's closing section.
pub fn section(open: &[BatchRecord], q: &ReportQuery) -> String {
    let by = reserved(open, q);
    let mut out =
        String::from("\nIn flight (reserved at the worst case, not spend until settled)\n");
    if by.is_empty() {
        out += "(no batches in flight submitted in this range)\n";
        return out;
    }
    let _ = writeln!(
        out,
        "{:<12}  {:<9}  {:>7} {:>9} {:>12}",
        "project", "provider", "batches", "requests", "reserved_usd"
    );
    let mut total = Money::ZERO;
    for ((project, provider), r) in &by {
        total += r.usd;
        let _ = writeln!(
            out,
            "{project:<12}  {provider:<9}  {:>7} {:>9} {:>12}",
            r.batches,
            r.requests,
            r.usd.usd_rounded(2)
        );
    }
    let _ = writeln!(
        out,
        "{:<12}  {:<9}  {:>7} {:>9} {:>12}",
        "TOTAL",
        "",
        "",
        "",
        total.usd_rounded(2)
    );
    out
}

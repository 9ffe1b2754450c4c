//! Creating a batch exactly once. The intent (with a fence: the project's newest batch at
//! that moment) is saved before the create is sent. A create whose answer never arrived
//! (crash, timeout, cut connection) is looked for before it is sent again: any batch of
//! the project newer than the fence, of the same size and not already known, is taken as
//! it; its results are checked against the batch's custom_ids before they count
//! (`collect.rs`). Within the gateway's dedupe window a re-send of the identical body is
//! answered with the first batch, which covers a create still in progress at the gateway.

use std::collections::HashSet;

use super::client::{CallError, backoff};
use super::input::Input;
use super::progress::Log;
use super::provider::{BatchView, Provider};
use super::state::{Fence, Outcome, Phase, State, Store};

/// Transient create failures tolerated in a row before the run stops (state kept).
const CREATE_TRIES: u32 = 8;

/// Brings batch `k` from `Planned` or `Creating` to `Running` or `Refused`.
pub async fn ensure_created(
    p: &impl Provider,
    input: &Input,
    store: &Store,
    st: &mut State,
    k: usize,
    log: &Log,
) -> anyhow::Result<()> {
    let mut look_first = st.batches[k].phase == Phase::Creating;
    if st.batches[k].phase == Phase::Planned {
        let fence = newest(p).await?;
        let b = &mut st.batches[k];
        b.fence = Some(fence);
        b.phase = Phase::Creating;
        store.save(st)?;
    }
    let lines = input.lines(&st.batches[k].items)?;
    let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
    let body = p.body(&refs);
    let mut failures = 0;
    loop {
        if look_first {
            if let Some(found) = find_sent(p, st, k).await? {
                log.line(&format!(
                    "batch {} (attempt {}): found {} from an earlier run's create",
                    st.batches[k].seq, st.batches[k].attempt, found.id
                ));
                let b = &mut st.batches[k];
                b.id = Some(found.id);
                b.counts = found.counts;
                b.adopted = true;
                b.phase = Phase::Running;
                return store.save(st);
            }
        }
        match p.create(body.clone()).await {
            Ok(view) => {
                let b = &mut st.batches[k];
                log.line(&format!(
                    "batch {} (attempt {}): submitted {} with {} requests",
                    b.seq,
                    b.attempt,
                    view.id,
                    b.items.len()
                ));
                b.id = Some(view.id);
                b.counts = view.counts;
                b.phase = Phase::Running;
                return store.save(st);
            }
            Err(e) if e.transient() && failures < CREATE_TRIES => {
                failures += 1;
                log.line(&format!(
                    "batch {}: create failed ({e}); looking for it, then retrying",
                    st.batches[k].seq
                ));
                look_first = true;
                tokio::time::sleep(backoff(failures)).await;
            }
            Err(e) if e.transient() => {
                anyhow::bail!(
                    "creating batch {}: {e} (state saved; run again to resume)",
                    st.batches[k].seq
                )
            }
            Err(e @ CallError::Status { status: 401 | 403, .. }) => {
                anyhow::bail!(
                    "creating batch {}: the gateway refused the key: {e} (state saved; fix the key and run again)",
                    st.batches[k].seq
                )
            }
            Err(e) => {
                let reason = refusal(&e);
                log.line(&format!("batch {}: refused: {reason}", st.batches[k].seq));
                let b = &mut st.batches[k];
                b.phase = Phase::Refused;
                b.error = Some(reason.clone());
                let items = b.items.clone();
                for i in items {
                    let it = &mut st.items[i as usize];
                    it.outcome = Outcome::Failed;
                    it.reason = Some(reason.clone());
                }
                return store.save(st);
            }
        }
    }
}

/// A refusal in one line, with a budget's numbers when a budget refused.
pub fn refusal(e: &CallError) -> String {
    let CallError::Status { kind, message, body, .. } = e else { return e.to_string() };
    let b = &body["error"]["budget"];
    if b.is_object() {
        let s = |k: &str| b[k].as_str().map(str::to_string).unwrap_or_else(|| b[k].to_string());
        return format!(
            "budget_exceeded: budget `{}` ({}): limit ${}, spent ${}, reserved ${}, this batch ${}; resets at {}",
            s("name"),
            s("period"),
            s("limit_usd"),
            s("spent_usd"),
            s("reserved_usd"),
            s("requested_usd"),
            s("resets_at")
        );
    }
    format!("{kind}: {message}")
}

/// The project's newest batch, or `None` when it has none.
async fn newest(p: &impl Provider) -> anyhow::Result<Option<Fence>> {
    // A few, not one: a page may hold fewer batches than asked for (one whose create is
    // still in progress at the gateway has no object yet).
    let page = p.list(None, 20).await?;
    Ok(page.batches.into_iter().next().map(|b| Fence { id: b.id, created_at: b.created_at }))
}

fn ts(s: &str) -> Option<jiff::Timestamp> {
    s.parse().ok()
}

/// The batch an unanswered create of batch `k` made, if the list shows one: the oldest
/// unknown batch of the right size newer than the fence.
async fn find_sent(p: &impl Provider, st: &State, k: usize) -> anyhow::Result<Option<BatchView>> {
    let b = &st.batches[k];
    let known: HashSet<&str> = st
        .batches
        .iter()
        .filter_map(|b| b.id.as_deref())
        .chain(st.foreign.iter().map(String::as_str))
        .collect();
    let fence = b.fence.clone().flatten();
    let since = fence.as_ref().and_then(|f| ts(&f.created_at));
    let want = b.items.len() as u64;
    let mut found: Option<BatchView> = None;
    let mut after: Option<String> = None;
    'pages: loop {
        let page = p.list(after.as_deref(), 100).await?;
        for v in page.batches {
            if fence.as_ref().is_some_and(|f| f.id == v.id) {
                break 'pages;
            }
            if let (Some(s), Some(t)) = (since, ts(&v.created_at)) {
                if t < s {
                    break 'pages;
                }
            }
            if !known.contains(v.id.as_str()) && v.counts.total() == want {
                found = Some(v); // newest first: the last match is the oldest
            }
        }
        match page.next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_budget_refusal_reads_with_the_budget_numbers() {
        let body = json!({"type": "error", "error": {"type": "budget_exceeded_error", "message": "over",
            "budget": {"name": "daily", "period": "day", "limit_usd": "5", "spent_usd": "4.5",
                       "reserved_usd": "0.25", "requested_usd": "1.2", "resets_at": "2026-12-02T00:00:00+09:00"}}});
        let e = CallError::Status {
            status: 429,
            kind: "budget_exceeded_error".into(),
            message: "over".into(),
            body,
        };
        assert!(!e.transient(), "a budget refusal is not retried");
        assert_eq!(
            refusal(&e),
            "budget_exceeded: budget `daily` (day): limit $5, spent $4.5, reserved $0.25, this batch $1.2; resets at 2026-12-02T00:00:00+09:00"
        );
        let busy = CallError::Status {
            status: 409,
            kind: "conflict".into(),
            message: String::new(),
            body: json!({}),
        };
        assert!(busy.transient(), "an identical create still in progress is waited for");
    }
}

//! An ended batch's results: downloaded whole into the work directory, read line by line
//! into the items' outcomes (assignments, never increments, so reading them twice after a
//! crash changes nothing). A batch adopted after a crash must hold exactly its items'
//! custom_ids, or it was someone else's and the create is redone.

use std::collections::HashSet;
use std::io::BufRead;

use super::input::Input;
use super::progress::Log;
use super::provider::{Failure, ItemResult, Provider, Tokens};
use super::retry::classify;
use super::state::{Outcome, Phase, State, Store};

/// `failure`: why the batch failed as a whole, if it did (the reason of its requests
/// without a result line; retried only if the failure is the upstream's trouble).
pub async fn collect(
    p: &impl Provider,
    input: &Input,
    store: &Store,
    st: &mut State,
    k: usize,
    failure: Option<&Failure>,
    log: &Log,
) -> anyhow::Result<()> {
    let seq = st.batches[k].seq;
    let id = st.batches[k].id.clone().unwrap_or_default();
    let path = store.results(seq);
    std::fs::create_dir_all(&store.work)?;
    match p.download(&id, &path).await {
        Ok(()) => {}
        // An adopted batch whose results are gone (another project's, or deleted after
        // 29 days) cannot be this run's create, which has just ended.
        Err(e) if st.batches[k].adopted && e.status() == Some(404) => {
            return not_ours(store, st, k, log);
        }
        Err(e) => return Err(e.into()),
    }
    let members: HashSet<u32> = st.batches[k].items.iter().copied().collect();
    let mut seen: HashSet<u32> = HashSet::with_capacity(members.len());
    let mut results: Vec<(u32, ItemResult)> = Vec::with_capacity(members.len());
    let mut strangers = 0usize;
    let reader = std::io::BufReader::new(std::fs::File::open(&path)?);
    for line in reader.split(b'\n') {
        let line = line?;
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let (cid, r) = p.result(&line).map_err(|e| anyhow::anyhow!("batch {id}: {e}"))?;
        match input.index.get(&cid).filter(|i| members.contains(i)) {
            Some(&i) if seen.insert(i) => results.push((i, r)),
            _ => strangers += 1,
        }
    }
    // An adopted batch must prove it is ours by its results, even one that failed whole.
    if st.batches[k].adopted && (strangers > 0 || seen.len() != members.len()) {
        return not_ours(store, st, k, log);
    }
    if strangers > 0 {
        log.line(&format!(
            "batch {seq}: {strangers} result lines for no request of this batch, ignored"
        ));
    }
    let attempt = st.batches[k].attempt;
    let mut tokens = Tokens::default();
    for (i, r) in &results {
        if let ItemResult::Succeeded(t) = r {
            tokens.add(t);
        }
        let (outcome, reason) = classify(r);
        let it = &mut st.items[*i as usize];
        it.attempts = attempt;
        it.outcome = outcome;
        it.reason = reason;
        it.batch = Some(seq);
    }
    for &i in &st.batches[k].items {
        if !seen.contains(&i) {
            let it = &mut st.items[i as usize];
            it.attempts = attempt;
            (it.outcome, it.reason) = match failure {
                Some(f) if !f.retryable => (Outcome::Failed, Some(f.reason.clone())),
                Some(f) => (Outcome::Retry, Some(f.reason.clone())),
                None => (Outcome::Retry, Some("no result line for this request".into())),
            };
            it.batch = None;
        }
    }
    let b = &mut st.batches[k];
    b.tokens = tokens;
    b.phase = Phase::Collected;
    store.save(st)
}

/// A batch adopted after a crash proved to be someone else's: remembered as foreign, and
/// batch `k` goes back to looking for (or making) its own.
fn not_ours(store: &Store, st: &mut State, k: usize, log: &Log) -> anyhow::Result<()> {
    let seq = st.batches[k].seq;
    let id = st.batches[k].id.take().unwrap_or_default();
    log.line(&format!(
        "batch {seq}: {id} holds other requests than ours; it was not this run's: creating batch {seq} again"
    ));
    let _ = std::fs::remove_file(store.results(seq));
    st.foreign.push(id);
    let b = &mut st.batches[k];
    b.adopted = false;
    b.phase = Phase::Creating;
    store.save(st)
}

//! Settlement: when a batch ends, stream its results through the provider's line decoder
//! (never holding the file), sum tokens per model and kind and requests per outcome, price
//! them with the entry in force at submission, and hand the ledger one settlement to
//! record exactly once.
//!
//! Only succeeded results cost anything. Lines without a model (errored, canceled and
//! expired, in Anthropic's format) are counted under the batch's main model (the one with
//! most requests).
//!
//! Speed (issue 17): a line is decoded borrowing its strings; the price and the totals of
//! each model are resolved once per batch and model and found again by name without
//! allocating; the stream is split on newlines without rescanning a partial line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::app::App;
use crate::ledger::{BatchRecord, LedgerError, ModelUsage, Settlement, TokenTotals};
use crate::money::Money;
use crate::pricing::{PriceTable, ResolvedPrice};
use crate::providers::{
    BatchPhase, BatchStatus, FetchError, Forward, LineDecoder, Outcome, Provider, UpstreamError,
};
use crate::usage::TokenUsage;

/// The per-model worst case kept with each batch: settlement compares against it and
/// uses it to attribute results that carry no model.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HoldBreakdown {
    pub models: Vec<ModelHold>,
}

/// See [`HoldBreakdown`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelHold {
    pub model: String,
    pub requests: u64,
    pub worst_cost: Money,
}

impl HoldBreakdown {
    pub fn main_model(&self) -> Option<&str> {
        self.models.iter().max_by_key(|m| m.requests).map(|m| m.model.as_str())
    }
}

/// Why a batch could not be settled yet (it stays in flight and is retried).
#[derive(Debug, thiserror::Error)]
pub enum SettleError {
    #[error("batch has no upstream id yet")]
    NoUpstreamId,
    #[error("batch has not ended upstream")]
    NotEnded,
    #[error("no upstream named `{0}` is configured")]
    UnknownProvider(String),
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
    #[error("upstream answered HTTP {0}")]
    Status(u16),
    #[error("results line {line}: {reason}")]
    BadLine { line: u64, reason: String },
    #[error("results stream ended after {got} of {expected} lines")]
    Incomplete { got: u64, expected: u64 },
    #[error("model `{0}` in the results is not in the price table")]
    UnknownModel(String),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("{0}")]
    Api(String),
}

impl From<FetchError> for SettleError {
    fn from(e: FetchError) -> Self {
        match e {
            FetchError::Upstream(u) => SettleError::Upstream(u),
            FetchError::Status(s) => SettleError::Status(s),
        }
    }
}

/// One model's price and running totals.
struct Slot {
    price: Option<ResolvedPrice>,
    usage: ModelUsage,
}

/// Sums result lines. Pure: the unit under test for the results parser.
pub struct Tally<'a> {
    decoder: &'a dyn LineDecoder,
    pricing: &'a PriceTable,
    /// Prices are looked up under this upstream's rows; `None`: under any provider.
    provider: Option<&'a str>,
    at: Timestamp,
    slots: Vec<Slot>,
    /// Model name as written in the results (or configured) -> priced slot, `None` for
    /// a model the table does not know. Filled once per distinct name.
    by_name: HashMap<String, Option<usize>>,
    /// Canonical id -> slot (aliases share their model's slot).
    by_model: HashMap<String, usize>,
    /// The batch's main model, for lines without a usable model; resolved on first use.
    fallback_model: Option<String>,
    fallback: Option<Option<usize>>,
    unpriced: Option<usize>,
    /// The last model name looked up and its slot: consecutive lines mostly share one.
    /// The buffer is reused, so a change of model allocates nothing either.
    last_name: String,
    last_slot: Option<Option<usize>>,
    pub lines: u64,
    /// Custom-id fingerprint of the lines so far (see [`results_fingerprint`]).
    pub fingerprint: u64,
}

impl<'a> Tally<'a> {
    pub fn new(
        decoder: &'a dyn LineDecoder,
        pricing: &'a PriceTable,
        at: Timestamp,
        fallback_model: Option<String>,
    ) -> Self {
        Tally {
            decoder,
            pricing,
            provider: None,
            at,
            slots: Vec::new(),
            by_name: HashMap::new(),
            by_model: HashMap::new(),
            fallback_model,
            fallback: None,
            unpriced: None,
            last_name: String::new(),
            last_slot: None,
            lines: 0,
            fingerprint: 0,
        }
    }

    /// Prices under `provider`'s rows of the table (the upstream's name).
    pub fn for_provider(mut self, provider: &'a str) -> Self {
        self.provider = Some(provider);
        self
    }

    /// The fallback model's slot, if it has a price.
    fn fallback(&mut self) -> Option<usize> {
        if let Some(s) = self.fallback {
            return s;
        }
        let s = self.fallback_model.clone().and_then(|m| self.slot_of(&m));
        self.fallback = Some(s);
        s
    }

    /// The slot of `model` (resolved on first sight), or `None` if it has no price.
    fn slot_of(&mut self, model: &str) -> Option<usize> {
        if let Some(slot) = self.last_slot.filter(|_| self.last_name == model) {
            return slot;
        }
        let slot = match self.by_name.get(model) {
            Some(s) => *s,
            None => {
                let price = match self.provider {
                    Some(provider) => self.pricing.resolve_for(provider, model, self.at),
                    None => self.pricing.resolve(model, self.at),
                };
                let s = price.map(|p| {
                    let n = self.slots.len();
                    *self.by_model.entry(p.model.clone()).or_insert_with(|| {
                        let usage = ModelUsage { model: p.model.clone(), ..Default::default() };
                        self.slots.push(Slot { price: Some(p), usage });
                        n
                    })
                });
                self.by_name.insert(model.to_string(), s);
                s
            }
        };
        self.last_name.clear();
        self.last_name.push_str(model);
        self.last_slot = Some(slot);
        slot
    }

    /// Where lines with no priced model are counted.
    fn fallback_slot(&mut self) -> usize {
        if let Some(s) = self.fallback() {
            return s;
        }
        if let Some(s) = self.unpriced {
            return s;
        }
        let model = crate::metrics::OTHER_MODEL.to_string();
        let s = *self.by_model.entry(model.clone()).or_insert_with(|| {
            self.slots
                .push(Slot { price: None, usage: ModelUsage { model, ..Default::default() } });
            self.slots.len() - 1
        });
        self.unpriced = Some(s);
        s
    }

    /// Adds one JSONL line (without its newline). Blank lines are skipped.
    pub fn add_line(&mut self, line: &[u8]) -> Result<(), SettleError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.lines += 1;
        let n = self.lines;
        let item =
            self.decoder.decode(line).map_err(|reason| SettleError::BadLine { line: n, reason })?;
        self.fingerprint =
            self.fingerprint.wrapping_add(xxhash_rust::xxh3::xxh3_64(item.custom_id.as_bytes()));
        if item.outcome != Outcome::Succeeded {
            let s = self.fallback_slot();
            let r = &mut self.slots[s].usage.requests;
            match item.outcome {
                Outcome::Errored => r.errored += 1,
                Outcome::Canceled => r.canceled += 1,
                Outcome::Expired => r.expired += 1,
                Outcome::Succeeded => {}
            }
            return Ok(());
        }
        let model = item.model.as_deref().unwrap_or("");
        let slot = match self.slot_of(model).or_else(|| self.fallback()) {
            Some(s) => s,
            None => return Err(SettleError::UnknownModel(model.to_string())),
        };
        let Slot { price, usage: m } = &mut self.slots[slot];
        let price = price.as_ref().ok_or_else(|| SettleError::UnknownModel(model.to_string()))?;
        m.tokens = add_tokens(&m.tokens, &item.usage).ok_or_else(|| SettleError::BadLine {
            line: n,
            reason: "token counts beyond any real batch (corrupt usage)".into(),
        })?;
        let cost = price.cost(&item.usage);
        m.requests.succeeded += 1;
        m.cost += cost.cost;
        m.list_cost += cost.list_cost;
        Ok(())
    }

    /// Per-model totals, by model name.
    pub fn finish(self) -> Vec<ModelUsage> {
        let mut out: Vec<ModelUsage> = self
            .slots
            .into_iter()
            .map(|s| s.usage)
            .filter(|m| {
                let r = m.requests;
                r.succeeded + r.errored + r.canceled + r.expired > 0
            })
            .collect();
        out.sort_by(|a, b| a.model.cmp(&b.model));
        out
    }
}

/// Most tokens of one kind a batch may total: 2^50, four orders of magnitude above
/// 100,000 requests of a million tokens each. Past it the usage is corrupt, and summing it
/// would overflow (a panic in debug builds, a silent wrap in release).
const MAX_TOKEN_TOTAL: u64 = 1 << 50;

/// `totals + usage`, or `None` when a total passes [`MAX_TOKEN_TOTAL`].
fn add_tokens(t: &TokenTotals, u: &TokenUsage) -> Option<TokenTotals> {
    let add = |a: u64, b: u64| a.checked_add(b).filter(|s| *s <= MAX_TOKEN_TOTAL);
    Some(TokenTotals {
        input: add(t.input, u.input)?,
        output: add(t.output, u.output)?,
        cache_write_5m: add(t.cache_write_5m, u.cache_write_5m)?,
        cache_write_1h: add(t.cache_write_1h, u.cache_write_1h)?,
        cache_read: add(t.cache_read, u.cache_read)?,
        web_search_requests: add(t.web_search_requests, u.web_search_requests)?,
    })
}

/// Settles in the background unless this process is already settling it.
pub fn spawn(app: Arc<App>, rec: BatchRecord) {
    let tasks = app.tasks.clone();
    tasks.spawn(async move {
        if let Err(e) = settle_now(&app, &rec).await {
            tracing::warn!(sub_id = %rec.sub_id, error = %e, "settlement deferred");
            app.wake_tracker.notify_one();
        }
    });
}

/// Clears this task's settling mark in the ledger however settlement ends (a settlement
/// that records clears it in the same transaction; this covers the other ways out).
struct SettlingGuard {
    ledger: Arc<dyn crate::ledger::Ledger>,
    sub_id: String,
    token: String,
}

impl Drop for SettlingGuard {
    fn drop(&mut self) {
        let (ledger, sub_id, token) = (
            self.ledger.clone(),
            std::mem::take(&mut self.sub_id),
            std::mem::take(&mut self.token),
        );
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                if let Err(e) = ledger.end_settling(&sub_id, &token).await {
                    tracing::warn!(%sub_id, error = %e, "cannot clear a settling mark");
                }
            });
        }
    }
}

/// The provider a ledger record belongs to.
pub fn provider_of<'a>(app: &'a App, rec: &BatchRecord) -> Result<&'a dyn Provider, SettleError> {
    app.provider(&rec.provider)
        .map(|p| p.as_ref())
        .ok_or_else(|| SettleError::UnknownProvider(rec.provider.clone()))
}

/// The batch as the upstream has it now.
pub async fn fetch_status(provider: &dyn Provider, id: &str) -> Result<BatchStatus, SettleError> {
    let reply = provider.retrieve(id, &Forward::default()).await?;
    if !reply.status.is_success() {
        return Err(SettleError::Status(reply.status.as_u16()));
    }
    provider
        .status(&reply.body)
        .map_err(|e| SettleError::Api(format!("unreadable batch object: {e}")))
}

/// Settles `rec` now: Ok(true) if this call recorded it, Ok(false) if it was already
/// settled or is being settled by another task (of this replica, or of another replica
/// whose lease is live).
#[tracing::instrument(skip_all, fields(sub_id = %rec.sub_id))]
pub async fn settle_now(app: &App, rec: &BatchRecord) -> Result<bool, SettleError> {
    let id = rec.upstream_id.clone().ok_or(SettleError::NoUpstreamId)?;
    let provider = provider_of(app, rec)?;
    let token = crate::replica::task_token(app);
    let lease = crate::replica::lease(app);
    if !app.ledger.begin_settling(&rec.sub_id, &lease, &token).await? {
        return Ok(false);
    }
    let _guard = SettlingGuard { ledger: app.ledger.clone(), sub_id: rec.sub_id.clone(), token };
    let status = fetch_status(provider, &id).await?;
    if status.phase != BatchPhase::Ended {
        return Err(SettleError::NotEnded);
    }
    let holds: HoldBreakdown = serde_json::from_str(&rec.estimate_json).unwrap_or_default();
    let mut tally = Tally::new(
        provider.decoder(),
        &app.pricing,
        rec.submitted_at,
        holds.main_model().map(str::to_string),
    )
    .for_provider(&rec.provider);
    stream_lines(provider, &status, |line| tally.add_line(line)).await?;
    let expected = status.counts.total.max(rec.request_count);
    if tally.lines != expected {
        return Err(SettleError::Incomplete { got: tally.lines, expected });
    }
    if tally.fingerprint != rec.custom_id_fingerprint {
        tracing::warn!(upstream_id = %id, "the results carry other custom ids than the submission: wrong batch adopted?");
    }
    let now = app.clock.now();
    let settlement = Settlement {
        ended_at: now,
        settled_at: now,
        models: tally.finish(),
        budget_models: budget_models(app, rec),
    };
    app.failpoints.hit("before_settle_commit").await;
    let recorded = app.ledger.settle(&rec.sub_id, &settlement).await?;
    app.failpoints.hit("after_settle_commit").await;
    if recorded {
        let reserved: BTreeMap<String, Money> =
            holds.models.iter().map(|m| (m.model.clone(), m.worst_cost)).collect();
        let duration = match (status.created_at, status.ended_at) {
            (Some(c), Some(e)) => Some(e.duration_since(c).as_secs_f64()),
            _ => None,
        };
        app.metrics.settled(
            &rec.project,
            &rec.provider,
            &settlement.models,
            &reserved,
            duration,
            now,
        );
        tracing::info!(
            upstream_id = %id,
            cost_usd = %settlement.cost().usd_exact(),
            reserved_usd = %rec.hold.usd.usd_exact(),
            "batch settled"
        );
    }
    Ok(recorded)
}

/// The models each budget with a `models` filter counts, for the budgets covering `rec`:
/// their windows held only those models' share, and are charged only their spend.
fn budget_models(app: &App, rec: &BatchRecord) -> HashMap<String, Vec<String>> {
    crate::budgets::applicable_to(&app.settings.budgets, &rec.project, &rec.provider)
        .filter_map(|b| {
            let models =
                crate::budgets::selected_models(b, &app.pricing, &rec.provider, rec.submitted_at)?;
            Some((b.name.clone(), models))
        })
        .collect()
}

/// Feeds every line of an ended batch's results to `f`, streaming (never the whole file).
/// Complete lines are handed out of the chunk they arrived in; only a line cut across
/// chunks is copied, and each byte is searched for a newline once.
pub async fn stream_lines(
    provider: &dyn Provider,
    status: &BatchStatus,
    mut f: impl FnMut(&[u8]) -> Result<(), SettleError>,
) -> Result<(), SettleError> {
    let mut stream = provider.results(status).await?;
    let mut partial: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk: Bytes = chunk?;
        let mut rest: &[u8] = &chunk;
        if !partial.is_empty() {
            match memchr::memchr(b'\n', rest) {
                Some(pos) => {
                    partial.extend_from_slice(&rest[..pos]);
                    f(&partial)?;
                    partial.clear();
                    rest = &rest[pos + 1..];
                }
                None => {
                    partial.extend_from_slice(rest);
                    continue;
                }
            }
        }
        let mut start = 0;
        for pos in memchr::memchr_iter(b'\n', rest) {
            f(&rest[start..pos])?;
            start = pos + 1;
        }
        partial.extend_from_slice(&rest[start..]);
    }
    if !partial.is_empty() {
        f(&partial)?;
    }
    Ok(())
}

/// The custom-id fingerprint (wrapping sum of `xxh3_64(custom_id)`, as the estimator
/// computes it at submission) of an ended batch's results: which of several same-sized
/// upstream batches a submission became.
pub async fn results_fingerprint(
    provider: &dyn Provider,
    status: &BatchStatus,
) -> Result<u64, SettleError> {
    #[derive(Deserialize)]
    struct Line<'a> {
        #[serde(borrow)]
        custom_id: std::borrow::Cow<'a, str>,
    }
    let (mut fp, mut lines) = (0u64, 0u64);
    stream_lines(provider, status, |line| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        lines += 1;
        let id = match provider.decoder().decode(line) {
            Ok(item) => item.custom_id.into_owned(),
            // A line the settlement decoder refuses still names its request.
            Err(reason) => serde_json::from_slice::<Line>(line)
                .map_err(|_| SettleError::BadLine { line: lines, reason })?
                .custom_id
                .into_owned(),
        };
        fp = fp.wrapping_add(xxhash_rust::xxh3::xxh3_64(id.as_bytes()));
        Ok(())
    })
    .await?;
    let expected = status.counts.total;
    if lines != expected {
        return Err(SettleError::Incomplete { got: lines, expected });
    }
    Ok(fp)
}

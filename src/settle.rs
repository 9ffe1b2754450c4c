//! Settlement: when a batch ends, stream its results (never holding the file), sum tokens
//! per model and kind and requests per result type, price them with the entry in force
//! at submission, and hand the ledger one settlement to record exactly once.
//!
//! Only succeeded results cost anything. Errored, canceled and expired lines carry no
//! model, so they are counted under the batch's main model (the one with most requests).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::{Buf, BytesMut};
use futures_util::StreamExt;
use jiff::Timestamp;
use reqwest::Method;
use serde::{Deserialize, Serialize};

use crate::gateway::{ApiError, App};
use crate::ledger::{BatchRecord, LedgerError, ModelUsage, Settlement, TokenTotals};
use crate::money::Money;
use crate::pricing::{PriceTable, ResolvedPrice, TokenUsage};
use crate::providers::anthropic::client::{Forward, UpstreamError};
use crate::providers::anthropic::wire::{
    MessageBatch, ProcessingStatus, ResultLineUsage, ResultUsage,
};

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
    fn main_model(&self) -> Option<&str> {
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

impl From<ApiError> for SettleError {
    fn from(e: ApiError) -> Self {
        SettleError::Api(e.to_string())
    }
}

/// Sums result lines. Pure: the unit under test for the results parser.
pub struct Tally<'a> {
    pricing: &'a PriceTable,
    at: Timestamp,
    fallback_model: Option<String>,
    prices: HashMap<String, Option<ResolvedPrice>>,
    models: BTreeMap<String, ModelUsage>,
    pub lines: u64,
    /// Custom-id fingerprint of the lines so far (see [`results_fingerprint`]).
    pub fingerprint: u64,
}

impl<'a> Tally<'a> {
    pub fn new(pricing: &'a PriceTable, at: Timestamp, fallback_model: Option<String>) -> Self {
        Tally {
            pricing,
            at,
            fallback_model,
            prices: HashMap::new(),
            models: BTreeMap::new(),
            lines: 0,
            fingerprint: 0,
        }
    }

    fn price(&mut self, model: &str) -> Option<ResolvedPrice> {
        if !self.prices.contains_key(model) {
            let p = self.pricing.resolve(model, self.at);
            self.prices.insert(model.to_string(), p);
        }
        self.prices.get(model).cloned().flatten()
    }

    /// Adds one JSONL line (without its newline). Blank lines are skipped.
    pub fn add_line(&mut self, line: &[u8]) -> Result<(), SettleError> {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        self.lines += 1;
        let n = self.lines;
        let parsed: ResultLineUsage = serde_json::from_slice(line)
            .map_err(|e| SettleError::BadLine { line: n, reason: e.to_string() })?;
        self.fingerprint =
            self.fingerprint.wrapping_add(xxhash_rust::xxh3::xxh3_64(parsed.custom_id.as_bytes()));
        match parsed.result {
            ResultUsage::Succeeded { message } => {
                let price = match self.price(&message.model) {
                    Some(p) => p,
                    None => {
                        let fb = self.fallback_model.clone();
                        fb.and_then(|m| self.price(&m))
                            .ok_or_else(|| SettleError::UnknownModel(message.model.clone()))?
                    }
                };
                let usage = TokenUsage::from_anthropic(&message.usage);
                let m = self.models.entry(price.model.clone()).or_insert_with(|| ModelUsage {
                    model: price.model.clone(),
                    ..Default::default()
                });
                m.tokens = add_tokens(&m.tokens, &usage).ok_or_else(|| SettleError::BadLine {
                    line: n,
                    reason: "token counts beyond any real batch (corrupt usage)".into(),
                })?;
                let cost = price.cost(&usage);
                m.requests.succeeded += 1;
                m.cost += cost.cost;
                m.list_cost += cost.list_cost;
            }
            other => {
                let model = self
                    .fallback_model
                    .clone()
                    .and_then(|m| self.price(&m).map(|p| p.model))
                    .unwrap_or_else(|| crate::metrics::OTHER_MODEL.to_string());
                let m = self
                    .models
                    .entry(model.clone())
                    .or_insert_with(|| ModelUsage { model, ..Default::default() });
                match other {
                    ResultUsage::Errored {} => m.requests.errored += 1,
                    ResultUsage::Canceled {} => m.requests.canceled += 1,
                    ResultUsage::Expired {} => m.requests.expired += 1,
                    ResultUsage::Succeeded { .. } => {}
                }
            }
        }
        Ok(())
    }

    pub fn finish(self) -> Vec<ModelUsage> {
        self.models.into_values().collect()
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

/// The results path from the upstream's `results_url`, only if it points at the upstream
/// we hold a key for (the provider key must never be sent anywhere else).
pub async fn results_path(app: &App, id: &str, fwd: &Forward) -> Result<String, ApiError> {
    let reply = app
        .upstream
        .call("retrieve", Method::GET, &format!("/v1/messages/batches/{id}"), fwd)
        .await?;
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let batch: MessageBatch = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Internal("upstream sent an unreadable batch".into()))?;
    Ok(path_of(app, &batch))
}

fn path_of(app: &App, batch: &MessageBatch) -> String {
    let default = format!("/v1/messages/batches/{}/results", batch.id);
    match batch.results_url.as_deref().and_then(|u| u.strip_prefix(app.upstream.base_url())) {
        Some(p) if p.starts_with('/') => p.split('?').next().unwrap_or(&default).to_string(),
        _ => default,
    }
}

/// Settles `rec` now: Ok(true) if this call recorded it, Ok(false) if it was already
/// settled or is being settled by another task (of this replica, or of another replica
/// whose lease is live).
#[tracing::instrument(skip_all, fields(sub_id = %rec.sub_id))]
pub async fn settle_now(app: &App, rec: &BatchRecord) -> Result<bool, SettleError> {
    let id = rec.upstream_id.clone().ok_or(SettleError::NoUpstreamId)?;
    let token = crate::replica::task_token(app);
    let lease = crate::replica::lease(app);
    if !app.ledger.begin_settling(&rec.sub_id, &lease, &token).await? {
        return Ok(false);
    }
    let _guard = SettlingGuard { ledger: app.ledger.clone(), sub_id: rec.sub_id.clone(), token };
    let fwd = Forward::default();
    let reply = app
        .upstream
        .call("retrieve", Method::GET, &format!("/v1/messages/batches/{id}"), &fwd)
        .await?;
    if !reply.status.is_success() {
        return Err(SettleError::Status(reply.status.as_u16()));
    }
    let batch: MessageBatch = serde_json::from_slice(&reply.body)
        .map_err(|e| SettleError::Api(format!("unreadable batch object: {e}")))?;
    if batch.processing_status != ProcessingStatus::Ended {
        return Err(SettleError::NotEnded);
    }
    let holds: HoldBreakdown = serde_json::from_str(&rec.estimate_json).unwrap_or_default();
    let mut tally =
        Tally::new(&app.pricing, rec.submitted_at, holds.main_model().map(str::to_string));
    stream_lines(app, &batch, |line| tally.add_line(line)).await?;
    let expected = batch.request_counts.total().max(rec.request_count);
    if tally.lines != expected {
        return Err(SettleError::Incomplete { got: tally.lines, expected });
    }
    if tally.fingerprint != rec.custom_id_fingerprint {
        tracing::warn!(upstream_id = %id, "the results carry other custom ids than the submission: wrong batch adopted?");
    }
    let now = app.clock.now();
    let settlement = Settlement { ended_at: now, settled_at: now, models: tally.finish() };
    app.failpoints.hit("before_settle_commit").await;
    let recorded = app.ledger.settle(&rec.sub_id, &settlement).await?;
    app.failpoints.hit("after_settle_commit").await;
    if recorded {
        let reserved: BTreeMap<String, Money> =
            holds.models.iter().map(|m| (m.model.clone(), m.worst_cost)).collect();
        let duration = upstream_duration(&batch);
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

/// Feeds every line of an ended batch's results to `f`, streaming (never the whole file).
async fn stream_lines(
    app: &App,
    batch: &MessageBatch,
    mut f: impl FnMut(&[u8]) -> Result<(), SettleError>,
) -> Result<(), SettleError> {
    let resp = app.upstream.results(&path_of(app, batch), &Forward::default()).await?;
    if !resp.status().is_success() {
        return Err(SettleError::Status(resp.status().as_u16()));
    }
    let mut stream = resp.bytes_stream();
    let mut buf = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|_| SettleError::Upstream(UpstreamError::Lost("results stream cut".into())))?;
        buf.extend_from_slice(&chunk);
        while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
            f(&buf[..pos])?;
            buf.advance(pos + 1);
        }
    }
    if !buf.is_empty() {
        f(&buf)?;
    }
    Ok(())
}

/// The custom-id fingerprint (wrapping sum of `xxh3_64(custom_id)`, as the estimator
/// computes it at submission) of an ended batch's results: which of several same-sized
/// upstream batches a submission became.
pub async fn results_fingerprint(app: &App, batch: &MessageBatch) -> Result<u64, SettleError> {
    #[derive(Deserialize)]
    struct Line {
        custom_id: String,
    }
    let (mut fp, mut lines) = (0u64, 0u64);
    stream_lines(app, batch, |line| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        lines += 1;
        let l: Line = serde_json::from_slice(line)
            .map_err(|e| SettleError::BadLine { line: lines, reason: e.to_string() })?;
        fp = fp.wrapping_add(xxhash_rust::xxh3::xxh3_64(l.custom_id.as_bytes()));
        Ok(())
    })
    .await?;
    let expected = batch.request_counts.total();
    if lines != expected {
        return Err(SettleError::Incomplete { got: lines, expected });
    }
    Ok(fp)
}

/// Processing time as the upstream measured it (its clock, its timestamps).
fn upstream_duration(batch: &MessageBatch) -> Option<f64> {
    let created: Timestamp = batch.created_at.parse().ok()?;
    let ended: Timestamp = batch.ended_at.as_deref()?.parse().ok()?;
    Some(ended.duration_since(created).as_secs_f64())
}

//! Google Gemini batch mode (Developer API, `v1` and `v1beta`): wire types (shared with
//! the simulator), the upstream client, status and usage mapping, result decoding for file
//! and inline results, orphan listing by `displayName`, and the estimator front-end,
//! behind the neutral [`Provider`] seam.
//!
//! State names are read in every form the wire or the SDK uses (`BATCH_STATE_X`, the
//! SDK's `JOB_STATE_X`, Vertex's extra states), and an operation with `done: true` is
//! ended whatever its state says, because the reference leaves those points UNCONFIRMED.

pub mod client;
pub mod estimate;
pub mod results;
pub mod usage;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use jiff::Timestamp;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use self::client::{API_VERSION, GeminiClient, batch_path};
use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::providers::http::{HttpUpstream, body_stream};
use crate::providers::{
    BatchCounts, BatchPhase, BatchStatus, Candidate, CreateCall, FetchError, Forward, LineDecoder,
    Provider, ProviderKind, ResultStream, ResultsRef, UpstreamError, UpstreamReply,
};

/// One Gemini upstream.
pub struct GeminiProvider {
    name: String,
    pub client: GeminiClient,
}

/// The phase a state name means, in any of its spellings; `None` for unspecified/unknown.
pub fn phase_of(state: &str) -> Option<BatchPhase> {
    let s = state.strip_prefix("BATCH_STATE_").or_else(|| state.strip_prefix("JOB_STATE_"));
    match s.unwrap_or(state) {
        "PENDING" | "QUEUED" => Some(BatchPhase::Pending),
        "RUNNING" | "UPDATING" | "PAUSED" => Some(BatchPhase::Running),
        "CANCELLING" => Some(BatchPhase::Canceling),
        "SUCCEEDED" | "FAILED" | "CANCELLED" | "EXPIRED" | "PARTIALLY_SUCCEEDED" => {
            Some(BatchPhase::Ended)
        }
        _ => None,
    }
}

/// `batches/{id}` -> `{id}`.
pub fn bare_id(name: &str) -> &str {
    name.strip_prefix("batches/").unwrap_or(name)
}

fn count(stats: Option<&Value>, key: &str) -> u64 {
    match stats.and_then(|s| s.get(key)) {
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        Some(Value::Number(n)) => n.as_u64().unwrap_or(0),
        _ => 0,
    }
}

/// Reads an operation (create, get, or an item of list) without the strict wire types,
/// so an unexpected state spelling cannot make a batch unreadable.
pub fn map_operation(op: &Value) -> Result<BatchStatus, String> {
    let name = op.get("name").and_then(Value::as_str).ok_or("operation without `name`")?;
    let meta = op.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k));
    let state = get("state").and_then(Value::as_str).unwrap_or("BATCH_STATE_UNSPECIFIED");
    let done = op.get("done").and_then(Value::as_bool).unwrap_or(false);
    let phase = match phase_of(state) {
        _ if done => BatchPhase::Ended,
        Some(p) => p,
        None => BatchPhase::Pending,
    };
    let stats = get("batchStats");
    let total = count(stats, "requestCount");
    let succeeded = count(stats, "successfulRequestCount");
    let errored = count(stats, "failedRequestCount");
    let pending = count(stats, "pendingRequestCount");
    let rest = total.saturating_sub(succeeded + errored);
    let mut counts = BatchCounts { total, succeeded, errored, ..Default::default() };
    match (phase, state.rsplit('_').next()) {
        (BatchPhase::Ended, Some("CANCELLED")) => counts.canceled = rest,
        (BatchPhase::Ended, Some("EXPIRED")) => counts.expired = rest,
        (BatchPhase::Ended, _) => counts.errored += rest,
        _ => counts.processing = pending.max(rest),
    }
    let output = get("output").or_else(|| op.get("response"));
    let results = match output {
        _ if phase != BatchPhase::Ended => ResultsRef::None,
        Some(o) => match o.get("responsesFile").and_then(Value::as_str) {
            Some(f) => ResultsRef::Paths(vec![f.strip_prefix("files/").unwrap_or(f).to_string()]),
            None if o.get("inlinedResponses").is_some() => {
                ResultsRef::Inline(Bytes::from(serde_json::to_vec(op).unwrap_or_default()))
            }
            None => ResultsRef::None,
        },
        None => ResultsRef::None,
    };
    let time = |k: &str| get(k).and_then(Value::as_str).and_then(|t| t.parse::<Timestamp>().ok());
    Ok(BatchStatus {
        id: bare_id(name).to_string(),
        phase,
        status: state.to_string(),
        counts,
        created_at: time("createTime"),
        ended_at: time("endTime").filter(|_| phase == BatchPhase::Ended),
        results,
    })
}

/// The inline results of an operation as JSONL (any state spelling).
pub fn inline_jsonl(raw: &[u8]) -> Result<Bytes, String> {
    let mut v: Value = serde_json::from_slice(raw).map_err(|e| e.to_string())?;
    if let Some(m) = v.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("state");
    }
    let op: wire::Operation = serde_json::from_value(v).map_err(|e| e.to_string())?;
    Ok(results::inline_lines(&op))
}

impl GeminiProvider {
    pub fn new(up: &UpstreamSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let client = GeminiClient::new(
            &up.name,
            &up.base_url,
            up.key.clone(),
            Duration::from_secs(up.timeout_secs),
            up.max_attempts,
            metrics,
        )?;
        Ok(GeminiProvider { name: up.name.clone(), client })
    }

    async fn list_recent(&self) -> Result<Vec<Candidate>, String> {
        let mut token: Option<String> = None;
        let mut found = Vec::new();
        let path = format!("/{API_VERSION}/batches");
        for _ in 0..10 {
            let query = match &token {
                Some(t) => format!("pageSize=100&pageToken={t}"),
                None => "pageSize=100".into(),
            };
            let fwd = Forward { query: Some(query), ..Default::default() };
            let reply = self
                .client
                .call("list", Method::GET, &path, &fwd)
                .await
                .map_err(|e| e.to_string())?;
            if !reply.status.is_success() {
                return Err(format!("upstream answered HTTP {} to list", reply.status.as_u16()));
            }
            let page: Value = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
            for op in page.get("operations").and_then(Value::as_array).into_iter().flatten() {
                let tag =
                    op.pointer("/metadata/displayName").and_then(Value::as_str).map(str::to_string);
                if let Ok(status) = map_operation(op) {
                    found.push(Candidate { status, tag });
                }
            }
            match page.get("nextPageToken").and_then(Value::as_str) {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(found)
    }

    async fn open_results(&self, status: &BatchStatus) -> Result<ResultStream, FetchError> {
        let found = self.found_results(status).await?;
        Ok(results::pad(found, status.counts.total, &status.status))
    }

    async fn found_results(&self, status: &BatchStatus) -> Result<ResultStream, FetchError> {
        match &status.results {
            ResultsRef::Inline(raw) => {
                let lines = inline_jsonl(raw).map_err(UpstreamError::Lost)?;
                Ok(futures_util::stream::once(async move { Ok(lines) }).boxed())
            }
            ResultsRef::Paths(files) if !files.is_empty() => {
                let resp = self.client.download(&files[0]).await?;
                body_stream(resp, "results stream cut")
            }
            // Ended without results (failed before running anything): nothing to read.
            _ => Ok(futures_util::stream::empty().boxed()),
        }
    }
}

impl Provider for GeminiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Gemini
    }

    fn create<'a>(
        &'a self,
        call: &'a CreateCall,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>> {
        self.client.create(&call.path, call.body.clone(), &call.fwd).boxed()
    }

    fn refused_outright(&self, status: StatusCode) -> bool {
        client::refused_outright(status)
    }

    fn batch_id(&self, body: &[u8]) -> Option<String> {
        let v: Value = serde_json::from_slice(body).ok()?;
        let name = v.get("name")?.as_str()?;
        let id = bare_id(name);
        (!id.is_empty()).then(|| id.to_string())
    }

    fn retrieve<'a>(
        &'a self,
        id: &'a str,
        fwd: &'a Forward,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>> {
        async move { self.client.call("retrieve", Method::GET, &batch_path(id), fwd).await }.boxed()
    }

    fn status(&self, body: &[u8]) -> Result<BatchStatus, String> {
        let v: Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        map_operation(&v)
    }

    fn results<'a>(
        &'a self,
        status: &'a BatchStatus,
    ) -> BoxFuture<'a, Result<ResultStream, FetchError>> {
        self.open_results(status).boxed()
    }

    fn decoder(&self) -> &dyn LineDecoder {
        &results::Lines
    }

    fn recent<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Candidate>, String>> {
        self.list_recent().boxed()
    }

    fn http(&self) -> &HttpUpstream {
        self.client.http()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_state_spelling_maps_and_done_ends() {
        assert_eq!(phase_of("BATCH_STATE_RUNNING"), Some(BatchPhase::Running));
        assert_eq!(phase_of("JOB_STATE_SUCCEEDED"), Some(BatchPhase::Ended));
        assert_eq!(phase_of("BATCH_STATE_PARTIALLY_SUCCEEDED"), Some(BatchPhase::Ended));
        assert_eq!(phase_of("JOB_STATE_QUEUED"), Some(BatchPhase::Pending));
        assert_eq!(phase_of("BATCH_STATE_UNSPECIFIED"), None);
        let op = serde_json::json!({"name": "batches/abc", "done": true,
            "metadata": {"state": "BATCH_STATE_WHATEVER", "batchStats": {"requestCount": "3", "successfulRequestCount": "2"},
            "output": {"responsesFile": "files/batch-abc"}}});
        let s = map_operation(&op).unwrap();
        assert_eq!((s.id.as_str(), s.phase), ("abc", BatchPhase::Ended));
        assert_eq!((s.counts.total, s.counts.succeeded, s.counts.errored), (3, 2, 1));
        assert!(matches!(s.results, ResultsRef::Paths(ref p) if p[0] == "batch-abc"));
    }

    #[test]
    fn running_counts_are_pending_and_cancelled_rest_is_canceled() {
        let op = serde_json::json!({"name": "batches/x", "metadata": {"state": "BATCH_STATE_RUNNING",
            "batchStats": {"requestCount": "4", "pendingRequestCount": "4"}}});
        let s = map_operation(&op).unwrap();
        assert_eq!((s.phase, s.counts.processing), (BatchPhase::Running, 4));
        let op = serde_json::json!({"name": "batches/x", "done": true, "metadata": {"state": "JOB_STATE_CANCELLED",
            "batchStats": {"requestCount": 4, "successfulRequestCount": 1}}});
        let s = map_operation(&op).unwrap();
        assert_eq!((s.counts.canceled, s.counts.succeeded), (3, 1));
        assert!(matches!(s.results, ResultsRef::None));
    }
}

//! Anthropic Message Batches API: wire types (shared with the simulator), the upstream
//! client, status and usage mapping, result-line decoding, orphan listing and the
//! estimator's body front-end (`estimate`), behind the neutral [`Provider`] seam.

pub mod client;
pub mod estimate;
pub mod results;
pub mod usage;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use jiff::Timestamp;
use reqwest::{Method, StatusCode};

use self::client::{AnthropicClient, BATCHES_PATH, batch_path};
use self::wire::{MessageBatch, ProcessingStatus};
use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::providers::http::{HttpUpstream, body_stream, list_pages};
use crate::providers::{
    BatchCounts, BatchPhase, BatchStatus, Candidate, CreateCall, FetchError, Forward, LineDecoder,
    Provider, ProviderKind, ResultStream, ResultsRef, UpstreamError, UpstreamReply,
};

/// One Anthropic upstream.
pub struct AnthropicProvider {
    name: String,
    pub client: AnthropicClient,
}

impl AnthropicProvider {
    pub fn new(up: &UpstreamSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let client = AnthropicClient::new(
            &up.name,
            &up.base_url,
            up.key.clone(),
            Duration::from_secs(up.timeout_secs),
            up.max_attempts,
            metrics,
        )?;
        Ok(AnthropicProvider { name: up.name.clone(), client })
    }

    /// The results path from the batch's `results_url`, only if it points at the upstream
    /// we hold a key for (the provider key must never be sent anywhere else).
    pub fn results_path(&self, batch: &MessageBatch) -> String {
        let default = format!("{}/results", batch_path(&batch.id));
        let base = self.client.base_url();
        match batch.results_url.as_deref().and_then(|u| u.strip_prefix(base)) {
            Some(p) if p.starts_with('/') => p.split('?').next().unwrap_or(&default).to_string(),
            _ => default,
        }
    }

    fn map(&self, b: &MessageBatch) -> BatchStatus {
        let c = b.request_counts;
        let phase = match b.processing_status {
            ProcessingStatus::InProgress => BatchPhase::Running,
            ProcessingStatus::Canceling => BatchPhase::Canceling,
            ProcessingStatus::Ended => BatchPhase::Ended,
        };
        BatchStatus {
            id: b.id.clone(),
            phase,
            status: b.processing_status.as_str().to_string(),
            counts: BatchCounts {
                total: c.total(),
                processing: c.processing,
                succeeded: c.succeeded,
                errored: c.errored,
                canceled: c.canceled,
                expired: c.expired,
            },
            created_at: b.created_at.parse::<Timestamp>().ok(),
            ended_at: b.ended_at.as_deref().and_then(|t| t.parse::<Timestamp>().ok()),
            results: if phase == BatchPhase::Ended {
                ResultsRef::Paths(vec![self.results_path(b)])
            } else {
                ResultsRef::None
            },
        }
    }

    async fn list_recent(&self) -> Result<Vec<Candidate>, String> {
        let batches = list_pages(
            "after_id",
            |b: &MessageBatch| Some(&b.id),
            |fwd| async move { self.client.call("list", Method::GET, BATCHES_PATH, &fwd).await },
        )
        .await?;
        Ok(batches.iter().map(|b| Candidate { status: self.map(b), tag: None }).collect())
    }
}

impl Provider for AnthropicProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::Anthropic
    }

    fn create<'a>(
        &'a self,
        call: &'a CreateCall,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>> {
        self.client.create(call.body.clone(), &call.fwd).boxed()
    }

    fn refused_outright(&self, status: StatusCode) -> bool {
        client::refused_outright(status)
    }

    fn batch_id(&self, body: &[u8]) -> Option<String> {
        let v: serde_json::Value = serde_json::from_slice(body).ok()?;
        let id = v.get("id")?.as_str()?;
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
        let b: MessageBatch = serde_json::from_slice(body).map_err(|e| e.to_string())?;
        Ok(self.map(&b))
    }

    fn results<'a>(
        &'a self,
        status: &'a BatchStatus,
    ) -> BoxFuture<'a, Result<ResultStream, FetchError>> {
        async move {
            let path = match &status.results {
                ResultsRef::Paths(p) if !p.is_empty() => p[0].clone(),
                _ => format!("{}/results", batch_path(&status.id)),
            };
            let resp = self.client.results(&path, &Forward::default()).await?;
            body_stream(resp, "results stream cut")
        }
        .boxed()
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

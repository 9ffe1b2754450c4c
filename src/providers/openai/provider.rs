//! One OpenAI-compatible upstream behind the neutral [`Provider`] seam: batch objects onto
//! [`BatchStatus`], the output file then the error file as one results stream, and the
//! batch list (with the gateway's `metadata` stamp) for finding a batch whose acceptance
//! was never recorded.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt, TryStreamExt};
use reqwest::{Method, StatusCode};

use super::client::{BATCHES_PATH, OpenAiClient, batch_path, content_path};
use super::results::{self, LineOutcome};
use super::status::{self, Phase, Status};
use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::providers::{
    BatchCounts, BatchPhase, BatchStatus, Candidate, CreateCall, FetchError, Forward, LineDecoder,
    Outcome, Provider, ProviderKind, ResultItem, ResultStream, ResultsRef, UpstreamError,
    UpstreamReply,
};

/// One OpenAI (or compatible) upstream.
pub struct OpenAiProvider {
    name: String,
    pub client: OpenAiClient,
}

impl OpenAiProvider {
    pub fn new(up: &UpstreamSettings, metrics: Arc<Metrics>) -> anyhow::Result<Self> {
        let client = OpenAiClient::new(
            &up.name,
            &up.base_url,
            up.key.clone(),
            Duration::from_secs(up.timeout_secs),
            up.max_attempts,
            metrics,
        )?;
        Ok(OpenAiProvider { name: up.name.clone(), client })
    }

    async fn list_recent(&self) -> Result<Vec<Candidate>, String> {
        let mut after: Option<String> = None;
        let mut found = Vec::new();
        for _ in 0..10 {
            let query = match &after {
                Some(a) => format!("limit=100&after={a}"),
                None => "limit=100".into(),
            };
            let fwd = Forward { query: Some(query), ..Default::default() };
            let reply = self
                .client
                .call("list", Method::GET, BATCHES_PATH, &fwd)
                .await
                .map_err(|e| e.to_string())?;
            if !reply.status.is_success() {
                return Err(format!("upstream answered HTTP {} to list", reply.status.as_u16()));
            }
            let page: serde_json::Value =
                serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
            let data = page.get("data").and_then(|d| d.as_array()).cloned().unwrap_or_default();
            for b in &data {
                // A batch in a state we cannot read is skipped, not a failed match.
                if let Ok(s) = status::from_value(b) {
                    let tag = s.tag.clone();
                    found.push(Candidate { status: neutral(&s), tag });
                }
            }
            let more = page.get("has_more").and_then(|v| v.as_bool()).unwrap_or(false);
            after =
                data.last().and_then(|b| b.get("id")).and_then(|v| v.as_str()).map(String::from);
            if !more || after.is_none() {
                break;
            }
        }
        Ok(found)
    }

    /// Both result files of an ended batch, in order: output, then errors.
    async fn open_results(&self, s: &BatchStatus) -> Result<ResultStream, FetchError> {
        let ResultsRef::Paths(paths) = &s.results else {
            return Ok(futures_util::stream::empty().boxed());
        };
        let mut streams = Vec::new();
        for p in paths {
            let id = p.trim_start_matches("/v1/files/").trim_end_matches("/content");
            let resp = self.client.content(id).await?;
            if !resp.status().is_success() {
                return Err(FetchError::Status(resp.status().as_u16()));
            }
            // A file need not end with a newline; the next file must start a new line.
            let s = resp
                .bytes_stream()
                .map_err(|_| UpstreamError::Lost("results stream cut".into()))
                .chain(futures_util::stream::once(async { Ok(bytes::Bytes::from_static(b"\n")) }));
            streams.push(s.boxed());
        }
        Ok(futures_util::stream::iter(streams).flatten().boxed())
    }
}

/// The neutral view of a normalised batch object.
pub fn neutral(s: &Status) -> BatchStatus {
    let phase = match s.phase {
        Phase::Pending => BatchPhase::Pending,
        Phase::Running => BatchPhase::Running,
        Phase::Canceling => BatchPhase::Canceling,
        Phase::Ended => BatchPhase::Ended,
    };
    let done = s.completed + s.failed;
    let results = if phase == BatchPhase::Ended {
        let paths: Vec<String> = [&s.output_file_id, &s.error_file_id]
            .into_iter()
            .flatten()
            .map(|f| content_path(f))
            .collect();
        ResultsRef::Paths(paths)
    } else {
        ResultsRef::None
    };
    BatchStatus {
        id: s.id.clone(),
        phase,
        status: s.status.clone(),
        counts: BatchCounts {
            total: s.total,
            processing: if phase == BatchPhase::Ended { 0 } else { s.total.saturating_sub(done) },
            succeeded: s.completed,
            errored: s.failed,
            canceled: 0,
            expired: 0,
        },
        created_at: s.created_at,
        ended_at: s.ended_at,
        results,
    }
}

/// The OpenAI results decoder (stateless).
#[derive(Debug, Clone, Copy, Default)]
pub struct Lines;

impl LineDecoder for Lines {
    fn decode<'l>(&self, line: &'l [u8]) -> Result<ResultItem<'l>, String> {
        let d = results::decode(line)?;
        Ok(ResultItem {
            custom_id: d.custom_id,
            outcome: match d.outcome {
                LineOutcome::Succeeded => Outcome::Succeeded,
                LineOutcome::Errored => Outcome::Errored,
                LineOutcome::Canceled => Outcome::Canceled,
                LineOutcome::Expired => Outcome::Expired,
            },
            model: d.model,
            usage: d.usage,
        })
    }
}

impl Provider for OpenAiProvider {
    fn name(&self) -> &str {
        &self.name
    }

    fn kind(&self) -> ProviderKind {
        ProviderKind::OpenAi
    }

    fn create<'a>(
        &'a self,
        call: &'a CreateCall,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>> {
        self.client.create(call.body.clone()).boxed()
    }

    fn refused_outright(&self, status: StatusCode) -> bool {
        super::client::refused_outright(status)
    }

    fn batch_id(&self, body: &[u8]) -> Option<String> {
        status::parse(body).ok().map(|s| s.id)
    }

    fn retrieve<'a>(
        &'a self,
        id: &'a str,
        fwd: &'a Forward,
    ) -> BoxFuture<'a, Result<UpstreamReply, UpstreamError>> {
        async move { self.client.call("retrieve", Method::GET, &batch_path(id), fwd).await }.boxed()
    }

    fn status(&self, body: &[u8]) -> Result<BatchStatus, String> {
        status::parse(body).map(|s| neutral(&s))
    }

    fn results<'a>(
        &'a self,
        status: &'a BatchStatus,
    ) -> BoxFuture<'a, Result<ResultStream, FetchError>> {
        self.open_results(status).boxed()
    }

    fn decoder(&self) -> &dyn LineDecoder {
        &Lines
    }

    fn recent<'a>(&'a self) -> BoxFuture<'a, Result<Vec<Candidate>, String>> {
        self.list_recent().boxed()
    }

    fn pause<'a>(&'a self, attempt: u32, reply: Option<&'a UpstreamReply>) -> BoxFuture<'a, ()> {
        self.client.pause(attempt, reply).boxed()
    }

    fn max_attempts(&self) -> u32 {
        self.client.max_attempts()
    }

    fn into_any(self: Arc<Self>) -> Arc<dyn std::any::Any + Send + Sync> {
        self
    }
}

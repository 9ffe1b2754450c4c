//! One OpenAI-compatible upstream behind the neutral [`Provider`] seam: batch objects onto
//! [`BatchStatus`], the output file then the error file as one results stream, and the
//! batch list (with the gateway's `metadata` stamp) for finding a batch whose acceptance
//! was never recorded.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use reqwest::{Method, StatusCode};

use super::client::{BATCHES_PATH, OpenAiClient, batch_path, content_path};
use super::results::{self, LineOutcome};
use super::status::{self, Phase, Status};
use crate::config::UpstreamSettings;
use crate::metrics::Metrics;
use crate::providers::http::{HttpUpstream, body_stream, list_pages};
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
        fn id(b: &serde_json::Value) -> Option<&str> {
            b.get("id")?.as_str()
        }
        let batches = list_pages("after", id, |fwd| async move {
            self.client.call("list", Method::GET, BATCHES_PATH, &fwd).await
        })
        .await?;
        // A batch in a state we cannot read is skipped, not a failed match.
        let readable = batches.iter().filter_map(|b| status::from_value(b).ok());
        Ok(readable.map(|s| Candidate { status: neutral(&s), tag: s.tag.clone() }).collect())
    }

    /// Both result files of an ended batch, in order: output, then errors.
    async fn open_results(&self, s: &BatchStatus) -> Result<ResultStream, FetchError> {
        let ResultsRef::Paths(paths) = &s.results else {
            return Ok(futures_util::stream::empty().boxed());
        };
        let mut streams = Vec::new();
        for p in paths {
            let (p, unrun) = match p.split_once(UNRUN) {
                Some((p, code)) => (p, Some(code.to_string())),
                None => (p.as_str(), None),
            };
            let id = p.trim_start_matches("/v1/files/").trim_end_matches("/content");
            let resp = self.client.content(id).await?;
            if let Some(code) = unrun {
                streams.push(unrun_lines(body_stream(resp, "input file stream cut")?, code));
                continue;
            }
            // A file need not end with a newline; the next file must start a new line.
            let s = body_stream(resp, "results stream cut")?
                .chain(futures_util::stream::once(async { Ok(bytes::Bytes::from_static(b"\n")) }));
            streams.push(s.boxed());
        }
        Ok(futures_util::stream::iter(streams).flatten().boxed())
    }
}

/// Marks a results path as the input file of a batch that ran nothing, with the error
/// code its requests end with (internal to this provider; never sent upstream).
const UNRUN: &str = "#unrun=";

fn unrun_code(status: &str) -> &'static str {
    match status {
        "cancelled" => super::wire::LINE_CANCELLED,
        "expired" => super::wire::LINE_EXPIRED,
        _ => "batch_failed",
    }
}

/// Turns an input file's lines into error lines `{"custom_id", "response": null,
/// "error": {"code"}}`, streaming: only a line cut across chunks is buffered.
pub fn unrun_lines(input: ResultStream, code: String) -> ResultStream {
    #[derive(serde::Deserialize)]
    struct Id<'a> {
        #[serde(borrow)]
        custom_id: std::borrow::Cow<'a, str>,
    }
    let convert = move |line: &[u8], out: &mut Vec<u8>| {
        if line.iter().all(u8::is_ascii_whitespace) {
            return;
        }
        // A line without a readable custom id still counts as one request.
        let id = serde_json::from_slice::<Id>(line)
            .map(|i| i.custom_id.into_owned())
            .unwrap_or_default();
        let l = serde_json::json!({"custom_id": id, "response": null,
            "error": {"code": code, "message": "the batch ended before this request ran"}});
        out.extend_from_slice(l.to_string().as_bytes());
        out.push(b'\n');
    };
    let state = (input, Vec::<u8>::new(), false);
    futures_util::stream::unfold(state, move |(mut input, mut partial, done)| {
        let convert = convert.clone();
        async move {
            if done {
                return None;
            }
            let mut out = Vec::new();
            match input.next().await {
                Some(Ok(chunk)) => {
                    partial.extend_from_slice(&chunk);
                    let cut = partial.iter().rposition(|b| *b == b'\n').map_or(0, |p| p + 1);
                    for line in partial[..cut].split(|b| *b == b'\n') {
                        convert(line, &mut out);
                    }
                    partial.drain(..cut);
                    Some((Ok(bytes::Bytes::from(out)), (input, partial, false)))
                }
                Some(Err(e)) => Some((Err(e), (input, partial, true))),
                None => {
                    convert(&partial, &mut out);
                    Some((Ok(bytes::Bytes::from(out)), (input, Vec::new(), true)))
                }
            }
        }
    })
    .boxed()
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
        let mut paths: Vec<String> = [&s.output_file_id, &s.error_file_id]
            .into_iter()
            .flatten()
            .map(|f| content_path(f))
            .collect();
        // Ended without running anything (failed validation, cancelled or expired before
        // starting): every request of the input file is one unrun result.
        if let (true, Some(input)) = (paths.is_empty(), &s.input_file_id) {
            paths.push(format!("{}{UNRUN}{}", content_path(input), unrun_code(&s.status)));
        }
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

    #[tokio::test]
    async fn a_batch_that_ran_nothing_ends_with_one_error_line_per_request() {
        let input = b"{\"custom_id\":\"a\",\"method\":\"POST\"}\n{\"custom_id\":\"b\",\"me";
        let rest = b"thod\":\"POST\"}\n\n{\"custom_id\":\"c\"}";
        let chunks: Vec<Result<bytes::Bytes, UpstreamError>> =
            vec![Ok(bytes::Bytes::from_static(input)), Ok(bytes::Bytes::from_static(rest))];
        let s = unrun_lines(futures_util::stream::iter(chunks).boxed(), "batch_failed".into());
        let out: Vec<bytes::Bytes> = s.map(|c| c.unwrap()).collect().await;
        let text = String::from_utf8(out.concat()).unwrap();
        let items: Vec<_> = text.lines().map(|l| Lines.decode(l.as_bytes()).unwrap()).collect();
        let ids: Vec<_> = items.iter().map(|i| i.custom_id.to_string()).collect();
        assert_eq!(ids, ["a", "b", "c"]);
        assert!(items.iter().all(|i| i.outcome == Outcome::Errored));
        assert!(items.iter().all(|i| i.usage == Default::default()));
        let failed = br#"{"id":"b1","status":"failed","input_file_id":"file-in"}"#;
        let n = neutral(&status::parse(failed).unwrap());
        let want = "/v1/files/file-in/content#unrun=batch_failed";
        assert!(matches!(&n.results, ResultsRef::Paths(p) if p[0] == want), "{:?}", n.results);
        let cancelled =
            br#"{"id":"b1","status":"cancelled","input_file_id":"file-in","error_file_id":"file-e"}"#;
        let n = neutral(&status::parse(cancelled).unwrap());
        let want = vec!["/v1/files/file-e/content".to_string()];
        assert!(matches!(&n.results, ResultsRef::Paths(p) if *p == want), "{:?}", n.results);
    }
}

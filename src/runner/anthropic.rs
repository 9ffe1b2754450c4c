//! Message Batches through the gateway's Anthropic surface (or the simulator, which serves
//! the same API): `{custom_id, params}` lines, `{"requests": [...]}` bodies, JSONL results.

use std::path::Path;

use futures_util::StreamExt;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use super::client::{CallError, Client, status_error};
use super::provider::{BatchView, Counts, ItemResult, Limits, Page, Phase, Provider, Tokens};

/// 100,000 requests or 256 MB per batch (batch-apis.md).
pub const LIMITS: Limits = Limits { max_requests: 100_000, max_bytes: 256 * 1024 * 1024 };
const BODY_HEAD: &[u8] = b"{\"requests\":[";
const BODY_TAIL: &[u8] = b"]}";

pub struct Anthropic {
    pub client: Client,
    /// `""` for the gateway's default Anthropic upstream (served at the root), `/NAME`
    /// for another upstream of that kind.
    pub prefix: String,
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    custom_id: std::borrow::Cow<'a, str>,
    params: serde::de::IgnoredAny,
}

#[derive(Deserialize)]
struct RawBatch {
    id: String,
    processing_status: String,
    #[serde(default)]
    request_counts: Counts,
    #[serde(default)]
    created_at: String,
}

impl RawBatch {
    fn view(self) -> BatchView {
        let phase = if self.processing_status == "ended" { Phase::Ended } else { Phase::Running };
        BatchView { id: self.id, phase, counts: self.request_counts, created_at: self.created_at }
    }
}

fn batch(v: Value) -> Result<BatchView, CallError> {
    serde_json::from_value::<RawBatch>(v)
        .map(RawBatch::view)
        .map_err(|e| CallError::Transport(format!("unreadable batch object: {e}")))
}

/// Anthropic's rule for `custom_id`: 1 to 64 of `[A-Za-z0-9_-]`.
pub fn valid_custom_id(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Provider for Anthropic {
    fn name(&self) -> &'static str {
        "anthropic"
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn custom_id(&self, line: &[u8]) -> Result<String, String> {
        let l: Line = serde_json::from_slice(line)
            .map_err(|e| format!("expected {{\"custom_id\": ..., \"params\": {{...}}}}: {e}"))?;
        let _ = l.params;
        if !valid_custom_id(&l.custom_id) {
            return Err(format!(
                "custom_id `{}`: expected 1 to 64 letters, digits, `_` or `-`",
                l.custom_id.chars().take(80).collect::<String>()
            ));
        }
        Ok(l.custom_id.into_owned())
    }

    fn templated(&self, custom_id: &str, params: Value) -> Value {
        json!({ "custom_id": custom_id, "params": params })
    }

    fn body(&self, lines: &[&[u8]]) -> Vec<u8> {
        let size: usize = lines.iter().map(|l| l.len() + 1).sum();
        let mut out = Vec::with_capacity(size + BODY_HEAD.len() + BODY_TAIL.len());
        out.extend_from_slice(BODY_HEAD);
        for (i, l) in lines.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(l);
        }
        out.extend_from_slice(BODY_TAIL);
        out
    }

    fn body_overhead(&self) -> (u64, u64) {
        // n lines take n - 1 commas: one per line, one fewer per body.
        (1, (BODY_HEAD.len() + BODY_TAIL.len()) as u64 - 1)
    }

    async fn create(&self, body: Vec<u8>) -> Result<BatchView, CallError> {
        let rb = self
            .client
            .keyed(Method::POST, "/v1/messages/batches")
            .header("content-type", "application/json")
            .body(body);
        batch(self.client.json(rb).await?)
    }

    async fn get(&self, id: &str) -> Result<BatchView, CallError> {
        let path = format!("{}/v1/messages/batches/{id}", self.prefix);
        batch(self.client.read(|| self.client.keyed(Method::GET, &path)).await?)
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Page, CallError> {
        let limit = limit.to_string();
        let path = format!("{}/v1/messages/batches", self.prefix);
        let v = self
            .client
            .read(|| {
                let rb = self.client.keyed(Method::GET, &path);
                match after {
                    Some(a) => rb.query(&[("limit", limit.as_str()), ("after_id", a)]),
                    None => rb.query(&[("limit", limit.as_str())]),
                }
            })
            .await?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let batches = data.into_iter().map(batch).collect::<Result<Vec<_>, _>>()?;
        let more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        let next = v.get("last_id").and_then(Value::as_str).map(str::to_string);
        Ok(Page { batches, next: next.filter(|_| more) })
    }

    async fn download(&self, id: &str, path: &Path) -> Result<(), CallError> {
        let rb = self
            .client
            .keyed(Method::GET, &format!("{}/v1/messages/batches/{id}/results", self.prefix));
        let resp = rb.send().await.map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status();
        if !status.is_success() {
            let body = resp.json().await.unwrap_or(Value::Null);
            return Err(status_error(status, body));
        }
        let io = |e: std::io::Error| CallError::Transport(format!("{}: {e}", path.display()));
        let tmp = path.with_extension("part");
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        let mut stream = resp.bytes_stream();
        let mut last = b'\n';
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| CallError::Transport(format!("results cut: {e}")))?;
            if let Some(b) = chunk.last() {
                last = *b;
            }
            file.write_all(&chunk).await.map_err(io)?;
        }
        if last != b'\n' {
            file.write_all(b"\n").await.map_err(io)?;
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&tmp, path).await.map_err(io)
    }

    fn result(&self, line: &[u8]) -> Result<(String, ItemResult), String> {
        let v: Value = serde_json::from_slice(line).map_err(|e| format!("result line: {e}"))?;
        let id = v.get("custom_id").and_then(Value::as_str).ok_or("result line: no custom_id")?;
        let r = v.get("result").ok_or("result line: no result")?;
        let out = match r.get("type").and_then(Value::as_str) {
            Some("succeeded") => ItemResult::Succeeded(tokens(&r["message"]["usage"])),
            Some("errored") => {
                // `{"type":"error","error":{"type":..,"message":..}}`, or the bare inner object.
                let e = &r["error"];
                let inner = if e.get("error").is_some() { &e["error"] } else { e };
                ItemResult::Errored {
                    kind: inner["type"].as_str().unwrap_or("unknown").to_string(),
                    message: inner["message"].as_str().unwrap_or("").chars().take(300).collect(),
                }
            }
            Some("canceled") => ItemResult::Canceled,
            Some("expired") => ItemResult::Expired,
            other => return Err(format!("result line: unknown result type {other:?}")),
        };
        Ok((id.to_string(), out))
    }
}

fn tokens(u: &Value) -> Tokens {
    let n = |k: &str| u.get(k).and_then(Value::as_u64).unwrap_or(0);
    Tokens {
        input: n("input_tokens"),
        output: n("output_tokens"),
        cache_write: n("cache_creation_input_tokens"),
        cache_read: n("cache_read_input_tokens"),
    }
}

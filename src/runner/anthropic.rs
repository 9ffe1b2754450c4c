//! Message Batches through the gateway's Anthropic surface (or the simulator, which serves
//! the same API): `{custom_id, params}` lines, `{"requests": [...]}` bodies, JSONL results.

use std::path::Path;

use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{CallError, Client, Part};
use super::provider::{BatchView, Counts, ItemResult, Limits, Page, Phase, Provider, Tokens};

/// 100,000 requests or 256 MB per batch (batch-apis.md).
pub const LIMITS: Limits = Limits { max_requests: 100_000, max_bytes: 256 * 1024 * 1024 };
const BODY_HEAD: &[u8] = b"{\"requests\":[";
const BODY_TAIL: &[u8] = b"]}";

/// The API version every call names (the one the gateway and the simulator serve).
const VERSION: &str = "2023-06-01";

/// Error types worth retrying: the upstream's trouble, not the request's.
const RETRYABLE: &[&str] = &["overloaded_error", "api_error", "rate_limit_error", "timeout_error"];

/// Whether an errored result of this type may succeed on another attempt.
pub fn retryable(kind: &str) -> bool {
    RETRYABLE.contains(&kind)
}

pub struct Anthropic {
    pub client: Client,
    /// `""` for the gateway's default Anthropic upstream (served at the root), `/NAME`
    /// for another upstream of that kind.
    pub prefix: String,
}

impl Anthropic {
    /// A request with the project key as Anthropic's clients send it.
    fn keyed(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, &format!("{}{path}", self.prefix))
            .header("x-api-key", self.client.key())
            .header("anthropic-version", VERSION)
    }
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
        BatchView {
            id: self.id,
            phase,
            counts: self.request_counts,
            created_at: self.created_at,
            failure: None,
        }
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

    fn estimate_query(&self, _: &[&[u8]]) -> Vec<(&'static str, String)> {
        // The estimator reads Anthropic bodies by default; another upstream of this kind
        // is named so its prices and budgets apply.
        match self.prefix.strip_prefix('/') {
            Some(name) => vec![("provider", name.to_string())],
            None => Vec::new(),
        }
    }

    async fn create(&self, body: Vec<u8>) -> Result<BatchView, CallError> {
        let rb = self
            .keyed(Method::POST, "/v1/messages/batches")
            .header("content-type", "application/json")
            .body(body);
        batch(self.client.json(rb).await?)
    }

    async fn get(&self, id: &str) -> Result<BatchView, CallError> {
        let path = format!("/v1/messages/batches/{id}");
        batch(self.client.read(|| self.keyed(Method::GET, &path)).await?)
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Page, CallError> {
        let limit = limit.to_string();
        let v = self
            .client
            .read(|| {
                let rb = self.keyed(Method::GET, "/v1/messages/batches");
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
        let rb = self.keyed(Method::GET, &format!("/v1/messages/batches/{id}/results"));
        self.client.save(vec![Part::Get(Box::new(rb))], path).await
    }

    fn errored_line(&self, custom_id: &str, kind: &str, message: &str) -> Value {
        json!({"custom_id": custom_id, "result": {"type": "errored",
            "error": {"type": "error", "error": {"type": kind, "message": message}}}})
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
                let kind = inner["type"].as_str().unwrap_or("unknown").to_string();
                ItemResult::Errored {
                    retryable: retryable(&kind),
                    kind,
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

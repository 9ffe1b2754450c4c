//! OpenAI Files + Batches through the gateway's OpenAI surface (or an OpenAI-compatible
//! upstream of it, or the simulator): request lines `{custom_id, method, url, body}`, the
//! batch body is the input file itself. `create` uploads it (`purpose=batch`) and creates
//! the batch on it; `download` merges the output file and the error file into one results
//! file. Batch objects and result lines are read by the gateway's own OpenAI code
//! (`crate::providers::openai`), so the runner and settlement agree on every outcome.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use reqwest::{Method, RequestBuilder};
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{CallError, Client, Part};
use super::provider::{
    BatchView, Counts, Failure, ItemResult, Limits, Page, Phase, Provider, Tokens, jsonl,
};
use crate::providers::openai::client::{BATCHES_PATH, FILES_PATH, batch_path, content_path};
use crate::providers::openai::results::{LineOutcome, decode};
use crate::providers::openai::status::{self, Status};
use crate::providers::openai::wire::{
    COMPLETION_WINDOW, MAX_BATCH_FILE_BYTES, MAX_LINES, PURPOSE_BATCH,
};

/// 50,000 requests or a 200 MB input file per batch (batch-apis.md 2.6); compatible
/// upstreams differ, so `--max-batch-requests` and `--max-batch-bytes` lower them.
pub const LIMITS: Limits = Limits { max_requests: MAX_LINES, max_bytes: MAX_BATCH_FILE_BYTES };
/// The endpoint of templated requests.
pub const DEFAULT_ENDPOINT: &str = "/v1/chat/completions";

pub struct OpenAi {
    pub client: Client,
    /// `/NAME` of the gateway's upstream, or `""` (the root OpenAI surface, the simulator).
    pub prefix: String,
    /// The upstream's name, for the estimate's prices and budgets.
    pub upstream: String,
    /// Input files already uploaded by this process, by body hash: a create retried after
    /// a failure reuses its file (the gateway then recognises the identical create).
    uploads: Mutex<HashMap<u128, String>>,
}

impl OpenAi {
    pub fn new(client: Client, prefix: String, upstream: String) -> Self {
        OpenAi { client, prefix, upstream, uploads: Mutex::default() }
    }

    /// A request with the project key as OpenAI's clients send it.
    fn keyed(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, &format!("{}{path}", self.prefix))
            .bearer_auth(self.client.key())
    }

    /// The input file of this body: uploaded once, named by its content hash. A run
    /// killed after its upload finds the file again (the project's files, newest first),
    /// so the create it resends is identical to the first and the gateway answers it
    /// with the first batch (or 409 while that create is still in progress) instead of
    /// creating a second batch of the same requests.
    async fn upload(&self, body: Vec<u8>) -> Result<String, CallError> {
        let hash = xxhash_rust::xxh3::xxh3_128(&body);
        if let Some(id) = self.uploads.lock().unwrap_or_else(|e| e.into_inner()).get(&hash) {
            return Ok(id.clone());
        }
        let name = format!("batchcost-run-{hash:032x}.jsonl");
        let files = self
            .client
            .read(|| {
                self.keyed(Method::GET, FILES_PATH).query(&[
                    ("purpose", PURPOSE_BATCH),
                    ("limit", "1000"),
                    ("order", "desc"),
                ])
            })
            .await;
        let found = files.ok().and_then(|v| {
            v["data"].as_array()?.iter().find_map(|f| {
                let same = f["filename"] == name.as_str() && f["bytes"] == body.len();
                same.then(|| f["id"].as_str().map(str::to_string)).flatten()
            })
        });
        if let Some(id) = found {
            self.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, id.clone());
            return Ok(id);
        }
        let file = reqwest::multipart::Part::bytes(body)
            .file_name(name)
            .mime_str("application/jsonl")
            .map_err(|e| CallError::Transport(e.to_string()))?;
        let form =
            reqwest::multipart::Form::new().text("purpose", PURPOSE_BATCH).part("file", file);
        let v = self.client.json(self.keyed(Method::POST, FILES_PATH).multipart(form)).await?;
        let id = v["id"]
            .as_str()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| CallError::Transport("upload answer without a file id".into()))?
            .to_string();
        self.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, id.clone());
        Ok(id)
    }

    async fn status(&self, id: &str) -> Result<(Status, Value), CallError> {
        let path = batch_path(id);
        let v = self.client.read(|| self.keyed(Method::GET, &path)).await?;
        let s =
            status::from_value(&v).map_err(|e| CallError::Transport(format!("batch {id}: {e}")))?;
        Ok((s, v))
    }
}

#[derive(Deserialize)]
struct Line<'a> {
    #[serde(borrow)]
    custom_id: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    method: std::borrow::Cow<'a, str>,
    #[serde(borrow)]
    url: std::borrow::Cow<'a, str>,
    body: serde_json::Map<String, Value>,
}

/// A batch object in the runner's terms. Requests not completed or failed in an ended
/// batch were expired or cancelled (by the batch's status), else errored.
fn view(s: Status, failure: Option<Failure>) -> BatchView {
    let done = s.completed + s.failed;
    let rest = s.total.saturating_sub(done);
    let mut counts = Counts { succeeded: s.completed, errored: s.failed, ..Counts::default() };
    let phase = match s.phase {
        status::Phase::Ended => {
            match s.status.as_str() {
                "expired" => counts.expired = rest,
                "cancelled" => counts.canceled = rest,
                _ => counts.errored += rest,
            }
            Phase::Ended
        }
        _ => {
            counts.processing = rest;
            Phase::Running
        }
    };
    let created_at = s.created_at.map(|t| t.to_string()).unwrap_or_default();
    BatchView { id: s.id, phase, counts, created_at, failure }
}

/// A `failed` batch (its input refused upstream): the first of its `errors`, final, since
/// the same lines would be refused again.
fn failure(v: &Value, s: &Status) -> Option<Failure> {
    if s.status != "failed" {
        return None;
    }
    let e = &status::batch_object(v)["errors"]["data"][0];
    let text = |k: &str| e[k].as_str().unwrap_or("").chars().take(300).collect::<String>();
    let what = match (text("code"), text("message")) {
        (c, m) if c.is_empty() && m.is_empty() => "no reason given".to_string(),
        (c, m) if c.is_empty() => m,
        (c, m) => format!("{c}: {m}"),
    };
    Some(Failure { reason: format!("batch failed: {what}"), retryable: false })
}

fn batch(v: &Value) -> Result<BatchView, CallError> {
    let s = status::from_value(v)
        .map_err(|e| CallError::Transport(format!("unreadable batch object: {e}")))?;
    let f = failure(v, &s);
    Ok(view(s, f))
}

/// 5xx and 429 answers of the endpoint, and the line errors OpenAI documents as the
/// server's, may succeed on another attempt; every other status is the request's fault.
fn retryable_status(code: u16) -> bool {
    code >= 500 || code == 429 || code == 408
}

const RETRYABLE_CODES: &[&str] =
    &["server_error", "rate_limit_exceeded", "request_timeout", "internal_error"];

/// The error type and message of an errored line: from the endpoint's answer
/// (`response.body.error`) or the line's own `error`.
fn error_of(v: &Value) -> ItemResult {
    let text = |x: &Value| x.as_str().unwrap_or("").chars().take(300).collect::<String>();
    let resp = &v["response"];
    if let Some(code) = resp["status_code"].as_u64() {
        let e = &resp["body"]["error"];
        let kind = e["type"].as_str().or(e["code"].as_str()).unwrap_or("error").to_string();
        let message = match &v["error"] {
            Value::String(s) => s.chars().take(300).collect(),
            _ => text(&e["message"]),
        };
        return ItemResult::Errored { kind, message, retryable: retryable_status(code as u16) };
    }
    let e = &v["error"];
    let kind = e["code"].as_str().or(e["type"].as_str()).unwrap_or("error").to_string();
    ItemResult::Errored {
        retryable: RETRYABLE_CODES.contains(&kind.as_str()),
        message: text(&e["message"]),
        kind,
    }
}

impl Provider for OpenAi {
    fn name(&self) -> &'static str {
        "openai"
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    /// OpenAI's own limits are documented; a compatible upstream's may be larger.
    fn limits_documented(&self) -> bool {
        self.upstream == "openai"
    }

    fn custom_id(&self, line: &[u8]) -> Result<String, String> {
        let l: Line = serde_json::from_slice(line).map_err(|e| {
            format!(
                "expected {{\"custom_id\": ..., \"method\": \"POST\", \"url\": ..., \"body\": {{...}}}}: {e}"
            )
        })?;
        let _ = (&l.url, &l.body);
        if l.method != "POST" {
            return Err(format!("method: expected \"POST\", got {:?}", l.method));
        }
        if l.custom_id.is_empty() || l.custom_id.chars().count() > 512 {
            return Err("custom_id: expected 1 to 512 characters".into());
        }
        Ok(l.custom_id.into_owned())
    }

    /// The template is the request `body`, or a whole line (with `url` and `body`).
    fn templated(&self, custom_id: &str, params: Value) -> Value {
        match params {
            Value::Object(mut o) if o.contains_key("body") && o.contains_key("url") => {
                o.insert("custom_id".into(), json!(custom_id));
                o.entry("method").or_insert(json!("POST"));
                Value::Object(o)
            }
            body => {
                json!({"custom_id": custom_id, "method": "POST", "url": DEFAULT_ENDPOINT, "body": body})
            }
        }
    }

    /// The input file: one line per request.
    fn body(&self, lines: &[&[u8]]) -> Vec<u8> {
        jsonl(lines)
    }

    fn body_overhead(&self) -> (u64, u64) {
        (1, 0)
    }

    fn estimate_query(&self, _: &[&[u8]]) -> Vec<(&'static str, String)> {
        vec![("provider", self.upstream.clone())]
    }

    async fn create(&self, body: Vec<u8>) -> Result<BatchView, CallError> {
        let endpoint = body
            .split(|b| *b == b'\n')
            .find_map(|l| serde_json::from_slice::<Value>(l).ok())
            .and_then(|v| v["url"].as_str().map(str::to_string))
            .unwrap_or_else(|| DEFAULT_ENDPOINT.into());
        let file = self.upload(body).await?;
        let create = json!({
            "input_file_id": file,
            "endpoint": endpoint,
            "completion_window": COMPLETION_WINDOW,
        });
        let rb = self.keyed(Method::POST, BATCHES_PATH).json(&create);
        batch(&self.client.json(rb).await?)
    }

    async fn get(&self, id: &str) -> Result<BatchView, CallError> {
        let (s, v) = self.status(id).await?;
        let f = failure(&v, &s);
        Ok(view(s, f))
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Page, CallError> {
        let limit = limit.min(100).to_string();
        let v = self
            .client
            .read(|| {
                let rb = self.keyed(Method::GET, BATCHES_PATH);
                match after {
                    Some(a) => rb.query(&[("limit", limit.as_str()), ("after", a)]),
                    None => rb.query(&[("limit", limit.as_str())]),
                }
            })
            .await?;
        let data = v.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
        let batches = data.iter().map(batch).collect::<Result<Vec<_>, _>>()?;
        let more = v.get("has_more").and_then(Value::as_bool).unwrap_or(false);
        let next = v.get("last_id").and_then(Value::as_str).map(str::to_string);
        Ok(Page { batches, next: next.filter(|_| more) })
    }

    /// The output file, then the error file (either may be absent).
    async fn download(&self, id: &str, path: &Path) -> Result<(), CallError> {
        let (s, _) = self.status(id).await?;
        let parts = [s.output_file_id, s.error_file_id]
            .into_iter()
            .flatten()
            .map(|f| Part::Get(Box::new(self.keyed(Method::GET, &content_path(&f)))))
            .collect();
        self.client.save(parts, path).await
    }

    fn errored_line(&self, custom_id: &str, kind: &str, message: &str) -> Value {
        json!({"custom_id": custom_id, "response": null, "error": {"code": kind, "message": message}})
    }

    fn result(&self, line: &[u8]) -> Result<(String, ItemResult), String> {
        let d = decode(line).map_err(|e| format!("result line: {e}"))?;
        let out = match d.outcome {
            LineOutcome::Succeeded => ItemResult::Succeeded(Tokens {
                input: d.usage.input,
                output: d.usage.output,
                cache_write: d.usage.cache_write_5m + d.usage.cache_write_1h,
                cache_read: d.usage.cache_read,
            }),
            LineOutcome::Expired => ItemResult::Expired,
            LineOutcome::Canceled => ItemResult::Canceled,
            LineOutcome::Errored => {
                let v: Value =
                    serde_json::from_slice(line).map_err(|e| format!("result line: {e}"))?;
                error_of(&v)
            }
        };
        Ok((d.custom_id.into_owned(), out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_errors_are_retried_and_refused_requests_are_not() {
        let line = |s: u16, t: &str| {
            format!(
                r#"{{"custom_id":"a","response":{{"status_code":{s},"body":{{"error":{{"type":"{t}","message":"m"}}}}}},"error":null}}"#
            )
        };
        let p = OpenAi::new(
            Client::new("http://127.0.0.1:1", crate::config::Secret::new("k"), None).unwrap(),
            String::new(),
            "openai".into(),
        );
        let (id, r) = p.result(line(503, "server_error").as_bytes()).unwrap();
        assert_eq!(id, "a");
        assert!(
            matches!(r, ItemResult::Errored { retryable: true, ref kind, .. } if kind == "server_error")
        );
        let (_, r) = p.result(line(400, "invalid_request_error").as_bytes()).unwrap();
        assert!(
            matches!(r, ItemResult::Errored { retryable: false, ref kind, .. } if kind == "invalid_request_error")
        );
        let exp =
            br#"{"custom_id":"b","response":null,"error":{"code":"batch_expired","message":"m"}}"#;
        assert_eq!(p.result(exp).unwrap().1, ItemResult::Expired);
        // An item the upstream never answered reads back as a final error of its kind.
        let never = serde_json::to_vec(&p.errored_line("z", "budget_exceeded", "over")).unwrap();
        let (id, r) = p.result(&never).unwrap();
        assert_eq!(id, "z");
        assert!(
            matches!(r, ItemResult::Errored { retryable: false, ref kind, .. } if kind == "budget_exceeded")
        );
        let s = status::from_value(
            &json!({"id": "batch_1", "status": "expired", "created_at": 1_700_000_000,
            "request_counts": {"total": 10, "completed": 6, "failed": 1}}),
        )
        .unwrap();
        let v = view(s, None);
        assert_eq!(
            (v.phase, v.counts.succeeded, v.counts.errored, v.counts.expired),
            (Phase::Ended, 6, 1, 3)
        );
        assert_eq!(v.counts.total(), 10);
        let failed = json!({"id": "batch_2", "status": "failed", "request_counts": {"total": 0},
            "errors": {"object": "list", "data": [{"code": "invalid_json", "message": "line 3", "line": 3}]}});
        let f = batch(&failed).unwrap().failure.unwrap();
        assert_eq!(f.reason, "batch failed: invalid_json: line 3");
        assert!(!f.retryable, "the same lines would fail again");
    }
}

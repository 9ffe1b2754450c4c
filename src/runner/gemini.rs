//! Gemini batch mode through the gateway's Gemini surface (`/gemini`, or the simulator at
//! its root): request lines `{key, request}`, the batch body is their JSONL. `create`
//! sends a batch up to the inline limit as inline requests (each key in the request's
//! `metadata`), a larger one as an uploaded file (the File API's resumable upload); the
//! batch's model is `--model` or the requests' own `model`. `download` reads the results
//! file, or the inline answers inside the batch object, as the same `{key, ...}` lines.
//! Batch objects and result lines are read by the gateway's own Gemini code
//! (`crate::providers::gemini`), so the runner and settlement agree on every outcome.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use reqwest::{Method, RequestBuilder};
use serde_json::{Value, json};

use super::client::{CallError, Client, Part};
use super::provider::{
    BatchView, Counts, Failure, ItemResult, Limits, Page, Phase, Provider, Tokens, jsonl,
};
use crate::providers::gemini::client::{API_VERSION, batch_path, create_path, download_path};
use crate::providers::gemini::results::Lines;
use crate::providers::gemini::{inline_jsonl, map_operation};
use crate::providers::{BatchPhase, BatchStatus, LineDecoder, Outcome};

/// No per-batch request count is documented (UNCONFIRMED): the gateway's own cap. The
/// input file may be 2 GB (secondary sources: UNCONFIRMED). Both can be set with
/// `--max-batch-requests` and `--max-batch-bytes`, above these too.
pub const LIMITS: Limits =
    Limits { max_requests: crate::estimate::MAX_REQUESTS as usize, max_bytes: 2 << 30 };
/// Inline requests must total under 20 MB (batch-apis.md 3.1): a little below it by
/// default, `--gemini-inline-bytes` to change.
pub const INLINE_MAX: u64 = 19 * 1000 * 1000;
/// The batch's display name (the gateway replaces it with its submission id).
const DISPLAY_NAME: &str = "batchcost-run";

pub struct Gemini {
    pub client: Client,
    /// `/NAME` of the gateway's upstream, or `""` (the simulator).
    pub prefix: String,
    /// The upstream's name, for the estimate's prices and budgets.
    pub upstream: String,
    /// The batch's model, when the requests do not name it.
    pub model: Option<String>,
    /// Bodies up to this many bytes (as inline JSON) go inline; larger ones as a file.
    pub inline_max: u64,
    uploads: Mutex<HashMap<u128, String>>,
}

/// google.rpc codes worth another attempt: DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED, ABORTED,
/// INTERNAL, UNAVAILABLE. Every other code is the request's fault (or final).
const RETRYABLE_CODES: &[i64] = &[4, 8, 10, 13, 14];

/// The status name of a google.rpc code.
fn code_name(code: i64) -> &'static str {
    match code {
        1 => "CANCELLED",
        2 => "UNKNOWN",
        3 => "INVALID_ARGUMENT",
        4 => "DEADLINE_EXCEEDED",
        5 => "NOT_FOUND",
        7 => "PERMISSION_DENIED",
        8 => "RESOURCE_EXHAUSTED",
        9 => "FAILED_PRECONDITION",
        10 => "ABORTED",
        13 => "INTERNAL",
        14 => "UNAVAILABLE",
        16 => "UNAUTHENTICATED",
        _ => "ERROR",
    }
}

fn model_of(line: &[u8]) -> Option<String> {
    let v: Value = serde_json::from_slice(line).ok()?;
    let m = v.pointer("/request/model")?.as_str()?;
    Some(m.strip_prefix("models/").unwrap_or(m).to_string())
}

fn view(s: BatchStatus, created_at: String, failure: Option<Failure>) -> BatchView {
    let c = s.counts;
    let counts = Counts {
        processing: c.processing,
        succeeded: c.succeeded,
        errored: c.errored,
        canceled: c.canceled,
        expired: c.expired,
    };
    let phase = if s.phase == BatchPhase::Ended { Phase::Ended } else { Phase::Running };
    BatchView { id: s.id, phase, counts, created_at, failure }
}

/// An operation (create, get, list item) in the runner's terms, `createTime` as sent.
fn batch(op: &Value) -> Result<BatchView, CallError> {
    let s = map_operation(op)
        .map_err(|e| CallError::Transport(format!("unreadable batch object: {e}")))?;
    let created = op.pointer("/metadata/createTime").and_then(Value::as_str).unwrap_or("");
    // A failed batch's operation carries its `error` (a google.rpc.Status).
    let failure = op.get("error").filter(|e| e.is_object()).map(|e| {
        let code = e["code"].as_i64().unwrap_or(2);
        let message: String = e["message"].as_str().unwrap_or("").chars().take(300).collect();
        Failure {
            reason: format!("batch failed: {}: {message}", code_name(code)),
            retryable: RETRYABLE_CODES.contains(&code),
        }
    });
    Ok(view(s, created.to_string(), failure))
}

impl Gemini {
    pub fn new(client: Client, prefix: String, upstream: String, model: Option<String>) -> Self {
        let model = model.map(|m| m.strip_prefix("models/").unwrap_or(&m).to_string());
        Gemini {
            client,
            prefix,
            upstream,
            model,
            inline_max: INLINE_MAX,
            uploads: Mutex::default(),
        }
    }

    /// A request with the project key as Google's clients send it.
    fn keyed(&self, method: Method, path: &str) -> RequestBuilder {
        self.client
            .request(method, &format!("{}{path}", self.prefix))
            .header("x-goog-api-key", self.client.key())
    }

    fn model_for(&self, body: &[u8]) -> Option<String> {
        self.model.clone().or_else(|| body.split(|b| *b == b'\n').find_map(model_of))
    }

    /// The inline create body of these request lines, keys in each request's metadata.
    fn inline(lines: &[u8]) -> Result<Vec<u8>, CallError> {
        let mut requests = Vec::new();
        for l in lines.split(|b| *b == b'\n').filter(|l| !l.trim_ascii().is_empty()) {
            let mut v: Value = serde_json::from_slice(l)
                .map_err(|e| CallError::Transport(format!("request line: {e}")))?;
            let key = v["key"].take();
            requests.push(json!({"request": v["request"].take(), "metadata": {"key": key}}));
        }
        let body = json!({"batch": {"displayName": DISPLAY_NAME,
            "inputConfig": {"requests": {"requests": requests}}}});
        serde_json::to_vec(&body).map_err(|e| CallError::Transport(e.to_string()))
    }

    /// The File API's resumable upload: start, then one `upload, finalize` of every byte.
    /// Named by the content hash and looked for first, so a run killed after its upload
    /// resends an identical create (see `openai.rs`).
    async fn upload(&self, body: Vec<u8>) -> Result<String, CallError> {
        let hash = xxhash_rust::xxh3::xxh3_128(&body);
        if let Some(f) = self.uploads.lock().unwrap_or_else(|e| e.into_inner()).get(&hash) {
            return Ok(f.clone());
        }
        let name = format!("batchcost-run-{hash:032x}");
        let path = format!("/{API_VERSION}/files");
        let listed = self
            .client
            .read(|| self.keyed(Method::GET, &path).query(&[("pageSize", "1000")]))
            .await;
        let size = body.len().to_string();
        let found = listed.ok().and_then(|v| {
            v["files"].as_array()?.iter().find_map(|f| {
                let same = f["displayName"] == name.as_str() && f["sizeBytes"] == size.as_str();
                same.then(|| f["name"].as_str().map(str::to_string)).flatten()
            })
        });
        if let Some(f) = found {
            self.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, f.clone());
            return Ok(f);
        }
        let start = self
            .keyed(Method::POST, &format!("/upload/{API_VERSION}/files"))
            .header("x-goog-upload-protocol", "resumable")
            .header("x-goog-upload-command", "start")
            .header("x-goog-upload-header-content-length", body.len().to_string())
            .header("x-goog-upload-header-content-type", "application/jsonl")
            .json(&json!({"file": {"displayName": name}}));
        let resp = start.send().await.map_err(|e| CallError::Transport(e.to_string()))?;
        let status = resp.status();
        let url = resp
            .headers()
            .get("x-goog-upload-url")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        if !status.is_success() {
            let v = resp.json().await.unwrap_or(Value::Null);
            return Err(super::client::status_error(status, v));
        }
        let url =
            url.ok_or_else(|| CallError::Transport("upload start gave no upload URL".into()))?;
        let rb = self
            .client
            .request_url(Method::POST, &url)
            .header("x-goog-api-key", self.client.key())
            .header("x-goog-upload-command", "upload, finalize")
            .header("x-goog-upload-offset", "0")
            .body(body);
        let v = self.client.json(rb).await?;
        let name = v
            .pointer("/file/name")
            .and_then(Value::as_str)
            .ok_or_else(|| CallError::Transport("upload answer names no file".into()))?
            .to_string();
        self.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(hash, name.clone());
        Ok(name)
    }
}

impl Provider for Gemini {
    fn name(&self) -> &'static str {
        "gemini"
    }

    fn limits(&self) -> Limits {
        LIMITS
    }

    fn limits_documented(&self) -> bool {
        false
    }

    fn custom_id(&self, line: &[u8]) -> Result<String, String> {
        let v: Value = serde_json::from_slice(line)
            .map_err(|e| format!("expected {{\"key\": ..., \"request\": {{...}}}}: {e}"))?;
        if !v["request"].is_object() {
            return Err("request: expected an object (a GenerateContentRequest)".into());
        }
        if self.model.is_none() && model_of(line).is_none() {
            return Err(
                "request.model: required unless --model names the batch's model (a Gemini batch has one model)"
                    .into(),
            );
        }
        match v.get("key") {
            Some(Value::String(k)) if !k.is_empty() => Ok(k.clone()),
            _ => {
                Err("key: expected a non-empty string (it matches the result to the request)"
                    .into())
            }
        }
    }

    fn templated(&self, custom_id: &str, params: Value) -> Value {
        json!({"key": custom_id, "request": params})
    }

    /// The input file: one `{key, request}` line per request (sent inline or uploaded).
    fn body(&self, lines: &[&[u8]]) -> Vec<u8> {
        jsonl(lines)
    }

    fn body_overhead(&self) -> (u64, u64) {
        (1, 0)
    }

    fn estimate_query(&self, lines: &[&[u8]]) -> Vec<(&'static str, String)> {
        let mut q = vec![("provider", self.upstream.clone())];
        let model = self.model.clone().or_else(|| lines.iter().find_map(|l| model_of(l)));
        if let Some(m) = model {
            q.push(("model", m));
        }
        q
    }

    async fn create(&self, body: Vec<u8>) -> Result<BatchView, CallError> {
        let model = self
            .model_for(&body)
            .ok_or_else(|| CallError::Transport("no model for the batch (pass --model)".into()))?;
        let inline = Self::inline(&body)?;
        let create = if inline.len() as u64 <= self.inline_max {
            inline
        } else {
            let file = self.upload(body).await?;
            let b =
                json!({"batch": {"displayName": DISPLAY_NAME, "inputConfig": {"fileName": file}}});
            serde_json::to_vec(&b).map_err(|e| CallError::Transport(e.to_string()))?
        };
        let rb = self
            .keyed(Method::POST, &create_path(&model))
            .header("content-type", "application/json")
            .body(create);
        batch(&self.client.json(rb).await?)
    }

    async fn get(&self, id: &str) -> Result<BatchView, CallError> {
        let path = batch_path(id);
        batch(&self.client.read(|| self.keyed(Method::GET, &path)).await?)
    }

    async fn list(&self, after: Option<&str>, limit: u32) -> Result<Page, CallError> {
        let size = limit.clamp(1, 1000).to_string();
        let path = format!("/{API_VERSION}/batches");
        let v = self
            .client
            .read(|| {
                let rb = self.keyed(Method::GET, &path);
                match after {
                    Some(t) => rb.query(&[("pageSize", size.as_str()), ("pageToken", t)]),
                    None => rb.query(&[("pageSize", size.as_str())]),
                }
            })
            .await?;
        let ops = v.get("operations").and_then(Value::as_array).cloned().unwrap_or_default();
        let batches = ops.iter().map(batch).collect::<Result<Vec<_>, _>>()?;
        let next = v
            .get("nextPageToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .map(str::to_string);
        Ok(Page { batches, next })
    }

    /// The results file, or the inline answers of the batch object.
    async fn download(&self, id: &str, path: &Path) -> Result<(), CallError> {
        let bp = batch_path(id);
        let op = self.client.read(|| self.keyed(Method::GET, &bp)).await?;
        let output = op.pointer("/metadata/output").or_else(|| op.get("response"));
        let file = output.and_then(|o| o.get("responsesFile")).and_then(Value::as_str);
        let part = match file {
            Some(f) => {
                let f = f.strip_prefix("files/").unwrap_or(f);
                let rb = self.keyed(Method::GET, &download_path(f)).query(&[("alt", "media")]);
                Part::Get(Box::new(rb))
            }
            None => {
                let raw =
                    serde_json::to_vec(&op).map_err(|e| CallError::Transport(e.to_string()))?;
                let lines = inline_jsonl(&raw).map_err(|e| {
                    CallError::Transport(format!("batch {id}: inline results: {e}"))
                })?;
                Part::Bytes(lines.to_vec())
            }
        };
        self.client.save(vec![part], path).await
    }

    /// google.rpc `UNKNOWN` (the upstream never answered), the reason in the message.
    fn errored_line(&self, custom_id: &str, _kind: &str, message: &str) -> Value {
        json!({"key": custom_id, "error": {"code": 2, "message": message}})
    }

    fn result(&self, line: &[u8]) -> Result<(String, ItemResult), String> {
        let d = Lines.decode(line).map_err(|e| format!("result line: {e}"))?;
        let out = match d.outcome {
            Outcome::Succeeded => ItemResult::Succeeded(Tokens {
                input: d.usage.input,
                output: d.usage.output,
                cache_write: d.usage.cache_write_5m + d.usage.cache_write_1h,
                cache_read: d.usage.cache_read,
            }),
            Outcome::Expired => ItemResult::Expired,
            Outcome::Canceled => ItemResult::Canceled,
            Outcome::Errored => {
                let v: Value =
                    serde_json::from_slice(line).map_err(|e| format!("result line: {e}"))?;
                let code = v["error"]["code"].as_i64().unwrap_or(2);
                ItemResult::Errored {
                    kind: code_name(code).to_string(),
                    message: v["error"]["message"]
                        .as_str()
                        .unwrap_or("")
                        .chars()
                        .take(300)
                        .collect(),
                    retryable: RETRYABLE_CODES.contains(&code),
                }
            }
        };
        Ok((d.custom_id.into_owned(), out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p() -> Gemini {
        let c = Client::new("http://127.0.0.1:1", crate::config::Secret::new("k"), None).unwrap();
        Gemini::new(c, String::new(), "gemini".into(), Some("models/gemini-2.5-flash".into()))
    }

    #[test]
    fn overloaded_requests_are_retried_and_invalid_ones_are_not() {
        let p = p();
        let over = br#"{"key":"a","error":{"code":14,"message":"overloaded"}}"#;
        let (id, r) = p.result(over).unwrap();
        assert_eq!(id, "a");
        assert!(
            matches!(r, ItemResult::Errored { retryable: true, ref kind, .. } if kind == "UNAVAILABLE")
        );
        let bad = br#"{"key":"b","error":{"code":3,"message":"bad"}}"#;
        assert!(matches!(p.result(bad).unwrap().1, ItemResult::Errored { retryable: false, .. }));
        let never = serde_json::to_vec(&p.errored_line("z", "budget_exceeded", "over")).unwrap();
        let (id, r) = p.result(&never).unwrap();
        assert_eq!(id, "z");
        assert!(
            matches!(r, ItemResult::Errored { retryable: false, ref message, .. } if message == "over")
        );
        let ok = br#"{"key":"c","response":{"usageMetadata":{"promptTokenCount":8,"candidatesTokenCount":3,"thoughtsTokenCount":4}}}"#;
        assert_eq!(
            p.result(ok).unwrap().1,
            ItemResult::Succeeded(Tokens { input: 8, output: 7, ..Tokens::default() })
        );
    }

    #[test]
    fn inline_bodies_carry_each_key_in_the_request_metadata() {
        let body =
            b"{\"key\":\"k1\",\"request\":{\"contents\":[]}}\n{\"key\":\"k2\",\"request\":{}}\n";
        let v: Value = serde_json::from_slice(&Gemini::inline(body).unwrap()).unwrap();
        let reqs = v.pointer("/batch/inputConfig/requests/requests").unwrap().as_array().unwrap();
        assert_eq!(reqs.len(), 2);
        assert_eq!(reqs[1]["metadata"]["key"], "k2");
        assert_eq!(reqs[0]["request"], json!({"contents": []}));
        assert_eq!(p().custom_id(b"{\"key\":\"x\",\"request\":{}}").unwrap(), "x");
        assert!(p().custom_id(b"{\"request\":{}}").unwrap_err().contains("key"));
    }
}

//! Provider-neutral HTTP to the gateway (or straight to the simulator): requests, the
//! service's own API with the admin token only where `/api/*` still needs it, JSON answers
//! and error envelopes of every provider, and downloads saved whole. Reads are retried on
//! transient failures; creates are not retried here (the submit step decides, see
//! `submit.rs`). Paths and auth headers of each batch API are in its provider module.

use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::{Method, RequestBuilder, StatusCode};
use serde_json::Value;
use tokio::io::AsyncWriteExt;

use crate::config::Secret;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with an error status; `kind` is the envelope's error type.
    #[error("HTTP {status}: {kind}: {message}")]
    Status { status: u16, kind: String, message: String, body: Value },
    /// No complete answer: connection refused, reset, timed out, body cut.
    #[error("{0}")]
    Transport(String),
}

impl CallError {
    /// Worth trying again: the server may answer differently in a moment.
    pub fn transient(&self) -> bool {
        match self {
            CallError::Transport(_) => true,
            // 408: the gateway timed the upload out; 409: an identical create of this
            // project is still in progress there.
            CallError::Status { status, kind, .. } => {
                *status >= 500
                    || matches!(status, 408 | 409)
                    || (*status == 429 && kind != "budget_exceeded_error")
            }
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            CallError::Status { status, .. } => Some(*status),
            CallError::Transport(_) => None,
        }
    }
}

/// The gateway's address and the caller's credentials.
pub struct Client {
    http: reqwest::Client,
    base: String,
    key: Secret,
    admin: Option<Secret>,
    /// Set once the gateway refused the project key on `/api/estimate`.
    estimate_as_admin: std::sync::atomic::AtomicBool,
}

impl Client {
    pub fn new(base: &str, key: Secret, admin: Option<Secret>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(900))
            .build()?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_string(),
            key,
            admin,
            estimate_as_admin: false.into(),
        })
    }

    /// A request to `path` on the server, without credentials: each provider adds the
    /// project key the way its clients send it (see `anthropic.rs`, `openai.rs`,
    /// `gemini.rs`).
    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base))
    }

    /// A request to an absolute URL the server handed out (an upload URL).
    pub fn request_url(&self, method: Method, url: &str) -> RequestBuilder {
        self.http.request(method, url)
    }

    /// The project key, for the provider's own header.
    pub fn key(&self) -> &str {
        self.key.expose()
    }

    /// A request to the service's own API: the admin token when one was given, else the
    /// project key (the gateway answers a project's own estimate with its key).
    pub fn service(&self, method: Method, path: &str) -> RequestBuilder {
        let rb = self.http.request(method, format!("{}{path}", self.base));
        match &self.admin {
            Some(t) => rb.bearer_auth(t.expose()),
            None => rb.header("x-api-key", self.key.expose()),
        }
    }

    /// `/api/estimate`: with the project key (the gateway checks that project's budgets),
    /// or with the admin token once the gateway has refused the key.
    /// `project` is sent only with the admin token: a project key estimates for its own
    /// project, and the gateway refuses a different `?project=` with it.
    pub fn estimate(&self, project: Option<&str>) -> RequestBuilder {
        use std::sync::atomic::Ordering;
        let rb = self.http.request(Method::POST, format!("{}/api/estimate", self.base));
        match &self.admin {
            Some(t) if self.estimate_as_admin.load(Ordering::Relaxed) => match project {
                Some(p) => rb.bearer_auth(t.expose()).query(&[("project", p)]),
                None => rb.bearer_auth(t.expose()),
            },
            _ => rb.header("x-api-key", self.key.expose()),
        }
    }

    /// After a 401/403 on the key: whether the admin token can be tried instead.
    pub fn estimate_fall_back(&self) -> bool {
        use std::sync::atomic::Ordering;
        self.admin.is_some() && !self.estimate_as_admin.swap(true, Ordering::Relaxed)
    }

    /// Sends once and decodes a JSON answer or the error envelope.
    pub async fn json(&self, rb: RequestBuilder) -> Result<Value, CallError> {
        let resp = rb.send().await.map_err(|e| CallError::Transport(short(&e)))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| CallError::Transport(short(&e)))?;
        let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        Err(status_error(status, body))
    }

    /// [`Client::json`] retried with backoff while the failure is transient (reads only).
    pub async fn read(&self, make: impl Fn() -> RequestBuilder) -> Result<Value, CallError> {
        let mut attempt = 0u32;
        loop {
            match self.json(make()).await {
                Err(e) if e.transient() && attempt < 6 => {
                    attempt += 1;
                    tokio::time::sleep(backoff(attempt)).await;
                }
                other => return other,
            }
        }
    }
}

/// What one results file is made of, in order.
pub enum Part {
    /// A download, streamed.
    Get(Box<RequestBuilder>),
    /// Bytes already in hand (results inside a batch object).
    Bytes(Vec<u8>),
}

impl Client {
    /// Writes `parts` one after another into `path`, each ending in a newline, whole or
    /// not at all (a temporary file renamed into place).
    pub async fn save(&self, parts: Vec<Part>, path: &Path) -> Result<(), CallError> {
        let io = |e: std::io::Error| CallError::Transport(format!("{}: {e}", path.display()));
        let tmp = path.with_extension("part");
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io)?;
        for part in parts {
            let mut last = b'\n';
            match part {
                Part::Bytes(b) => {
                    if let Some(l) = b.last() {
                        last = *l;
                    }
                    file.write_all(&b).await.map_err(io)?;
                }
                Part::Get(rb) => {
                    let rb = *rb;
                    let resp = rb.send().await.map_err(|e| CallError::Transport(short(&e)))?;
                    let status = resp.status();
                    if !status.is_success() {
                        let body = resp.json().await.unwrap_or(Value::Null);
                        return Err(status_error(status, body));
                    }
                    let mut stream = resp.bytes_stream();
                    while let Some(chunk) = stream.next().await {
                        let chunk =
                            chunk.map_err(|e| CallError::Transport(format!("results cut: {e}")))?;
                        if let Some(b) = chunk.last() {
                            last = *b;
                        }
                        file.write_all(&chunk).await.map_err(io)?;
                    }
                }
            }
            if last != b'\n' {
                file.write_all(b"\n").await.map_err(io)?;
            }
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        tokio::fs::rename(&tmp, path).await.map_err(io)
    }
}

/// 200 ms doubling, capped at 10 s.
pub fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((200u64 << attempt.min(6)).min(10_000))
}

/// Google's envelope carries the gateway's budget refusal in `error.details`.
const GOOGLE_BUDGET_DETAIL: &str = "type.googleapis.com/batchcost.BudgetRefusal";

pub fn status_error(status: StatusCode, mut body: Value) -> CallError {
    // Anthropic's envelope, OpenAI's and Google's; a budget refusal reads the same in all
    // three (`budget_exceeded_error` with the figures in `error.budget`).
    let google_budget = body
        .pointer("/error/details")
        .and_then(Value::as_array)
        .and_then(|d| d.iter().find(|x| x["@type"] == GOOGLE_BUDGET_DETAIL))
        .cloned();
    if let (Some(b), Some(e)) = (google_budget, body.get_mut("error")) {
        e["budget"] = b;
        e["type"] = Value::String("budget_exceeded_error".into());
    }
    let err = body.get("error").cloned().unwrap_or(Value::Null);
    let kind = err
        .get("type")
        .or_else(|| err.get("status"))
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_string();
    let message = err
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or_else(|| status.canonical_reason().unwrap_or(""))
        .chars()
        .take(500)
        .collect();
    CallError::Status { status: status.as_u16(), kind, message, body }
}

/// A transport error without the URL's query (never a key, but keep lines short).
fn short(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else {
        "connection failed"
    };
    match e.url() {
        Some(u) => format!("{kind}: {}{}", u.origin().ascii_serialization(), u.path()),
        None => kind.to_string(),
    }
}

//! One Anthropic upstream as a surface: its state and the helpers every route uses
//! (header forwarding, ownership, `results_url` rewriting, JSON answers).

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::app::App;
use crate::gateway::error::ApiError;
use crate::ledger::BatchRecord;
use crate::providers::Provider;
use crate::providers::anthropic::AnthropicProvider;
use crate::providers::anthropic::client::{FORWARDED_HEADERS, Forward, UpstreamReply, batch_path};

/// One Anthropic upstream served at a path prefix (`""` at the root, `/NAME` otherwise).
#[derive(Clone)]
pub struct Surface {
    pub app: Arc<App>,
    pub provider: Arc<dyn Provider>,
    pub anthropic: Arc<AnthropicProvider>,
    pub prefix: String,
}

impl Surface {
    /// The surface of `provider`, if it speaks Anthropic's format.
    pub fn new(app: Arc<App>, provider: Arc<dyn Provider>, prefix: String) -> Option<Surface> {
        let anthropic = provider.clone().into_any().downcast::<AnthropicProvider>().ok()?;
        Some(Surface { app, provider, anthropic, prefix })
    }

    pub fn name(&self) -> &str {
        self.provider.name()
    }
}

/// The caller's query string and `anthropic-*` headers, nothing else.
pub fn forward(headers: &HeaderMap, uri: &Uri) -> Forward {
    let mut fwd = Forward { query: uri.query().map(str::to_string), ..Default::default() };
    for name in FORWARDED_HEADERS {
        if let Some(v) = headers.get(name) {
            fwd.headers.insert(name, v.clone());
        }
    }
    fwd
}

/// Points `results_url` at the gateway (null stays null).
pub fn rewrite(s: &Surface, batch: &mut Value) {
    let id = batch.get("id").and_then(Value::as_str).map(str::to_string);
    if let (Some(id), Some(url)) = (id, batch.get_mut("results_url")) {
        if url.is_string() {
            *url = Value::String(format!(
                "{}{}{}/results",
                s.app.settings.public_url,
                s.prefix,
                batch_path(&id)
            ));
        }
    }
}

/// A JSON answer carrying the upstream's `request-id`.
pub fn json(status: StatusCode, upstream_headers: &HeaderMap, value: &Value) -> Response {
    let mut resp = (status, axum::Json(value)).into_response();
    for name in ["request-id", "x-batchcost-deduplicated", "x-batchcost-original-submitted-at"] {
        if let Some(v) = upstream_headers.get(name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    resp
}

fn not_found(id: &str) -> ApiError {
    let shown: String = id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-')
        .take(80)
        .collect();
    ApiError::NotFound(format!("batch `{shown}` not found"))
}

/// The caller's own batch, or 404 exactly as if it did not exist.
pub async fn owned(s: &Surface, project: &str, id: &str) -> Result<BatchRecord, ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 128
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !valid {
        return Err(not_found(id));
    }
    match s.app.ledger.batch_by_upstream(s.name(), id).await? {
        Some(rec) if rec.project == project => Ok(rec),
        _ => Err(not_found(id)),
    }
}

/// A 2xx batch object, rewritten; anything else passed through as the upstream's error.
pub fn batch_reply(s: &Surface, reply: UpstreamReply) -> Result<(Value, Response), ApiError> {
    if !reply.status.is_success() {
        return Err(ApiError::upstream(reply));
    }
    let mut value: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| ApiError::Internal("upstream sent a batch object that is not JSON".into()))?;
    rewrite(s, &mut value);
    let resp = json(reply.status, &reply.headers, &value);
    Ok((value, resp))
}

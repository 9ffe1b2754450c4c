//! The OpenAI surface's errors: the gateway's [`ApiError`] rendered in OpenAI's envelope
//! `{"error": {"message", "type", "param", "code"}}`, with an exhaustive status mapping.
//! A budget refusal is 429 `code: "budget_exceeded"`, `x-should-retry: false` and
//! `retry-after`, with the budget's figures in `error.budget`. 5xx messages are generic.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::gateway::error::ApiError;
use crate::ledger::LedgerError;
use crate::providers::UpstreamError;
use crate::providers::openai::wire::ErrorEnvelope;

/// An error of the OpenAI surface, with the request parameter at fault where known.
#[derive(Debug)]
pub struct OpenAiError {
    pub inner: ApiError,
    pub param: Option<String>,
}

impl OpenAiError {
    pub fn invalid(param: &str, message: impl Into<String>) -> Self {
        OpenAiError { inner: ApiError::InvalidRequest(message.into()), param: Some(param.into()) }
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        let shown: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
            .take(80)
            .collect();
        OpenAiError {
            inner: ApiError::NotFound(format!("No such {what} object: {shown}")),
            param: Some("id".into()),
        }
    }

    /// `(status, type, code)` of every variant.
    fn shape(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        let status = self.inner.status();
        let (etype, code) = match &self.inner {
            ApiError::InvalidRequest(_) => ("invalid_request_error", None),
            ApiError::Unauthenticated(_) => ("invalid_request_error", Some("invalid_api_key")),
            ApiError::NotFound(_) => ("invalid_request_error", None),
            ApiError::Conflict(_) => ("invalid_request_error", Some("conflict")),
            ApiError::TooLarge(_) => ("invalid_request_error", Some("file_too_large")),
            ApiError::ClientTimeout(_) => ("invalid_request_error", Some("timeout")),
            ApiError::BudgetExceeded(_) => ("budget_exceeded_error", Some("budget_exceeded")),
            ApiError::ApprovalRequired(_) => ("approval_required", Some("approval_required")),
            ApiError::Forbidden(_) => ("permission_error", None),
            ApiError::Upstream(_) => ("server_error", None),
            ApiError::UpstreamFailed(UpstreamError::Timeout) => ("server_error", Some("timeout")),
            ApiError::UpstreamFailed(_) => ("server_error", None),
            ApiError::Ledger(_) | ApiError::Internal(_) => ("server_error", None),
            ApiError::Unavailable(_) => ("server_error", None),
        };
        (status, etype, code)
    }

    fn message(&self) -> String {
        match &self.inner {
            ApiError::Ledger(_) | ApiError::Internal(_) => {
                "internal error; see the gateway log".into()
            }
            ApiError::Unauthenticated(_) => {
                "Incorrect API key provided: use a project key of this gateway as the bearer token"
                    .into()
            }
            other => other.to_string(),
        }
    }
}

impl From<ApiError> for OpenAiError {
    fn from(inner: ApiError) -> Self {
        OpenAiError { inner, param: None }
    }
}

impl From<LedgerError> for OpenAiError {
    fn from(e: LedgerError) -> Self {
        ApiError::Ledger(e).into()
    }
}

impl From<UpstreamError> for OpenAiError {
    fn from(e: UpstreamError) -> Self {
        ApiError::UpstreamFailed(e).into()
    }
}

impl IntoResponse for OpenAiError {
    fn into_response(self) -> Response {
        let (status, etype, code) = self.shape();
        if status.is_server_error() {
            tracing::error!(error = %self.inner, status = status.as_u16(), "request failed");
        }
        if let ApiError::Upstream(r) = self.inner {
            // OpenAI-compatible upstreams already answer in this envelope; anything else
            // is replaced so no upstream internals reach the client.
            let r = *r;
            let ok = serde_json::from_slice::<ErrorEnvelope>(&r.body).is_ok();
            let body = if ok {
                r.body
            } else {
                let e = ErrorEnvelope::new(
                    if r.status.is_server_error() {
                        "server_error"
                    } else {
                        "invalid_request_error"
                    },
                    format!("upstream answered HTTP {}", r.status.as_u16()),
                );
                serde_json::to_vec(&e).unwrap_or_default().into()
            };
            let mut resp = (r.status, body).into_response();
            let h = resp.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json"));
            for name in ["retry-after", "retry-after-ms", "x-should-retry", "x-request-id"] {
                if let Some(v) = r.headers.get(name) {
                    h.insert(name, v.clone());
                }
            }
            return resp;
        }
        let env = ErrorEnvelope::new(etype, self.message())
            .with_param(self.param.as_deref())
            .with_code(code);
        let mut value = serde_json::to_value(env).unwrap_or_default();
        let mut headers = HeaderMap::new();
        if let ApiError::BudgetExceeded(refusal) = &self.inner {
            if !refusal.message.is_empty() {
                value["error"]["message"] = refusal.message.clone().into();
            }
            value["error"]["budget"] = serde_json::to_value(refusal).unwrap_or_default();
            value["error"]["refusal_id"] = refusal.refusal_id.clone().into();
            if let Ok(v) = HeaderValue::from_str(&refusal.refusal_id) {
                headers.insert("x-batchcost-refusal-id", v);
            }
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
            headers.insert("retry-after", HeaderValue::from(refusal.retry_after_secs.max(1)));
        }
        (status, headers, axum::Json(value)).into_response()
    }
}

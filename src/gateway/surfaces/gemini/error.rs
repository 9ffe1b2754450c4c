//! The Gemini surface's errors: the gateway's [`ApiError`] in Google's envelope
//! `{"error": {"code", "message", "status"}}`, with an exhaustive status mapping. A budget
//! refusal is 429 `RESOURCE_EXHAUSTED` whose message names the budget (its figures also in
//! `error.details`), another project's batch or file is 404 `NOT_FOUND` exactly as if it did
//! not exist, and 5xx messages are generic.

use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::gateway::error::ApiError;
use crate::ledger::LedgerError;
use crate::providers::UpstreamError;
use crate::providers::gemini::wire::{ErrorBody, ErrorEnvelope};

/// An error of the Gemini surface.
#[derive(Debug)]
pub struct GoogleError(pub ApiError);

impl GoogleError {
    pub fn invalid(message: impl Into<String>) -> Self {
        GoogleError(ApiError::InvalidRequest(message.into()))
    }

    /// 404 for a batch or file, with the id shown only in its safe characters.
    pub fn not_found(what: &str, id: &str) -> Self {
        let shown: String = id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/'))
            .take(80)
            .collect();
        GoogleError(ApiError::NotFound(format!("{what} `{shown}` not found")))
    }

    /// The canonical status name of every variant.
    fn status_name(&self) -> &'static str {
        match &self.0 {
            ApiError::InvalidRequest(_) => "INVALID_ARGUMENT",
            ApiError::Unauthenticated(_) => "UNAUTHENTICATED",
            ApiError::Forbidden(_) => "PERMISSION_DENIED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::Conflict(_) => "ABORTED",
            ApiError::TooLarge(_) => "INVALID_ARGUMENT",
            ApiError::ClientTimeout(_) => "DEADLINE_EXCEEDED",
            ApiError::BudgetExceeded(_) => "RESOURCE_EXHAUSTED",
            // Held for an operator's approval: the batch waits, so not a quota refusal.
            ApiError::ApprovalRequired(_) => "FAILED_PRECONDITION",
            ApiError::Upstream(_) => "UNKNOWN",
            ApiError::UpstreamFailed(UpstreamError::Timeout) => "DEADLINE_EXCEEDED",
            ApiError::UpstreamFailed(_) => "UNAVAILABLE",
            ApiError::Ledger(_) | ApiError::Internal(_) => "INTERNAL",
            ApiError::Unavailable(_) => "UNAVAILABLE",
        }
    }

    fn message(&self) -> String {
        match &self.0 {
            ApiError::Ledger(_) | ApiError::Internal(_) => {
                "internal error; see the gateway log".into()
            }
            ApiError::Unauthenticated(_) => {
                "API key not valid: use a project key of this gateway as x-goog-api-key or ?key="
                    .into()
            }
            ApiError::BudgetExceeded(r) => format!(
                "batch would exceed budget `{}` ({} window: limit {} USD, spent {}, reserved {}, requested {}; resets at {})",
                r.name,
                r.period,
                r.limit_usd.as_deref().unwrap_or("none"),
                r.spent_usd,
                r.reserved_usd,
                r.requested_usd,
                r.resets_at
            ),
            other => other.to_string(),
        }
    }
}

impl From<ApiError> for GoogleError {
    fn from(e: ApiError) -> Self {
        GoogleError(e)
    }
}

impl From<LedgerError> for GoogleError {
    fn from(e: LedgerError) -> Self {
        GoogleError(ApiError::Ledger(e))
    }
}

impl From<UpstreamError> for GoogleError {
    fn from(e: UpstreamError) -> Self {
        GoogleError(ApiError::UpstreamFailed(e))
    }
}

impl IntoResponse for GoogleError {
    fn into_response(self) -> Response {
        let status = self.0.status();
        if status.is_server_error() {
            tracing::error!(error = %self.0, status = status.as_u16(), "request failed");
        }
        if let ApiError::Upstream(r) = self.0 {
            // The upstream speaks this envelope already; anything else is replaced so no
            // upstream internals reach the client.
            let r = *r;
            let body = if serde_json::from_slice::<ErrorEnvelope>(&r.body).is_ok() {
                r.body
            } else {
                let e = envelope(
                    r.status,
                    format!("upstream answered HTTP {}", r.status.as_u16()),
                    if r.status.is_server_error() { "INTERNAL" } else { "FAILED_PRECONDITION" },
                );
                serde_json::to_vec(&e).unwrap_or_default().into()
            };
            let mut resp = (r.status, body).into_response();
            let h = resp.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/json; charset=UTF-8"));
            if let Some(v) = r.headers.get("retry-after") {
                h.insert("retry-after", v.clone());
            }
            return resp;
        }
        let mut env = envelope(status, self.message(), self.status_name());
        let mut headers = HeaderMap::new();
        if let ApiError::BudgetExceeded(refusal) = &self.0 {
            let mut detail = serde_json::to_value(refusal.as_ref()).unwrap_or_default();
            detail["@type"] = "type.googleapis.com/batchcost.BudgetRefusal".into();
            env.error.details.push(detail);
            headers.insert("retry-after", HeaderValue::from(refusal.retry_after_secs.max(1)));
        }
        (status, headers, axum::Json(env)).into_response()
    }
}

fn envelope(status: StatusCode, message: String, name: &str) -> ErrorEnvelope {
    ErrorEnvelope {
        error: ErrorBody {
            code: status.as_u16(),
            message,
            status: name.to_string(),
            details: Vec::new(),
        },
    }
}

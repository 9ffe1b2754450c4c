//! The one API error enum, with an exhaustive status mapping. Every body is the Anthropic
//! envelope; 5xx bodies are generic so internals (paths, SQL, keys) never leak.

use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::Serialize;

use crate::approvals::ApprovalRefusal;
use crate::ledger::{Hold, LedgerError, WindowState};
use crate::metrics::RejectReason;
use crate::providers::anthropic::wire::ErrorEnvelope;
use crate::providers::{UpstreamError, UpstreamReply};
use crate::submit::{SubmitError, blocked_by};

/// Why a budget refused a batch: returned as `error.budget`.
#[derive(Debug, Clone, Serialize)]
pub struct BudgetRefusal {
    pub name: String,
    pub period: String,
    pub limit_usd: Option<String>,
    pub spent_usd: String,
    pub reserved_usd: String,
    pub requested_usd: String,
    pub resets_at: String,
    /// Which limit would be crossed: `usd`, `input_tokens` or `output_tokens`.
    pub limit_kind: String,
    /// The ledger's record of this refusal (`GET /api/batches/{refusal_id}`).
    pub refusal_id: String,
    #[serde(skip)]
    pub retry_after_secs: u64,
    /// The whole story for people: amounts, reset time, what would fit.
    #[serde(skip)]
    pub message: String,
}

impl BudgetRefusal {
    /// The refusal of `hold` by window `w` at `now`.
    pub fn new(w: &WindowState, hold: &Hold, now: jiff::Timestamp) -> Self {
        let secs = w.end.duration_since(now).as_secs().max(1) as u64;
        BudgetRefusal {
            name: w.budget.clone(),
            period: w.period.as_str().to_string(),
            limit_usd: w.limit.map(|l| l.usd_exact()),
            spent_usd: w.spent.usd_exact(),
            reserved_usd: w.reserved.usd_exact(),
            requested_usd: hold.usd.usd_exact(),
            resets_at: crate::clock::rfc3339_micros(w.end),
            limit_kind: blocked_by(w, hold).unwrap_or("usd").to_string(),
            refusal_id: String::new(),
            retry_after_secs: secs,
            message: format!("batch would exceed budget '{}'", w.budget),
        }
    }
}

/// Everything a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request_error`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `authentication_error`.
    #[error("{0}")]
    Unauthenticated(&'static str),
    /// 403 `permission_error`: a known token whose scope does not cover the route.
    #[error("{0}")]
    Forbidden(&'static str),
    /// 404 `not_found_error`, identical whether the batch is another project's or absent.
    #[error("{0}")]
    NotFound(String),
    /// 409 `conflict_error`: an identical submission is still being placed.
    #[error("{0}")]
    Conflict(String),
    /// 413 `request_too_large`.
    #[error("{0}")]
    TooLarge(String),
    /// 408 `timeout_error`: the client stalled or trickled its body past the limits.
    #[error("{0}")]
    ClientTimeout(String),
    /// 429 `budget_exceeded_error`, with `x-should-retry: false`.
    #[error("{}", .0.message)]
    BudgetExceeded(Box<BudgetRefusal>),
    /// 429 `approval_required`, with `x-should-retry: false`: the hold is above a budget's
    /// `approval_above_usd` and no approval of this body is in force.
    #[error("batch needs an approval (`batchcost approve {}`) under budget `{}`", .0.approval_id, .0.budget)]
    ApprovalRequired(Box<ApprovalRefusal>),
    /// The upstream's own error answer, passed through.
    #[error("upstream answered {}", .0.status)]
    Upstream(Box<UpstreamReply>),
    /// 502/504: no usable upstream answer.
    #[error(transparent)]
    UpstreamFailed(#[from] UpstreamError),
    /// 500 `api_error`.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// 500 `api_error`.
    #[error("{0}")]
    Internal(String),
    /// 503 `api_error`: not ready to serve (ledger or pricing missing).
    #[error("{0}")]
    Unavailable(String),
}

impl ApiError {
    /// The upstream's own non-2xx answer, to pass through.
    pub fn upstream(reply: UpstreamReply) -> Self {
        ApiError::Upstream(Box::new(reply))
    }

    /// A neutral submission failure in this envelope.
    pub fn from_submit(e: SubmitError, now: jiff::Timestamp) -> Self {
        match e {
            SubmitError::Budget { window, hold, detail } => {
                let mut r = BudgetRefusal::new(&window, &hold, now);
                let d = *detail;
                (r.refusal_id, r.message, r.resets_at) = (d.refusal_id, d.message, d.resets_at);
                ApiError::BudgetExceeded(Box::new(r))
            }
            SubmitError::Upstream(r) => ApiError::Upstream(r),
            SubmitError::UpstreamFailed(e) => ApiError::UpstreamFailed(e),
            SubmitError::Ledger(e) => ApiError::Ledger(e),
            SubmitError::Conflict(m) => ApiError::Conflict(m),
            SubmitError::Internal(m) => ApiError::Internal(m),
            SubmitError::Approval(r) => ApiError::ApprovalRequired(r),
        }
    }

    /// How a failed submission is counted in `batchcost_submissions_rejected_total`.
    pub fn reject_reason(&self) -> Option<RejectReason> {
        match self {
            ApiError::TooLarge(_) => Some(RejectReason::TooLarge),
            ApiError::InvalidRequest(_) => Some(RejectReason::InvalidRequest),
            ApiError::BudgetExceeded(_) => Some(RejectReason::BudgetExceeded),
            ApiError::ApprovalRequired(_) => Some(RejectReason::ApprovalRequired),
            ApiError::Upstream(_) | ApiError::UpstreamFailed(_) => {
                Some(RejectReason::UpstreamError)
            }
            _ => None,
        }
    }

    /// The HTTP status of every variant.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthenticated(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::BudgetExceeded(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::ApprovalRequired(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Upstream(r) => r.status,
            ApiError::UpstreamFailed(UpstreamError::Timeout) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::UpstreamFailed(_) => StatusCode::BAD_GATEWAY,
            ApiError::Ledger(_) | ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The envelope's `error.type`.
    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request_error",
            ApiError::Unauthenticated(_) => "authentication_error",
            ApiError::Forbidden(_) => "permission_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::Conflict(_) => "conflict_error",
            ApiError::TooLarge(_) => "request_too_large",
            ApiError::ClientTimeout(_) => "timeout_error",
            ApiError::BudgetExceeded(_) => "budget_exceeded_error",
            ApiError::ApprovalRequired(_) => "approval_required",
            ApiError::Upstream(_) => "api_error",
            ApiError::UpstreamFailed(UpstreamError::Timeout) => "timeout_error",
            ApiError::UpstreamFailed(_) => "api_error",
            ApiError::Ledger(_) | ApiError::Internal(_) | ApiError::Unavailable(_) => "api_error",
        }
    }

    fn public_message(&self) -> String {
        match self {
            ApiError::Ledger(_) | ApiError::Internal(_) => {
                "internal error; see the gateway log".into()
            }
            ApiError::UpstreamFailed(e) => e.to_string(),
            other => other.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, status = status.as_u16(), "request failed");
        }
        if let ApiError::Upstream(r) = self {
            let r = *r;
            return upstream_passthrough(r.status, r.headers, r.body);
        }
        let mut value =
            serde_json::to_value(ErrorEnvelope::new(self.error_type(), self.public_message()))
                .unwrap_or_default();
        let mut headers = HeaderMap::new();
        if let ApiError::BudgetExceeded(refusal) = &self {
            value["error"]["budget"] = serde_json::to_value(refusal).unwrap_or_default();
            value["error"]["refusal_id"] = refusal.refusal_id.clone().into();
            if let Ok(v) = HeaderValue::from_str(&refusal.refusal_id) {
                headers.insert("x-batchcost-refusal-id", v);
            }
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
            headers.insert("retry-after", HeaderValue::from(refusal.retry_after_secs.max(1)));
        }
        if let ApiError::ApprovalRequired(refusal) = &self {
            value["error"]["approval"] = serde_json::to_value(refusal).unwrap_or_default();
            headers.insert("x-should-retry", HeaderValue::from_static("false"));
        }
        (status, headers, axum::Json(value)).into_response()
    }
}

/// Middleware: puts every error answer that is not already JSON in the envelope: axum's
/// own rejections (a path that is not UTF-8, a bad query string) and routing's 405.
/// 5xx text is replaced by the status name so nothing internal leaks.
pub async fn envelope(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let (parts, body) = resp.into_parts();
    let reason = status.canonical_reason().unwrap_or("error").to_string();
    let message = if status.is_server_error() {
        reason
    } else {
        let text = axum::body::to_bytes(body, 4096).await.unwrap_or_default();
        let text: String = String::from_utf8_lossy(&text).trim().chars().take(300).collect();
        if text.is_empty() { reason } else { text }
    };
    let etype = match status.as_u16() {
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        408 => "timeout_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        s if s < 500 => "invalid_request_error",
        _ => "api_error",
    };
    let mut out = (status, axum::Json(ErrorEnvelope::new(etype, message))).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            out.headers_mut().insert(name.clone(), value.clone());
        }
    }
    out
}

/// The upstream's error as it sent it (status, envelope, retry hints).
fn upstream_passthrough(status: StatusCode, headers: HeaderMap, body: Bytes) -> Response {
    let looks_json = serde_json::from_slice::<ErrorEnvelope>(&body).is_ok();
    if !looks_json {
        let msg = format!("upstream answered HTTP {}", status.as_u16());
        let env = ErrorEnvelope::new(
            if status.is_server_error() { "api_error" } else { "invalid_request_error" },
            msg,
        );
        return (status, axum::Json(env)).into_response();
    }
    let mut resp = (status, body).into_response();
    for (k, v) in headers.iter() {
        resp.headers_mut().insert(k.clone(), v.clone());
    }
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/json"));
    resp
}

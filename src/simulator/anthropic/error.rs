//! The simulator's error answers, in the exact Anthropic envelope. Handlers return an
//! [`ApiError`]; the outermost middleware renders it with the call's request id, so the
//! `request_id` in the body always equals the `request-id` header.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::providers::anthropic::wire::ErrorEnvelope;
use crate::simulator::engine::faults::Fault;

/// Every error the simulator answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request_error`.
    #[error("{0}")]
    InvalidRequest(String),
    /// 401 `authentication_error`.
    #[error("{0}")]
    Authentication(String),
    /// 404 `not_found_error`.
    #[error("{0}")]
    NotFound(String),
    /// 405 `invalid_request_error`: the path exists, the method does not.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 413 `request_too_large`.
    #[error("{0}")]
    TooLarge(String),
    /// 429 `rate_limit_error`, with `retry-after`.
    #[error("Number of requests has exceeded your rate limit")]
    RateLimited { retry_after: u64 },
    /// 500 `api_error`.
    #[error("{0}")]
    Internal(String),
    /// 529 `overloaded_error`, with `retry-after`.
    #[error("Overloaded")]
    Overloaded { retry_after: u64 },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Authentication(_) => StatusCode::UNAUTHORIZED,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Overloaded { .. } => {
                StatusCode::from_u16(529).unwrap_or(StatusCode::SERVICE_UNAVAILABLE)
            }
        }
    }

    pub fn error_type(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) | ApiError::MethodNotAllowed(_) => "invalid_request_error",
            ApiError::Authentication(_) => "authentication_error",
            ApiError::NotFound(_) => "not_found_error",
            ApiError::TooLarge(_) => "request_too_large",
            ApiError::RateLimited { .. } => "rate_limit_error",
            ApiError::Internal(_) => "api_error",
            ApiError::Overloaded { .. } => "overloaded_error",
        }
    }

    /// Maps a status produced outside our handlers (an axum rejection) to an error.
    pub fn from_status(status: StatusCode, message: String) -> ApiError {
        match status.as_u16() {
            401 => ApiError::Authentication(message),
            404 => ApiError::NotFound(message),
            405 => ApiError::MethodNotAllowed(message),
            413 => ApiError::TooLarge(message),
            s if s >= 500 => ApiError::Internal(message),
            _ => ApiError::InvalidRequest(message),
        }
    }

    /// The final answer: envelope body, JSON content type, retry hints.
    pub fn render(&self, request_id: &str) -> Response {
        let mut envelope = ErrorEnvelope::new(self.error_type(), self.to_string());
        envelope.request_id = Some(request_id.to_string());
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let mut resp = (self.status(), body).into_response();
        let headers = resp.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let ApiError::RateLimited { retry_after } | ApiError::Overloaded { retry_after } = self {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        resp
    }
}

/// Stores the error in the response for the envelope middleware to render.
impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status().into_response();
        resp.extensions_mut().insert(self);
        resp
    }
}

/// Injected faults as Anthropic answers them.
impl From<Fault> for ApiError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Internal => ApiError::Internal("Internal server error".into()),
            Fault::Overloaded { retry_after } => ApiError::Overloaded { retry_after },
            Fault::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
        }
    }
}

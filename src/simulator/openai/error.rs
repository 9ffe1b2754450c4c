//! The OpenAI surface's error answers, in OpenAI's envelope
//! `{"error": {"message", "type", "param", "code"}}`. Handlers return an [`ApiError`]; the
//! outer middleware renders it (axum's own rejections included) and adds `x-request-id`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::providers::openai::wire::ErrorEnvelope;
use crate::simulator::engine::faults::Fault;

/// Every error the OpenAI surface answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `invalid_request_error`, with the parameter at fault when there is one.
    #[error("{message}")]
    InvalidRequest { message: String, param: Option<&'static str> },
    /// 401 `invalid_request_error`, code `invalid_api_key` when a wrong key was sent.
    #[error("{message}")]
    Authentication { message: String, code: Option<&'static str> },
    /// 404 `invalid_request_error`.
    #[error("{message}")]
    NotFound { message: String, param: Option<&'static str> },
    /// 405 `invalid_request_error`.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// 413 `invalid_request_error`: the body is over the limit.
    #[error("{0}")]
    TooLarge(String),
    /// 429 `requests` / `rate_limit_exceeded`, with `retry-after`.
    #[error("Rate limit reached for requests. Please try again later.")]
    RateLimited { retry_after: u64 },
    /// 500 `server_error`.
    #[error("The server had an error while processing your request. Sorry about that!")]
    Internal,
    /// 503 `server_error`: overloaded, with `retry-after`.
    #[error("The server is overloaded or not ready yet.")]
    Overloaded { retry_after: u64 },
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        ApiError::InvalidRequest { message: message.into(), param }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Authentication { .. } => StatusCode::UNAUTHORIZED,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Overloaded { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// The envelope's `type`, `param` and `code`.
    fn parts(&self) -> (&'static str, Option<&'static str>, Option<&'static str>) {
        match self {
            ApiError::InvalidRequest { param, .. } | ApiError::NotFound { param, .. } => {
                ("invalid_request_error", *param, None)
            }
            ApiError::Authentication { code, .. } => ("invalid_request_error", None, *code),
            ApiError::MethodNotAllowed(_) | ApiError::TooLarge(_) => {
                ("invalid_request_error", None, None)
            }
            ApiError::RateLimited { .. } => ("requests", None, Some("rate_limit_exceeded")),
            ApiError::Internal | ApiError::Overloaded { .. } => ("server_error", None, None),
        }
    }

    /// Maps a status produced outside our handlers (an axum rejection) to an error.
    pub fn from_status(status: StatusCode, message: String) -> ApiError {
        match status.as_u16() {
            401 => ApiError::Authentication { message, code: None },
            404 => ApiError::NotFound { message, param: None },
            405 => ApiError::MethodNotAllowed(message),
            413 => ApiError::TooLarge(message),
            s if s >= 500 => ApiError::Internal,
            _ => ApiError::InvalidRequest { message, param: None },
        }
    }

    /// The final answer: envelope body, JSON content type, retry hints.
    pub fn render(&self) -> Response {
        let (kind, param, code) = self.parts();
        let envelope = ErrorEnvelope::new(kind, self.to_string()).with_param(param).with_code(code);
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

/// Injected faults as OpenAI answers them.
impl From<Fault> for ApiError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Internal => ApiError::Internal,
            Fault::Overloaded { retry_after } => ApiError::Overloaded { retry_after },
            Fault::RateLimited { retry_after } => ApiError::RateLimited { retry_after },
        }
    }
}

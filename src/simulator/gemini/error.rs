//! The Gemini surface's error answers, in Google's envelope
//! `{"error": {"code": HTTP status, "message", "status": "CANONICAL_NAME"}}`.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::providers::gemini::wire::{ErrorBody, ErrorEnvelope};
use crate::simulator::engine::faults::Fault;

/// Every error the Gemini surface answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApiError {
    /// 400 `INVALID_ARGUMENT` (also a wrong API key, as Google answers it).
    #[error("{0}")]
    InvalidArgument(String),
    /// 400 `FAILED_PRECONDITION`: the resource is not in a state that allows the call.
    #[error("{0}")]
    FailedPrecondition(String),
    /// 403 `PERMISSION_DENIED`: no API key.
    #[error("{0}")]
    PermissionDenied(String),
    /// 404 `NOT_FOUND`.
    #[error("{0}")]
    NotFound(String),
    /// 429 `RESOURCE_EXHAUSTED`, with `retry-after`.
    #[error("Resource has been exhausted (e.g. check quota).")]
    ResourceExhausted { retry_after: u64 },
    /// 500 `INTERNAL`.
    #[error(
        "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting"
    )]
    Internal,
    /// 503 `UNAVAILABLE`: overloaded, with `retry-after`.
    #[error("The model is overloaded. Please try again later.")]
    Unavailable { retry_after: u64 },
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidArgument(_) | ApiError::FailedPrecondition(_) => {
                StatusCode::BAD_REQUEST
            }
            ApiError::PermissionDenied(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::ResourceExhausted { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn canonical(&self) -> &'static str {
        match self {
            ApiError::InvalidArgument(_) => "INVALID_ARGUMENT",
            ApiError::FailedPrecondition(_) => "FAILED_PRECONDITION",
            ApiError::PermissionDenied(_) => "PERMISSION_DENIED",
            ApiError::NotFound(_) => "NOT_FOUND",
            ApiError::ResourceExhausted { .. } => "RESOURCE_EXHAUSTED",
            ApiError::Internal => "INTERNAL",
            ApiError::Unavailable { .. } => "UNAVAILABLE",
        }
    }

    pub fn render(&self) -> Response {
        let envelope = ErrorEnvelope {
            error: ErrorBody {
                code: self.status().as_u16(),
                message: self.to_string(),
                status: self.canonical().into(),
                details: Vec::new(),
            },
        };
        let body = serde_json::to_vec(&envelope).unwrap_or_default();
        let mut resp = (self.status(), body).into_response();
        let headers = resp.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=UTF-8"),
        );
        if let ApiError::ResourceExhausted { retry_after } | ApiError::Unavailable { retry_after } =
            self
        {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
        }
        resp
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = self.status().into_response();
        resp.extensions_mut().insert(self);
        resp
    }
}

/// Injected faults as Google answers them.
impl From<Fault> for ApiError {
    fn from(f: Fault) -> Self {
        match f {
            Fault::Internal => ApiError::Internal,
            Fault::Overloaded { retry_after } => ApiError::Unavailable { retry_after },
            Fault::RateLimited { retry_after } => ApiError::ResourceExhausted { retry_after },
        }
    }
}

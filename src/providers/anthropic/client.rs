//! The Anthropic upstream client. It holds the provider key (never the client's), forwards
//! only the `anthropic-*` headers the API defines, and retries what is safe: idempotent
//! calls on 429/5xx/connection errors, and creates only when the upstream said outright it
//! did nothing (429, 529) or the connection never opened.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::providers::http::HttpUpstream;
pub use crate::providers::http::{
    Forward, RETURNED_HEADERS, UpstreamError, UpstreamReply, backoff, retry_after,
};

/// Request headers passed through to the upstream unchanged.
pub const FORWARDED_HEADERS: [&str; 3] =
    ["anthropic-version", "anthropic-beta", "anthropic-user-profile-id"];

/// The batches collection, relative to the base URL.
pub const BATCHES_PATH: &str = "/v1/messages/batches";

/// `/v1/messages/batches/{id}`
pub fn batch_path(id: &str) -> String {
    format!("{BATCHES_PATH}/{id}")
}

/// The Anthropic upstream.
pub struct AnthropicClient {
    http: HttpUpstream,
    key: Secret,
}

impl AnthropicClient {
    pub fn new(
        name: &str,
        base_url: &str,
        key: Secret,
        timeout: Duration,
        max_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        Ok(AnthropicClient {
            http: HttpUpstream::new(name, base_url, timeout, max_attempts, metrics)?,
            key,
        })
    }

    pub fn base_url(&self) -> &str {
        self.http.base_url()
    }

    /// The HTTP client (retry pauses and attempts, for the provider seam).
    pub fn http(&self) -> &HttpUpstream {
        &self.http
    }

    fn request(&self, method: Method, path: &str, fwd: &Forward) -> reqwest::RequestBuilder {
        let mut headers = HeaderMap::new();
        for name in FORWARDED_HEADERS {
            if let Some(v) = fwd.headers.get(name) {
                headers.insert(HeaderName::from_static(name), v.clone());
            }
        }
        headers.entry("anthropic-version").or_insert(HeaderValue::from_static("2023-06-01"));
        if let Ok(mut key) = HeaderValue::from_str(self.key.expose()) {
            key.set_sensitive(true);
            headers.insert("x-api-key", key);
        }
        self.http.request(method, path, fwd.query.as_deref()).headers(headers)
    }

    /// Creates a batch. Retries only when nothing can have been created upstream.
    #[tracing::instrument(skip_all, fields(bytes = body.len()))]
    pub async fn create(&self, body: Bytes, fwd: &Forward) -> Result<UpstreamReply, UpstreamError> {
        self.http
            .create("create", refused_outright, || {
                self.request(Method::POST, BATCHES_PATH, fwd)
                    .header("content-type", "application/json")
                    .body(body.clone())
            })
            .await
    }

    /// An idempotent call (retrieve, list, cancel, delete), retried on 429, 5xx and
    /// connection failures with backoff and jitter, honouring `retry-after`.
    #[tracing::instrument(skip(self, fwd))]
    pub async fn call(
        &self,
        op: &str,
        method: Method,
        path: &str,
        fwd: &Forward,
    ) -> Result<UpstreamReply, UpstreamError> {
        self.http.call(op, || self.request(method.clone(), path, fwd)).await
    }

    /// An idempotent JSON POST (count_tokens), retried like [`Self::call`].
    pub async fn post_json(
        &self,
        op: &str,
        path: &str,
        body: Bytes,
        fwd: &Forward,
    ) -> Result<UpstreamReply, UpstreamError> {
        self.http
            .call(op, || {
                self.request(Method::POST, path, fwd)
                    .header("content-type", "application/json")
                    .body(body.clone())
            })
            .await
    }

    /// Opens a results download; the caller streams the body. Retried like [`Self::call`]
    /// until the headers arrive.
    pub async fn results(
        &self,
        path: &str,
        fwd: &Forward,
    ) -> Result<reqwest::Response, UpstreamError> {
        self.http.stream("results", || self.request(Method::GET, path, fwd)).await
    }
}

/// 429 and 529 mean the upstream did nothing with the request.
pub fn refused_outright(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.as_u16() == 529
}

//! The Gemini upstream client. It holds the provider key (never the client's) and sends it
//! as `x-goog-api-key` only to the configured base URL; it retries what is safe:
//! idempotent calls on 408/429/5xx/connection errors, creates only on 429 (the quota
//! refusal `RESOURCE_EXHAUSTED` creates nothing) or when the connection never opened.
//! Uploads are relayed once, as streams: a chunk is never held to be resent.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode};

use crate::config::Secret;
use crate::metrics::Metrics;
use crate::providers::http::HttpUpstream;
pub use crate::providers::http::{Forward, UpstreamError, UpstreamReply};

/// The API version the gateway speaks to the upstream (the reference's, and the one every
/// SDK release since batch mode accepts).
pub const API_VERSION: &str = "v1beta";

/// Upload headers passed through from the client on start and chunk requests.
pub const UPLOAD_HEADERS: [&str; 6] = [
    "x-goog-upload-protocol",
    "x-goog-upload-command",
    "x-goog-upload-header-content-length",
    "x-goog-upload-header-content-type",
    "x-goog-upload-file-name",
    "x-goog-upload-offset",
];

/// `/v1beta/batches/{id}`
pub fn batch_path(id: &str) -> String {
    format!("/{API_VERSION}/batches/{id}")
}

/// `/v1beta/models/{model}:batchGenerateContent`
pub fn create_path(model: &str) -> String {
    format!("/{API_VERSION}/models/{model}:batchGenerateContent")
}

/// `/download/v1beta/files/{id}:download` (the documented REST form).
pub fn download_path(file_id: &str) -> String {
    format!("/download/{API_VERSION}/files/{file_id}:download")
}

/// The Gemini upstream.
pub struct GeminiClient {
    http: HttpUpstream,
    key: Secret,
}

impl GeminiClient {
    pub fn new(
        name: &str,
        base_url: &str,
        key: Secret,
        timeout: Duration,
        max_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        Ok(GeminiClient {
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

    fn auth(&self, mut headers: HeaderMap, fwd: &Forward) -> HeaderMap {
        for name in UPLOAD_HEADERS {
            if let Some(v) = fwd.headers.get(name) {
                headers.insert(HeaderName::from_static(name), v.clone());
            }
        }
        if let Ok(mut key) = HeaderValue::from_str(self.key.expose()) {
            key.set_sensitive(true);
            headers.insert("x-goog-api-key", key);
        }
        headers
    }

    fn request(&self, method: Method, path: &str, fwd: &Forward) -> reqwest::RequestBuilder {
        let headers = self.auth(HeaderMap::new(), fwd);
        self.http.request(method, path, fwd.query.as_deref()).headers(headers)
    }

    /// Creates a batch. Retries only when nothing can have been created upstream.
    #[tracing::instrument(skip_all, fields(bytes = call_body.len()))]
    pub async fn create(
        &self,
        path: &str,
        call_body: Bytes,
        fwd: &Forward,
    ) -> Result<UpstreamReply, UpstreamError> {
        self.http
            .create("create", refused_outright, || {
                self.request(Method::POST, path, fwd)
                    .header("content-type", "application/json")
                    .body(call_body.clone())
            })
            .await
    }

    /// An idempotent call (get, list, cancel, delete), retried with backoff.
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

    /// Opens a file download; the caller streams the body.
    pub async fn download(&self, file_id: &str) -> Result<reqwest::Response, UpstreamError> {
        let fwd = Forward { query: Some("alt=media".into()), ..Default::default() };
        let path = download_path(file_id);
        self.http.stream("download", || self.request(Method::GET, &path, &fwd)).await
    }

    /// Starts a resumable upload upstream (one attempt: a retried start would leave an
    /// orphan session, harmless but pointless).
    pub async fn upload_start(
        &self,
        body: Bytes,
        fwd: &Forward,
    ) -> Result<UpstreamReply, UpstreamError> {
        let path = format!("/upload/{API_VERSION}/files");
        let req = self
            .request(Method::POST, &path, fwd)
            .header("content-type", "application/json")
            .body(body);
        self.http.once("upload_start", req).await
    }

    /// Relays one chunk to the upstream's upload URL, streamed, once. `url` must be on the
    /// upstream's base URL (checked by the caller when it was handed out).
    pub async fn upload_chunk(
        &self,
        url_path: &str,
        body: reqwest::Body,
        len: Option<u64>,
        fwd: &Forward,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut req = self.request(Method::POST, url_path, fwd).body(body);
        if let Some(n) = len {
            req = req.header("content-length", n);
        }
        self.http.once("upload_chunk", req).await
    }
}

/// 429 (`RESOURCE_EXHAUSTED`: quota) means the upstream created nothing.
pub fn refused_outright(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
}

//! The OpenAI (or compatible) upstream client. It holds the provider key (never the
//! client's), sends none of the client's headers (`OpenAI-Organization` and
//! `OpenAI-Project` name the client's account at the gateway, not ours), and retries only
//! what is safe: idempotent calls on 408/429/5xx and connection errors; a create only on
//! 429 or when the connection never opened; an upload never (its body is a stream that
//! has been consumed).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use reqwest::header::HeaderValue;
use reqwest::{Method, StatusCode};

use super::compat::Compat;
use crate::config::Secret;
use crate::metrics::Metrics;
use crate::providers::http::{Forward, HttpUpstream, UpstreamError, UpstreamReply};

pub const FILES_PATH: &str = "/v1/files";
pub const BATCHES_PATH: &str = "/v1/batches";

pub fn file_path(id: &str) -> String {
    format!("{FILES_PATH}/{id}")
}

pub fn content_path(id: &str) -> String {
    format!("{FILES_PATH}/{id}/content")
}

pub fn batch_path(id: &str) -> String {
    format!("{BATCHES_PATH}/{id}")
}

/// One OpenAI-compatible upstream.
pub struct OpenAiClient {
    http: HttpUpstream,
    key: Secret,
    pub compat: Compat,
}

impl OpenAiClient {
    pub fn new(
        name: &str,
        base_url: &str,
        key: Secret,
        timeout: Duration,
        max_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let compat = super::compat::for_base_url(base_url)
            .map_err(|e| anyhow::anyhow!("upstream.{name}: {e}"))?;
        Ok(OpenAiClient {
            http: HttpUpstream::new(name, base_url, timeout, max_attempts, metrics)?,
            key,
            compat,
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
        let mut req = self.http.request(method, path, fwd.query.as_deref());
        if let Ok(mut v) = HeaderValue::from_str(&format!("Bearer {}", self.key.expose())) {
            v.set_sensitive(true);
            req = req.header("authorization", v);
        }
        req
    }

    /// Uploads a batch input file, streaming `body` through as the `file` part. Never
    /// retried: the stream is consumed. An `Err` item in `body` aborts the upload.
    #[tracing::instrument(skip_all, fields(filename))]
    pub async fn upload<S>(&self, filename: &str, body: S) -> Result<UpstreamReply, UpstreamError>
    where
        S: Stream<Item = Result<Bytes, std::io::Error>> + Send + Sync + 'static,
    {
        let part = reqwest::multipart::Part::stream(reqwest::Body::wrap_stream(body))
            .file_name(filename.to_string())
            .mime_str("application/jsonl")
            .map_err(|_| UpstreamError::Lost("bad content type".into()))?;
        let form = reqwest::multipart::Form::new()
            .text("purpose", self.compat.upload_purpose)
            .part("file", part);
        let req = self.request(Method::POST, FILES_PATH, &Forward::default()).multipart(form);
        self.http.once("upload", req).await
    }

    /// Creates a batch. Retried only when nothing can have been created.
    #[tracing::instrument(skip_all, fields(bytes = body.len()))]
    pub async fn create(&self, body: Bytes) -> Result<UpstreamReply, UpstreamError> {
        self.http
            .create("create", refused_outright, || {
                self.request(Method::POST, BATCHES_PATH, &Forward::default())
                    .header("content-type", "application/json")
                    .body(body.clone())
            })
            .await
    }

    /// An idempotent call (retrieve, list, cancel, file metadata, delete).
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

    /// Opens a file's content; the caller streams the body.
    pub async fn content(&self, file_id: &str) -> Result<reqwest::Response, UpstreamError> {
        let path = content_path(file_id);
        self.http
            .stream("file_content", || {
                self.request(Method::GET, &path, &Forward::default())
                    .header("accept", "application/binary")
            })
            .await
    }
}

/// 429 means OpenAI did nothing with the request.
pub fn refused_outright(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
}

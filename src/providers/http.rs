//! HTTP plumbing every provider client shares: one reqwest client per upstream, every
//! call timed into the metrics under the upstream's name, and the retry rules. What is safe
//! to retry is decided here once for all providers: idempotent calls on 408/429/5xx and
//! connection errors; creates only when nothing can have been created (the connection
//! never opened, or the provider's "refused outright" statuses).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{StreamExt, TryStreamExt};
use reqwest::header::{HeaderMap, HeaderName};
use reqwest::{Method, StatusCode};

use super::{FetchError, ResultStream};
use crate::metrics::Metrics;

/// Response headers passed back to clients (a superset over the providers; absent ones
/// are simply not copied).
pub const RETURNED_HEADERS: [&str; 11] = [
    "content-type",
    "request-id",
    "x-request-id",
    "retry-after",
    "retry-after-ms",
    "x-should-retry",
    "content-disposition",
    // Gemini's resumable upload protocol.
    "x-goog-upload-url",
    "x-goog-upload-status",
    "x-goog-upload-size-received",
    "x-goog-upload-chunk-granularity",
];

/// What a surface forwards from the caller's request.
#[derive(Debug, Clone, Default)]
pub struct Forward {
    /// The raw query string (`beta=true`, list cursors), passed on as is.
    pub query: Option<String>,
    /// Only headers the provider's surface chose to pass on.
    pub headers: HeaderMap,
}

/// An upstream answer, any status.
#[derive(Debug, Clone)]
pub struct UpstreamReply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// No usable answer.
#[derive(Debug, Clone, thiserror::Error)]
pub enum UpstreamError {
    /// The connection never opened: nothing reached the upstream.
    #[error("upstream unreachable: {0}")]
    Unreachable(String),
    /// Sent, but no answer in time: the upstream may or may not have acted.
    #[error("upstream timed out")]
    Timeout,
    /// Sent, and the answer was lost or unreadable.
    #[error("upstream answer lost: {0}")]
    Lost(String),
}

/// One upstream's HTTP client: base URL, timeouts, attempts and metrics label.
pub struct HttpUpstream {
    http: reqwest::Client,
    base_url: String,
    /// The upstream's configured name: the `provider` metric label.
    name: String,
    timeout: Duration,
    max_attempts: u32,
    metrics: Arc<Metrics>,
    seq: AtomicU64,
}

impl HttpUpstream {
    pub fn new(
        name: &str,
        base_url: &str,
        timeout: Duration,
        max_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(timeout)
            .pool_idle_timeout(Duration::from_secs(60))
            .build()?;
        Ok(HttpUpstream {
            http,
            base_url: base_url.trim_end_matches('/').to_string(),
            name: name.to_string(),
            timeout,
            max_attempts: max_attempts.max(1),
            metrics,
            seq: AtomicU64::new(0),
        })
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// A request to `base_url + path`, with the caller's query string appended.
    pub fn request(
        &self,
        method: Method,
        path: &str,
        query: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let mut url = format!("{}{}", self.base_url, path);
        if let Some(q) = query.filter(|q| !q.is_empty()) {
            url.push('?');
            url.push_str(q);
        }
        self.http.request(method, url)
    }

    async fn send_once(
        &self,
        op: &str,
        req: reqwest::RequestBuilder,
        total_timeout: Option<Duration>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let start = Instant::now();
        let req = match total_timeout {
            Some(t) => req.timeout(t),
            None => req,
        };
        let result = req.send().await;
        let secs = start.elapsed().as_secs_f64();
        match result {
            Ok(resp) => {
                self.metrics.upstream_call(&self.name, op, resp.status().as_str(), secs);
                Ok(resp)
            }
            Err(e) => {
                self.metrics.upstream_call(&self.name, op, "error", secs);
                Err(classify(&e, &self.name, &self.base_url))
            }
        }
    }

    async fn read(
        &self,
        op: &str,
        resp: reqwest::Response,
    ) -> Result<UpstreamReply, UpstreamError> {
        let status = resp.status();
        let headers = keep_headers(resp.headers());
        let body = resp.bytes().await.map_err(|e| {
            tracing::warn!(operation = op, error = %e, "upstream body unreadable");
            UpstreamError::Lost(e.to_string())
        })?;
        Ok(UpstreamReply { status, headers, body })
    }

    /// A non-idempotent call (a create): retried only when the connection never opened or
    /// the answer's status satisfies `refused_outright` (nothing was created).
    pub async fn create(
        &self,
        op: &str,
        refused_outright: fn(StatusCode) -> bool,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut attempt = 0;
        loop {
            let outcome = match self.send_once(op, build(), Some(self.timeout)).await {
                Ok(resp) => self.read(op, resp).await,
                Err(e) => Err(e),
            };
            attempt += 1;
            let retry = match &outcome {
                Ok(r) => refused_outright(r.status),
                Err(UpstreamError::Unreachable(_)) => true,
                Err(_) => false,
            };
            if !retry || attempt >= self.max_attempts {
                return outcome;
            }
            self.pause(attempt, outcome.as_ref().ok()).await;
        }
    }

    /// An idempotent call, retried on 408, 429, 5xx (and `extra_retry` statuses) and
    /// connection failures with backoff and jitter, honouring `retry-after`.
    pub async fn call(
        &self,
        op: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<UpstreamReply, UpstreamError> {
        let mut attempt = 0;
        loop {
            let outcome = match self.send_once(op, build(), Some(self.timeout)).await {
                Ok(resp) => self.read(op, resp).await,
                Err(e) => Err(e),
            };
            attempt += 1;
            let retry = match &outcome {
                Ok(r) => retryable(r.status),
                Err(_) => true,
            };
            if !retry || attempt >= self.max_attempts {
                return outcome;
            }
            self.pause(attempt, outcome.as_ref().ok()).await;
        }
    }

    /// Opens a download; the caller streams the body. Retried like [`Self::call`] until
    /// the headers arrive; no total timeout (the read timeout applies between chunks).
    pub async fn stream(
        &self,
        op: &str,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut attempt = 0;
        loop {
            let outcome = self.send_once(op, build(), None).await;
            attempt += 1;
            let retry = match &outcome {
                Ok(r) => retryable(r.status()),
                Err(_) => true,
            };
            if !retry || attempt >= self.max_attempts {
                return outcome;
            }
            let hint = outcome.as_ref().ok().map(|r| retry_after(r.headers()));
            self.sleep_backoff(attempt, hint.flatten()).await;
        }
    }

    /// Waits before attempt `attempt + 1`: backoff with jitter, or the reply's
    /// `retry-after` when longer.
    pub async fn pause(&self, attempt: u32, reply: Option<&UpstreamReply>) {
        self.sleep_backoff(attempt, reply.and_then(|r| retry_after(&r.headers))).await;
    }

    async fn sleep_backoff(&self, attempt: u32, hint: Option<Duration>) {
        let wait = backoff(attempt, hint, self.jitter());
        tracing::debug!(attempt, wait_ms = wait.as_millis() as u64, "retrying upstream call");
        tokio::time::sleep(wait).await;
    }

    /// One attempt, never retried: for a request whose body is a stream (an upload).
    pub async fn once(
        &self,
        op: &str,
        req: reqwest::RequestBuilder,
    ) -> Result<UpstreamReply, UpstreamError> {
        let resp = self.send_once(op, req, None).await?;
        self.read(op, resp).await
    }

    /// A fraction in [0, 1) that differs per call, so replicas don't retry in lockstep.
    fn jitter(&self) -> f64 {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let h = xxhash_rust::xxh3::xxh3_64(&[n.to_le_bytes(), nanos.to_le_bytes()].concat());
        (h >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// An opened download as one results stream: a non-2xx answer is [`FetchError::Status`],
/// a body cut off midway [`UpstreamError::Lost`] saying `cut` (what was being read).
pub fn body_stream(resp: reqwest::Response, cut: &'static str) -> Result<ResultStream, FetchError> {
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    Ok(resp.bytes_stream().map_err(move |_| UpstreamError::Lost(cut.into())).boxed())
}

/// One page of a list shaped `{"data": [...], "has_more"}` (Anthropic's and OpenAI's).
#[derive(serde::Deserialize)]
struct Page<T> {
    #[serde(default = "Vec::new")]
    data: Vec<T>,
    #[serde(default)]
    has_more: bool,
}

/// Pages of the list are read up to this many (100 items each), for orphan matching.
const LIST_PAGES: usize = 10;

/// The newest items of a paged list (up to [`LIST_PAGES`] pages of 100): each page asks
/// for the one after the previous page's last item, by its `id`, in the query parameter
/// `cursor` (Anthropic `after_id`, OpenAI `after`). `get` sends one page's request.
pub async fn list_pages<T, F, Fut>(
    cursor: &str,
    id: impl Fn(&T) -> Option<&str>,
    get: F,
) -> Result<Vec<T>, String>
where
    T: serde::de::DeserializeOwned,
    F: Fn(Forward) -> Fut,
    Fut: std::future::Future<Output = Result<UpstreamReply, UpstreamError>>,
{
    let mut after: Option<String> = None;
    let mut found = Vec::new();
    for _ in 0..LIST_PAGES {
        let query = match &after {
            Some(a) => format!("limit=100&{cursor}={a}"),
            None => "limit=100".into(),
        };
        let reply = get(Forward { query: Some(query), ..Default::default() })
            .await
            .map_err(|e| e.to_string())?;
        if !reply.status.is_success() {
            return Err(format!("upstream answered HTTP {} to list", reply.status.as_u16()));
        }
        let page: Page<T> = serde_json::from_slice(&reply.body).map_err(|e| e.to_string())?;
        after = page.data.last().and_then(&id).map(str::to_string);
        found.extend(page.data);
        if !page.has_more || after.is_none() {
            break;
        }
    }
    Ok(found)
}

/// 429 always means the upstream did nothing with the request.
pub fn too_many_requests(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS
        || status.as_u16() == 529
        || status.is_server_error()
        || status == StatusCode::REQUEST_TIMEOUT
}

/// Exponential backoff from 250 ms, capped at 8 s, with full jitter over its upper half;
/// a `retry-after` hint wins when longer (capped at 60 s).
pub fn backoff(attempt: u32, hint: Option<Duration>, jitter: f64) -> Duration {
    let base = 250u64.saturating_mul(1 << attempt.min(5)).min(8_000);
    let jittered = Duration::from_millis(base / 2 + (jitter * (base / 2) as f64) as u64);
    match hint {
        Some(h) => h.min(Duration::from_secs(60)).max(jittered),
        None => jittered,
    }
}

/// `retry-after-ms`, or `retry-after` in seconds.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let num = |name: &str| headers.get(name)?.to_str().ok()?.trim().parse::<f64>().ok();
    if let Some(ms) = num("retry-after-ms").filter(|v| v.is_finite() && *v >= 0.0) {
        return Some(Duration::from_millis(ms as u64));
    }
    // Clamped first: `from_secs_f64` panics past `Duration::MAX` (e.g. `retry-after: 1e300`).
    num("retry-after")
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| Duration::from_secs_f64(v.min(u32::MAX as f64)))
}

fn keep_headers(from: &HeaderMap) -> HeaderMap {
    let mut out = HeaderMap::new();
    for name in RETURNED_HEADERS {
        if let Some(v) = from.get(name) {
            out.insert(HeaderName::from_static(name), v.clone());
        }
    }
    out
}

/// The upstream's name and its base URL without credentials say which one failed; never
/// the URL's query or anything header-derived.
fn classify(e: &reqwest::Error, name: &str, base_url: &str) -> UpstreamError {
    // Never echo the URL's query or anything header-derived; the message is enough.
    if e.is_connect() {
        UpstreamError::Unreachable(format!(
            "`{name}` at {}: connection failed",
            crate::telemetry::ledger_location(base_url)
        ))
    } else if e.is_timeout() {
        UpstreamError::Timeout
    } else {
        let kind = if e.is_body() || e.is_decode() { "body interrupted" } else { "request failed" };
        UpstreamError::Lost(kind.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn backoff_grows_caps_and_honours_retry_after() {
        assert!(backoff(1, None, 0.0) >= Duration::from_millis(250));
        assert!(backoff(10, None, 0.999) <= Duration::from_millis(8_000));
        assert_eq!(backoff(1, Some(Duration::from_secs(3)), 0.5), Duration::from_secs(3));
        assert_eq!(backoff(1, Some(Duration::from_secs(600)), 0.5), Duration::from_secs(60));
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("7"));
        assert_eq!(retry_after(&h), Some(Duration::from_secs(7)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500"));
        assert_eq!(retry_after(&h), Some(Duration::from_millis(1500)));
    }

    #[test]
    fn an_absurd_retry_after_is_capped_not_a_panic() {
        let mut h = HeaderMap::new();
        h.insert("retry-after", HeaderValue::from_static("1e300"));
        let hint = retry_after(&h);
        assert_eq!(backoff(1, hint, 0.5), Duration::from_secs(60));
    }
}

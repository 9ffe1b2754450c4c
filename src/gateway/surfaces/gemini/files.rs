//! The File API as the google-genai SDK speaks it. A resumable upload is started upstream
//! and its `x-goog-upload-url` replaced by one on the gateway carrying our own upload id
//! (chunk requests carry no key: the id is the capability, derived from the upstream's own
//! unguessable one). Each chunk is relayed to the upstream as a stream while its JSONL
//! lines are priced on the way through: only a line that straddles two chunks is copied,
//! never the file. A bad line cuts the relayed chunk, so the upstream never finalizes an
//! input the gateway could not price. The finished file is recorded with its priced
//! summary, owned by the uploading project; a batch's results file is owned by the
//! batch's project. Another project's file is a 404.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::Value;

use super::batches::{json, owned, owned_file};
use super::{GoogleError, Surface, project, query_param};
use crate::gateway::body;
use crate::gateway::error::ApiError;
use crate::ledger::files::{FileRecord, FilesQuery};
use crate::providers::gemini::client::{API_VERSION, UPLOAD_HEADERS};
use crate::providers::gemini::estimate::{FileSummary, shape, thresholds};
use crate::providers::{Forward, UpstreamReply};

/// Largest single JSONL line (one request) of an input file.
const MAX_LINE: usize = 64 * 1024 * 1024;
/// Largest input file (the File API's per-file cap).
const MAX_FILE: u64 = 2 * 1024 * 1024 * 1024;

/// An upload in progress.
pub struct Upload {
    project: String,
    /// The upstream's upload URL, relative to its base URL.
    upstream: String,
    display_name: String,
    pricing: Arc<Mutex<Lines>>,
}

/// The pricing state of an upload: lines so far and the tail of the last chunk.
struct Lines {
    summary: FileSummary,
    partial: Vec<u8>,
    line_no: u64,
    received: u64,
    thresholds: Vec<u64>,
    failed: Option<String>,
}

impl Lines {
    fn line(&mut self, line: &[u8]) -> Result<(), String> {
        self.line_no += 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            return Ok(());
        }
        let n = self.line_no;
        let v: Value =
            serde_json::from_slice(line).map_err(|e| format!("line {n}: not JSON: {e}"))?;
        let req = v.get("request").ok_or_else(|| format!("line {n}: `request` is required"))?;
        let key = match v.get("key") {
            Some(Value::String(k)) => k.clone(),
            None | Some(Value::Null) => (self.summary.requests).to_string(),
            Some(_) => return Err(format!("line {n}: `key` must be a string")),
        };
        let s = shape(req).map_err(|e| format!("line {n}: request.{e}"))?;
        self.summary.add(&key, &s, &self.thresholds);
        Ok(())
    }

    /// Prices the complete lines of `chunk`, keeping its unfinished tail.
    fn feed(&mut self, chunk: &[u8]) -> Result<(), String> {
        self.received += chunk.len() as u64;
        let mut rest = chunk;
        while let Some(i) = memchr::memchr(b'\n', rest) {
            if self.partial.is_empty() {
                self.line(&rest[..i])?;
            } else {
                self.partial.extend_from_slice(&rest[..i]);
                let whole = std::mem::take(&mut self.partial);
                self.line(&whole)?;
            }
            rest = &rest[i + 1..];
        }
        if self.partial.len() + rest.len() > MAX_LINE {
            return Err(format!("line {}: longer than {MAX_LINE} bytes", self.line_no + 1));
        }
        self.partial.extend_from_slice(rest);
        Ok(())
    }

    fn finish(&mut self) -> Result<(), String> {
        let tail = std::mem::take(&mut self.partial);
        self.line(&tail)
    }
}

fn header<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok())
}

/// Only the resumable-upload headers travel upstream.
fn upload_forward(h: &HeaderMap) -> Forward {
    let mut fwd = Forward::default();
    for name in UPLOAD_HEADERS {
        if let Some(v) = h.get(name) {
            fwd.headers.insert(name, v.clone());
        }
    }
    fwd
}

fn bad_gateway(msg: &str) -> GoogleError {
    GoogleError(ApiError::UpstreamFailed(crate::providers::UpstreamError::Lost(msg.into())))
}

/// `POST /upload/{v}/files` with `X-Goog-Upload-Command: start`.
pub async fn start(s: &Surface, req: Request) -> Result<Response, GoogleError> {
    let (parts, raw) = req.into_parts();
    let project = project(s, &parts.headers, &parts.uri)?;
    let h = &parts.headers;
    if header(h, "x-goog-upload-protocol") != Some("resumable")
        || header(h, "x-goog-upload-command") != Some("start")
    {
        return Err(GoogleError::invalid(
            "upload: only the resumable protocol is served (X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start)",
        ));
    }
    if let Some(n) =
        header(h, "x-goog-upload-header-content-length").and_then(|v| v.parse::<u64>().ok())
    {
        if n > MAX_FILE {
            return Err(GoogleError(ApiError::TooLarge(format!(
                "file: {n} bytes is above the 2 GB limit"
            ))));
        }
    }
    let body = body::read_limited(h, raw, 1024 * 1024).await?;
    let meta: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let display_name = meta
        .pointer("/file/displayName")
        .or_else(|| meta.pointer("/file/display_name"))
        .and_then(Value::as_str)
        .or_else(|| header(h, "x-goog-upload-file-name"))
        .unwrap_or("upload")
        .to_string();
    let reply = s.gemini.client.upload_start(body, &upload_forward(h)).await?;
    if !reply.status.is_success() {
        return Err(GoogleError(ApiError::upstream(reply)));
    }
    let url = header(&reply.headers, "x-goog-upload-url")
        .ok_or_else(|| bad_gateway("upstream started no upload"))?;
    // The key goes only to the configured upstream: an upload URL elsewhere is refused.
    let upstream = url
        .strip_prefix(s.gemini.client.base_url())
        .filter(|p| p.starts_with('/'))
        .ok_or_else(|| bad_gateway("upstream upload URL is not on the upstream"))?
        .to_string();
    let n = s.app.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let t = jiff::Timestamp::now().as_nanosecond();
    let id = format!("{:032x}", xxhash_rust::xxh3::xxh3_128(format!("{t}/{n}/{url}").as_bytes()));
    let version = parts.uri.path().split('/').nth(2).unwrap_or(API_VERSION).to_string();
    let ours = format!(
        "{}{}/upload/{version}/files?upload_id={id}&upload_protocol=resumable",
        s.app.settings.public_url, s.prefix
    );
    let lines = Lines {
        summary: FileSummary::default(),
        partial: Vec::new(),
        line_no: 0,
        received: 0,
        thresholds: thresholds(&s.app.pricing, s.name(), s.app.clock.now()),
        failed: None,
    };
    let up = Upload { project, upstream, display_name, pricing: Arc::new(Mutex::new(lines)) };
    s.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(id, up);
    let mut resp = (StatusCode::OK, reply.body).into_response();
    let rh = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&ours) {
        rh.insert("x-goog-upload-url", v.clone());
        rh.insert("x-goog-upload-control-url", v);
    }
    rh.insert("x-goog-upload-status", HeaderValue::from_static("active"));
    for name in ["x-goog-upload-chunk-granularity", "content-type"] {
        if let Some(v) = reply.headers.get(name) {
            rh.insert(name, v.clone());
        }
    }
    Ok(resp)
}

/// A chunk: priced as it streams to the upstream; on `finalize`, the file is recorded.
pub async fn chunk(s: &Surface, id: &str, req: Request) -> Result<Response, GoogleError> {
    let taken = s.uploads.lock().unwrap_or_else(|e| e.into_inner()).remove(id);
    let Some(up) = taken else {
        return Err(GoogleError::not_found("upload", id));
    };
    let (parts, raw) = req.into_parts();
    let command =
        header(&parts.headers, "x-goog-upload-command").unwrap_or("").to_ascii_lowercase();
    let finalize = command.contains("finalize");
    let len = header(&parts.headers, "content-length").and_then(|v| v.parse::<u64>().ok());
    let pricing = up.pricing.clone();
    let (p2, p3) = (pricing.clone(), pricing.clone());
    // Each piece is priced before it is passed on; the last line when the body ends.
    let data = raw.into_data_stream().map(move |piece| {
        let piece = piece.map_err(|e| std::io::Error::other(e.to_string()))?;
        let mut l = p2.lock().unwrap_or_else(|e| e.into_inner());
        if l.received + piece.len() as u64 > MAX_FILE {
            l.failed = Some("file: above the 2 GB limit".into());
        } else if let Err(e) = l.feed(&piece) {
            l.failed = Some(e);
        }
        match &l.failed {
            Some(e) => Err(std::io::Error::other(e.clone())),
            None => Ok::<Bytes, std::io::Error>(piece),
        }
    });
    let tail = futures_util::stream::once(async move {
        let mut l = p3.lock().unwrap_or_else(|e| e.into_inner());
        if finalize && l.failed.is_none() {
            if let Err(e) = l.finish() {
                l.failed = Some(e);
            }
        }
        match &l.failed {
            Some(e) => Err(std::io::Error::other(e.clone())),
            None => Ok(Bytes::new()),
        }
    });
    let body = reqwest::Body::wrap_stream(data.chain(tail));
    let outcome = s
        .gemini
        .client
        .upload_chunk(&up.upstream, body, len, &upload_forward(&parts.headers))
        .await;
    let failed = pricing.lock().unwrap_or_else(|e| e.into_inner()).failed.clone();
    if let Some(e) = failed {
        // `cancelled`: the SDK stops at once and reports this answer, instead of resending
        // the chunk to an upload that no longer exists.
        let err = GoogleError::invalid(format!("file `{}`: {e}", up.display_name));
        let mut resp = err.into_response();
        resp.headers_mut().insert("x-goog-upload-status", HeaderValue::from_static("cancelled"));
        return Ok(resp);
    }
    let reply = outcome?;
    let status = header(&reply.headers, "x-goog-upload-status").unwrap_or("").to_string();
    if reply.status.is_success() && status == "final" {
        record(s, &up, &reply).await?;
    } else if reply.status.is_success() {
        s.uploads.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), up);
    }
    let mut resp = (reply.status, reply.body.clone()).into_response();
    for name in ["x-goog-upload-status", "x-goog-upload-size-received", "content-type"] {
        if let Some(v) = reply.headers.get(name) {
            resp.headers_mut().insert(name, v.clone());
        }
    }
    Ok(resp)
}

/// Records a finished upload as the uploading project's, with its priced summary.
async fn record(s: &Surface, up: &Upload, reply: &UpstreamReply) -> Result<(), GoogleError> {
    let v: Value = serde_json::from_slice(&reply.body)
        .map_err(|_| bad_gateway("upload answer is not JSON"))?;
    let name = v
        .pointer("/file/name")
        .and_then(Value::as_str)
        .ok_or_else(|| bad_gateway("upload answer names no file"))?;
    let rec = {
        let l = up.pricing.lock().unwrap_or_else(|e| e.into_inner());
        FileRecord {
            provider: s.name().to_string(),
            file_id: name.strip_prefix("files/").unwrap_or(name).to_string(),
            project: up.project.clone(),
            purpose: "batch".into(),
            filename: up.display_name.clone(),
            bytes: l.received,
            lines: l.summary.requests,
            created_at: s.app.clock.now(),
            estimate_json: serde_json::to_string(&l.summary).ok(),
            batch_id: None,
        }
    };
    s.app.ledger.files().record_file(&rec).await?;
    tracing::info!(project = %rec.project, file = %rec.file_id, bytes = rec.bytes, requests = rec.lines, "input file priced and recorded");
    Ok(())
}

/// `GET /{v}/files/{id}:download` and `/download/{v}/files/{id}:download`: the caller's
/// own file (a batch's results), streamed through.
pub async fn download(
    s: &Surface,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let id = id.strip_prefix("files/").unwrap_or(id);
    if owned_file(s, &project, id).await.is_err() {
        // Not seen yet: a results file is `files/batch-{batch id}`.
        let batch = id.strip_prefix("batch-").ok_or_else(|| GoogleError::not_found("file", id))?;
        owned(s, &project, batch)
            .await
            .map_err(|_| GoogleError::not_found("file", &format!("files/{id}")))?;
    }
    let upstream = s.gemini.client.download(id).await?;
    let status = upstream.status();
    if !status.is_success() {
        let headers = upstream.headers().clone();
        let body = upstream.bytes().await.unwrap_or_default();
        return Err(GoogleError(ApiError::upstream(UpstreamReply { status, headers, body })));
    }
    let mut resp = Response::new(Body::from_stream(upstream.bytes_stream()));
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

/// `GET` or `DELETE /{v}/files/{id}`: the caller's own file, relayed.
pub async fn get(
    s: &Surface,
    id: &str,
    headers: &HeaderMap,
    uri: &Uri,
    method: Method,
) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let rec = owned_file(s, &project, id).await?;
    let path = format!("/{API_VERSION}/files/{}", rec.file_id);
    let op = if method == Method::DELETE { "file_delete" } else { "file_get" };
    let reply = s.gemini.client.call(op, method.clone(), &path, &Forward::default()).await?;
    if !reply.status.is_success() {
        return Err(GoogleError(ApiError::upstream(reply)));
    }
    if method == Method::DELETE {
        s.app.ledger.files().delete_file(s.name(), &rec.file_id).await?;
    }
    let v: Value = serde_json::from_slice(&reply.body).unwrap_or(Value::Object(Default::default()));
    Ok(json(reply.status, &v))
}

/// `GET /{v}/files`: the caller's files from the ledger, newest first.
pub async fn list(s: &Surface, headers: &HeaderMap, uri: &Uri) -> Result<Response, GoogleError> {
    let project = project(s, headers, uri)?;
    let limit: u32 = query_param(uri, "pageSize")
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=1000).contains(n))
        .unwrap_or(50);
    let after = query_param(uri, "pageToken").filter(|t| !t.is_empty());
    let q = FilesQuery {
        provider: s.name(),
        project: &project,
        after,
        limit: limit + 1,
        ascending: false,
        purpose: None,
    };
    let mut recs = s.app.ledger.files().project_files(q).await?;
    let more = recs.len() > limit as usize;
    recs.truncate(limit as usize);
    let files: Vec<Value> = recs
        .iter()
        .map(|f| {
            serde_json::json!({
                "name": format!("files/{}", f.file_id),
                "displayName": f.filename,
                "sizeBytes": f.bytes.to_string(),
                "createTime": f.created_at.to_string(),
                "state": "ACTIVE",
                "source": if f.purpose == "batch" { "UPLOADED" } else { "GENERATED" },
            })
        })
        .collect();
    let mut body = serde_json::json!({ "files": files });
    if more {
        if let Some(last) = recs.last() {
            body["nextPageToken"] = Value::String(last.file_id.clone());
        }
    }
    Ok(json(StatusCode::OK, &body))
}

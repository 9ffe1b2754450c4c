//! The File API as the SDK speaks it: the resumable upload protocol (`start` answers with
//! `x-goog-upload-url`, whose `upload_id` is the capability the chunk requests carry
//! instead of a key; `upload`, `upload, finalize` and `query` follow), get, list
//! (`pageSize`, `pageToken`), delete, and downloads of generated results files
//! (`files/batch-{id}`) by both URL forms.

use std::collections::HashMap;

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use jiff::{SignedDuration, Timestamp};
use serde_json::{Value, json};

use super::batches::{results_lines, results_size, rfc3339_nanos};
use super::error::ApiError;
use super::ids::{file_id, upload_id};
use super::surface::{AppState, Pending, Stored};
use crate::providers::gemini::wire::{File, FileEnvelope, FileState, ListFiles};
use crate::simulator::engine::order::{Lines, stream};

/// Files are kept 48 hours.
const FILE_LIFETIME: SignedDuration = SignedDuration::from_hours(48);

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim)
}

fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("File {name} not found."))
}

/// Either spelling of a start-body field.
fn pick(file: &Value, camel: &str, snake: &str) -> Option<Value> {
    file.get(camel).or_else(|| file.get(snake)).cloned()
}

/// `POST /upload/{v}/files` with `X-Goog-Upload-Command: start`.
pub fn start(
    app: &AppState,
    version: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<Response, ApiError> {
    if header(headers, "x-goog-upload-protocol") != Some("resumable")
        || header(headers, "x-goog-upload-command") != Some("start")
    {
        return Err(ApiError::InvalidArgument(
            "Only the resumable upload protocol is supported: X-Goog-Upload-Protocol: resumable, X-Goog-Upload-Command: start".into(),
        ));
    }
    let meta: Value = if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(body)
            .map_err(|e| ApiError::InvalidArgument(format!("Invalid JSON payload received. {e}")))?
    };
    let file = meta.get("file").cloned().unwrap_or(json!({}));
    let declared = header(headers, "x-goog-upload-header-content-length")
        .and_then(|v| v.parse::<u64>().ok())
        .or_else(|| {
            pick(&file, "sizeBytes", "size_bytes")
                .and_then(|v| v.as_u64().or_else(|| v.as_str()?.parse().ok()))
        })
        .ok_or_else(|| {
            ApiError::InvalidArgument("X-Goog-Upload-Header-Content-Length is required".into())
        })?;
    let mime_type =
        header(headers, "x-goog-upload-header-content-type").map(str::to_string).or_else(|| {
            pick(&file, "mimeType", "mime_type").and_then(|v| v.as_str().map(str::to_string))
        });
    let name = pick(&file, "name", "name").and_then(|v| v.as_str().map(str::to_string));
    if let Some(n) = &name {
        let id = n.strip_prefix("files/").unwrap_or(n);
        if id.is_empty()
            || id.len() > 40
            || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ApiError::InvalidArgument(format!(
                "Invalid file name '{n}': ids are up to 40 of [a-z0-9-]"
            )));
        }
    }
    let pending = Pending {
        declared,
        mime_type,
        display_name: pick(&file, "displayName", "display_name")
            .and_then(|v| v.as_str().map(str::to_string)),
        name,
        received: BytesMut::new(),
    };
    let uid = {
        let mut files = app.files();
        let uid = upload_id(app.seed, files.next_upload);
        files.next_upload += 1;
        files.uploads.insert(uid.clone(), pending);
        uid
    };
    let url = format!(
        "{}/gemini/upload/{version}/files?upload_id={uid}&upload_protocol=resumable",
        app.base_url
    );
    let mut resp = ().into_response();
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&url) {
        h.insert("x-goog-upload-url", v.clone());
        h.insert("x-goog-upload-control-url", v);
    }
    h.insert("x-goog-upload-status", HeaderValue::from_static("active"));
    h.insert("x-goog-upload-chunk-granularity", HeaderValue::from_static("8388608"));
    Ok(resp)
}

/// A chunk request to an upload URL: `upload`, `upload, finalize`, `finalize` or `query`.
pub fn chunk(
    app: &AppState,
    version: &str,
    uid: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let command = header(headers, "x-goog-upload-command").unwrap_or("").to_ascii_lowercase();
    let words: Vec<&str> = command.split(',').map(str::trim).collect();
    let mut files = app.files();
    let Some(p) = files.uploads.get_mut(uid) else {
        return Err(ApiError::NotFound("The upload session was not found or has finished.".into()));
    };
    let status = |resp: &mut Response, s: &'static str, received: usize| {
        resp.headers_mut().insert("x-goog-upload-status", HeaderValue::from_static(s));
        resp.headers_mut().insert("x-goog-upload-size-received", HeaderValue::from(received));
    };
    if words == ["query"] {
        let mut resp = ().into_response();
        status(&mut resp, "active", p.received.len());
        return Ok(resp);
    }
    if !words.contains(&"upload") && !words.contains(&"finalize") {
        return Err(ApiError::InvalidArgument(format!(
            "Unknown X-Goog-Upload-Command '{command}'"
        )));
    }
    if words.contains(&"upload") {
        let offset = header(headers, "x-goog-upload-offset").and_then(|v| v.parse::<usize>().ok());
        if offset != Some(p.received.len()) {
            return Err(ApiError::InvalidArgument(format!(
                "X-Goog-Upload-Offset must be {} (the bytes received so far)",
                p.received.len()
            )));
        }
        if (p.received.len() + body.len()) as u64 > p.declared {
            return Err(ApiError::InvalidArgument(format!(
                "The upload is larger than the declared {} bytes",
                p.declared
            )));
        }
        p.received.extend_from_slice(&body);
    }
    if !words.contains(&"finalize") {
        let mut resp = ().into_response();
        status(&mut resp, "active", p.received.len());
        return Ok(resp);
    }
    if p.received.len() as u64 != p.declared {
        return Err(ApiError::InvalidArgument(format!(
            "Finalized after {} of the declared {} bytes",
            p.received.len(),
            p.declared
        )));
    }
    let Some(p) = files.uploads.remove(uid) else { return Err(ApiError::Internal) };
    let seq = files.stored.reserve();
    let id = match &p.name {
        Some(n) => n.strip_prefix("files/").unwrap_or(n).to_string(),
        None => file_id(app.seed, seq),
    };
    if files.stored.contains(&id) {
        return Err(ApiError::InvalidArgument(format!("File files/{id} already exists.")));
    }
    let now = app.clock.now();
    let file = File {
        name: format!("files/{id}"),
        display_name: p.display_name,
        mime_type: p.mime_type,
        size_bytes: p.declared,
        create_time: Some(rfc3339_nanos(now)),
        update_time: Some(rfc3339_nanos(now)),
        expiration_time: Some(rfc3339_nanos(now.saturating_add(FILE_LIFETIME).unwrap_or(now))),
        sha256_hash: None,
        uri: Some(format!("{}/gemini/{version}/files/{id}", app.base_url)),
        download_uri: None,
        state: Some(FileState::Active),
        source: Some("UPLOADED".into()),
    };
    files.stored.insert_at(seq, id, Stored { file: file.clone(), bytes: p.received.freeze() });
    drop(files);
    let body = serde_json::to_vec(&FileEnvelope { file }).unwrap_or_default();
    let mut resp = ([("content-type", "application/json; charset=UTF-8")], body).into_response();
    status(&mut resp, "final", p.declared as usize);
    Ok(resp)
}

/// A live file: uploaded (until its expiration) or a finished batch's results.
pub fn get(app: &AppState, version: &str, id: &str) -> Result<File, ApiError> {
    let now = app.clock.now();
    if let Some(batch) = id.strip_prefix("batch-") {
        if app.files().deleted_results.contains(id) {
            return Err(not_found(&format!("files/{id}")));
        }
        let (size, at) = results_size(app, batch).map_err(|_| not_found(&format!("files/{id}")))?;
        return Ok(File {
            name: format!("files/{id}"),
            display_name: None,
            mime_type: Some("application/jsonl".into()),
            size_bytes: size,
            create_time: Some(rfc3339_nanos(at)),
            update_time: Some(rfc3339_nanos(at)),
            expiration_time: Some(rfc3339_nanos(at.saturating_add(FILE_LIFETIME).unwrap_or(at))),
            sha256_hash: None,
            uri: Some(format!("{}/gemini/{version}/files/{id}", app.base_url)),
            download_uri: Some(format!(
                "{}/gemini/download/{version}/files/{id}:download?alt=media",
                app.base_url
            )),
            state: Some(FileState::Active),
            source: Some("GENERATED".into()),
        });
    }
    let files = app.files();
    files
        .stored
        .get(id)
        .filter(|s| expired(&s.file, now).is_none_or(|e| !e))
        .map(|s| s.file.clone())
        .ok_or_else(|| not_found(&format!("files/{id}")))
}

fn expired(f: &File, now: Timestamp) -> Option<bool> {
    let t: Timestamp = f.expiration_time.as_deref()?.parse().ok()?;
    Some(t <= now)
}

/// `GET {v}/files?pageSize=&pageToken=`: uploaded files, newest first.
pub fn list(app: &AppState, q: &HashMap<String, String>) -> Result<ListFiles, ApiError> {
    let size = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None | Some(Ok(0)) => 10,
        Some(Ok(n)) => n.min(100),
        Some(Err(_)) => {
            return Err(ApiError::InvalidArgument(
                "Invalid value at 'page_size' (TYPE_INT32)".into(),
            ));
        }
    };
    let now = app.clock.now();
    let files = app.files();
    let before = match q.get("pageToken").filter(|t| !t.is_empty()) {
        None => None,
        Some(t) => Some(
            files
                .stored
                .seq(t)
                .ok_or_else(|| ApiError::InvalidArgument("Invalid page token.".into()))?,
        ),
    };
    let mut out: Vec<&Stored> = files
        .stored
        .list(before, false)
        .filter(|s| expired(&s.file, now).is_none_or(|e| !e))
        .take(size + 1)
        .collect();
    let more = out.len() > size;
    out.truncate(size);
    let next_page_token = more
        .then(|| out.last().map(|s| s.file.name.trim_start_matches("files/").to_string()))
        .flatten();
    Ok(ListFiles { files: out.into_iter().map(|s| s.file.clone()).collect(), next_page_token })
}

pub fn delete(app: &AppState, id: &str) -> Result<Value, ApiError> {
    if id.starts_with("batch-") {
        get(app, "v1beta", id)?;
        app.files().deleted_results.insert(id.to_string());
        return Ok(json!({}));
    }
    app.files().stored.remove(id).ok_or_else(|| not_found(&format!("files/{id}")))?;
    Ok(json!({}))
}

/// `files/{id}:download?alt=media`: only generated (results) files can be downloaded.
pub fn download(app: &AppState, id: &str) -> Result<Response, ApiError> {
    let Some(batch) = id.strip_prefix("batch-") else {
        if app.files().stored.contains(id) {
            return Err(ApiError::InvalidArgument(
                "Only generated files can be downloaded; uploaded files cannot.".into(),
            ));
        }
        return Err(not_found(&format!("files/{id}")));
    };
    if app.files().deleted_results.contains(id) {
        return Err(not_found(&format!("files/{id}")));
    }
    let (lines, _) = results_lines(app, batch).map_err(|_| not_found(&format!("files/{id}")))?;
    let cut = app.faults.cut_results();
    let body = Body::from_stream(stream(Lines::new(lines, cut, app.stats.clone())));
    let mut resp = body.into_response();
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

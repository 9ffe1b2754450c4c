//! The Files API: uploads (kept with their checked batch input), the output and error
//! files batches write (registered when a batch is first seen done, their lines generated
//! on download), list with `after` / `limit` / `order` / `purpose`, retrieve, content,
//! delete. Files are found by id through a hash map and listed through an ordered map.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use super::ids::file_id;
use super::results::FileLines;
use super::store::{Content, FileEntry, not_found};
use super::surface::AppState;
use super::upload::{is_batch, parse_batch_file, read_upload};
use crate::providers::openai::wire::{FileDeleted, FileObject, ListPage};
use crate::simulator::engine::order::{Lines, stream};

/// Batch files expire after 30 days unless the upload says otherwise.
const BATCH_FILE_SECS: i64 = 30 * 86_400;

/// `POST /v1/files`.
pub async fn upload(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<FileObject>, ApiError> {
    let ct = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok());
    let form = read_upload(body, ct).await?;
    let batch = if is_batch(&form.purpose) {
        if !form.filename.ends_with(".jsonl") {
            return Err(ApiError::invalid(
                format!("Invalid file format for Batch API: '{}'. Must be .jsonl", form.filename),
                Some("file"),
            ));
        }
        let (content, app2) = (form.content.clone(), app.clone());
        let parsed = tokio::task::spawn_blocking(move || parse_batch_file(&content, &app2.models))
            .await
            .map_err(|_| ApiError::Internal)??;
        Some(Arc::new(parsed))
    } else {
        None
    };
    let now = app.clock.now().as_second();
    let mut files = app.files();
    let seq = files.stored.reserve();
    let id = file_id(app.seed, "upload", seq);
    let expires = match (form.expires_after_secs, batch.is_some()) {
        (Some(s), _) => Some(now + s as i64),
        (None, true) => Some(now + BATCH_FILE_SECS),
        (None, false) => None,
    };
    let object = FileObject {
        id,
        object: "file".into(),
        bytes: form.content.len() as u64,
        created_at: now,
        filename: form.filename,
        purpose: form.purpose,
        status: Some("processed".into()),
        expires_at: expires,
        status_details: None,
    };
    let content = Content::Upload { bytes: form.content, batch };
    files.stored.insert_at(seq, object.id.clone(), FileEntry { object: object.clone(), content });
    Ok(Json(object))
}

/// `GET /v1/files/{id}`.
pub async fn retrieve(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FileObject>, ApiError> {
    let now = app.clock.now();
    Ok(Json(app.files().get(&id, now)?.object.clone()))
}

/// `DELETE /v1/files/{id}`.
pub async fn delete(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FileDeleted>, ApiError> {
    let now = app.clock.now();
    let mut files = app.files();
    files.get(&id, now)?;
    files.stored.remove(&id);
    files.deleted.insert(id.clone());
    Ok(Json(FileDeleted { id, object: "file".into(), deleted: true }))
}

/// `GET /v1/files?after=&limit=&order=&purpose=`: newest first unless `order=asc`.
pub async fn list(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ListPage<FileObject>>, ApiError> {
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => 10_000,
        Some(Ok(n)) if (1..=10_000).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid 'limit': expected an integer between 1 and 10000.",
                Some("limit"),
            ));
        }
    };
    let asc = match q.get("order").map(String::as_str) {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid 'order': expected 'asc' or 'desc'.",
                Some("order"),
            ));
        }
    };
    let purpose = q.get("purpose");
    let now = app.clock.now();
    let files = app.files();
    let after = match q.get("after") {
        None => None,
        Some(a) => Some(files.stored.seq(a).ok_or_else(|| {
            ApiError::invalid(format!("Invalid 'after': no file with id '{a}'."), Some("after"))
        })?),
    };
    let mut data: Vec<FileObject> = files
        .stored
        .list(after, asc)
        .filter(|e| e.live(now))
        .filter(|e| purpose.is_none_or(|p| *p == e.object.purpose))
        .take(limit + 1)
        .map(|e| e.object.clone())
        .collect();
    let has_more = data.len() > limit;
    data.truncate(limit);
    Ok(Json(ListPage {
        object: "list".into(),
        first_id: data.first().map(|f| f.id.clone()),
        last_id: data.last().map(|f| f.id.clone()),
        has_more,
        data,
    }))
}

/// `GET /v1/files/{id}/content`: uploaded bytes as sent, or a batch file streamed.
pub async fn content(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let now = app.clock.now();
    let (bytes, generated, created) = {
        let files = app.files();
        let e = files.get(&id, now)?;
        match &e.content {
            Content::Upload { bytes, .. } => (Some(bytes.clone()), None, e.object.created_at),
            Content::Generated { batch_id, kind } => {
                (None, Some((batch_id.clone(), *kind)), e.object.created_at)
            }
        }
    };
    let body = match (bytes, generated) {
        (Some(b), _) => Body::from(b),
        (None, Some((batch_id, kind))) => {
            let (src, endpoint) = {
                let (reg, now) = app.batches();
                let b = reg.get(&batch_id).map_err(|_| not_found(&id))?;
                let endpoint = b.meta.endpoint;
                (reg.results(&batch_id, now).map_err(|_| not_found(&id))?, endpoint)
            };
            let lines = FileLines::new(src, app.seed, kind, endpoint, app.output, created);
            let cut = app.faults.cut_results();
            Body::from_stream(stream(Lines::new(lines, cut, app.stats.clone())))
        }
        (None, None) => return Err(not_found(&id)),
    };
    let mut resp = body.into_response();
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

//! `/v1/files`: uploads validated and priced while they stream through to the upstream
//! (the file is never held: each chunk is checked, then forwarded), and the caller's own
//! files listed, described, downloaded and deleted from the ledger's records.

use axum::body::Body;
use axum::extract::{Multipart, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use reqwest::Method;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{OpenAiError, Surface};
use crate::gateway::auth;
use crate::gateway::error::ApiError;
use crate::ledger::files::{FileRecord, FilesQuery};
use crate::metrics::{RejectReason, UNKNOWN_PROJECT};
use crate::providers::Forward;
use crate::providers::openai::batchfile::{Checker, FileError};
use crate::providers::openai::client::file_path;
use crate::providers::openai::wire::{PURPOSE_BATCH, PURPOSE_BATCH_OUTPUT};

/// Chunks in flight between the client's upload and the upstream's.
const PIPE_DEPTH: usize = 8;

/// The File object of a recorded file.
pub fn file_object(f: &FileRecord) -> Value {
    json!({
        "id": f.file_id,
        "object": "file",
        "bytes": f.bytes,
        "created_at": f.created_at.as_second(),
        "filename": f.filename,
        "purpose": f.purpose,
        "status": "processed",
        "expires_at": null,
        "status_details": null,
    })
}

/// The caller's own file, or 404 exactly as if it did not exist.
pub async fn owned_file(s: &Surface, project: &str, id: &str) -> Result<FileRecord, OpenAiError> {
    match s.app.ledger.files().file(s.name(), id).await? {
        Some(f) if f.project == project => Ok(f),
        _ => Err(OpenAiError::not_found("File", id)),
    }
}

fn file_error(e: FileError) -> OpenAiError {
    match e {
        FileError::TooLarge { .. } => {
            OpenAiError { inner: ApiError::TooLarge(e.to_string()), param: Some("file".into()) }
        }
        other => OpenAiError::invalid(other.param().unwrap_or("file"), other.to_string()),
    }
}

/// `POST /v1/files`: multipart `purpose=batch` and `file`.
pub async fn upload(
    State(s): State<Surface>,
    headers: HeaderMap,
    multipart: Multipart,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers).inspect_err(|_| {
        s.app.metrics.rejected(UNKNOWN_PROJECT, RejectReason::Unauthenticated);
    })?;
    let result = upload_file(&s, &project, multipart).await;
    if let Err(e) = &result {
        if let Some(r) = e.inner.reject_reason() {
            s.app.metrics.rejected(&project, r);
        }
    }
    result
}

async fn upload_file(
    s: &Surface,
    project: &str,
    mut multipart: Multipart,
) -> Result<Response, OpenAiError> {
    let app = &s.app;
    let now = app.clock.now();
    let bad_form = |e: axum::extract::multipart::MultipartError| {
        OpenAiError::invalid("file", format!("malformed multipart body: {}", e.body_text()))
    };
    let mut purpose: Option<String> = None;
    let mut uploaded: Option<(Value, FileRecord)> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(bad_form)? {
        match field.name().unwrap_or("") {
            "purpose" => purpose = Some(field.text().await.map_err(bad_form)?),
            "file" if uploaded.is_none() => {
                if let Some(p) = purpose.as_deref().filter(|p| *p != PURPOSE_BATCH) {
                    return Err(wrong_purpose(p));
                }
                let filename = field.file_name().unwrap_or("batch.jsonl").to_string();
                let limits = s.openai.client.compat.limits;
                let mut checker = Checker::new(&app.pricing, s.name(), now, limits);
                let (tx, rx) =
                    tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(PIPE_DEPTH);
                let openai = s.openai.clone();
                let name = filename.clone();
                let sending = tokio::spawn(async move {
                    let body = futures_util::stream::unfold(rx, |mut rx| async move {
                        rx.recv().await.map(|item| (item, rx))
                    });
                    openai.client.upload(&name, body).await
                });
                let abort = |tx: tokio::sync::mpsc::Sender<_>| async move {
                    let _ = tx.send(Err(std::io::Error::other("upload refused"))).await;
                };
                loop {
                    let chunk = match field.chunk().await {
                        Ok(Some(c)) => c,
                        Ok(None) => break,
                        Err(e) => {
                            abort(tx).await;
                            sending.abort();
                            return Err(bad_form(e));
                        }
                    };
                    if let Err(e) = checker.push(&chunk) {
                        abort(tx).await;
                        sending.abort();
                        while let Ok(Some(_)) = field.chunk().await {}
                        drop(field);
                        drain(&mut multipart).await;
                        return Err(file_error(e));
                    }
                    if tx.send(Ok(chunk)).await.is_err() {
                        break; // the upstream gave up; its answer says why
                    }
                }
                let summary = match checker.finish() {
                    Ok(sum) => sum,
                    Err(e) => {
                        abort(tx).await;
                        sending.abort();
                        return Err(file_error(e));
                    }
                };
                drop(tx);
                let reply = sending
                    .await
                    .map_err(|e| ApiError::Internal(format!("upload task failed: {e}")))??;
                if !reply.status.is_success() {
                    return Err(ApiError::upstream(reply).into());
                }
                let mut obj: Value = serde_json::from_slice(&reply.body).map_err(|_| {
                    ApiError::Internal("upstream sent a file object that is not JSON".into())
                })?;
                let id = obj.get("id").and_then(Value::as_str).unwrap_or("").to_string();
                if id.is_empty() {
                    return Err(ApiError::Internal("upstream file object has no id".into()).into());
                }
                // Clients asked for `batch`; Together's `batch-api` is its spelling of it.
                obj["purpose"] = json!(PURPOSE_BATCH);
                // The upstream's clock (list order and `created_at` match what it says).
                let created_at = obj
                    .get("created_at")
                    .and_then(Value::as_i64)
                    .and_then(|t| jiff::Timestamp::from_second(t).ok())
                    .unwrap_or(now);
                let rec = FileRecord {
                    provider: s.name().to_string(),
                    file_id: id,
                    project: project.to_string(),
                    purpose: PURPOSE_BATCH.into(),
                    filename,
                    bytes: summary.bytes,
                    lines: summary.requests,
                    created_at,
                    estimate_json: Some(serde_json::to_string(&summary).unwrap_or_default()),
                    batch_id: None,
                };
                uploaded = Some((obj, rec));
            }
            _ => {
                // `expires_after[...]` and unknown fields: read past them.
                while field.chunk().await.map_err(bad_form)?.is_some() {}
            }
        }
    }
    let Some((obj, rec)) = uploaded else {
        return Err(OpenAiError::invalid(
            "file",
            "file: is required (a multipart part named `file`)",
        ));
    };
    match purpose.as_deref() {
        Some(PURPOSE_BATCH) => {}
        other => {
            // Sent after the file: the upload already happened upstream; take it back.
            let _ = s
                .openai
                .client
                .call("delete_file", Method::DELETE, &file_path(&rec.file_id), &Forward::default())
                .await;
            return Err(match other {
                Some(p) => wrong_purpose(p),
                None => OpenAiError::invalid("purpose", "purpose: is required (`batch`)"),
            });
        }
    }
    app.ledger.files().record_file(&rec).await?;
    tracing::info!(project, provider = s.name(), file_id = %rec.file_id, requests = rec.lines, bytes = rec.bytes, "batch file uploaded");
    Ok((StatusCode::OK, axum::Json(obj)).into_response())
}

/// Reads the rest of a refused upload (up to the route's body limit) so the client, which
/// sends the whole body before it reads the answer, gets the 400 instead of a reset.
async fn drain(multipart: &mut Multipart) {
    while let Ok(Some(mut f)) = multipart.next_field().await {
        while let Ok(Some(_)) = f.chunk().await {}
    }
}

fn wrong_purpose(p: &str) -> OpenAiError {
    let shown: String = p.chars().take(40).collect();
    OpenAiError::invalid(
        "purpose",
        format!("purpose: only `batch` files are served by this gateway, got {shown:?}"),
    )
}

#[derive(Deserialize)]
pub struct ListQuery {
    after: Option<String>,
    limit: Option<u32>,
    order: Option<String>,
    purpose: Option<String>,
}

/// `GET /v1/files`: the caller's files, newest first unless `order=asc`.
pub async fn list(
    State(s): State<Surface>,
    headers: HeaderMap,
    Query(q): Query<ListQuery>,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    let limit = q.limit.unwrap_or(10_000);
    if !(1..=10_000).contains(&limit) {
        return Err(OpenAiError::invalid("limit", "limit: expected an integer from 1 to 10000"));
    }
    let ascending = match q.order.as_deref() {
        None | Some("desc") => false,
        Some("asc") => true,
        Some(_) => return Err(OpenAiError::invalid("order", "order: expected `asc` or `desc`")),
    };
    let fq = FilesQuery {
        provider: s.name(),
        project: &project,
        after: q.after.as_deref(),
        limit: limit + 1,
        ascending,
        purpose: q.purpose.as_deref(),
    };
    let mut rows = s.app.ledger.files().project_files(fq).await?;
    let has_more = rows.len() > limit as usize;
    rows.truncate(limit as usize);
    let data: Vec<Value> = rows.iter().map(file_object).collect();
    Ok(axum::Json(json!({
        "object": "list",
        "data": data,
        "first_id": rows.first().map(|f| &f.file_id),
        "last_id": rows.last().map(|f| &f.file_id),
        "has_more": has_more,
    }))
    .into_response())
}

/// `GET /v1/files/{id}`.
pub async fn retrieve(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    let f = owned_file(&s, &project, &id).await?;
    Ok(axum::Json(file_object(&f)).into_response())
}

/// `GET /v1/files/{id}/content`: the caller's input file, or an output or error file of
/// the caller's own batch, streamed from the upstream.
pub async fn content(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    owned_file(&s, &project, &id).await?;
    let upstream = s.openai.client.content(&id).await?;
    let status = upstream.status();
    if !status.is_success() {
        let headers = upstream.headers().clone();
        let body = upstream.bytes().await.unwrap_or_default();
        let reply = crate::providers::UpstreamReply { status, headers, body };
        return Err(ApiError::upstream(reply).into());
    }
    let mut resp = Response::new(Body::from_stream(upstream.bytes_stream()));
    resp.headers_mut().insert("content-type", HeaderValue::from_static("application/octet-stream"));
    Ok(resp)
}

/// `DELETE /v1/files/{id}`: upstream first, then the record.
pub async fn delete(
    State(s): State<Surface>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, OpenAiError> {
    let project = auth::project(&s.app, &headers)?;
    let f = owned_file(&s, &project, &id).await?;
    let reply = s
        .openai
        .client
        .call("delete_file", Method::DELETE, &file_path(&f.file_id), &Forward::default())
        .await?;
    if !reply.status.is_success() && reply.status != StatusCode::NOT_FOUND {
        return Err(ApiError::upstream(reply).into());
    }
    s.app.ledger.files().delete_file(s.name(), &f.file_id).await?;
    Ok(axum::Json(json!({"id": f.file_id, "object": "file", "deleted": true})).into_response())
}

/// Records an ended batch's output and error files as the project's, so it may read them.
pub async fn record_outputs(s: &Surface, project: &str, batch: &Value) {
    let batch = crate::providers::openai::status::batch_object(batch);
    let batch_id = batch.get("id").and_then(Value::as_str).map(str::to_string);
    for key in ["output_file_id", "error_file_id"] {
        let Some(id) = batch.get(key).and_then(Value::as_str).filter(|i| !i.is_empty()) else {
            continue;
        };
        let rec = FileRecord {
            provider: s.name().to_string(),
            file_id: id.to_string(),
            project: project.to_string(),
            purpose: PURPOSE_BATCH_OUTPUT.into(),
            filename: format!(
                "{}_{}.jsonl",
                batch_id.as_deref().unwrap_or("batch"),
                &key[..key.len() - 8]
            ),
            bytes: 0,
            lines: 0,
            created_at: s.app.clock.now(),
            estimate_json: None,
            batch_id: batch_id.clone(),
        };
        if let Err(e) = s.app.ledger.files().record_file(&rec).await {
            tracing::warn!(error = %e, "cannot record a batch's output file");
        }
    }
}

//! Anthropic route handlers: extract, call the registry, answer. Validation lives in
//! `ingest` and `params`, the batch view in `state`, line generation in `results`.

use std::sync::atomic::Ordering;

use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::error::ApiError;
use super::gate::{IdPath, QueryMap, small_body};
use super::ingest::read_batch;
use super::params::{Mode, summarize};
use super::results::AnthropicLines;
use super::state::{PageQuery, View};
use super::surface::AppState;
use crate::providers::anthropic::wire::{BatchPage, DeletedBatch, MessageBatch};
use crate::simulator::engine::order::{Lines, stream};

/// count_tokens bodies are limited like Messages bodies: 32 MB.
const COUNT_TOKENS_LIMIT: usize = 32 * 1024 * 1024;

pub async fn create(
    State(app): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<MessageBatch>, ApiError> {
    let content_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let records = read_batch(body, content_length, app.models.clone()).await?;
    let (mut reg, now) = app.registry();
    let batch = reg.create(records, now).view(now, &app.base_url);
    app.stats.creates_accepted.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(batch_id = %batch.id, requests = batch.request_counts.processing, "batch created");
    Ok(Json(batch))
}

pub async fn retrieve(
    State(app): State<AppState>,
    id: IdPath,
) -> Result<Json<MessageBatch>, ApiError> {
    app.stats.retrieved(&id);
    let (reg, now) = app.registry();
    Ok(Json(reg.get(&id)?.view(now, &app.base_url)))
}

pub async fn list(
    State(app): State<AppState>,
    query: QueryMap,
) -> Result<Json<BatchPage>, ApiError> {
    let limit = match query.get("limit") {
        None => 20,
        Some(s) => match s.parse::<i64>() {
            Err(_) => {
                return Err(ApiError::InvalidRequest(
                    "limit: Input should be a valid integer".into(),
                ));
            }
            Ok(n) if n < 1 => {
                return Err(ApiError::InvalidRequest(
                    "limit: Input should be greater than or equal to 1".into(),
                ));
            }
            Ok(n) if n > 1000 => {
                return Err(ApiError::InvalidRequest(
                    "limit: Input should be less than or equal to 1000".into(),
                ));
            }
            Ok(n) => n as usize,
        },
    };
    let page = PageQuery {
        limit,
        before_id: query.get("before_id").cloned(),
        after_id: query.get("after_id").cloned(),
    };
    let (reg, now) = app.registry();
    let (items, has_more) = reg.list(&page)?;
    let data: Vec<MessageBatch> = items.iter().map(|b| b.view(now, &app.base_url)).collect();
    Ok(Json(BatchPage {
        first_id: data.first().map(|b| b.id.clone()),
        last_id: data.last().map(|b| b.id.clone()),
        has_more,
        data,
    }))
}

pub async fn cancel(
    State(app): State<AppState>,
    id: IdPath,
) -> Result<Json<MessageBatch>, ApiError> {
    let (mut reg, now) = app.registry();
    Ok(Json(reg.cancel(&id, now)?.view(now, &app.base_url)))
}

pub async fn delete(
    State(app): State<AppState>,
    id: IdPath,
) -> Result<Json<DeletedBatch>, ApiError> {
    let (mut reg, _) = app.registry();
    reg.delete(&id)?;
    Ok(Json(DeletedBatch { id: id.0, object_type: "message_batch_deleted".into() }))
}

pub async fn results(State(app): State<AppState>, id: IdPath) -> Result<Response, ApiError> {
    let src = {
        let (reg, now) = app.registry();
        reg.results(&id, now)?
    };
    let cut = app.faults.cut_results();
    let disposition = format!("attachment; filename*=utf-8''{}_results.jsonl", src.batch_id);
    let lines = AnthropicLines::new(src, app.seed, app.output);
    let body = Body::from_stream(stream(Lines::new(lines, cut, app.stats.clone())));
    let mut resp = body.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/x-jsonl"));
    if let Ok(v) = HeaderValue::from_str(&disposition) {
        h.insert(header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

pub async fn count_tokens(
    State(app): State<AppState>,
    body: Body,
) -> Result<Json<Value>, ApiError> {
    let bytes = small_body(body, COUNT_TOKENS_LIMIT).await?;
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::InvalidRequest(format!("Malformed JSON body: {e}")))?;
    let Value::Object(params) = value else {
        return Err(ApiError::InvalidRequest("body: Input should be a valid dictionary".into()));
    };
    let summary = summarize(&params, &app.models, Mode::CountTokens);
    match summary.invalid {
        Some(inv) if inv.error_type == "not_found_error" => Err(ApiError::NotFound(inv.message)),
        Some(inv) => Err(ApiError::InvalidRequest(inv.message)),
        None => Ok(Json(json!({ "input_tokens": summary.input_tokens }))),
    }
}

pub async fn not_found() -> ApiError {
    ApiError::NotFound("Not found".into())
}

//! The Batches API: create from an uploaded input file, retrieve, list (`after`, `limit`),
//! cancel; and the Batch object as it looks at the current simulated time, with OpenAI's
//! status names and one timestamp per transition:
//! `validating` -> `in_progress` -> `finalizing` -> `completed`, or `cancelling` ->
//! `cancelled`, or `expired` at 24 h. Output and error files appear once the batch is done.

use std::collections::HashMap;
use std::sync::OnceLock;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use jiff::Timestamp;

use super::error::ApiError;
use super::ids::file_id;
use super::results::{FileLines, Kind, usage_of};
use super::store::{Content, Generated};
use super::surface::{AppState, Batch, Meta};
use crate::providers::openai::wire::{
    self, BatchStatus, COMPLETION_WINDOW, CreateBatch, ENDPOINTS, InputTokensDetails, ListPage,
    OutputTokensDetails, RequestCounts, ResponsesUsage,
};
use crate::simulator::engine::Engine;
use crate::simulator::engine::order::LineSource;
use crate::simulator::engine::registry::{Cursor, EndCause, Outcome, Refusal};
use crate::simulator::engine::time::secs;
use crate::simulator::engine::usage::Draws;

const CREATE_LIMIT: usize = 1024 * 1024;

fn not_found(id: &str) -> ApiError {
    ApiError::NotFound {
        message: format!("No batch found with id '{id}'."),
        param: Some("batch_id"),
    }
}

fn unix(t: Timestamp) -> i64 {
    t.as_second()
}

/// The Batch object at `now`, and the generated files it shows (to register).
fn view(b: &Batch, now: Timestamp, e: &Engine) -> (wire::Batch, Vec<Generated>) {
    let lc = &e.lifecycle;
    let validated = b.created_at.saturating_add(secs(e.validating_secs)).unwrap_or(b.created_at);
    let mut v = wire::Batch {
        id: b.id.clone(),
        object: "batch".into(),
        endpoint: b.meta.url.clone(),
        model: Some(b.meta.model.clone()),
        errors: None,
        input_file_id: b.meta.input_file_id.clone(),
        completion_window: COMPLETION_WINDOW.into(),
        status: BatchStatus::Validating,
        output_file_id: None,
        error_file_id: None,
        created_at: unix(b.created_at),
        in_progress_at: (now >= validated && b.cancel_at.is_none_or(|c| c >= validated))
            .then(|| unix(validated)),
        expires_at: Some(unix(b.expires_at())),
        finalizing_at: None,
        completed_at: None,
        failed_at: None,
        expired_at: None,
        cancelling_at: b.cancel_at.map(unix),
        cancelled_at: None,
        request_counts: RequestCounts { total: b.n, ..RequestCounts::default() },
        usage: None,
        metadata: b.meta.metadata.clone(),
    };
    let Some(ended) = &b.ended else {
        v.status = match (b.cancel_at, now >= validated) {
            (Some(_), _) => BatchStatus::Cancelling,
            (None, false) => BatchStatus::Validating,
            (None, true) => BatchStatus::InProgress,
        };
        if e.progressive_counts {
            let p = b.progress(now, lc);
            v.request_counts.completed = p.succeeded;
            v.request_counts.failed = p.errored;
        }
        return (v, Vec::new());
    };
    let done_at = match b.end_cause(lc) {
        Some(EndCause::Cancelled) => {
            v.status = BatchStatus::Cancelled;
            v.cancelled_at = Some(unix(ended.at));
            ended.at
        }
        Some(EndCause::Expired) => {
            v.status = BatchStatus::Expired;
            v.expired_at = Some(unix(ended.at));
            ended.at
        }
        _ => {
            let completed = ended.at.saturating_add(secs(e.finalizing_secs)).unwrap_or(ended.at);
            v.finalizing_at = Some(unix(ended.at));
            if now < completed {
                v.status = BatchStatus::Finalizing;
                if e.progressive_counts {
                    v.request_counts.completed = ended.counts.succeeded;
                    v.request_counts.failed = ended.counts.errored;
                }
                return (v, Vec::new());
            }
            v.status = BatchStatus::Completed;
            v.completed_at = Some(unix(completed));
            completed
        }
    };
    v.request_counts.completed = ended.counts.succeeded;
    v.request_counts.failed = ended.counts.errored;
    v.usage = Some(*b.meta.usage.get_or_init(|| aggregate(b, e)));
    let expires_at = b.meta.output_expires_secs.map(|s| unix(done_at) + s as i64);
    let mut files = Vec::new();
    let c = ended.counts;
    if c.succeeded > 0 {
        v.output_file_id = Some(b.meta.output_file_id.clone());
        files.push((b.meta.output_file_id.clone(), Kind::Output));
    }
    if c.errored + c.canceled + c.expired > 0 {
        v.error_file_id = Some(b.meta.error_file_id.clone());
        files.push((b.meta.error_file_id.clone(), Kind::Error));
    }
    let generated = files
        .into_iter()
        .map(|(id, kind)| Generated {
            id,
            batch_id: b.id.clone(),
            kind,
            created_at: unix(done_at),
            expires_at,
        })
        .collect();
    (v, generated)
}

/// The batch's aggregate usage over its successful requests.
fn aggregate(b: &Batch, e: &Engine) -> ResponsesUsage {
    let (Some(records), Some(outcomes)) =
        (&b.records, b.ended.as_ref().and_then(|x| x.outcomes.as_ref()))
    else {
        return ResponsesUsage::default();
    };
    let d = Draws { seed: e.seed, batch_seq: b.seq };
    let mut u = ResponsesUsage::default();
    let mut details = (InputTokensDetails::default(), OutputTokensDetails::default());
    for (i, (rec, o)) in records.iter().zip(outcomes.iter()).enumerate() {
        if let Outcome::Succeeded { read, .. } = o {
            let l = usage_of(&d, i as u64, rec, *read, &e.output);
            u.input_tokens += l.input;
            u.output_tokens += l.output;
            details.0.cached_tokens += l.cached;
            details.1.reasoning_tokens += l.reasoning;
        }
    }
    u.input_tokens_details = details.0;
    u.output_tokens_details = details.1;
    u.total_tokens = u.input_tokens + u.output_tokens;
    u
}

/// Registers the generated files a view showed, sizing each once by rendering it.
fn register(app: &AppState, generated: Vec<Generated>) {
    for g in generated {
        if !app.files().wants(&g.id) {
            continue;
        }
        let src = {
            let (reg, now) = app.batches();
            let endpoint = reg.get(&g.batch_id).map(|b| b.meta.endpoint);
            match (reg.results(&g.batch_id, now), endpoint) {
                (Ok(src), Ok(endpoint)) => Some((src, endpoint)),
                _ => None,
            }
        };
        let Some((src, endpoint)) = src else { continue };
        let lines = FileLines::new(src, app.seed, g.kind, endpoint, app.output, g.created_at);
        app.files().register(g, lines.size());
    }
}

/// `POST /v1/batches`.
pub async fn create(
    State(app): State<AppState>,
    body: Body,
) -> Result<Json<wire::Batch>, ApiError> {
    let bytes = axum::body::to_bytes(body, CREATE_LIMIT)
        .await
        .map_err(|_| ApiError::TooLarge("The request body is too large.".into()))?;
    let req: CreateBatch = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid request body: {e}"), None))?;
    if req.completion_window != COMPLETION_WINDOW {
        return Err(ApiError::invalid(
            format!(
                "Invalid value for 'completion_window': '{}'. Supported values are: '24h'.",
                req.completion_window
            ),
            Some("completion_window"),
        ));
    }
    if !ENDPOINTS.contains(&req.endpoint.as_str()) {
        return Err(ApiError::invalid(
            format!(
                "Invalid value for 'endpoint': '{}'. Supported values are: {ENDPOINTS:?}.",
                req.endpoint
            ),
            Some("endpoint"),
        ));
    }
    if let Some(m) = &req.metadata {
        if m.len() > 16 || m.iter().any(|(k, v)| k.chars().count() > 64 || v.chars().count() > 512)
        {
            return Err(ApiError::invalid(
                "Invalid 'metadata': at most 16 pairs, keys up to 64 characters, values up to 512.",
                Some("metadata"),
            ));
        }
    }
    let output_expires_secs = match &req.output_expires_after {
        None => None,
        Some(x) if x.anchor == "created_at" && (3600..=2_592_000).contains(&x.seconds) => {
            Some(x.seconds)
        }
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid 'output_expires_after': anchor 'created_at', seconds 3600 to 2592000.",
                Some("output_expires_after"),
            ));
        }
    };
    let input = {
        let files = app.files();
        let entry =
            files.get(&req.input_file_id, app.clock.now()).map_err(|_| ApiError::NotFound {
                message: format!("No such File object: {}", req.input_file_id),
                param: Some("input_file_id"),
            })?;
        match &entry.content {
            Content::Upload { batch: Some(b), .. } => b.clone(),
            _ => {
                return Err(ApiError::invalid(
                    format!("File {} was not uploaded with purpose 'batch'.", req.input_file_id),
                    Some("input_file_id"),
                ));
            }
        }
    };
    if input.url != req.endpoint {
        return Err(ApiError::invalid(
            format!(
                "The endpoint '{}' does not match the url '{}' of the input file's requests.",
                req.endpoint, input.url
            ),
            Some("endpoint"),
        ));
    }
    let (mut reg, now) = app.batches();
    let (seq, _) = reg.next_id();
    let meta = Meta {
        url: input.url.clone(),
        endpoint: input.endpoint,
        input_file_id: req.input_file_id,
        model: input.model.clone(),
        metadata: req.metadata,
        output_file_id: file_id(app.seed, "output", seq),
        error_file_id: file_id(app.seed, "error", seq),
        output_expires_secs,
        usage: OnceLock::new(),
    };
    let b = reg.create_shared(input.records.clone(), meta, now);
    app.stats.creates_accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(Json(view(b, now, &app).0))
}

/// `GET /v1/batches/{id}`.
pub async fn retrieve(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<wire::Batch>, ApiError> {
    let (v, generated) = {
        let (reg, now) = app.batches();
        view(reg.get(&id).map_err(|_| not_found(&id))?, now, &app)
    };
    register(&app, generated);
    Ok(Json(v))
}

/// `POST /v1/batches/{id}/cancel`: `cancelling` until in-flight requests finish.
pub async fn cancel(
    State(app): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<wire::Batch>, ApiError> {
    let (v, generated) = {
        let (mut reg, now) = app.batches();
        let b = reg.get(&id).map_err(|_| not_found(&id))?;
        if b.is_ended() && b.cancel_at.is_none() {
            let (v, _) = view(b, now, &app);
            return Err(ApiError::invalid(
                format!(
                    "Cannot cancel a batch with status '{}'.",
                    serde_json::to_value(v.status)
                        .ok()
                        .and_then(|s| s.as_str().map(str::to_string))
                        .unwrap_or_default()
                ),
                None,
            ));
        }
        let b = reg.cancel(&id, now).map_err(|_| not_found(&id))?;
        view(b, now, &app)
    };
    register(&app, generated);
    Ok(Json(v))
}

/// `GET /v1/batches?after=&limit=`: newest first.
pub async fn list(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
) -> Result<Json<ListPage<wire::Batch>>, ApiError> {
    let limit = match q.get("limit").map(|s| s.parse::<usize>()) {
        None => 20,
        Some(Ok(n)) if (1..=100).contains(&n) => n,
        Some(_) => {
            return Err(ApiError::invalid(
                "Invalid 'limit': expected an integer between 1 and 100.",
                Some("limit"),
            ));
        }
    };
    let cursor = q.get("after").map_or(Cursor::Newest, |a| Cursor::OlderThan(a.clone()));
    let (data, has_more, generated) = {
        let (reg, now) = app.batches();
        let (items, more) = reg.list(&cursor, limit).map_err(|r| match r {
            Refusal::BadCursor => ApiError::invalid(
                format!(
                    "Invalid 'after': no batch with id '{}'.",
                    q.get("after").cloned().unwrap_or_default()
                ),
                Some("after"),
            ),
            _ => ApiError::Internal,
        })?;
        let mut generated = Vec::new();
        let data: Vec<wire::Batch> = items
            .iter()
            .map(|b| {
                let (v, g) = view(b, now, &app);
                generated.extend(g);
                v
            })
            .collect();
        (data, more, generated)
    };
    register(&app, generated);
    Ok(Json(ListPage {
        object: "list".into(),
        first_id: data.first().map(|b| b.id.clone()),
        last_id: data.last().map(|b| b.id.clone()),
        has_more,
        data,
    }))
}

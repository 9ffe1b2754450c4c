//! Batches as long-running operations: `models/{model}:batchGenerateContent` (inline
//! requests or an uploaded JSONL file), get, list (`pageSize`, `pageToken`), `:cancel`,
//! delete; and the operation as it looks at the current simulated time, with Gemini's
//! state names (`BATCH_STATE_PENDING` -> `RUNNING` -> `SUCCEEDED` / `CANCELLED` /
//! `EXPIRED`) and `batchStats` as the wire sends them (int64 strings, zeros omitted).

use std::collections::HashMap;
use std::sync::OnceLock;

use bytes::Bytes;
use jiff::Timestamp;
use serde_json::{Value, json};

use super::error::ApiError;
use super::request::summarize;
use super::results::{FileLines, Render, inlined};
use super::surface::{AppState, Batch, Meta, Record, Source};
use crate::providers::gemini::wire::{
    BATCH_TYPE, BatchOutput, BatchState, BatchStats, CreateBatchRequest, GenerateContentBatch,
    InlinedResponses, InputConfig, InputLine, ListOperations, OUTPUT_TYPE, Operation,
};
use crate::simulator::engine::Engine;
use crate::simulator::engine::order::LineSource;
use crate::simulator::engine::registry::{Cursor, EndCause};
use crate::simulator::engine::time::secs;

/// Inline requests: the whole create body is under 20 MB.
pub const MAX_INLINE_BYTES: usize = 20 * 1024 * 1024;

/// RFC 3339 with nanoseconds and `Z`, as Google prints times.
pub fn rfc3339_nanos(t: Timestamp) -> String {
    format!("{}.{:09}Z", t.strftime("%Y-%m-%dT%H:%M:%S"), t.subsec_nanosecond())
}

pub fn not_found(name: &str) -> ApiError {
    ApiError::NotFound(format!("Requested entity was not found: {name}"))
}

/// The results file name of a batch.
pub fn results_file(batch_id: &str) -> String {
    format!("files/batch-{batch_id}")
}

/// The operation at `now`; `inline` adds inline results (get does, list does not).
pub fn view(b: &Batch, now: Timestamp, e: &Engine, inline: bool) -> Operation {
    let lc = &e.lifecycle;
    let name = format!("batches/{}", b.id);
    let started = b.created_at.saturating_add(secs(e.validating_secs)).unwrap_or(b.created_at);
    let mut stats = BatchStats { request_count: Some(b.n), ..BatchStats::default() };
    let mut meta = GenerateContentBatch {
        type_url: Some(BATCH_TYPE.into()),
        model: Some(format!("models/{}", b.meta.model)),
        name: Some(name.clone()),
        display_name: b.meta.display_name.clone(),
        input_config: match &b.meta.source {
            Source::File(f) => Some(InputConfig { file_name: Some(f.clone()), requests: None }),
            Source::Inline => None,
        },
        create_time: Some(rfc3339_nanos(b.created_at)),
        priority: b.meta.priority.clone(),
        ..GenerateContentBatch::default()
    };
    let mut op = Operation {
        name,
        metadata: GenerateContentBatch::default(),
        done: None,
        response: None,
        error: None,
    };
    match (&b.ended, b.end_cause(lc)) {
        (Some(ended), Some(cause)) => {
            meta.state = Some(match cause {
                EndCause::Completed => BatchState::Succeeded,
                EndCause::Cancelled => BatchState::Cancelled,
                EndCause::Expired => BatchState::Expired,
            });
            meta.update_time = Some(rfc3339_nanos(ended.at));
            meta.end_time = Some(rfc3339_nanos(ended.at));
            stats.successful_request_count = Some(ended.counts.succeeded);
            stats.failed_request_count = Some(ended.counts.errored);
            let output = match &b.meta.source {
                Source::File(_) => Some(BatchOutput {
                    type_url: None,
                    responses_file: Some(results_file(&b.id)),
                    inlined_responses: None,
                }),
                Source::Inline if inline => {
                    let src = e_results(b);
                    src.map(|src| {
                        let r = Render {
                            seed: e.seed,
                            batch_seq: b.seq,
                            model: &b.meta.model,
                            shape: e.output,
                        };
                        BatchOutput {
                            type_url: None,
                            responses_file: None,
                            inlined_responses: Some(InlinedResponses {
                                inlined_responses: inlined(&src, &r),
                            }),
                        }
                    })
                }
                Source::Inline => None,
            };
            if let Some(out) = output {
                op.response =
                    Some(BatchOutput { type_url: Some(OUTPUT_TYPE.into()), ..out.clone() });
                meta.output = Some(out);
            }
            op.done = Some(true);
        }
        _ => {
            let running = now >= started;
            meta.state = Some(if running { BatchState::Running } else { BatchState::Pending });
            meta.update_time = Some(rfc3339_nanos(if running { started } else { b.created_at }));
            if e.progressive_counts {
                let p = b.progress(now, lc);
                stats.successful_request_count = Some(p.succeeded);
                stats.failed_request_count = Some(p.errored);
                stats.pending_request_count = Some(b.n - p.succeeded - p.errored);
            } else {
                stats.pending_request_count = Some(b.n);
            }
        }
    }
    meta.batch_stats = Some(stats);
    op.metadata = meta;
    op
}

/// The outcomes of an ended batch whose records are still held.
fn e_results(b: &Batch) -> Option<crate::simulator::engine::registry::ResultsSource<Record>> {
    let ended = b.ended.as_ref()?;
    Some(crate::simulator::engine::registry::ResultsSource {
        batch_id: b.id.clone(),
        batch_seq: b.seq,
        records: b.records.clone()?,
        outcomes: ended.outcomes.clone()?,
    })
}

fn record(
    model: &str,
    request: &Value,
    key: Option<String>,
    metadata: Option<std::collections::BTreeMap<String, String>>,
) -> Record {
    let s = summarize(model, request);
    Record {
        key: key.map(String::into_boxed_str),
        metadata,
        input_tokens: s.input_tokens,
        image_tokens: s.image_tokens,
        max_output: u32::try_from(s.max_output).unwrap_or(u32::MAX),
        thinking: s.thinking,
        thinking_budget: s.thinking_budget.map(|b| u32::try_from(b).unwrap_or(u32::MAX)),
        tool_use: s.tool_use,
        breakpoints: s.breakpoints.into_boxed_slice(),
        invalid: s.invalid.map(Box::new),
    }
}

/// Reads an uploaded JSONL input: `{"key", "request"}` per line.
fn file_records(model: &str, name: &str, bytes: &[u8]) -> Result<Vec<Record>, ApiError> {
    let mut out = Vec::new();
    for (i, raw) in bytes.split(|b| *b == b'\n').enumerate() {
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let line: InputLine = serde_json::from_slice(raw).map_err(|e| {
            ApiError::InvalidArgument(format!(
                "{name}: line {}: not a valid request line ({e})",
                i + 1
            ))
        })?;
        out.push(record(model, &line.request, line.key, None));
    }
    if out.is_empty() {
        return Err(ApiError::InvalidArgument(format!("{name}: the file holds no requests")));
    }
    Ok(out)
}

/// `POST {v}/models/{model}:batchGenerateContent`.
pub fn create(app: &AppState, model: &str, body: &Bytes) -> Result<Operation, ApiError> {
    if body.len() > MAX_INLINE_BYTES {
        return Err(ApiError::InvalidArgument(format!(
            "Request payload size exceeds the limit: {MAX_INLINE_BYTES} bytes."
        )));
    }
    let req: CreateBatchRequest = serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidArgument(format!("Invalid JSON payload received. {e}")))?;
    if !app.models.contains(model) {
        return Err(ApiError::NotFound(format!(
            "models/{model} is not found for API version v1beta, or is not supported for batchGenerateContent."
        )));
    }
    let batch = req.batch;
    let input = batch.input_config.ok_or_else(|| {
        ApiError::InvalidArgument("* batch.input_config: input_config is required".into())
    })?;
    let (records, source) = match (input.file_name, input.requests) {
        (Some(name), None) => {
            let id = name.strip_prefix("files/").unwrap_or(&name).to_string();
            let bytes = {
                let files = app.files();
                files.stored.get(&id).map(|s| s.bytes.clone()).ok_or_else(|| not_found(&name))?
            };
            (file_records(model, &name, &bytes)?, Source::File(format!("files/{id}")))
        }
        (None, Some(r)) if !r.requests.is_empty() => (
            r.requests.into_iter().map(|x| record(model, &x.request, None, x.metadata)).collect(),
            Source::Inline,
        ),
        (None, Some(_)) => {
            return Err(ApiError::InvalidArgument(
                "* batch.input_config.requests: requests must not be empty".into(),
            ));
        }
        _ => {
            return Err(ApiError::InvalidArgument(
                "* batch.input_config: exactly one of file_name and requests is required".into(),
            ));
        }
    };
    let meta = Meta {
        model: model.to_string(),
        display_name: batch.display_name,
        source,
        priority: batch.priority,
        results_bytes: OnceLock::new(),
    };
    let (mut reg, now) = app.batches();
    let b = reg.create(records, meta, now);
    app.stats.creates_accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    Ok(view(b, now, app, true))
}

pub fn get(app: &AppState, id: &str) -> Result<Operation, ApiError> {
    let (reg, now) = app.batches();
    let b = reg.get(id).map_err(|_| not_found(&format!("batches/{id}")))?;
    Ok(view(b, now, app, true))
}

/// `GET {v}/batches?pageSize=&pageToken=`: newest first; inline results omitted.
pub fn list(app: &AppState, q: &HashMap<String, String>) -> Result<ListOperations, ApiError> {
    let size = match q.get("pageSize").map(|s| s.parse::<usize>()) {
        None => 50,
        Some(Ok(0)) => 50,
        Some(Ok(n)) => n.min(1000),
        Some(Err(_)) => {
            return Err(ApiError::InvalidArgument(
                "Invalid value at 'page_size' (TYPE_INT32)".into(),
            ));
        }
    };
    let cursor = q
        .get("pageToken")
        .filter(|t| !t.is_empty())
        .map_or(Cursor::Newest, |t| Cursor::OlderThan(t.clone()));
    let (reg, now) = app.batches();
    let (items, more) = reg
        .list(&cursor, size)
        .map_err(|_| ApiError::InvalidArgument("Invalid page token.".into()))?;
    let operations: Vec<Operation> = items.iter().map(|b| view(b, now, app, false)).collect();
    let next_page_token = more.then(|| items.last().map(|b| b.id.clone())).flatten();
    Ok(ListOperations { operations, next_page_token })
}

/// `POST {v}/batches/{id}:cancel`: only pending or running batches.
pub fn cancel(app: &AppState, id: &str) -> Result<Value, ApiError> {
    let (mut reg, now) = app.batches();
    let b = reg.get(id).map_err(|_| not_found(&format!("batches/{id}")))?;
    if b.is_ended() {
        return Err(ApiError::FailedPrecondition(format!(
            "Batch batches/{id} has already finished; only pending or running batches can be cancelled."
        )));
    }
    reg.cancel(id, now).map_err(|_| not_found(&format!("batches/{id}")))?;
    Ok(json!({}))
}

/// `DELETE {v}/batches/{id}`: once the batch has finished (cancel first).
pub fn delete(app: &AppState, id: &str) -> Result<Value, ApiError> {
    let (mut reg, _) = app.batches();
    reg.delete(id).map_err(|r| match r {
        crate::simulator::engine::registry::Refusal::StillProcessing => {
            ApiError::FailedPrecondition(format!(
                "Batch batches/{id} is still running; cancel it first."
            ))
        }
        _ => not_found(&format!("batches/{id}")),
    })?;
    Ok(json!({}))
}

/// The results file of a finished file batch, ready to stream, and its creation time.
pub fn results_lines(app: &AppState, batch_id: &str) -> Result<(FileLines, Timestamp), ApiError> {
    let name = results_file(batch_id);
    let (reg, now) = app.batches();
    let b = reg.get(batch_id).map_err(|_| not_found(&name))?;
    if b.meta.source == Source::Inline {
        return Err(not_found(&name));
    }
    let at = b.ended.as_ref().map(|e| e.at).ok_or_else(|| not_found(&name))?;
    let src = reg.results(batch_id, now).map_err(|_| not_found(&name))?;
    Ok((FileLines::new(src, app.seed, b.meta.model.clone(), app.output), at))
}

/// Size of a results file, rendered once.
pub fn results_size(app: &AppState, batch_id: &str) -> Result<(u64, Timestamp), ApiError> {
    let (lines, at) = results_lines(app, batch_id)?;
    let cached = {
        let (reg, _) = app.batches();
        reg.get(batch_id).ok().and_then(|b| b.meta.results_bytes.get().copied())
    };
    let size = match cached {
        Some(s) => s,
        None => {
            let s = lines.size();
            let (reg, _) = app.batches();
            if let Ok(b) = reg.get(batch_id) {
                let _ = b.meta.results_bytes.set(s);
            }
            s
        }
    };
    Ok((size, at))
}

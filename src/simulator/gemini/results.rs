//! Gemini results, generated from a batch's records, outcomes and the seed: one
//! `GenerateContentResponse` per successful request (with `usageMetadata`: prompt,
//! cached, candidates, thoughts and tool-use prompt tokens; zero counts omitted), a
//! `google.rpc.Status` with a numeric code for the others. Inline batches carry them in
//! request order inside the operation; file batches in a JSONL results file keyed by
//! the input's `key`, in a seeded order.

use serde_json::{Value, json};

use super::ids::response_id;
use super::surface::Record;
use crate::providers::gemini::wire::{
    InlinedResponse, ModalityTokenCount, ResultLine, Status, UsageMetadata,
};
use crate::simulator::engine::ids::Key;
use crate::simulator::engine::order::{LineSource, Order, answer_text, append_json};
use crate::simulator::engine::registry::{Failure, Outcome, ResultsSource};
use crate::simulator::engine::usage::{Draws, OutputShape};

/// Everything a response needs besides the request's index.
pub struct Render<'a> {
    pub seed: u64,
    pub batch_seq: u64,
    pub model: &'a str,
    pub shape: OutputShape,
}

/// The seeded usage of request `i` that succeeded with `read` tokens of cache hit.
pub fn usage_of(r: &Render<'_>, i: u64, rec: &Record, read: u32) -> (UsageMetadata, bool) {
    let d = Draws { seed: r.seed, batch_seq: r.batch_seq };
    let (mut total_out, truncated) = d.output_tokens_shaped(i, rec.max_output, &r.shape);
    // A thinking model spends at least one token thinking and one answering when the cap
    // (which covers both) allows it.
    let thoughts = if rec.thinking && rec.max_output >= 2 {
        total_out = total_out.max(2);
        let cap = rec.thinking_budget.unwrap_or(u32::MAX).min(total_out - 1);
        d.reasoning_tokens(i, total_out, None).clamp(1, cap.max(1))
    } else {
        0
    };
    let candidates = u64::from(total_out - thoughts);
    let tool = if rec.tool_use { 100 + (d.draw("tool-use", i) * 400.0) as u64 } else { 0 };
    let prompt = rec.input_tokens;
    let cached = u64::from(read).min(prompt);
    let mut details = vec![ModalityTokenCount {
        modality: "TEXT".into(),
        token_count: prompt - rec.image_tokens,
    }];
    if rec.image_tokens > 0 {
        details
            .push(ModalityTokenCount { modality: "IMAGE".into(), token_count: rec.image_tokens });
    }
    let u = UsageMetadata {
        prompt_token_count: prompt,
        cached_content_token_count: cached,
        candidates_token_count: candidates,
        thoughts_token_count: u64::from(thoughts),
        tool_use_prompt_token_count: tool,
        total_token_count: prompt + candidates + u64::from(thoughts) + tool,
        prompt_tokens_details: details,
        cache_tokens_details: if cached > 0 {
            vec![ModalityTokenCount { modality: "TEXT".into(), token_count: cached }]
        } else {
            Vec::new()
        },
        candidates_tokens_details: vec![ModalityTokenCount {
            modality: "TEXT".into(),
            token_count: candidates,
        }],
        tool_use_prompt_tokens_details: Vec::new(),
    };
    (u, truncated)
}

/// The response of a successful request.
pub fn response(r: &Render<'_>, i: u64, rec: &Record, read: u32) -> Value {
    let (usage, truncated) = usage_of(r, i, rec, read);
    let text = answer_text(
        Key::new(r.seed, "text").u64(r.batch_seq).u64(i).hash64(),
        usage.candidates_token_count as u32,
    );
    json!({
        "candidates": [{"content": {"parts": [{"text": text}], "role": "model"},
                        "finishReason": if truncated { "MAX_TOKENS" } else { "STOP" }, "index": 0}],
        "usageMetadata": usage,
        "modelVersion": r.model,
        "responseId": response_id(r.seed, r.batch_seq, i),
    })
}

/// The status of a request that did not succeed (numeric rpc codes).
pub fn status_of(rec: &Record, o: &Outcome) -> Status {
    let (code, message) = match (o, &rec.invalid) {
        (Outcome::Errored(Failure::Request), Some(inv)) => (inv.code, inv.message.clone()),
        (Outcome::Errored(Failure::Overloaded), _) => {
            (14, "The model is overloaded. Please try again later.".into())
        }
        (Outcome::Errored(Failure::Invalid), _) => {
            (3, "Request contains an invalid argument (simulated).".into())
        }
        (Outcome::Errored(_), _) => (13, "An internal error has occurred.".into()),
        (Outcome::Canceled, _) => (1, "The batch was cancelled before this request ran.".into()),
        (Outcome::Expired, _) => (4, "The batch expired before this request ran.".into()),
        (Outcome::Succeeded { .. }, _) => (0, String::new()),
    };
    Status { code, message, details: Vec::new() }
}

/// Inline responses in request order.
pub fn inlined(src: &ResultsSource<Record>, r: &Render<'_>) -> Vec<InlinedResponse> {
    src.records
        .iter()
        .zip(src.outcomes.iter())
        .enumerate()
        .map(|(i, (rec, o))| {
            let metadata = rec.metadata.clone();
            match o {
                Outcome::Succeeded { read, .. } => InlinedResponse {
                    response: Some(response(r, i as u64, rec, *read)),
                    error: None,
                    metadata,
                },
                other => {
                    InlinedResponse { response: None, error: Some(status_of(rec, other)), metadata }
                }
            }
        })
        .collect()
}

/// A results file download.
pub struct FileLines {
    pub src: ResultsSource<Record>,
    pub seed: u64,
    pub model: String,
    pub shape: OutputShape,
    order: Order,
}

impl FileLines {
    pub fn new(src: ResultsSource<Record>, seed: u64, model: String, shape: OutputShape) -> Self {
        let order = Order::seeded(seed, src.batch_seq, src.records.len() as u64);
        FileLines { src, seed, model, shape, order }
    }
}

impl LineSource for FileLines {
    fn positions(&self) -> u64 {
        self.src.records.len() as u64
    }

    fn line(&self, k: u64, out: &mut Vec<u8>) -> bool {
        let i = self.order.at(k) as usize;
        let rec = &self.src.records[i];
        let r = Render {
            seed: self.seed,
            batch_seq: self.src.batch_seq,
            model: &self.model,
            shape: self.shape,
        };
        let key = rec.key.as_deref().map(str::to_string);
        let line = match &self.src.outcomes[i] {
            Outcome::Succeeded { read, .. } => {
                ResultLine { key, response: Some(response(&r, i as u64, rec, *read)), error: None }
            }
            other => ResultLine { key, response: None, error: Some(status_of(rec, other)) },
        };
        append_json(out, &line)
    }
}

//! Output and error files, generated line by line while they stream from a batch's
//! compact records, outcomes and the seed: the output file holds the successful requests
//! (`response.status_code` 200 and the endpoint's body with its usage), the error file the
//! failed ones (the endpoint's 4xx/5xx inside `response`) and those that never ran
//! (`error.code` `batch_expired` / `batch_cancelled`). Lines come in a seeded order.

use serde_json::{Value, json};

use super::body::Endpoint;
use super::ids::{body_id, line_id, request_id};
use super::upload::Record;
use crate::providers::openai::wire::{
    ChatUsage, CompletionTokensDetails, EmbeddingsUsage, ErrorEnvelope, InputTokensDetails,
    LINE_CANCELLED, LINE_EXPIRED, LineError, LineResponse, OutputLine, OutputTokensDetails,
    PromptTokensDetails, ResponsesUsage,
};
use crate::simulator::engine::ids::Key;
use crate::simulator::engine::order::{LineSource, Order, answer_text, append_json};
use crate::simulator::engine::registry::{Failure, Outcome, ResultsSource};
use crate::simulator::engine::usage::{Draws, MIN_CACHEABLE_TOKENS, OutputShape};

/// Which of a batch's two files.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Output,
    Error,
}

impl Kind {
    /// Whether a request with this outcome has its line in this file.
    pub fn holds(self, o: &Outcome) -> bool {
        matches!((self, o), (Kind::Output, Outcome::Succeeded { .. }))
            || matches!(
                (self, o),
                (Kind::Error, Outcome::Errored(_) | Outcome::Canceled | Outcome::Expired)
            )
    }
}

/// Token usage of one successful request.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LineUsage {
    /// Prompt tokens, cached included.
    pub input: u64,
    pub cached: u64,
    /// Output tokens, reasoning included.
    pub output: u64,
    pub reasoning: u64,
    pub truncated: bool,
}

/// The seeded usage of request `i` when it succeeded with `read` tokens of cache hit.
/// OpenAI caches in 128-token steps from 1,024 tokens.
pub fn usage_of(d: &Draws, i: u64, rec: &Record, read: u32, shape: &OutputShape) -> LineUsage {
    let read = u64::from(read).min(rec.input_tokens);
    let cached =
        if read >= MIN_CACHEABLE_TOKENS { read - (read - MIN_CACHEABLE_TOKENS) % 128 } else { 0 };
    if rec.max_output == 0 {
        return LineUsage { input: rec.input_tokens, ..LineUsage::default() };
    }
    let (output, truncated) = d.output_tokens_shaped(i, rec.max_output, shape);
    let reasoning = if rec.reasoning { d.reasoning_tokens(i, output, None) } else { 0 };
    LineUsage {
        input: rec.input_tokens,
        cached,
        output: u64::from(output),
        reasoning: u64::from(reasoning),
        truncated,
    }
}

/// One output or error file download.
pub struct FileLines {
    pub src: ResultsSource<Record>,
    pub seed: u64,
    pub kind: Kind,
    pub endpoint: Endpoint,
    pub shape: OutputShape,
    /// Unix seconds put in `created` fields of bodies.
    pub created: i64,
    order: Order,
}

impl FileLines {
    pub fn new(
        src: ResultsSource<Record>,
        seed: u64,
        kind: Kind,
        endpoint: Endpoint,
        shape: OutputShape,
        created: i64,
    ) -> Self {
        let order = Order::seeded(seed, src.batch_seq, src.records.len() as u64);
        FileLines { src, seed, kind, endpoint, shape, created, order }
    }

    fn draws(&self) -> Draws {
        Draws { seed: self.seed, batch_seq: self.src.batch_seq }
    }

    /// Appends the line of request `i` (whatever its outcome) to `out`.
    pub fn render(&self, i: usize, out: &mut Vec<u8>) {
        let rec = &self.src.records[i];
        let i64_ = i as u64;
        let seq = self.src.batch_seq;
        let rid = request_id(self.seed, (seq << 20) ^ i64_);
        let (response, error) = match self.src.outcomes[i] {
            Outcome::Succeeded { read, .. } => {
                let u = usage_of(&self.draws(), i64_, rec, read, &self.shape);
                let body = self.body(i64_, rec, &u);
                (Some(LineResponse { status_code: 200, request_id: rid, body }), None)
            }
            Outcome::Errored(f) => {
                let (status, env) = error_body(rec, f);
                let body = serde_json::to_value(env).unwrap_or(Value::Null);
                (Some(LineResponse { status_code: status, request_id: rid, body }), None)
            }
            Outcome::Expired => (
                None,
                Some(LineError {
                    code: LINE_EXPIRED.into(),
                    message:
                        "This request could not be executed before the completion window expired."
                            .into(),
                }),
            ),
            Outcome::Canceled => (
                None,
                Some(LineError {
                    code: LINE_CANCELLED.into(),
                    message: "This request was not executed because the batch was cancelled."
                        .into(),
                }),
            ),
        };
        let line = OutputLine {
            id: line_id(self.seed, seq, i64_),
            custom_id: rec.custom_id.to_string(),
            response,
            error,
        };
        // A line that cannot be written is sent empty, as before.
        append_json(out, &line);
    }

    fn body(&self, i: u64, rec: &Record, u: &LineUsage) -> Value {
        let seq = self.src.batch_seq;
        let text = || {
            answer_text(
                Key::new(self.seed, "text").u64(seq).u64(i).hash64(),
                u.output.saturating_sub(u.reasoning) as u32,
            )
        };
        match self.endpoint {
            Endpoint::Chat | Endpoint::Completions => {
                let usage = ChatUsage {
                    prompt_tokens: u.input,
                    completion_tokens: u.output,
                    total_tokens: u.input + u.output,
                    prompt_tokens_details: Some(PromptTokensDetails {
                        cached_tokens: u.cached,
                        audio_tokens: 0,
                        cache_write_tokens: None,
                    }),
                    completion_tokens_details: Some(CompletionTokensDetails {
                        reasoning_tokens: u.reasoning,
                        ..CompletionTokensDetails::default()
                    }),
                };
                let finish = if u.truncated { "length" } else { "stop" };
                if self.endpoint == Endpoint::Chat {
                    json!({"id": body_id("chatcmpl-", self.seed, seq, i), "object": "chat.completion",
                        "created": self.created, "model": &*rec.model,
                        "choices": [{"index": 0, "message": {"role": "assistant", "content": text(), "refusal": null, "annotations": []},
                                     "logprobs": null, "finish_reason": finish}],
                        "usage": usage, "service_tier": "default", "system_fingerprint": "fp_sim"})
                } else {
                    json!({"id": body_id("cmpl-", self.seed, seq, i), "object": "text_completion",
                        "created": self.created, "model": &*rec.model,
                        "choices": [{"text": text(), "index": 0, "logprobs": null, "finish_reason": finish}],
                        "usage": usage})
                }
            }
            Endpoint::Responses => {
                let usage = ResponsesUsage {
                    input_tokens: u.input,
                    input_tokens_details: InputTokensDetails {
                        cached_tokens: u.cached,
                        cache_write_tokens: None,
                    },
                    output_tokens: u.output,
                    output_tokens_details: OutputTokensDetails { reasoning_tokens: u.reasoning },
                    total_tokens: u.input + u.output,
                };
                let mut output = Vec::new();
                if u.reasoning > 0 {
                    output.push(json!({"type": "reasoning", "id": body_id("rs_", self.seed, seq, i), "summary": []}));
                }
                output.push(json!({"type": "message", "id": body_id("msg_", self.seed, seq, i), "status": "completed", "role": "assistant",
                    "content": [{"type": "output_text", "text": text(), "annotations": []}]}));
                json!({"id": body_id("resp_", self.seed, seq, i), "object": "response", "created_at": self.created,
                    "status": if u.truncated { "incomplete" } else { "completed" },
                    "incomplete_details": if u.truncated { json!({"reason": "max_output_tokens"}) } else { Value::Null },
                    "model": &*rec.model, "output": output, "usage": usage, "service_tier": "default", "error": null})
            }
            Endpoint::Embeddings => {
                let usage = EmbeddingsUsage { prompt_tokens: u.input, total_tokens: u.input };
                let data: Vec<Value> = (0..rec.inputs)
                    .map(|k| {
                        let h = Key::new(self.seed, "embedding").u64(seq).u64(i).u64(u64::from(k));
                        let v: Vec<f64> = (0..8u64)
                            .map(|d| {
                                (h.hash64().rotate_left(d as u32 * 8) % 2000) as f64 / 1000.0 - 1.0
                            })
                            .collect();
                        json!({"object": "embedding", "index": k, "embedding": v})
                    })
                    .collect();
                json!({"object": "list", "data": data, "model": &*rec.model, "usage": usage})
            }
            Endpoint::Moderations => {
                json!({"id": body_id("modr-", self.seed, seq, i), "model": &*rec.model,
                "results": [{"flagged": false, "categories": {}, "category_scores": {}}]})
            }
        }
    }
}

/// The endpoint's answer to a failed request: status and OpenAI envelope.
fn error_body(rec: &Record, f: Failure) -> (u16, ErrorEnvelope) {
    match (f, &rec.invalid) {
        (Failure::Request, Some(inv)) => (
            inv.status,
            ErrorEnvelope::new("invalid_request_error", inv.message.clone())
                .with_param(inv.param.as_deref())
                .with_code(inv.code.as_deref()),
        ),
        (Failure::Overloaded, _) => {
            (503, ErrorEnvelope::new("server_error", "The server is overloaded or not ready yet."))
        }
        (Failure::Invalid, _) => (
            400,
            ErrorEnvelope::new(
                "invalid_request_error",
                "The request was refused as invalid (simulated).",
            ),
        ),
        (Failure::Request | Failure::Internal, _) => (
            500,
            ErrorEnvelope::new(
                "server_error",
                "The server had an error while processing your request. Sorry about that!",
            ),
        ),
    }
}

impl LineSource for FileLines {
    fn positions(&self) -> u64 {
        self.src.records.len() as u64
    }

    fn line(&self, k: u64, out: &mut Vec<u8>) -> bool {
        let i = self.order.at(k) as usize;
        let held = self.kind.holds(&self.src.outcomes[i]);
        if held {
            self.render(i, out);
        }
        held
    }
}

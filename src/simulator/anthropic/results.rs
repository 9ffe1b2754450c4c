//! The Anthropic results file, generated line by line while it streams: a batch keeps
//! only its compact records and outcomes, and each line (message, usage, text) is rebuilt
//! from them and the seed when it is sent. Lines come in a seeded order that is not the
//! request order, as the API warns, so clients must match on `custom_id`.

use super::ids::message_id;
use super::ingest::RequestRecord;
use super::state::{Outcome, ResultsSource};
use serde::Serialize;

use crate::providers::anthropic::wire::{CacheCreation, ErrorEnvelope, ServerToolUse, Usage};
#[cfg(doc)]
use crate::providers::anthropic::wire::{Message, ResultLine};
use crate::simulator::engine::ids::Key;
use crate::simulator::engine::order::{LineSource, Order, answer_text};
use crate::simulator::engine::registry::Failure;
use crate::simulator::engine::usage::{Draws, OutputShape};

/// One Anthropic results download.
pub struct AnthropicLines {
    src: ResultsSource,
    seed: u64,
    order: Order,
    shape: OutputShape,
}

impl AnthropicLines {
    pub fn new(src: ResultsSource, seed: u64, shape: OutputShape) -> Self {
        let order = Order::seeded(seed, src.batch_seq, src.records.len() as u64);
        AnthropicLines { src, seed, order, shape }
    }
}

impl LineSource for AnthropicLines {
    fn positions(&self) -> u64 {
        self.src.records.len() as u64
    }

    fn line(&self, k: u64) -> Option<Vec<u8>> {
        Some(self.render(self.order.at(k) as usize))
    }
}

/// The result line's error for a failed request, in Anthropic's error types.
fn error_of(rec: &RequestRecord, failure: Failure) -> ErrorEnvelope {
    match (failure, &rec.invalid) {
        (Failure::Request, Some(inv)) => ErrorEnvelope::new(inv.error_type, inv.message.clone()),
        (Failure::Overloaded, _) => ErrorEnvelope::new("overloaded_error", "Overloaded"),
        (Failure::Invalid, _) => ErrorEnvelope::new(
            "invalid_request_error",
            "messages: the request was refused as invalid (simulated)",
        ),
        (Failure::Request | Failure::Internal, _) => {
            ErrorEnvelope::new("api_error", "Internal server error")
        }
    }
}

/// A results line as [`ResultLine`] serializes it, borrowing what the batch already holds:
/// the same bytes without building a `Message` (a dozen allocations and a JSON map per
/// line, which made the simulator the slow end of a settlement).
#[derive(Serialize)]
struct LineOut<'a> {
    custom_id: &'a str,
    result: ResultOut<'a>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[allow(clippy::large_enum_variant)] // one per line on the stack while it is written
enum ResultOut<'a> {
    Succeeded { message: MessageOut<'a> },
    Errored { error: ErrorEnvelope },
    Canceled,
    Expired,
}

/// [`Message`] field for field.
#[derive(Serialize)]
struct MessageOut<'a> {
    id: String,
    #[serde(rename = "type")]
    object_type: &'static str,
    role: &'static str,
    model: &'a str,
    content: [TextBlock; 1],
    stop_reason: Option<&'static str>,
    stop_sequence: Option<&'static str>,
    usage: Usage,
}

/// `{"type": "text", "text": ...}` as the `json!` map of [`Message::content`] writes it:
/// keys sorted, so `text` first.
#[derive(Serialize)]
struct TextBlock {
    text: String,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl AnthropicLines {
    fn render(&self, i: usize) -> Vec<u8> {
        let rec = &self.src.records[i];
        let result = match self.src.outcomes[i] {
            Outcome::Succeeded { read, write_5m, write_1h } => ResultOut::Succeeded {
                message: self.message(i as u64, rec, read, write_5m, write_1h),
            },
            Outcome::Errored(failure) => ResultOut::Errored { error: error_of(rec, failure) },
            Outcome::Canceled => ResultOut::Canceled,
            Outcome::Expired => ResultOut::Expired,
        };
        let mut out = Vec::with_capacity(1024);
        let line = LineOut { custom_id: &rec.custom_id, result };
        serde_json::to_writer(&mut out, &line).map_or_else(|_| Vec::new(), |()| out)
    }

    fn message<'r>(
        &self,
        i: u64,
        rec: &'r RequestRecord,
        read: u32,
        w5: u32,
        w1h: u32,
    ) -> MessageOut<'r> {
        let draws = Draws { seed: self.seed, batch_seq: self.src.batch_seq };
        let (output, hit_max) = draws.output_tokens_shaped(i, rec.max_tokens, &self.shape);
        let cached = u64::from(read) + u64::from(w5) + u64::from(w1h);
        let searches = draws.tool_calls(i, "web_search", rec.web_search_max);
        let fetches = draws.tool_calls(i, "web_fetch", rec.web_fetch_max);
        let usage = Usage {
            input_tokens: rec.input_tokens.saturating_sub(cached),
            output_tokens: u64::from(output),
            cache_creation_input_tokens: Some(u64::from(w5) + u64::from(w1h)),
            cache_read_input_tokens: Some(u64::from(read)),
            cache_creation: Some(CacheCreation {
                ephemeral_5m_input_tokens: u64::from(w5),
                ephemeral_1h_input_tokens: u64::from(w1h),
            }),
            server_tool_use: (searches + fetches > 0).then_some(ServerToolUse {
                web_search_requests: searches,
                web_fetch_requests: fetches,
            }),
            service_tier: Some("batch".into()),
            inference_geo: rec.inference_geo.as_deref().map(str::to_string),
            output_tokens_details: None,
        };
        let text = answer_text(
            Key::new(self.seed, "text").u64(self.src.batch_seq).u64(i).hash64(),
            output,
        );
        MessageOut {
            id: message_id(self.seed, self.src.batch_seq, i, &rec.custom_id),
            object_type: "message",
            role: "assistant",
            model: &rec.model,
            content: [TextBlock { text, kind: "text" }],
            stop_reason: Some(if hit_max { "max_tokens" } else { "end_turn" }),
            stop_sequence: None,
            usage,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::providers::anthropic::wire::{BatchResult, Message, ResultLine};
    use crate::simulator::engine::registry::Failure;

    /// The line as the wire types render it (what `render` replaced).
    fn wire_line(l: &AnthropicLines, i: usize) -> Vec<u8> {
        let rec = &l.src.records[i];
        let result = match l.src.outcomes[i] {
            Outcome::Succeeded { read, write_5m, write_1h } => {
                let m = l.message(i as u64, rec, read, write_5m, write_1h);
                BatchResult::Succeeded {
                    message: Box::new(Message {
                        id: m.id,
                        object_type: "message".into(),
                        role: "assistant".into(),
                        model: rec.model.to_string(),
                        content: vec![
                            serde_json::json!({"type": "text", "text": m.content[0].text}),
                        ],
                        stop_reason: m.stop_reason.map(str::to_string),
                        stop_sequence: None,
                        usage: m.usage,
                    }),
                }
            }
            Outcome::Errored(failure) => BatchResult::Errored { error: error_of(rec, failure) },
            Outcome::Canceled => BatchResult::Canceled,
            Outcome::Expired => BatchResult::Expired,
        };
        serde_json::to_vec(&ResultLine { custom_id: rec.custom_id.to_string(), result }).unwrap()
    }

    #[test]
    fn lines_are_the_bytes_the_wire_types_write() {
        let rec = |id: &str, model: &str, geo: Option<&str>, searches: u8| RequestRecord {
            custom_id: id.into(),
            model: model.into(),
            max_tokens: 64,
            input_tokens: 40,
            breakpoints: Box::new([]),
            web_search_max: searches,
            web_fetch_max: 0,
            inference_geo: geo.map(Into::into),
            invalid: None,
        };
        let n = 2;
        let outcomes = vec![
            Outcome::Succeeded { read: 3, write_5m: 2, write_1h: 1 },
            Outcome::Succeeded { read: 0, write_5m: 0, write_1h: 0 },
        ];
        for outcomes in [
            outcomes,
            vec![Outcome::Errored(Failure::Overloaded), Outcome::Canceled],
            vec![Outcome::Expired, Outcome::Errored(Failure::Internal)],
        ] {
            let src = ResultsSource {
                batch_id: "b".into(),
                batch_seq: 7,
                records: Arc::new(vec![
                    rec("a", "claude-sonnet-4-6", None, 0),
                    rec("b-\"q", "claude-haiku-4-5", Some("us"), 3),
                ]),
                outcomes: Arc::new(outcomes),
            };
            let lines = AnthropicLines::new(src, 42, OutputShape::default());
            for i in 0..n {
                assert_eq!(
                    String::from_utf8(lines.render(i)).unwrap(),
                    String::from_utf8(wire_line(&lines, i)).unwrap()
                );
            }
        }
    }
}

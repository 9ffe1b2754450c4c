//! The Anthropic results file, generated line by line while it streams: a batch keeps
//! only its compact records and outcomes, and each line (message, usage, text) is rebuilt
//! from them and the seed when it is sent. Lines come in a seeded order that is not the
//! request order, as the API warns, so clients must match on `custom_id`.

use super::ids::write_message_id;
use super::ingest::RequestRecord;
use super::state::{Outcome, ResultsSource};
use serde::Serialize;

use crate::providers::anthropic::wire::{CacheCreation, ErrorEnvelope, ServerToolUse, Usage};
#[cfg(doc)]
use crate::providers::anthropic::wire::{Message, ResultLine};
use crate::simulator::engine::ids::Key;
use crate::simulator::engine::order::{LineSource, Order, write_answer};
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

    fn line(&self, k: u64, out: &mut Vec<u8>) -> bool {
        self.render(self.order.at(k) as usize, out);
        true
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

/// A line without a message as [`ResultLine`] serializes it, borrowing the custom id.
#[derive(Serialize)]
struct LineOut<'a> {
    custom_id: &'a str,
    result: ResultOut,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ResultOut {
    Errored { error: ErrorEnvelope },
    Canceled,
    Expired,
}

/// What a succeeded line says beyond the request's own record.
struct Answer {
    usage: Usage,
    output: u32,
    hit_max: bool,
}

impl AnthropicLines {
    /// Appends the line of request `i` to `out` (an empty line if it cannot be written).
    fn render(&self, i: usize, out: &mut Vec<u8>) {
        let rec = &self.src.records[i];
        let start = out.len();
        let result = match self.src.outcomes[i] {
            Outcome::Succeeded { read, write_5m, write_1h } => {
                let answer = self.answer(i as u64, rec, read, write_5m, write_1h);
                self.write_succeeded(i as u64, rec, &answer, out)
            }
            Outcome::Errored(failure) => {
                write_line(rec, ResultOut::Errored { error: error_of(rec, failure) }, out)
            }
            Outcome::Canceled => write_line(rec, ResultOut::Canceled, out),
            Outcome::Expired => write_line(rec, ResultOut::Expired, out),
        };
        if result.is_err() {
            out.truncate(start);
        }
    }

    /// A succeeded line, the bytes [`ResultLine`] writes for its [`Message`], written
    /// field by field: the answer text goes straight into the line (its words need no
    /// escaping), not through a `String` and serde's escape scan, which were a third of
    /// a large download's time.
    fn write_succeeded(
        &self,
        i: u64,
        rec: &RequestRecord,
        a: &Answer,
        out: &mut Vec<u8>,
    ) -> serde_json::Result<()> {
        out.extend_from_slice(br#"{"custom_id":"#);
        serde_json::to_writer(&mut *out, &*rec.custom_id)?;
        out.extend_from_slice(br#","result":{"type":"succeeded","message":{"id":""#);
        write_message_id(self.seed, self.src.batch_seq, i, &rec.custom_id, out);
        out.extend_from_slice(br#"","type":"message","role":"assistant","model":"#);
        serde_json::to_writer(&mut *out, &*rec.model)?;
        // `content` as the `json!` map of [`Message::content`] writes it: keys sorted.
        out.extend_from_slice(br#","content":[{"text":""#);
        write_answer(self.text_state(i), a.output, out);
        out.extend_from_slice(br#"","type":"text"}],"stop_reason":"#);
        out.extend_from_slice(if a.hit_max { br#""max_tokens""# } else { br#""end_turn""# });
        out.extend_from_slice(br#","stop_sequence":null,"usage":"#);
        serde_json::to_writer(&mut *out, &a.usage)?;
        out.extend_from_slice(b"}}}");
        Ok(())
    }

    /// The seed of request `i`'s answer text.
    fn text_state(&self, i: u64) -> u64 {
        Key::new(self.seed, "text").u64(self.src.batch_seq).u64(i).hash64()
    }

    fn answer(&self, i: u64, rec: &RequestRecord, read: u32, w5: u32, w1h: u32) -> Answer {
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
        Answer { usage, output, hit_max }
    }
}

/// A line without a message, through serde.
fn write_line(rec: &RequestRecord, result: ResultOut, out: &mut Vec<u8>) -> serde_json::Result<()> {
    serde_json::to_writer(out, &LineOut { custom_id: &rec.custom_id, result })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::providers::anthropic::wire::{BatchResult, Message, ResultLine};
    use crate::simulator::anthropic::ids::message_id;
    use crate::simulator::engine::order::answer_text;
    use crate::simulator::engine::registry::Failure;

    /// The line as the wire types render it (what `render` replaced).
    fn wire_line(l: &AnthropicLines, i: usize) -> Vec<u8> {
        let rec = &l.src.records[i];
        let result = match l.src.outcomes[i] {
            Outcome::Succeeded { read, write_5m, write_1h } => {
                let a = l.answer(i as u64, rec, read, write_5m, write_1h);
                let text = answer_text(l.text_state(i as u64), a.output);
                BatchResult::Succeeded {
                    message: Box::new(Message {
                        id: message_id(l.seed, l.src.batch_seq, i as u64, &rec.custom_id),
                        object_type: "message".into(),
                        role: "assistant".into(),
                        model: rec.model.to_string(),
                        content: vec![serde_json::json!({"type": "text", "text": text})],
                        stop_reason: Some(if a.hit_max { "max_tokens" } else { "end_turn" }.into()),
                        stop_sequence: None,
                        usage: a.usage,
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
                // Appended after what the chunk already holds, as the stream writes it.
                let mut out = b"earlier line\n".to_vec();
                lines.render(i, &mut out);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("earlier line\n{}", String::from_utf8(wire_line(&lines, i)).unwrap())
                );
            }
        }
    }
}

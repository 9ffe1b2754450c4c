//! The Anthropic results file, generated line by line while it streams: a batch keeps
//! only its compact records and outcomes, and each line (message, usage, text) is rebuilt
//! from them and the seed when it is sent. Lines come in a seeded order that is not the
//! request order, as the API warns, so clients must match on `custom_id`.

use super::ids::message_id;
use super::ingest::RequestRecord;
use super::state::{Outcome, ResultsSource};
use crate::providers::anthropic::wire::{
    BatchResult, CacheCreation, ErrorEnvelope, Message, ResultLine, ServerToolUse, Usage,
};
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

impl AnthropicLines {
    fn render(&self, i: usize) -> Vec<u8> {
        let rec = &self.src.records[i];
        let result = match self.src.outcomes[i] {
            Outcome::Succeeded { read, write_5m, write_1h } => BatchResult::Succeeded {
                message: Box::new(self.message(i as u64, rec, read, write_5m, write_1h)),
            },
            Outcome::Errored(failure) => BatchResult::Errored { error: error_of(rec, failure) },
            Outcome::Canceled => BatchResult::Canceled,
            Outcome::Expired => BatchResult::Expired,
        };
        let line = ResultLine { custom_id: rec.custom_id.to_string(), result };
        serde_json::to_vec(&line).unwrap_or_default()
    }

    fn message(&self, i: u64, rec: &RequestRecord, read: u32, w5: u32, w1h: u32) -> Message {
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
        Message {
            id: message_id(self.seed, self.src.batch_seq, i, &rec.custom_id),
            object_type: "message".into(),
            role: "assistant".into(),
            model: rec.model.to_string(),
            content: vec![serde_json::json!({"type": "text", "text": text})],
            stop_reason: Some(if hit_max { "max_tokens" } else { "end_turn" }.into()),
            stop_sequence: None,
            usage,
        }
    }
}

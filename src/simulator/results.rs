//! The results file, generated line by line while it streams: a batch keeps only its
//! compact records and outcomes, and each line (message, usage, text) is rebuilt from them
//! and the seed when it is sent. Lines come in a seeded order that is not the request
//! order, as the API warns, so clients must match on `custom_id`.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::Stream;

use super::ids::{Key, message_id};
use super::ingest::RequestRecord;
use super::state::{Outcome, ResultsSource};
use super::stats::Stats;
use super::usage::Draws;
use crate::providers::anthropic::wire::{
    BatchResult, CacheCreation, ErrorEnvelope, Message, ResultLine, ServerToolUse, Usage,
};

/// Bytes per chunk handed to the socket.
const CHUNK: usize = 64 * 1024;
/// Longest generated answer text, in words: the usage numbers carry the size, the text
/// only has to look like an answer.
const MAX_WORDS: u32 = 120;

const WORDS: [&str; 32] = [
    "the", "batch", "result", "shows", "a", "clear", "summary", "of", "key", "points", "and",
    "notes", "that", "data", "suggests", "further", "review", "is", "useful", "for", "this",
    "case", "with", "several", "items", "in", "order", "to", "improve", "overall", "quality",
    "here",
];

/// One results download.
pub struct Lines {
    src: ResultsSource,
    seed: u64,
    /// Position `k` of the output holds request `(offset + k * stride) % n`.
    offset: u64,
    stride: u64,
    next: u64,
    /// Cut the connection in the middle of this line, if set.
    cut_at: Option<u64>,
    stats: Arc<Stats>,
}

impl Lines {
    pub fn new(src: ResultsSource, seed: u64, cut: Option<f64>, stats: Arc<Stats>) -> Self {
        let n = src.records.len() as u64;
        let key = Key::new(seed, "order").u64(src.batch_seq);
        let offset = key.hash64() % n.max(1);
        let mut stride = (n / 2 + 1).max(1) | 1;
        while gcd(stride, n.max(1)) != 1 {
            stride += 1;
        }
        let cut_at = cut.map(|u| (u * n as f64) as u64);
        Lines { src, seed, offset, stride, next: 0, cut_at, stats }
    }

    /// The next chunk of whole lines; `true` when it ends with the half line of a cut.
    fn chunk(&mut self) -> Option<(Bytes, bool)> {
        let n = self.src.records.len() as u64;
        if self.next >= n {
            return None;
        }
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        let mut whole = 0;
        while self.next < n && buf.len() < CHUNK {
            let k = self.next;
            self.next += 1;
            let i = ((u128::from(self.offset) + u128::from(k) * u128::from(self.stride))
                % u128::from(n)) as u64;
            let line = self.line(i as usize);
            if self.cut_at == Some(k) {
                buf.extend_from_slice(&line[..line.len() / 2]);
                self.next = n;
                self.stats.faults.cut_results.fetch_add(1, Ordering::Relaxed);
                self.stats.result_lines.fetch_add(whole, Ordering::Relaxed);
                // The partial line goes out, then the error makes the server abort the
                // connection without the final chunk.
                return Some((Bytes::from(buf), true));
            }
            buf.extend_from_slice(&line);
            buf.push(b'\n');
            whole += 1;
        }
        self.stats.result_lines.fetch_add(whole, Ordering::Relaxed);
        Some((Bytes::from(buf), false))
    }

    fn line(&self, i: usize) -> Vec<u8> {
        let rec = &self.src.records[i];
        let result = match self.src.outcomes[i] {
            Outcome::Succeeded { read, write_5m, write_1h } => BatchResult::Succeeded {
                message: Box::new(self.message(i as u64, rec, read, write_5m, write_1h)),
            },
            Outcome::Errored => BatchResult::Errored {
                error: match &rec.invalid {
                    Some(inv) => ErrorEnvelope::new(inv.error_type, inv.message.clone()),
                    None => ErrorEnvelope::new("api_error", "Internal server error"),
                },
            },
            Outcome::Canceled => BatchResult::Canceled,
            Outcome::Expired => BatchResult::Expired,
        };
        let line = ResultLine { custom_id: rec.custom_id.to_string(), result };
        serde_json::to_vec(&line).unwrap_or_default()
    }

    fn message(&self, i: u64, rec: &RequestRecord, read: u32, w5: u32, w1h: u32) -> Message {
        let draws = Draws { seed: self.seed, batch_seq: self.src.batch_seq };
        let (output, hit_max) = draws.output_tokens(i, rec.max_tokens);
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

/// A few words per output token, from a cheap generator seeded per line.
fn answer_text(mut state: u64, output_tokens: u32) -> String {
    let words = (output_tokens * 3 / 4).clamp(1, MAX_WORDS);
    let mut text = String::with_capacity(words as usize * 7);
    for w in 0..words {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        if w > 0 {
            text.push(' ');
        }
        text.push_str(WORDS[(state >> 59) as usize]);
    }
    text.push('.');
    text
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// The body stream of a results download. A cut download sends its half line, waits a
/// moment so the server flushes it, then fails, which makes the server drop the
/// connection without finishing the chunked body.
pub fn stream(lines: Lines) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold((lines, false), |(mut lines, broken)| async move {
        if broken {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "simulated cut");
            return Some((Err(err), (lines, false)));
        }
        let (chunk, cut) = lines.chunk()?;
        Some((Ok(chunk), (lines, cut)))
    })
}

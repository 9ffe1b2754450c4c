//! Walking a prompt in cache order (tools, system, messages): tokens by the simulator's
//! own tokenizer, fixed costs for media, and a running hash of the prefix so far, which is
//! what identifies a cacheable prefix at each `cache_control` breakpoint.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use super::params::{Breakpoint, Invalid, Ttl, invalid};
use super::tokenizer::count;

/// Fixed cost of an image block (the upper end of Anthropic's `w*h/750` rule for the
/// largest image it accepts unscaled, about 1.15 megapixels).
pub const IMAGE_TOKENS: u64 = 1_600;
/// Fixed cost of a PDF or URL document block (the simulator cannot count pages).
pub const DOCUMENT_TOKENS: u64 = 3_000;
/// Per request (turn framing), per message (role header) and per tool definition.
pub const REQUEST_OVERHEAD: u64 = 3;
pub const MESSAGE_OVERHEAD: u64 = 3;
pub const TOOL_OVERHEAD: u64 = 5;
/// Counts tokens in prompt order (tools, system, messages) and hashes the prefix so far.
pub struct Walker {
    pub tokens: u64,
    pub breakpoints: Vec<Breakpoint>,
    hasher: Xxh3,
    seen_5m: bool,
}

impl Walker {
    pub fn new(model: &str) -> Self {
        let mut hasher = Xxh3::new();
        hasher.update(model.as_bytes());
        hasher.update(&[0]);
        Walker { tokens: 0, hasher, breakpoints: Vec::new(), seen_5m: false }
    }

    pub fn text(&mut self, text: &str) {
        self.tokens += count(text);
        self.hasher.update(text.as_bytes());
        self.hasher.update(&[0]);
    }

    pub fn hash_object(&mut self, o: &Map<String, Value>) {
        for (k, v) in o.iter().filter(|(k, _)| *k != "cache_control") {
            self.hasher.update(k.as_bytes());
            let _ = serde_json::to_writer(HashWriter(&mut self.hasher), v);
        }
        self.hasher.update(&[0]);
    }

    pub fn message(&mut self, m: &Value, i: usize) -> Result<(), Invalid> {
        let m = m
            .as_object()
            .ok_or_else(|| invalid(format!("messages.{i}: Input should be a valid dictionary")))?;
        let role = m.get("role").and_then(Value::as_str);
        if !matches!(role, Some("user" | "assistant")) {
            return Err(invalid(format!(
                "messages.{i}.role: Input should be 'user' or 'assistant'"
            )));
        }
        self.hasher.update(role.unwrap_or_default().as_bytes());
        self.tokens += MESSAGE_OVERHEAD;
        match m.get("content") {
            None => Err(invalid(format!("messages.{i}.content: Field required"))),
            Some(Value::String(text)) => {
                self.text(text);
                Ok(())
            }
            Some(Value::Array(blocks)) => {
                for (j, b) in blocks.iter().enumerate() {
                    self.block(b, &format!("messages.{i}.content.{j}"))?;
                }
                Ok(())
            }
            Some(_) => Err(invalid(format!(
                "messages.{i}.content: Input should be a valid string or list of blocks"
            ))),
        }
    }

    pub fn block(&mut self, b: &Value, path: &str) -> Result<(), Invalid> {
        let o = b
            .as_object()
            .ok_or_else(|| invalid(format!("{path}: Input should be a valid dictionary")))?;
        let Some(kind) = o.get("type").and_then(Value::as_str) else {
            return Err(invalid(format!("{path}.type: Field required")));
        };
        self.tokens += match kind {
            "text" => match o.get("text") {
                Some(Value::String(t)) => count(t),
                _ => return Err(invalid(format!("{path}.text: Input should be a valid string"))),
            },
            "image" | "document" => media_tokens(o),
            "tool_result" => match o.get("content") {
                Some(Value::Array(inner)) => inner
                    .iter()
                    .map(|c| match c.as_object() {
                        Some(c)
                            if matches!(
                                c.get("type").and_then(Value::as_str),
                                Some("image" | "document")
                            ) =>
                        {
                            media_tokens(c)
                        }
                        _ => json_tokens(c),
                    })
                    .sum(),
                Some(v) => json_tokens(v),
                None => 0,
            },
            _ => json_tokens_except(o, "cache_control"),
        };
        self.hash_object(o);
        self.maybe_breakpoint(o, path)
    }

    pub fn maybe_breakpoint(&mut self, o: &Map<String, Value>, path: &str) -> Result<(), Invalid> {
        match o.get("cache_control") {
            None | Some(Value::Null) => Ok(()),
            Some(cc) => self.breakpoint(cc, &format!("{path}.cache_control")),
        }
    }

    pub fn breakpoint(&mut self, cc: &Value, path: &str) -> Result<(), Invalid> {
        let cc = cc
            .as_object()
            .ok_or_else(|| invalid(format!("{path}: Input should be a valid dictionary")))?;
        if cc.get("type").and_then(Value::as_str) != Some("ephemeral") {
            return Err(invalid(format!("{path}.type: Input should be 'ephemeral'")));
        }
        let ttl = match cc.get("ttl").map(|t| t.as_str()) {
            None | Some(Some("5m")) => Ttl::FiveMinutes,
            Some(Some("1h")) => Ttl::OneHour,
            _ => return Err(invalid(format!("{path}.ttl: Input should be '5m' or '1h'"))),
        };
        if ttl == Ttl::OneHour && self.seen_5m {
            return Err(invalid(format!(
                "{path}: a cache_control block with ttl='1h' must come before any block with ttl='5m'"
            )));
        }
        self.seen_5m |= ttl == Ttl::FiveMinutes;
        let mut key = Xxh3::with_seed(ttl as u64);
        key.update(&self.hasher.digest128().to_le_bytes());
        self.breakpoints.push(Breakpoint { key: key.digest(), tokens: self.tokens, ttl });
        Ok(())
    }
}

/// Images cost a fixed amount; documents too, unless their source is plain text, which
/// is counted like any other text.
fn media_tokens(o: &Map<String, Value>) -> u64 {
    let source = o.get("source").and_then(|s| s.get("type")).and_then(Value::as_str);
    match o.get("type").and_then(Value::as_str) {
        Some("image") => IMAGE_TOKENS,
        _ if source == Some("text") => json_tokens_except(o, "cache_control"),
        _ => DOCUMENT_TOKENS,
    }
}

/// Tokens of any JSON: strings, keys and numbers by the text rules, `true`/`null` as one.
pub fn json_tokens(v: &Value) -> u64 {
    match v {
        Value::String(s) => count(s),
        // Integers by their digits; floats as one token, since their text form may be
        // longer than what was sent (`1E5` prints as `100000.0`).
        Value::Number(n) if n.is_f64() => 1,
        Value::Number(n) => count(&n.to_string()),
        Value::Bool(_) | Value::Null => 1,
        Value::Array(a) => a.iter().map(json_tokens).sum(),
        Value::Object(o) => o.iter().map(|(k, v)| count(k) + json_tokens(v)).sum(),
    }
}

pub fn json_tokens_except(o: &Map<String, Value>, skip: &str) -> u64 {
    o.iter().filter(|(k, _)| *k != skip).map(|(k, v)| count(k) + json_tokens(v)).sum()
}

struct HashWriter<'a>(&'a mut Xxh3);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.update(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

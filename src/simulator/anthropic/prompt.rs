//! Walking a prompt in cache order (tools, system, messages): tokens by the simulator's
//! own tokenizer, fixed costs for media, and a running hash of the prefix so far, which is
//! what identifies a cacheable prefix at each `cache_control` breakpoint.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::simulator::engine::tokenizer::count;
use crate::simulator::engine::usage::{Breakpoint, Ttl};

/// Why a request fails: the result line's `error.type` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub error_type: &'static str,
    pub message: String,
}

/// An `invalid_request_error` with this message.
pub fn invalid(message: impl Into<String>) -> Invalid {
    Invalid { error_type: "invalid_request_error", message: message.into() }
}

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

/// Images cost a fixed amount, and so do PDF and URL documents (the simulator cannot see
/// pixels or pages). Documents whose source is text (`text`, `content`, or base64 with
/// `media_type: text/plain`) are counted as the text they carry.
fn media_tokens(o: &Map<String, Value>) -> u64 {
    let source = o.get("source");
    let field = |k: &str| source.and_then(|s| s.get(k)).and_then(Value::as_str);
    match (o.get("type").and_then(Value::as_str), field("type")) {
        (Some("image"), _) => IMAGE_TOKENS,
        (_, Some("text" | "content")) => json_tokens_except(o, "cache_control"),
        (_, Some("base64")) if field("media_type") == Some("text/plain") => {
            let decoded = base64_decode(field("data").unwrap_or_default());
            count(&String::from_utf8_lossy(&decoded))
        }
        _ => DOCUMENT_TOKENS,
    }
}

/// Standard base64, padding and whitespace ignored, stopping at the first foreign byte:
/// enough to read a text document, and never longer than its input.
fn base64_decode(data: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(data.len() / 4 * 3);
    let (mut acc, mut bits) = (0u32, 0u32);
    for b in data.bytes() {
        let v = match b {
            b'A'..=b'Z' => b - b'A',
            b'a'..=b'z' => b - b'a' + 26,
            b'0'..=b'9' => b - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' | b'\n' | b'\r' | b' ' => continue,
            _ => break,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn base64_decodes_standard_and_url_safe_text() {
        assert_eq!(base64_decode("aGVsbG8gd29ybGQ="), b"hello world");
        assert_eq!(base64_decode("aGVs\nbG8"), b"hello");
        assert_eq!(base64_decode("Pz8_"), b"??\x3f");
        assert!(base64_decode("!!!").is_empty());
    }

    #[test]
    fn text_documents_count_their_text_and_binary_ones_a_fixed_cost() {
        let doc = |source: Value| json!({"type": "document", "source": source});
        let tokens = |v: Value| media_tokens(v.as_object().unwrap());
        let b64 =
            doc(json!({"type": "base64", "media_type": "text/plain", "data": "aGVsbG8gd29ybGQ="}));
        assert_eq!(tokens(b64), count("hello world"));
        let content = doc(json!({"type": "content", "content": [{"type": "text", "text": "hi"}]}));
        assert!(tokens(content) < 20);
        let pdf =
            doc(json!({"type": "base64", "media_type": "application/pdf", "data": "JVBERi0x"}));
        assert_eq!(tokens(pdf), DOCUMENT_TOKENS);
        assert_eq!(
            tokens(json!({"type": "image", "source": {"type": "url", "url": "u"}})),
            IMAGE_TOKENS
        );
    }
}

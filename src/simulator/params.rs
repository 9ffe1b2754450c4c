//! One request's `params`, reduced to what the simulator needs later: model, max_tokens,
//! the token count of the whole prompt, the cacheable prefixes (hash and cumulative tokens
//! at each `cache_control` breakpoint), server tools, and the first validation error.
//! The real API validates `params` after accepting the batch, so an error here becomes an
//! `errored` result line, not a 400 (count_tokens answers it directly).

use std::collections::HashSet;

use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

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
/// Highest `max_tokens` accepted (the 300k extended-output beta).
pub const MAX_TOKENS_LIMIT: u64 = 300_000;

const KNOWN_KEYS: &[&str] = &[
    "model",
    "max_tokens",
    "messages",
    "system",
    "tools",
    "tool_choice",
    "thinking",
    "temperature",
    "top_k",
    "top_p",
    "metadata",
    "stop_sequences",
    "stream",
    "cache_control",
    "output_config",
    "output_format",
    "service_tier",
    "inference_geo",
    "container",
    "mcp_servers",
    "context_management",
    "speed",
];

/// Cache lifetime asked for by a breakpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ttl {
    FiveMinutes,
    OneHour,
}

/// A cacheable prefix: its identity (model, content, ttl) and its cumulative tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    pub key: u64,
    pub tokens: u64,
    pub ttl: Ttl,
}

/// Why a request fails: the result line's `error.type` and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub error_type: &'static str,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid { error_type: "invalid_request_error", message: message.into() }
}

/// What is kept of a request's `params`.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub model: String,
    pub max_tokens: u64,
    pub input_tokens: u64,
    pub breakpoints: Vec<Breakpoint>,
    pub web_search_max: u64,
    pub web_fetch_max: u64,
    pub inference_geo: Option<String>,
    pub invalid: Option<Invalid>,
}

/// Batch params need `max_tokens`; count_tokens bodies must not need it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Batch,
    CountTokens,
}

/// Validates and measures one `params` object.
pub fn summarize(params: &Map<String, Value>, models: &HashSet<String>, mode: Mode) -> Summary {
    let mut summary = Summary::default();
    if let Err(e) = walk(params, models, mode, &mut summary) {
        summary.invalid = Some(e);
    }
    summary
}

fn walk(
    p: &Map<String, Value>,
    models: &HashSet<String>,
    mode: Mode,
    s: &mut Summary,
) -> Result<(), Invalid> {
    if mode == Mode::Batch {
        if let Some(key) = p.keys().find(|k| !KNOWN_KEYS.contains(&k.as_str())) {
            return Err(invalid(format!("{key}: Extra inputs are not permitted")));
        }
    }
    s.model = match p.get("model") {
        None => return Err(invalid("model: Field required")),
        Some(Value::String(m)) => m.clone(),
        Some(_) => return Err(invalid("model: Input should be a valid string")),
    };
    if mode == Mode::Batch {
        s.max_tokens = match p.get("max_tokens") {
            None => return Err(invalid("max_tokens: Field required")),
            Some(v) => match v.as_u64() {
                Some(0) => {
                    return Err(invalid("max_tokens: Input should be greater than or equal to 1"));
                }
                Some(n) if n <= MAX_TOKENS_LIMIT => n,
                Some(n) => {
                    return Err(invalid(format!(
                        "max_tokens: {n} > {MAX_TOKENS_LIMIT}, which is the maximum allowed number of output tokens"
                    )));
                }
                None if v.as_i64().is_some() => {
                    return Err(invalid("max_tokens: Input should be greater than or equal to 1"));
                }
                None => return Err(invalid("max_tokens: Input should be a valid integer")),
            },
        };
        if p.get("stream") == Some(&Value::Bool(true)) {
            return Err(invalid("stream: streaming is not supported in the Message Batches API"));
        }
        if p.get("speed").and_then(Value::as_str) == Some("fast") {
            return Err(invalid("speed: fast mode is not available in the Message Batches API"));
        }
    }
    if let Some(t) = p.get("temperature") {
        match t.as_f64() {
            Some(x) if (0.0..=1.0).contains(&x) => {}
            Some(_) => return Err(invalid("temperature: Input should be between 0 and 1")),
            None => return Err(invalid("temperature: Input should be a valid number")),
        }
    }
    match p.get("inference_geo") {
        None | Some(Value::Null) => {}
        Some(Value::String(g)) => s.inference_geo = Some(g.clone()),
        Some(_) => return Err(invalid("inference_geo: Input should be a valid string")),
    }
    let mut w = Walker::new(&s.model);
    if let Some(tools) = p.get("tools") {
        let tools =
            tools.as_array().ok_or_else(|| invalid("tools: Input should be a valid list"))?;
        for (i, tool) in tools.iter().enumerate() {
            let t = tool
                .as_object()
                .ok_or_else(|| invalid(format!("tools.{i}: Input should be a valid dictionary")))?;
            if !t.get("name").is_some_and(Value::is_string) {
                return Err(invalid(format!("tools.{i}.name: Field required")));
            }
            let kind = t.get("type").and_then(Value::as_str).unwrap_or("custom");
            let max_uses = t.get("max_uses").and_then(Value::as_u64).unwrap_or(5);
            if kind.starts_with("web_search_") {
                s.web_search_max = s.web_search_max.max(max_uses);
            } else if kind.starts_with("web_fetch_") {
                s.web_fetch_max = s.web_fetch_max.max(max_uses);
            }
            w.tokens += TOOL_OVERHEAD + json_tokens_except(t, "cache_control");
            w.hash_object(t);
            w.maybe_breakpoint(t, &format!("tools.{i}"))?;
        }
    }
    match p.get("system") {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) => w.text(text),
        Some(Value::Array(blocks)) => {
            for (i, b) in blocks.iter().enumerate() {
                w.block(b, &format!("system.{i}"))?;
            }
        }
        Some(_) => return Err(invalid("system: Input should be a valid string or list of blocks")),
    }
    let messages = match p.get("messages") {
        None => return Err(invalid("messages: Field required")),
        Some(Value::Array(m)) if m.is_empty() => {
            return Err(invalid("messages: List should have at least 1 item"));
        }
        Some(Value::Array(m)) => m,
        Some(_) => return Err(invalid("messages: Input should be a valid list")),
    };
    for (i, m) in messages.iter().enumerate() {
        w.message(m, i)?;
    }
    if let Some(cc) = p.get("cache_control") {
        // Automatic caching: one breakpoint at the end of the whole prompt.
        w.breakpoint(cc, "cache_control")?;
    }
    if w.breakpoints.len() > 4 {
        return Err(invalid(format!(
            "A maximum of 4 blocks with cache_control may be provided. Found {}.",
            w.breakpoints.len()
        )));
    }
    if !models.contains(&s.model) {
        return Err(Invalid {
            error_type: "not_found_error",
            message: format!("model: {}", s.model),
        });
    }
    s.input_tokens = REQUEST_OVERHEAD + w.tokens;
    s.breakpoints = w.breakpoints;
    Ok(())
}

/// Counts tokens in prompt order (tools, system, messages) and hashes the prefix so far.
struct Walker {
    tokens: u64,
    hasher: Xxh3,
    breakpoints: Vec<Breakpoint>,
    seen_5m: bool,
}

impl Walker {
    fn new(model: &str) -> Self {
        let mut hasher = Xxh3::new();
        hasher.update(model.as_bytes());
        hasher.update(&[0]);
        Walker { tokens: 0, hasher, breakpoints: Vec::new(), seen_5m: false }
    }

    fn text(&mut self, text: &str) {
        self.tokens += count(text);
        self.hasher.update(text.as_bytes());
        self.hasher.update(&[0]);
    }

    fn hash_object(&mut self, o: &Map<String, Value>) {
        for (k, v) in o.iter().filter(|(k, _)| *k != "cache_control") {
            self.hasher.update(k.as_bytes());
            let _ = serde_json::to_writer(HashWriter(&mut self.hasher), v);
        }
        self.hasher.update(&[0]);
    }

    fn message(&mut self, m: &Value, i: usize) -> Result<(), Invalid> {
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

    fn block(&mut self, b: &Value, path: &str) -> Result<(), Invalid> {
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
            "image" => IMAGE_TOKENS,
            "document" => match o.get("source").and_then(|s| s.get("type")).and_then(Value::as_str)
            {
                Some("text") => json_tokens_except(o, "cache_control"),
                _ => DOCUMENT_TOKENS,
            },
            "tool_result" => match o.get("content") {
                Some(Value::Array(inner)) => inner
                    .iter()
                    .map(|c| match c.get("type").and_then(Value::as_str) {
                        Some("image") => IMAGE_TOKENS,
                        Some("document") => DOCUMENT_TOKENS,
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

    fn maybe_breakpoint(&mut self, o: &Map<String, Value>, path: &str) -> Result<(), Invalid> {
        match o.get("cache_control") {
            None | Some(Value::Null) => Ok(()),
            Some(cc) => self.breakpoint(cc, &format!("{path}.cache_control")),
        }
    }

    fn breakpoint(&mut self, cc: &Value, path: &str) -> Result<(), Invalid> {
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

fn json_tokens_except(o: &Map<String, Value>, skip: &str) -> u64 {
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
#[path = "params_tests.rs"]
mod tests;

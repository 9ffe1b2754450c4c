//! One request's `params`, reduced to what the simulator needs later: model, max_tokens,
//! the token count of the whole prompt, the cacheable prefixes (hash and cumulative tokens
//! at each `cache_control` breakpoint), server tools, and the first validation error.
//! The real API validates `params` after accepting the batch, so an error here becomes an
//! `errored` result line, not a 400 (count_tokens answers it directly).

use std::collections::HashSet;

use serde_json::{Map, Value};

pub use super::prompt::{Invalid, invalid};
use super::prompt::{REQUEST_OVERHEAD, TOOL_OVERHEAD, Walker, json_tokens_except};
pub use crate::simulator::engine::usage::{Breakpoint, Ttl};

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

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;

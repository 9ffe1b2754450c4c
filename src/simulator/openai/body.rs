//! One batch line's `body`, reduced to what the simulator needs later: model, output cap,
//! prompt tokens by the simulator's own tokenizer, cacheable prefixes (OpenAI caches
//! automatically: a prefix at the end of each message or input item), embedding inputs,
//! and the first problem the endpoint would answer with a 4xx. A bad body is accepted
//! with the file and becomes an error line, as the endpoint would have answered it.

use std::collections::HashSet;

use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::simulator::engine::tokenizer::count;
use crate::simulator::engine::usage::{Breakpoint, MIN_CACHEABLE_TOKENS, Ttl};

/// Per request (priming) and per message or input item (role framing).
pub const REQUEST_OVERHEAD: u64 = 3;
pub const MESSAGE_OVERHEAD: u64 = 3;
/// Fixed cost of an image part (the simulator does not read pixels).
pub const IMAGE_TOKENS: u64 = 765;
/// Output cap when a body sets none (legacy completions default to 16).
pub const DEFAULT_OUTPUT_CAP: u64 = 4_096;
const COMPLETIONS_DEFAULT_CAP: u64 = 16;

/// Which endpoint a line targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endpoint {
    Chat,
    Responses,
    Embeddings,
    Completions,
    Moderations,
}

impl Endpoint {
    pub fn parse(url: &str) -> Option<Endpoint> {
        Some(match url {
            "/v1/chat/completions" => Endpoint::Chat,
            "/v1/responses" => Endpoint::Responses,
            "/v1/embeddings" => Endpoint::Embeddings,
            "/v1/completions" => Endpoint::Completions,
            "/v1/moderations" => Endpoint::Moderations,
            _ => return None,
        })
    }
}

/// The endpoint's 4xx for a bad body: status, message, param, code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub status: u16,
    pub message: String,
    pub param: Option<String>,
    pub code: Option<String>,
}

fn invalid(message: impl Into<String>, param: &str) -> Invalid {
    Invalid { status: 400, message: message.into(), param: Some(param.into()), code: None }
}

fn missing(param: &str) -> Invalid {
    Invalid {
        status: 400,
        message: format!("Missing required parameter: '{param}'."),
        param: Some(param.into()),
        code: Some("missing_required_parameter".into()),
    }
}

/// What is kept of a body.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub model: String,
    pub max_output: u64,
    pub input_tokens: u64,
    pub breakpoints: Vec<Breakpoint>,
    /// Embedding inputs in the body (1 for a single string).
    pub inputs: u32,
    /// The model reasons (o-series, GPT-5 family): part of the output is reasoning.
    pub reasoning: bool,
    pub invalid: Option<Invalid>,
}

/// Validates and measures one body for `endpoint`.
pub fn summarize(endpoint: Endpoint, body: &Value, models: &HashSet<String>) -> Summary {
    let mut s = Summary { inputs: 1, ..Summary::default() };
    if let Err(e) = walk(endpoint, body, models, &mut s) {
        s.invalid = Some(e);
    }
    s
}

/// Counts tokens in prompt order and marks a cacheable prefix after each item.
struct Walker {
    tokens: u64,
    hasher: Xxh3,
    breakpoints: Vec<Breakpoint>,
}

impl Walker {
    fn new(model: &str) -> Self {
        let mut hasher = Xxh3::new();
        hasher.update(model.as_bytes());
        Walker { tokens: REQUEST_OVERHEAD, hasher, breakpoints: Vec::new() }
    }

    fn text(&mut self, t: &str) {
        self.tokens += count(t);
        self.hasher.update(t.as_bytes());
        self.hasher.update(&[0]);
    }

    fn json(&mut self, v: &Value) {
        let text = v.to_string();
        self.text(&text);
    }

    /// Content that is a string or a list of parts.
    fn content(&mut self, c: &Value, path: &str) -> Result<(), Invalid> {
        match c {
            Value::String(t) => self.text(t),
            Value::Null => {}
            Value::Array(parts) => {
                for (j, p) in parts.iter().enumerate() {
                    let kind = p.get("type").and_then(Value::as_str).unwrap_or("");
                    match kind {
                        "text" | "input_text" | "output_text" => match p.get("text") {
                            Some(Value::String(t)) => self.text(t),
                            _ => return Err(missing(&format!("{path}[{j}].text"))),
                        },
                        "image_url" | "input_image" => {
                            self.tokens += IMAGE_TOKENS;
                            self.hasher.update(p.to_string().as_bytes());
                        }
                        "" => return Err(missing(&format!("{path}[{j}].type"))),
                        _ => self.json(p),
                    }
                }
            }
            _ => return Err(invalid(format!("Invalid type for '{path}'."), path)),
        }
        Ok(())
    }

    fn item_end(&mut self) {
        if self.tokens >= MIN_CACHEABLE_TOKENS {
            let key = self.hasher.digest();
            self.breakpoints.push(Breakpoint { key, tokens: self.tokens, ttl: Ttl::FiveMinutes });
        }
    }
}

fn cap(b: &Map<String, Value>, keys: &[&str], default: u64) -> Result<u64, Invalid> {
    for key in keys {
        match b.get(*key) {
            None | Some(Value::Null) => continue,
            Some(v) => {
                return match v.as_u64() {
                    Some(n) if n >= 1 => Ok(n),
                    _ => Err(invalid(
                        format!(
                            "Invalid '{key}': integer below minimum value. Expected a value >= 1."
                        ),
                        key,
                    )),
                };
            }
        }
    }
    Ok(default)
}

fn walk(
    endpoint: Endpoint,
    body: &Value,
    models: &HashSet<String>,
    s: &mut Summary,
) -> Result<(), Invalid> {
    let Value::Object(b) = body else {
        return Err(invalid("The body must be a JSON object.", "body"));
    };
    s.model = match b.get("model") {
        Some(Value::String(m)) => m.clone(),
        None if endpoint == Endpoint::Moderations => "omni-moderation-latest".into(),
        None => return Err(missing("model")),
        Some(_) => return Err(invalid("Invalid type for 'model': expected a string.", "model")),
    };
    if b.get("stream") == Some(&Value::Bool(true)) {
        return Err(invalid("Streaming is not supported in the Batch API.", "stream"));
    }
    let m = s.model.as_str();
    s.reasoning = m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
        || (m.starts_with("gpt-5") && !m.contains("chat"));
    let mut w = Walker::new(m);
    match endpoint {
        Endpoint::Chat => {
            s.max_output = cap(b, &["max_completion_tokens", "max_tokens"], DEFAULT_OUTPUT_CAP)?;
            let messages = match b.get("messages") {
                Some(Value::Array(m)) if !m.is_empty() => m,
                Some(Value::Array(_)) => {
                    return Err(invalid(
                        "Invalid 'messages': empty array. Expected an array with minimum length 1.",
                        "messages",
                    ));
                }
                None => return Err(missing("messages")),
                Some(_) => return Err(invalid("Invalid type for 'messages'.", "messages")),
            };
            if let Some(tools) = b.get("tools") {
                w.json(tools);
                w.item_end();
            }
            for (i, msg) in messages.iter().enumerate() {
                let role = msg.get("role").and_then(Value::as_str);
                if !matches!(
                    role,
                    Some("system" | "developer" | "user" | "assistant" | "tool" | "function")
                ) {
                    return Err(invalid(
                        format!("Invalid value for 'messages[{i}].role'."),
                        &format!("messages[{i}].role"),
                    ));
                }
                w.tokens += MESSAGE_OVERHEAD;
                w.hasher.update(role.unwrap_or_default().as_bytes());
                w.content(
                    msg.get("content").unwrap_or(&Value::Null),
                    &format!("messages[{i}].content"),
                )?;
                if let Some(calls) = msg.get("tool_calls") {
                    w.json(calls);
                }
                w.item_end();
            }
        }
        Endpoint::Responses => {
            s.max_output = cap(b, &["max_output_tokens"], DEFAULT_OUTPUT_CAP)?;
            if let Some(tools) = b.get("tools") {
                w.json(tools);
                w.item_end();
            }
            if let Some(Value::String(i)) = b.get("instructions") {
                w.tokens += MESSAGE_OVERHEAD;
                w.text(i);
                w.item_end();
            }
            match b.get("input") {
                None => return Err(missing("input")),
                Some(Value::String(t)) => {
                    w.tokens += MESSAGE_OVERHEAD;
                    w.text(t);
                    w.item_end();
                }
                Some(Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate() {
                        w.tokens += MESSAGE_OVERHEAD;
                        match item.get("content") {
                            Some(c) => w.content(c, &format!("input[{i}].content"))?,
                            None => w.json(item),
                        }
                        w.item_end();
                    }
                }
                Some(_) => return Err(invalid("Invalid type for 'input'.", "input")),
            }
        }
        Endpoint::Completions => {
            s.max_output = cap(b, &["max_tokens"], COMPLETIONS_DEFAULT_CAP)?;
            match b.get("prompt") {
                None => return Err(missing("prompt")),
                Some(Value::String(t)) => w.text(t),
                Some(other) => w.json(other),
            }
            w.item_end();
        }
        Endpoint::Embeddings | Endpoint::Moderations => {
            s.max_output = 0;
            match b.get("input") {
                None => return Err(missing("input")),
                Some(Value::String(t)) => w.text(t),
                Some(Value::Array(items)) if items.is_empty() => {
                    return Err(invalid("'input' : input must be a non-empty array", "input"));
                }
                Some(Value::Array(items)) => {
                    s.inputs = u32::try_from(items.len()).unwrap_or(u32::MAX);
                    for item in items {
                        match item {
                            Value::String(t) => w.text(t),
                            Value::Number(_) => w.tokens += 1,
                            Value::Array(toks) => w.tokens += toks.len() as u64,
                            other => w.json(other),
                        }
                    }
                }
                Some(_) => return Err(invalid("Invalid type for 'input'.", "input")),
            }
            // Embedding inputs carry no framing.
            w.tokens -= REQUEST_OVERHEAD;
        }
    }
    if !models.contains(&s.model) {
        return Err(Invalid {
            status: 404,
            message: format!(
                "The model `{}` does not exist or you do not have access to it.",
                s.model
            ),
            param: None,
            code: Some("model_not_found".into()),
        });
    }
    s.input_tokens = w.tokens;
    s.breakpoints = w.breakpoints;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn models() -> HashSet<String> {
        ["gpt-5-mini", "gpt-4o-mini", "text-embedding-3-small"]
            .iter()
            .map(|m| m.to_string())
            .collect()
    }

    #[test]
    fn a_chat_body_counts_its_messages_and_cap() {
        let b = json!({"model":"gpt-4o-mini","max_tokens":50,"messages":[
            {"role":"system","content":"Be brief."},{"role":"user","content":"Hello there"}]});
        let s = summarize(Endpoint::Chat, &b, &models());
        assert!(s.invalid.is_none(), "{:?}", s.invalid);
        let want =
            REQUEST_OVERHEAD + 2 * MESSAGE_OVERHEAD + count("Be brief.") + count("Hello there");
        assert_eq!((s.input_tokens, s.max_output, s.reasoning), (want, 50, false));
    }

    #[test]
    fn caps_default_and_reasoning_models_are_marked() {
        let b = json!({"model":"gpt-5-mini","input":"2+2?"});
        let s = summarize(Endpoint::Responses, &b, &models());
        assert_eq!((s.max_output, s.reasoning), (DEFAULT_OUTPUT_CAP, true));
        let b = json!({"model":"text-embedding-3-small","input":["a","b","c"]});
        let s = summarize(Endpoint::Embeddings, &b, &models());
        assert_eq!((s.inputs, s.input_tokens), (3, 3));
    }

    #[test]
    fn bad_bodies_name_the_parameter_and_unknown_models_are_404() {
        let s = summarize(Endpoint::Chat, &json!({"model":"gpt-4o-mini"}), &models());
        assert_eq!(s.invalid.unwrap().param.as_deref(), Some("messages"));
        let b = json!({"model":"gpt-9","messages":[{"role":"user","content":"x"}]});
        let inv = summarize(Endpoint::Chat, &b, &models()).invalid.unwrap();
        assert_eq!((inv.status, inv.code.as_deref()), (404, Some("model_not_found")));
    }

    #[test]
    fn long_prompts_get_cacheable_prefixes_at_item_ends() {
        let long = "word ".repeat(3000);
        let b = json!({"model":"gpt-4o-mini","messages":[
            {"role":"system","content":long},{"role":"user","content":"q"}]});
        let s = summarize(Endpoint::Chat, &b, &models());
        assert_eq!(s.breakpoints.len(), 2);
        assert!(s.breakpoints[0].tokens >= MIN_CACHEABLE_TOKENS);
    }
}

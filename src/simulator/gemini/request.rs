//! One `GenerateContentRequest` (inline or a file line), reduced to what the simulator
//! needs later: prompt tokens by the simulator's own tokenizer, the output cap
//! (`generationConfig.maxOutputTokens`, thinking included), the thinking budget, whether
//! tools that spend tool-use prompt tokens are on, the cacheable prefixes (implicit
//! caching: after the system instruction and after each content), and the first problem,
//! which becomes an error line (`google.rpc.Status`, numeric code) as the API answers it.

use serde_json::{Map, Value};
use xxhash_rust::xxh3::Xxh3;

use crate::simulator::engine::tokenizer::count;
use crate::simulator::engine::usage::{Breakpoint, MIN_CACHEABLE_TOKENS, Ttl};

/// Fixed cost of an image part (Gemini's 258 tokens per image up to 384 px a side).
pub const IMAGE_TOKENS: u64 = 258;
/// Per request and per content (role framing).
pub const REQUEST_OVERHEAD: u64 = 3;
pub const CONTENT_OVERHEAD: u64 = 3;
/// Output cap when `maxOutputTokens` is absent.
pub const DEFAULT_OUTPUT_CAP: u64 = 8_192;

/// A request the model would refuse: rpc code (3 INVALID_ARGUMENT) and message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    pub code: i32,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> Invalid {
    Invalid { code: 3, message: message.into() }
}

/// What is kept of a request.
#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub input_tokens: u64,
    pub image_tokens: u64,
    pub max_output: u64,
    pub thinking: bool,
    pub thinking_budget: Option<u64>,
    pub tool_use: bool,
    pub breakpoints: Vec<Breakpoint>,
    pub invalid: Option<Invalid>,
}

/// Whether `model` thinks by default (2.5 and later, except Flash-Lite).
fn thinks(model: &str) -> bool {
    let m = model.trim_start_matches("models/");
    (m.starts_with("gemini-2.5") || m.starts_with("gemini-3"))
        && !m.contains("lite")
        && !m.contains("image")
}

/// Either spelling of a field (the REST front end takes camelCase and snake_case).
fn field<'a>(o: &'a Map<String, Value>, camel: &str, snake: &str) -> Option<&'a Value> {
    o.get(camel).or_else(|| o.get(snake))
}

pub fn summarize(model: &str, request: &Value) -> Summary {
    let mut s = Summary::default();
    if let Err(e) = walk(model, request, &mut s) {
        s.invalid = Some(e);
    }
    s
}

struct Walker {
    tokens: u64,
    images: u64,
    hasher: Xxh3,
    breakpoints: Vec<Breakpoint>,
}

impl Walker {
    fn text(&mut self, t: &str) {
        self.tokens += count(t);
        self.hasher.update(t.as_bytes());
        self.hasher.update(&[0]);
    }

    fn parts(&mut self, parts: &Value, path: &str) -> Result<(), Invalid> {
        let Value::Array(parts) = parts else {
            return Err(invalid(format!("Invalid value at '{path}.parts': expected a list")));
        };
        for p in parts {
            if let Some(Value::String(t)) = p.get("text") {
                self.text(t);
            } else if let Some(d) =
                field(p.as_object().unwrap_or(&Map::new()), "inlineData", "inline_data")
                    .or_else(|| p.get("fileData"))
                    .or_else(|| p.get("file_data"))
            {
                self.tokens += IMAGE_TOKENS;
                self.images += IMAGE_TOKENS;
                self.hasher.update(d.to_string().as_bytes());
            } else {
                self.text(&p.to_string());
            }
        }
        Ok(())
    }

    fn end(&mut self) {
        if self.tokens >= MIN_CACHEABLE_TOKENS {
            let key = self.hasher.digest();
            self.breakpoints.push(Breakpoint { key, tokens: self.tokens, ttl: Ttl::FiveMinutes });
        }
    }
}

fn walk(model: &str, request: &Value, s: &mut Summary) -> Result<(), Invalid> {
    let Value::Object(r) = request else {
        return Err(invalid("Invalid value at 'request': expected an object"));
    };
    let mut hasher = Xxh3::new();
    hasher.update(model.as_bytes());
    let mut w = Walker { tokens: REQUEST_OVERHEAD, images: 0, hasher, breakpoints: Vec::new() };
    if let Some(tools) = r.get("tools") {
        w.text(&tools.to_string());
        let t = tools.to_string();
        s.tool_use = [
            "googleSearch",
            "google_search",
            "codeExecution",
            "code_execution",
            "urlContext",
            "url_context",
        ]
        .iter()
        .any(|k| t.contains(k));
    }
    if let Some(sys) = field(r, "systemInstruction", "system_instruction") {
        w.tokens += CONTENT_OVERHEAD;
        match sys.get("parts") {
            Some(p) => w.parts(p, "system_instruction")?,
            None => w.text(&sys.to_string()),
        }
        w.end();
    }
    let contents = match r.get("contents") {
        Some(Value::Array(c)) if !c.is_empty() => c,
        Some(Value::Array(_)) | None => {
            return Err(invalid("* GenerateContentRequest.contents: contents is not specified"));
        }
        Some(_) => return Err(invalid("Invalid value at 'contents': expected a list")),
    };
    for (i, c) in contents.iter().enumerate() {
        w.tokens += CONTENT_OVERHEAD;
        match c.get("role").and_then(Value::as_str) {
            None | Some("user" | "model" | "function") => {}
            Some(other) => {
                return Err(invalid(format!(
                    "Please use a valid role: user, model. (contents[{i}].role = {other})"
                )));
            }
        }
        let parts = c.get("parts").ok_or_else(|| {
            invalid(format!(
                "* GenerateContentRequest.contents[{i}].parts: contents.parts must not be empty."
            ))
        })?;
        w.parts(parts, &format!("contents[{i}]"))?;
        w.end();
    }
    let config = field(r, "generationConfig", "generation_config").and_then(Value::as_object);
    let num = |o: Option<&Map<String, Value>>, camel: &str, snake: &str| {
        o.and_then(|o| field(o, camel, snake)).and_then(Value::as_i64)
    };
    s.max_output = match num(config, "maxOutputTokens", "max_output_tokens") {
        None => DEFAULT_OUTPUT_CAP,
        Some(n) if n >= 1 => n as u64,
        Some(_) => return Err(invalid("max_output_tokens must be positive")),
    };
    let thinking = config
        .and_then(|c| field(c, "thinkingConfig", "thinking_config"))
        .and_then(Value::as_object);
    let budget = num(thinking, "thinkingBudget", "thinking_budget");
    s.thinking = match budget {
        Some(0) => false,
        Some(_) => true,
        None => thinks(model),
    };
    s.thinking_budget = budget.filter(|b| *b > 0).map(|b| b as u64);
    s.input_tokens = w.tokens;
    s.image_tokens = w.images;
    s.breakpoints = w.breakpoints;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_request_counts_its_parts_and_reads_the_generation_config() {
        let r = json!({"contents": [{"role": "user", "parts": [{"text": "Hello there"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "generationConfig": {"maxOutputTokens": 300, "thinkingConfig": {"thinkingBudget": 100}}});
        let s = summarize("gemini-2.5-flash", &r);
        assert!(s.invalid.is_none());
        let want =
            REQUEST_OVERHEAD + 2 * CONTENT_OVERHEAD + count("Hello there") + count("Be brief.");
        assert_eq!(
            (s.input_tokens, s.max_output, s.thinking, s.thinking_budget),
            (want, 300, true, Some(100))
        );
        let s =
            summarize("gemini-2.5-flash-lite", &json!({"contents": [{"parts": [{"text": "x"}]}]}));
        assert_eq!((s.thinking, s.max_output), (false, DEFAULT_OUTPUT_CAP));
    }

    #[test]
    fn missing_contents_is_invalid_argument() {
        let s = summarize("gemini-2.5-flash", &json!({"generationConfig": {}}));
        assert_eq!(s.invalid.unwrap().code, 3);
    }
}

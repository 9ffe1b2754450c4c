//! The worst case of Gemini requests (a create's inline `requests`, or an input file's
//! lines as they stream in). Per request:
//! - input: an upper bound from the same token bounds as for Anthropic
//!   ([`Tokens::of_text`]: at least one byte of text per token) over every text, system
//!   instruction, tool declaration and function call/response; inline media at their
//!   decoded size in tokens (and at least an image's 258); parts that refer to content
//!   the gateway cannot see (`fileData`, `cachedContent`) are refused, since nothing
//!   bounds them.
//! - output: `maxOutputTokens` plus `thinkingBudget` where set (whether the cap includes
//!   thinking is not documented firmly), at most the model's `max_output_tokens`; the
//!   model's maximum when no cap is given.
//! - tier: the long-context rates whenever the bound on the prompt can cross the model's
//!   threshold (the whole request is re-priced above it).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use xxhash_rust::xxh3::xxh3_64;

use crate::estimate::{BodyFormat, Estimate, MAX_REQUESTS, ModelEstimate, Tokens};
use crate::money::Money;
use crate::pricing::{CostPair, PriceTable};
use crate::usage::TokenUsage;

/// Output cap assumed for a model whose price row gives no `max_output_tokens`.
pub const DEFAULT_MAX_OUTPUT: u64 = 65_536;
/// Tokens of one image (up to 384 px a side; larger ones are tiles of 258 each).
const IMAGE_TOKENS: u64 = 258;
/// Role and turn markers around one content.
const TURN: Tokens = Tokens::fixed(8, 4);

/// One model's running totals; kept with an uploaded file until its batch is created.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ModelTotals {
    pub requests: u64,
    pub input_upper: u64,
    pub input_expected: u64,
    pub output_worst: u64,
    pub output_expected: u64,
    pub worst: Money,
    pub worst_list: Money,
    pub expected: Money,
    pub expected_list: Money,
}

/// Priced requests so far, by canonical model.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tally {
    pub models: BTreeMap<String, ModelTotals>,
    pub requests: u64,
    /// Sum of the xxh3 of every key (the settlement's results fingerprint).
    pub fingerprint: u64,
}

/// What prices the requests: the table, the upstream's name in it, the default model
/// (the create path's), the moment and the expected output fraction.
pub struct Pricer<'t> {
    pub table: &'t PriceTable,
    pub provider: &'t str,
    pub default_model: Option<&'t str>,
    pub at: Timestamp,
    pub fraction: f64,
}

fn num(v: Option<&Value>, camel: &str, snake: &str) -> Option<u64> {
    let v = v?;
    let x = v.get(camel).or_else(|| v.get(snake))?;
    x.as_u64().or_else(|| x.as_str().and_then(|s| s.parse().ok()))
}

fn get<'v>(v: &'v Value, camel: &str, snake: &str) -> Option<&'v Value> {
    v.get(camel).or_else(|| v.get(snake))
}

fn json_text(v: &Value) -> Tokens {
    Tokens::of_text(&v.to_string())
}

/// The input bound of one content's parts.
fn parts_tokens(content: &Value, at: &str) -> Result<Tokens, String> {
    let mut t = TURN;
    let parts = match content.get("parts") {
        Some(Value::Array(p)) => p.as_slice(),
        None | Some(Value::Null) => &[],
        Some(_) => return Err(format!("{at}.parts: expected an array")),
    };
    for (i, p) in parts.iter().enumerate() {
        if let Some(text) = p.get("text") {
            t += Tokens::of_text(text.as_str().unwrap_or_default());
        } else if let Some(d) = get(p, "inlineData", "inline_data") {
            let b64 = d.get("data").and_then(Value::as_str).unwrap_or_default().len() as u64;
            let bytes = b64.div_ceil(4) * 3;
            let image = get(d, "mimeType", "mime_type")
                .and_then(Value::as_str)
                .is_some_and(|m| m.starts_with("image/"));
            let expected = if image { IMAGE_TOKENS } else { bytes / 64 };
            t += Tokens::fixed(bytes.max(IMAGE_TOKENS), expected);
        } else if get(p, "fileData", "file_data").is_some() {
            return Err(format!(
                "{at}.parts[{i}].fileData: content by reference cannot be bounded; send it inline"
            ));
        } else {
            t += json_text(p);
        }
    }
    Ok(t)
}

/// The input bound of one `GenerateContentRequest`.
pub fn input_tokens(req: &Value) -> Result<Tokens, String> {
    if get(req, "cachedContent", "cached_content").is_some() {
        return Err("cachedContent: a cached prefix cannot be bounded by the gateway".into());
    }
    let mut t = Tokens::default();
    match req.get("contents") {
        Some(Value::Array(cs)) if !cs.is_empty() => {
            for (i, c) in cs.iter().enumerate() {
                t += parts_tokens(c, &format!("contents[{i}]"))?;
            }
        }
        _ => return Err("contents: required, a non-empty array".into()),
    }
    if let Some(s) = get(req, "systemInstruction", "system_instruction") {
        t += parts_tokens(s, "systemInstruction")?;
    }
    for key in ["tools", "toolConfig", "tool_config"] {
        if let Some(v) = req.get(key) {
            t += json_text(v);
        }
    }
    Ok(t)
}

impl Pricer<'_> {
    /// Prices one request into `tally`; `Err` names the field at fault.
    pub fn add(&self, tally: &mut Tally, key: &str, req: &Value) -> Result<(), String> {
        if !req.is_object() {
            return Err("request: expected a GenerateContentRequest object".into());
        }
        let model = match req.get("model").and_then(Value::as_str).or(self.default_model) {
            Some(m) => m.strip_prefix("models/").unwrap_or(m),
            None => return Err("model: required".into()),
        };
        let price = self
            .table
            .resolve_for(self.provider, model, self.at)
            .ok_or_else(|| format!("model `{model}` is not in the price table"))?;
        let input = input_tokens(req)?;
        let config = get(req, "generationConfig", "generation_config");
        let thinking = config.and_then(|c| get(c, "thinkingConfig", "thinking_config"));
        let budget = num(thinking, "thinkingBudget", "thinking_budget").unwrap_or(0);
        let cap = price.max_output_tokens.unwrap_or(DEFAULT_MAX_OUTPUT);
        let worst_out = match num(config, "maxOutputTokens", "max_output_tokens") {
            Some(0) => return Err("generationConfig.maxOutputTokens: must be positive".into()),
            Some(m) => m.saturating_add(budget).min(cap),
            None => cap,
        };
        let expected_out = ((worst_out as f64) * self.fraction).ceil() as u64;
        let worst_usage =
            TokenUsage { input: input.upper, output: worst_out, ..Default::default() };
        let worst = price.cost_for_prompt(&worst_usage, input.upper);
        let exp_in = input.expected().min(input.upper);
        let exp_usage = TokenUsage { input: exp_in, output: expected_out, ..Default::default() };
        let expected = price.cost_for_prompt(&exp_usage, exp_in);
        let m = tally.models.entry(price.model.clone()).or_default();
        m.requests += 1;
        m.input_upper += input.upper;
        m.input_expected += exp_in;
        m.output_worst += worst_out;
        m.output_expected += expected_out;
        m.worst += worst.cost;
        m.worst_list += worst.list_cost;
        m.expected += expected.cost;
        m.expected_list += expected.list_cost;
        tally.requests += 1;
        tally.fingerprint = tally.fingerprint.wrapping_add(xxh3_64(key.as_bytes()));
        Ok(())
    }
}

impl Tally {
    /// The estimate the core admits; `Err` for an empty or oversized batch.
    pub fn estimate(&self, provider: &str, format: BodyFormat) -> Result<Estimate, String> {
        if self.requests == 0 || self.requests > MAX_REQUESTS {
            return Err(format!(
                "requests: a batch holds 1 to {MAX_REQUESTS} requests, got {}",
                self.requests
            ));
        }
        let models: Vec<ModelEstimate> = self
            .models
            .iter()
            .map(|(model, t)| ModelEstimate {
                provider: provider.to_string(),
                model: model.clone(),
                requests: t.requests,
                input_tokens_upper: t.input_upper,
                input_tokens_expected: t.input_expected,
                cache_write_5m_tokens_upper: 0,
                cache_write_1h_tokens_upper: 0,
                cache_write_tokens_expected: 0,
                cache_read_tokens_expected: 0,
                output_tokens_worst: t.output_worst,
                output_tokens_expected: t.output_expected,
                web_search_requests_worst: 0,
                worst: CostPair { cost: t.worst, list_cost: t.worst_list },
                expected: CostPair { cost: t.expected, list_cost: t.expected_list },
            })
            .collect();
        Ok(Estimate {
            requests: self.requests,
            format,
            custom_id_fingerprint: self.fingerprint,
            worst: models.iter().map(|m| m.worst).sum(),
            expected: models.iter().map(|m| m.expected).sum(),
            models,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> PriceTable {
        PriceTable::load(std::path::Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/pricing.toml")))
            .unwrap()
    }

    fn pricer(t: &PriceTable) -> Pricer<'_> {
        Pricer {
            table: t,
            provider: "gemini",
            default_model: Some("gemini-2.5-pro"),
            at: "2026-09-01T00:00:00Z".parse().unwrap(),
            fraction: 0.5,
        }
    }

    #[test]
    fn output_is_the_cap_plus_thinking_or_the_model_maximum() {
        let t = table();
        let p = pricer(&t);
        let mut tally = Tally::default();
        let r = serde_json::json!({"contents": [{"parts": [{"text": "hello there"}]}],
            "generationConfig": {"maxOutputTokens": 100, "thinkingConfig": {"thinkingBudget": 50}}});
        p.add(&mut tally, "a", &r).unwrap();
        let r2 = serde_json::json!({"contents": [{"parts": [{"text": "hi"}]}]});
        p.add(&mut tally, "b", &r2).unwrap();
        let m = &tally.models["gemini-2.5-pro"];
        assert_eq!(m.output_worst, 150 + 65_536);
        assert!(m.input_upper >= "hello there".len() as u64 + 2);
    }

    #[test]
    fn a_prompt_that_can_cross_the_threshold_is_priced_long() {
        let t = table();
        let p = pricer(&t);
        let price = t.resolve_for("gemini", "gemini-2.5-pro", p.at).unwrap();
        let long = "x".repeat(200_001);
        let r = serde_json::json!({"contents": [{"parts": [{"text": long}]}],
            "generationConfig": {"maxOutputTokens": 10}});
        let mut tally = Tally::default();
        p.add(&mut tally, "a", &r).unwrap();
        let m = &tally.models["gemini-2.5-pro"];
        let u = TokenUsage { input: m.input_upper, output: 10, ..Default::default() };
        let rates = price.rates_for_prompt(m.input_upper);
        assert_eq!(rates.batch.input, price.long_context.as_ref().unwrap().batch.input);
        assert_eq!(m.worst, price.cost_for_prompt(&u, m.input_upper).cost);
    }

    #[test]
    fn unbounded_parts_and_unknown_models_are_refused_by_name() {
        let t = table();
        let p = pricer(&t);
        let mut tally = Tally::default();
        let r = serde_json::json!({"contents": [{"parts": [{"fileData": {"fileUri": "x"}}]}]});
        assert!(p.add(&mut tally, "a", &r).unwrap_err().contains("fileData"));
        let r =
            serde_json::json!({"model": "models/nope", "contents": [{"parts": [{"text": "x"}]}]});
        assert!(p.add(&mut tally, "a", &r).unwrap_err().contains("nope"));
        assert!(tally.estimate("gemini", BodyFormat::Json).is_err());
    }
}

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

/// What the worst case of one request depends on besides its model's prices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shape<'r> {
    /// `request.model`, when the request names one.
    pub model: Option<&'r str>,
    pub input: Tokens,
    /// `generationConfig.maxOutputTokens`.
    pub max_out: Option<u64>,
    /// `thinkingConfig.thinkingBudget` (0 when unset or dynamic).
    pub budget: u64,
}

/// Reads a request's shape; `Err` names the field at fault.
pub fn shape(req: &Value) -> Result<Shape<'_>, String> {
    if !req.is_object() {
        return Err("request: expected a GenerateContentRequest object".into());
    }
    let model = match req.get("model") {
        None | Some(Value::Null) => None,
        Some(Value::String(m)) => Some(m.strip_prefix("models/").unwrap_or(m)),
        Some(_) => return Err("model: expected a string".into()),
    };
    let input = input_tokens(req)?;
    let config = get(req, "generationConfig", "generation_config");
    let thinking = config.and_then(|c| get(c, "thinkingConfig", "thinking_config"));
    let budget = num(thinking, "thinkingBudget", "thinking_budget").unwrap_or(0);
    let max_out = num(config, "maxOutputTokens", "max_output_tokens");
    if max_out == Some(0) {
        return Err("generationConfig.maxOutputTokens: must be positive".into());
    }
    Ok(Shape { model, input, max_out, budget })
}

/// The worst output of a request: its cap plus thinking, at most the model's maximum.
fn worst_output(max_out: Option<u64>, budget: u64, model_max: Option<u64>) -> u64 {
    let cap = model_max.unwrap_or(DEFAULT_MAX_OUTPUT);
    match max_out {
        Some(m) => m.saturating_add(budget).min(cap),
        None => cap,
    }
}

impl Pricer<'_> {
    /// Prices one request into `tally`; `Err` names the field at fault.
    pub fn add(&self, tally: &mut Tally, key: &str, req: &Value) -> Result<(), String> {
        let s = shape(req)?;
        let group = Group {
            model: s.model.map(str::to_string),
            max_out: s.max_out,
            budget: s.budget,
            requests: 1,
            input_upper: s.input.upper,
            input_expected: s.input.expected().min(s.input.upper),
            long: s.input.upper,
        };
        self.add_group(tally, &group, false)?;
        tally.fingerprint = tally.fingerprint.wrapping_add(xxh3_64(key.as_bytes()));
        Ok(())
    }

    /// Prices a group of requests that share model, caps and tier. `bucketed`: `long` is
    /// the largest table threshold the group's prompts exceed (see [`FileSummary`]);
    /// otherwise it is the one request's prompt bound.
    fn add_group(&self, tally: &mut Tally, g: &Group, bucketed: bool) -> Result<(), String> {
        let model = match g.model.as_deref().or(self.default_model) {
            Some(m) => m.strip_prefix("models/").unwrap_or(m),
            None => return Err("model: required".into()),
        };
        let price = self
            .table
            .resolve_for(self.provider, model, self.at)
            .ok_or_else(|| format!("model `{model}` is not in the price table"))?;
        let out = worst_output(g.max_out, g.budget, price.max_output_tokens);
        let n = g.requests;
        let crosses = match price.tier_threshold() {
            Some(t) if bucketed => g.long >= t && g.long > 0,
            Some(t) => g.long > t,
            None => false,
        };
        let tier = if crosses { u64::MAX } else { 0 };
        let exp_out = ((out as f64) * self.fraction).ceil() as u64;
        let w = TokenUsage { input: g.input_upper, output: out * n, ..Default::default() };
        let worst = price.cost_for_prompt(&w, tier);
        // Expected: the long tier only where the expected prompt itself is long.
        let exp_long =
            crosses && !bucketed && g.input_expected > price.tier_threshold().unwrap_or(0);
        let e = TokenUsage { input: g.input_expected, output: exp_out * n, ..Default::default() };
        let expected =
            price.cost_for_prompt(&e, if exp_long || (bucketed && crosses) { tier } else { 0 });
        let m = tally.models.entry(price.model.clone()).or_default();
        m.requests += n;
        m.input_upper += g.input_upper;
        m.input_expected += g.input_expected;
        m.output_worst += out * n;
        m.output_expected += exp_out * n;
        m.worst += worst.cost;
        m.worst_list += worst.list_cost;
        m.expected += expected.cost;
        m.expected_list += expected.list_cost;
        tally.requests += n;
        Ok(())
    }
}

/// Requests of an uploaded file that price alike, whatever the batch's model turns out
/// to be (the file is uploaded before the create names it).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Group {
    pub model: Option<String>,
    pub max_out: Option<u64>,
    pub budget: u64,
    pub requests: u64,
    pub input_upper: u64,
    pub input_expected: u64,
    /// The largest long-context threshold of the table the prompts' bound exceeds (0:
    /// none). Pricing is linear within a tier, so summing a group's tokens is exact.
    pub long: u64,
}

/// The priced summary of an input file, kept in the files ledger until its batch is
/// created: groups of alike requests and the keys' fingerprint.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileSummary {
    pub groups: Vec<Group>,
    pub requests: u64,
    pub fingerprint: u64,
}

impl FileSummary {
    /// Adds one line's request under `thresholds` (the table's long-context thresholds).
    pub fn add(&mut self, key: &str, s: &Shape<'_>, thresholds: &[u64]) {
        let long = thresholds.iter().copied().filter(|t| s.input.upper > *t).max().unwrap_or(0);
        let model = s.model.map(str::to_string);
        let found = self.groups.iter_mut().find(|g| {
            g.model == model && g.max_out == s.max_out && g.budget == s.budget && g.long == long
        });
        let g = match found {
            Some(g) => g,
            None => {
                self.groups.push(Group {
                    model,
                    max_out: s.max_out,
                    budget: s.budget,
                    long,
                    ..Default::default()
                });
                self.groups.last_mut().expect("just pushed")
            }
        };
        g.requests += 1;
        g.input_upper += s.input.upper;
        g.input_expected += s.input.expected().min(s.input.upper);
        self.requests += 1;
        self.fingerprint = self.fingerprint.wrapping_add(xxh3_64(key.as_bytes()));
    }

    /// Prices the file for a batch of `pricer.default_model`.
    pub fn price(&self, pricer: &Pricer<'_>) -> Result<Tally, String> {
        let mut t = Tally { fingerprint: self.fingerprint, ..Default::default() };
        for g in &self.groups {
            pricer.add_group(&mut t, g, true)?;
        }
        Ok(t)
    }
}

/// Every long-context threshold among `provider`'s models at `at`.
pub fn thresholds(table: &PriceTable, provider: &str, at: Timestamp) -> Vec<u64> {
    let mut out: Vec<u64> = table
        .models()
        .iter()
        .filter(|(p, _)| p == provider)
        .filter_map(|(p, m)| table.resolve_for(p, m, at).and_then(|r| r.tier_threshold()))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
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

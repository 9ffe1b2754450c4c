//! `/api/estimate?provider=NAME` for every kind of upstream: an Anthropic body as before,
//! an OpenAI batch input file (its JSONL lines) priced as the Files upload prices it, or a
//! Gemini input file (`{key, request}` lines) priced as the File API upload and the create
//! price it, with the batch's model from `?model=`. The runner (`batchcost run`) sends the
//! exact bytes it will upload, so the preview and the hold agree.

use serde_json::Value;

use super::App;
use crate::estimate::{BodyFormat, Estimate, EstimateOptions};
use crate::pricing::ProviderKind;
use crate::providers::gemini::estimate::{FileSummary, Pricer, shape, thresholds};
use crate::providers::openai::batchfile::{Checker, Limits};

/// Estimates `body` for the upstream named `provider` (`None`: the Anthropic format,
/// any priced model, as `batchcost estimate` does).
pub fn estimate(
    app: &App,
    provider: Option<&str>,
    model: Option<&str>,
    body: &[u8],
    opts: &EstimateOptions,
) -> Result<Estimate, String> {
    let Some(name) = provider else {
        return crate::providers::anthropic::estimate::estimate_bytes(body, &app.pricing, opts)
            .map_err(|e| e.to_string());
    };
    let up = app.provider(name).ok_or_else(|| {
        format!("provider: no upstream named `{}`", name.chars().take(64).collect::<String>())
    })?;
    match up.kind() {
        ProviderKind::Anthropic => {
            crate::providers::anthropic::estimate::estimate_bytes(body, &app.pricing, opts)
                .map_err(|e| e.to_string())
        }
        ProviderKind::OpenAi => openai(app, name, body, opts),
        ProviderKind::Gemini => gemini(app, name, model, body, opts),
    }
}

fn openai(app: &App, name: &str, body: &[u8], opts: &EstimateOptions) -> Result<Estimate, String> {
    let limits = Limits { max_bytes: u64::MAX, ..Limits::default() };
    let mut checker = Checker::new(&app.pricing, name, opts.at, limits);
    checker.push(body).map_err(|e| e.to_string())?;
    let summary = checker.finish().map_err(|e| e.to_string())?;
    let price = app
        .pricing
        .resolve_for(name, &summary.model, opts.at)
        .ok_or_else(|| format!("model {:?} is not in the price table for {name}", summary.model))?;
    Ok(summary.estimate(&price, opts.expected_output_fraction))
}

fn gemini(
    app: &App,
    name: &str,
    model: Option<&str>,
    body: &[u8],
    opts: &EstimateOptions,
) -> Result<Estimate, String> {
    let th = thresholds(&app.pricing, name, opts.at);
    let mut summary = FileSummary::default();
    for (n, line) in body.split(|b| *b == b'\n').enumerate() {
        let n = n + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let v: Value =
            serde_json::from_slice(line).map_err(|e| format!("line {n}: not JSON: {e}"))?;
        let req = v.get("request").ok_or_else(|| format!("line {n}: `request` is required"))?;
        let key = match v.get("key") {
            Some(Value::String(k)) => k.clone(),
            None | Some(Value::Null) => summary.requests.to_string(),
            Some(_) => return Err(format!("line {n}: `key` must be a string")),
        };
        let s = shape(req).map_err(|e| format!("line {n}: request.{e}"))?;
        summary.add(&key, &s, &th);
    }
    let pricer = Pricer {
        table: &app.pricing,
        provider: name,
        default_model: model,
        at: opts.at,
        fraction: opts.expected_output_fraction,
    };
    summary.price(&pricer)?.estimate(name, BodyFormat::Jsonl)
}

//! The estimator's front-end for Anthropic Message Batches bodies: a streaming walk over
//! `{"requests": [...]}` (or one `{"custom_id", "params"}` per line) that validates every
//! request the way the API does, so the gateway can refuse a bad body with a 400 naming
//! the request and field, and reduces each one to what the provider-neutral folder prices
//! (`crate::estimate::fold`): model, `max_tokens`, region, web searches, the input bound
//! and its `cache_control` breakpoints in prefix order (tools, system, messages).

mod content;
mod ctx;
mod json;
mod media;
mod parse;
mod parts;
mod prompt;
mod scalar;
mod split;
mod tools;

use std::path::Path;

use xxhash_rust::xxh3::xxh3_64;

pub use self::parts::{HeadWalk, Walked, estimate_after_head};
use self::parts::{estimate_parallel, threads};
use self::prompt::Prompt;
use crate::estimate::fold::{self, Folder, Refusal};
use crate::estimate::{Estimate, EstimateError, EstimateOptions, Mark, RequestAt, Tokens};
use crate::pricing::PriceTable;

/// Bodies at least this large are walked on every core (see `split`); below it the
/// threads cost more than they save.
const PARALLEL_MIN: usize = 4 << 20;

/// Estimates a body in either format (detected from its first key).
pub fn estimate_bytes(
    body: &[u8],
    table: &PriceTable,
    opts: &EstimateOptions,
) -> Result<Estimate, EstimateError> {
    let f = opts.expected_output_fraction;
    if !(0.0..=1.0).contains(&f) {
        return Err(EstimateError::Options(f));
    }
    if body.len() >= PARALLEL_MIN {
        if let Some(est) = estimate_parallel(body, table, opts, threads()) {
            return Ok(est);
        }
    }
    estimate_serial(body, table, opts)
}

/// The walk on this thread alone (any body; every error's message comes from here).
fn estimate_serial(
    body: &[u8],
    table: &PriceTable,
    opts: &EstimateOptions,
) -> Result<Estimate, EstimateError> {
    let mut folder = Folder::new(table, opts.at, opts.expected_output_fraction);
    folder.provider = opts.provider;
    let mut marks = Vec::new();
    let format = parse::walk(body, &mut |at, req| {
        flatten(&req.params.prompt, &mut marks);
        add(&mut folder, at, &view(&req, &marks))
    })?;
    Ok(folder.finish(format))
}

/// Estimates a body file (read whole, see [`crate::estimate::read_body`]).
pub fn estimate_file(
    path: &Path,
    table: &PriceTable,
    opts: &EstimateOptions,
) -> Result<Estimate, EstimateError> {
    estimate_bytes(&crate::estimate::read_body(path)?, table, opts)
}

/// Worst-case input tokens of one request's `params` (for property tests against the
/// simulator's token model).
pub fn request_input_upper_bound(params_json: &[u8]) -> Result<u64, EstimateError> {
    Ok(parse::parse_params(params_json)?.prompt.total().upper)
}

/// What the folder reads of a parsed request; `marks` are its flattened breakpoints.
fn view<'r>(req: &'r parse::Request<'_>, marks: &'r [Mark]) -> fold::Request<'r> {
    let p = &req.params;
    fold::Request {
        custom_id: &req.custom_id,
        model: &p.model,
        max_tokens: p.max_tokens,
        geo_us: p.geo_us,
        web_search: p.web_search,
        input: p.prompt.total(),
        marks,
    }
}

/// Folds one request, naming the field of a refusal as an Anthropic body has it.
fn add(
    folder: &mut Folder<'_>,
    at: RequestAt,
    req: &fold::Request<'_>,
) -> Result<(), EstimateError> {
    folder.add(at, req).map_err(|refusal| {
        let (field, problem) = match refusal {
            Refusal::CustomId(p) => ("custom_id", p),
            Refusal::Model(p) => ("params.model", p),
        };
        EstimateError::Request { at, field: field.into(), problem }
    })
}

/// The request's breakpoints in prefix order (tools, system, messages), each identified
/// by the hash of everything before it.
fn flatten(p: &Prompt, marks: &mut Vec<Mark>) {
    let (tools, system) = (p.tools.digest(), p.system.digest());
    marks.clear();
    marks.extend_from_slice(&p.tools.marks);
    let shift = |m: &Mark, by: Tokens, parts: &[u64]| Mark {
        tokens: m.tokens + by,
        hash: combine(parts, m.hash),
        ttl: m.ttl,
    };
    marks.extend(p.system.marks.iter().map(|m| shift(m, p.tools.tokens, &[tools])));
    let before = p.tools.tokens + p.system.tokens;
    marks.extend(p.messages.marks.iter().map(|m| shift(m, before, &[tools, system])));
    if let Some(ttl) = p.auto_cache {
        let end = Mark { tokens: Tokens::default(), hash: p.messages.digest(), ttl };
        marks.push(shift(&end, before + p.messages.tokens, &[tools, system]));
    }
}

fn combine(parts: &[u64], last: u64) -> u64 {
    let mut bytes = [0u8; 24];
    let mut n = 0;
    for x in parts.iter().chain([&last]) {
        bytes[n..n + 8].copy_from_slice(&x.to_le_bytes());
        n += 8;
    }
    xxh3_64(&bytes[..n])
}

#[cfg(test)]
mod tests_cost;
#[cfg(test)]
mod tests_split;
#[cfg(test)]
mod tests_validation;
#[cfg(test)]
mod testutil;

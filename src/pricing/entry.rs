//! One `[[models.prices]]` entry -> batch and standard rates per tier, with the rules of
//! each provider kind: which classes exist, how cached input is priced in a batch, and
//! that every derived per-token rate is a whole pico-dollar.

use jiff::civil::Date;
use toml::{Spanned, Value};

use super::raw::{RawEntry, Source};
use super::{LongContext, PricingError, ProviderKind, Rates};
use crate::money::{Money, Ratio};

#[derive(Debug)]
pub(super) struct Entry {
    pub effective_from: Date,
    pub source: String,
    pub unconfirmed: bool,
    /// The batch price multiplier in force for this entry (1 - discount).
    pub batch_ratio: Ratio,
    pub list: Rates,
    pub batch: Rates,
    pub long: Option<LongContext>,
}

/// What an entry is priced under, resolved from its model and provider.
pub(super) struct Terms {
    pub kind: ProviderKind,
    /// Model- or provider-level batch multiplier; an entry's `batch_discount` overrides it.
    pub batch: Ratio,
    /// The US uplift, for `geo_us` Anthropic models only.
    pub geo: Option<Ratio>,
    pub embeddings: bool,
}

type Price = Option<Spanned<Value>>;

/// The written prices of one tier (`""` or the `long_` prefix), by class.
struct Classes<'a> {
    prefix: &'static str,
    input: &'a Price,
    output: &'a Price,
    cache_write_5m: &'a Price,
    cache_write_1h: &'a Price,
    cache_read: &'a Price,
    batch_cache_read: &'a Price,
}

pub(super) fn entry(
    src: &Source,
    e: &RawEntry,
    key: &str,
    terms: &Terms,
) -> Result<Entry, PricingError> {
    let effective_from = src.date(&e.effective_from, &format!("{key}.effective_from"))?;
    if e.source.get_ref().trim().is_empty() {
        return Err(src.invalid(
            e.source.span().start,
            &format!("{key}.source"),
            "must name the page the prices came from and when",
        ));
    }
    let batch_ratio = match &e.batch_discount {
        Some(v) => discount(src, v, &format!("{key}.batch_discount"))?,
        None => terms.batch,
    };
    let at = e.effective_from.span().start;
    let base = Classes {
        prefix: "",
        input: &e.input,
        output: &e.output,
        cache_write_5m: &e.cache_write_5m,
        cache_write_1h: &e.cache_write_1h,
        cache_read: &e.cache_read,
        batch_cache_read: &e.batch_cache_read,
    };
    let (list, batch) = tier(src, &base, key, at, terms, batch_ratio)?;
    let long = long_tier(src, e, key, terms, batch_ratio)?;
    Ok(Entry {
        effective_from,
        source: e.source.get_ref().trim().to_string(),
        unconfirmed: e.unconfirmed,
        batch_ratio,
        list,
        batch,
        long,
    })
}

/// A `batch_discount` (0..=1) as the batch price multiplier `1 - discount`.
pub(super) fn discount(src: &Source, v: &Spanned<Value>, key: &str) -> Result<Ratio, PricingError> {
    let d = src.ratio(v, key)?;
    if d.num > d.den {
        return Err(src.invalid(v.span().start, key, "must be between 0 and 1"));
    }
    Ok(Ratio { num: d.den - d.num, den: d.den })
}

/// The long-context tier: all of `long_context_threshold`, `long_input`, `long_output`
/// or none; `long_cache_read` exactly when `cache_read`, `long_batch_cache_read` exactly
/// when `batch_cache_read`, so no class silently falls back to a short-context price.
fn long_tier(
    src: &Source,
    e: &RawEntry,
    key: &str,
    terms: &Terms,
    batch_ratio: Ratio,
) -> Result<Option<LongContext>, PricingError> {
    let prices = [
        ("long_input", &e.long_input),
        ("long_output", &e.long_output),
        ("long_cache_read", &e.long_cache_read),
        ("long_batch_cache_read", &e.long_batch_cache_read),
    ];
    let first = e
        .long_context_threshold
        .as_ref()
        .map(|t| t.span().start)
        .or_else(|| prices.iter().find_map(|(_, v)| v.as_ref().map(|v| v.span().start)));
    let Some(at) = first else { return Ok(None) };
    let k = |name: &str| format!("{key}.{name}");
    if terms.kind == ProviderKind::Anthropic {
        let msg = "long-context tiers are only for openai and gemini kinds";
        return Err(src.invalid(at, &k("long_context_threshold"), msg));
    }
    let Some(t) = &e.long_context_threshold else {
        let msg = "a long-context tier needs long_context_threshold (prompt tokens)";
        return Err(src.invalid(at, &k("long_context_threshold"), msg));
    };
    let threshold = u64::try_from(*t.get_ref())
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| src.invalid(t.span().start, &k("long_context_threshold"), "must be > 0"))?;
    let paired = [
        ("long_input", &e.long_input, "input", &e.input),
        ("long_output", &e.long_output, "output", &e.output),
        ("long_cache_read", &e.long_cache_read, "cache_read", &e.cache_read),
        (
            "long_batch_cache_read",
            &e.long_batch_cache_read,
            "batch_cache_read",
            &e.batch_cache_read,
        ),
    ];
    for (long, lv, short, sv) in paired {
        match (lv, sv) {
            (None, Some(_)) => {
                let msg = format!("a long-context tier needs {long} because {short} is set");
                return Err(src.invalid(at, &k(long), msg));
            }
            (Some(v), None) => {
                let msg = format!("{long} without {short}: set both or neither");
                return Err(src.invalid(v.span().start, &k(long), msg));
            }
            _ => {}
        }
    }
    let classes = Classes {
        prefix: "long_",
        input: &e.long_input,
        output: &e.long_output,
        cache_write_5m: &None,
        cache_write_1h: &None,
        cache_read: &e.long_cache_read,
        batch_cache_read: &e.long_batch_cache_read,
    };
    let (list, batch) = tier(src, &classes, key, at, terms, batch_ratio)?;
    Ok(Some(LongContext { threshold, batch, list }))
}

/// Standard and batch rates of one tier under the kind's class rules.
fn tier(
    src: &Source,
    c: &Classes,
    key: &str,
    entry_at: usize,
    terms: &Terms,
    batch_ratio: Ratio,
) -> Result<(Rates, Rates), PricingError> {
    let name = |class: &str| format!("{key}.{}{class}", c.prefix);
    let price = |class: &str, v: &Price| -> Result<Option<(Money, usize)>, PricingError> {
        v.as_ref().map(|v| Ok((src.price_per_token(v, &name(class))?, v.span().start))).transpose()
    };
    let required = |class: &str, v: &Price| -> Result<(Money, usize), PricingError> {
        price(class, v)?.ok_or_else(|| src.invalid(entry_at, &name(class), "missing price class"))
    };
    let reject = |class: &str, v: &Price, why: &str| -> Result<(), PricingError> {
        match v {
            Some(v) => Err(src.invalid(v.span().start, &name(class), why)),
            None => Ok(()),
        }
    };
    let kind = terms.kind.as_str();
    let input = required("input", c.input)?;
    let (output, w5, w1h, read);
    match terms.kind {
        ProviderKind::Anthropic => {
            output = required("output", c.output)?;
            w5 = required("cache_write_5m", c.cache_write_5m)?;
            w1h = required("cache_write_1h", c.cache_write_1h)?;
            read = required("cache_read", c.cache_read)?;
            let why = "only for openai and gemini kinds; anthropic batch prices are the batch discount applied to every class";
            reject("batch_cache_read", c.batch_cache_read, why)?;
        }
        ProviderKind::OpenAi | ProviderKind::Gemini => {
            // Caching is automatic (or billed as storage) and writes bill as input, so the
            // write classes do not exist; the engine prices any write tokens as input.
            let why = format!("not applicable to {kind} (cache writes are billed as input)");
            reject("cache_write_5m", c.cache_write_5m, &why)?;
            reject("cache_write_1h", c.cache_write_1h, &why)?;
            if terms.embeddings {
                let why = "an embeddings model is priced on input only";
                reject("output", c.output, why)?;
                reject("cache_read", c.cache_read, why)?;
                reject("batch_cache_read", c.batch_cache_read, why)?;
                output = (Money::ZERO, input.1);
            } else {
                output = required("output", c.output)?;
            }
            // No cached price: cached tokens cost input.
            read = price("cache_read", c.cache_read)?.unwrap_or(input);
            (w5, w1h) = (input, input);
        }
    }
    let classes = [
        ("input", input),
        ("output", output),
        ("cache_write_5m", w5),
        ("cache_write_1h", w1h),
        ("cache_read", read),
    ];
    let list = rates(classes.map(|(_, (m, _))| m));
    let mut batch = [Money::ZERO; 5];
    for (i, (class, (money, at))) in classes.into_iter().enumerate() {
        let exact = |r: Ratio, what: &str| -> Result<Money, PricingError> {
            r.apply(money).ok_or_else(|| {
                let usd = money.times(1_000_000).usd_exact();
                let msg =
                    format!("price {usd} is not a whole pico-dollar per token after the {what}");
                src.invalid(at, &name(class), msg)
            })
        };
        batch[i] = exact(batch_ratio, "batch discount")?;
        if let Some(geo) = terms.geo {
            exact(geo, "geo uplift")?;
            exact(batch_ratio.then(geo), "batch discount and geo uplift")?;
        }
    }
    let mut batch = rates(batch);
    let batch_read = price("batch_cache_read", c.batch_cache_read)?.map(|(m, _)| m);
    match terms.kind {
        ProviderKind::Anthropic => {}
        ProviderKind::OpenAi => {
            // The batch row's cached price, else the batch input price (reference 4.3).
            batch.cache_read = batch_read.unwrap_or(batch.input);
        }
        ProviderKind::Gemini => {
            // The batch tab's cached price, else the standard cached price (reference 1.8:
            // discounted only where listed); with no cached price at all, batch input.
            let standard_read = c.cache_read.as_ref().map(|_| list.cache_read);
            batch.cache_read = batch_read.or(standard_read).unwrap_or(batch.input);
        }
    }
    if terms.kind != ProviderKind::Anthropic {
        batch.cache_write_5m = batch.input;
        batch.cache_write_1h = batch.input;
    }
    Ok((list, batch))
}

/// Builds rates from values in [`super::TokenKind::ALL`] order.
fn rates(v: [Money; 5]) -> Rates {
    Rates {
        input: v[0],
        output: v[1],
        cache_write_5m: v[2],
        cache_write_1h: v[3],
        cache_read: v[4],
    }
}

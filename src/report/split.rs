//! A batch-model's settled cost split by token class, for FOCUS. The ledger stores one
//! cost per batch and model (the truth); the per-class amounts are recomputed from its
//! tokens with the price entry in force at submission, and whatever the classes do not
//! explain (the US inference-geo uplift, or a price entry edited after the fact) is kept
//! as a separate remainder, so the parts always add up to the stored cost exactly.

use crate::ledger::ModelUsage;
use crate::money::Money;
use crate::pricing::{CostPair, ResolvedPrice, TokenKind};

/// What a charge line is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChargeClass {
    Tokens(TokenKind),
    WebSearch,
}

impl ChargeClass {
    /// Used in SkuId: `anthropic/claude-sonnet-4-6/input`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChargeClass::Tokens(k) => k.as_str(),
            ChargeClass::WebSearch => "web_search",
        }
    }

    /// FOCUS SkuMeter.
    pub fn meter(self) -> &'static str {
        match self {
            ChargeClass::Tokens(TokenKind::Input) => "Input Tokens",
            ChargeClass::Tokens(TokenKind::Output) => "Output Tokens",
            ChargeClass::Tokens(TokenKind::CacheWrite5m) => "Cache Write Tokens (5 minutes)",
            ChargeClass::Tokens(TokenKind::CacheWrite1h) => "Cache Write Tokens (1 hour)",
            ChargeClass::Tokens(TokenKind::CacheRead) => "Cache Read Tokens",
            ChargeClass::WebSearch => "Web Search Requests",
        }
    }
}

/// One priced line: `quantity` units at `rate` each (batch) and `list_rate` (standard).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClassCharge {
    pub class: ChargeClass,
    pub quantity: u64,
    pub rate: Money,
    pub list_rate: Money,
    pub cost: CostPair,
}

/// The lines of one batch-model and what they leave unexplained.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Split {
    pub lines: Vec<ClassCharge>,
    /// Stored cost minus the lines; `None` when the lines explain it all.
    pub remainder: Option<CostPair>,
}

/// Splits `usage` with `price` (the entry in force when the batch was submitted). Classes
/// with no tokens get no line.
pub fn split(usage: &ModelUsage, price: &ResolvedPrice) -> Split {
    let t = &usage.tokens;
    let counts = [
        (TokenKind::Input, t.input),
        (TokenKind::Output, t.output),
        (TokenKind::CacheWrite5m, t.cache_write_5m),
        (TokenKind::CacheWrite1h, t.cache_write_1h),
        (TokenKind::CacheRead, t.cache_read),
    ];
    let mut lines: Vec<ClassCharge> = counts
        .into_iter()
        .filter(|(_, n)| *n > 0)
        .map(|(k, n)| line(ChargeClass::Tokens(k), n, price.batch.get(k), price.list.get(k)))
        .collect();
    if t.web_search_requests > 0 {
        lines.push(line(
            ChargeClass::WebSearch,
            t.web_search_requests,
            price.web_search_fee_batch,
            price.web_search_fee,
        ));
    }
    let explained: CostPair = lines.iter().map(|l| l.cost).sum();
    let rest = CostPair {
        cost: usage.cost - explained.cost,
        list_cost: usage.list_cost - explained.list_cost,
    };
    Split { lines, remainder: (rest != CostPair::default()).then_some(rest) }
}

fn line(class: ChargeClass, quantity: u64, rate: Money, list_rate: Money) -> ClassCharge {
    ClassCharge {
        class,
        quantity,
        rate,
        list_rate,
        cost: CostPair { cost: rate.times(quantity), list_cost: list_rate.times(quantity) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::TokenTotals;
    use crate::pricing::{PriceTable, TokenUsage};

    fn table() -> PriceTable {
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap()
    }

    fn settled(price: &ResolvedPrice, usages: &[TokenUsage]) -> ModelUsage {
        let mut m = ModelUsage { model: price.model.clone(), ..Default::default() };
        for u in usages {
            let c = price.cost(u);
            m.cost += c.cost;
            m.list_cost += c.list_cost;
            m.tokens.input += u.input;
            m.tokens.output += u.output;
            m.tokens.cache_write_5m += u.cache_write_5m;
            m.tokens.cache_write_1h += u.cache_write_1h;
            m.tokens.cache_read += u.cache_read;
            m.tokens.web_search_requests += u.web_search_requests;
        }
        m
    }

    fn usage(n: u64, searches: u64, geo_us: bool) -> TokenUsage {
        TokenUsage {
            input: 1000 * n + 7,
            output: 300 * n + 1,
            cache_write_5m: 2048,
            cache_write_1h: 4096 * (n % 2),
            cache_read: 10_000,
            web_search_requests: searches,
            geo_us,
            ..Default::default()
        }
    }

    #[test]
    fn classes_explain_a_plain_batch_exactly() {
        let at = "2026-03-01T00:00:00Z".parse().unwrap();
        let price = table().resolve("claude-sonnet-4-6", at).unwrap();
        let m = settled(&price, &[usage(1, 0, false), usage(2, 0, false)]);
        let s = split(&m, &price);
        assert_eq!(s.remainder, None);
        assert_eq!(s.lines.len(), 5);
        let sum: CostPair = s.lines.iter().map(|l| l.cost).sum();
        assert_eq!((sum.cost, sum.list_cost), (m.cost, m.list_cost));
        for l in &s.lines {
            assert_eq!(l.cost.list_cost, l.list_rate.times(l.quantity));
            assert!(l.rate < l.list_rate, "batch price is below list price");
        }
    }

    #[test]
    fn web_search_fees_get_their_line_and_geo_uplift_the_remainder() {
        let at = "2026-03-01T00:00:00Z".parse().unwrap();
        let price = table().resolve("claude-opus-4-6", at).unwrap();
        assert!(price.geo_us.is_some(), "the test needs a model with the US uplift");
        let us = usage(3, 0, true);
        let m = settled(&price, &[usage(1, 2, false), us]);
        let s = split(&m, &price);
        let web = s.lines.iter().find(|l| l.class == ChargeClass::WebSearch).unwrap();
        assert_eq!(web.quantity, 2);
        assert_eq!(web.cost.list_cost, price.web_search_fee.times(2));
        // The remainder is exactly the uplift on the US request's tokens: 10% of them.
        let base = price.cost(&TokenUsage { geo_us: false, ..us });
        let rest = s.remainder.unwrap();
        assert_eq!(rest.cost.picos() * 10, base.cost.picos());
        assert_eq!(rest.list_cost.picos() * 10, base.list_cost.picos());
        let sum: CostPair = s.lines.iter().map(|l| l.cost).sum::<CostPair>() + rest;
        assert_eq!((sum.cost, sum.list_cost), (m.cost, m.list_cost));
    }

    #[test]
    fn a_model_without_tokens_has_no_lines() {
        let at = "2026-03-01T00:00:00Z".parse().unwrap();
        let price = table().resolve("claude-haiku-4-5", at).unwrap();
        let m = ModelUsage {
            model: price.model.clone(),
            tokens: TokenTotals::default(),
            ..Default::default()
        };
        assert_eq!(split(&m, &price), Split { lines: vec![], remainder: None });
    }
}

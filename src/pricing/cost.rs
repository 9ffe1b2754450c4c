//! Usage -> cost (reference 4.1, providers-next 1.6). Pure integer arithmetic on
//! pico-dollars per token.

use std::ops::{Add, AddAssign};

use super::{RatePair, Rates, ResolvedPrice};
use crate::money::{Money, Ratio};
use crate::usage::{TokenKind, TokenUsage};

/// A cost at batch price and the same tokens at standard list price.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CostPair {
    /// What the batch actually costs.
    pub cost: Money,
    /// What the same usage would cost at standard, non-batch prices.
    pub list_cost: Money,
}

impl CostPair {
    /// `list_cost - cost`: what batching saved.
    pub fn savings(&self) -> Money {
        self.list_cost - self.cost
    }
}

impl Add for CostPair {
    type Output = CostPair;
    fn add(self, o: CostPair) -> CostPair {
        CostPair { cost: self.cost + o.cost, list_cost: self.list_cost + o.list_cost }
    }
}

impl AddAssign for CostPair {
    fn add_assign(&mut self, o: CostPair) {
        self.cost += o.cost;
        self.list_cost += o.list_cost;
    }
}

impl std::iter::Sum for CostPair {
    fn sum<I: Iterator<Item = CostPair>>(iter: I) -> CostPair {
        iter.fold(CostPair::default(), Add::add)
    }
}

impl ResolvedPrice {
    /// Prices one usage at batch and at standard price, the tier chosen from the usage's
    /// own prompt length ([`TokenUsage::prompt_len`]). Only succeeded results should be
    /// priced; settlement decides that.
    pub fn cost(&self, usage: &TokenUsage) -> CostPair {
        self.cost_for_prompt(usage, usage.prompt_len())
    }

    /// Prices `usage` at the tier a prompt of `prompt_tokens` selects. For a worst case,
    /// pass the upper bound on the prompt: if it can cross the threshold, the whole request
    /// is priced at the long-context rates.
    pub fn cost_for_prompt(&self, usage: &TokenUsage, prompt_tokens: u64) -> CostPair {
        let geo = match (usage.geo_us, self.geo_us) {
            (true, Some(r)) => r,
            _ => Ratio::ONE,
        };
        let rates = self.rates_for_prompt(prompt_tokens);
        let searches = usage.web_search_requests;
        CostPair {
            cost: tokens_cost(&rates.batch, usage, geo) + self.web_search_fee_batch.times(searches),
            list_cost: tokens_cost(&rates.list, usage, geo) + self.web_search_fee.times(searches),
        }
    }

    /// The rates a prompt of `prompt_tokens` is priced at: the long-context tier when the
    /// model has one and the prompt is longer than its threshold, else the base rates.
    pub fn rates_for_prompt(&self, prompt_tokens: u64) -> RatePair {
        match &self.long_context {
            Some(l) if prompt_tokens > l.threshold => RatePair { batch: l.batch, list: l.list },
            _ => RatePair { batch: self.batch, list: self.list },
        }
    }

    /// The prompt length above which the long-context tier applies, if the model has one.
    pub fn tier_threshold(&self) -> Option<u64> {
        self.long_context.as_ref().map(|l| l.threshold)
    }
}

/// Token cost with the geo uplift on every category. Tables are validated so that each
/// uplifted per-token rate is a whole pico-dollar, which makes the uplifted sum exact too;
/// a hand-built `ResolvedPrice` that breaks this is rounded half up rather than panicking.
fn tokens_cost(rates: &Rates, usage: &TokenUsage, geo: Ratio) -> Money {
    let sum: Money = TokenKind::ALL.iter().map(|&k| rates.get(k).times(usage.get(k))).sum();
    geo.apply(sum).unwrap_or_else(|| {
        let p = sum.picos() * geo.num;
        Money::from_picos((2 * p + geo.den) / (2 * geo.den))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn geo_uplift_never_panics_on_hand_built_rates() {
        let r = |p| Rates {
            input: Money::from_picos(p),
            output: Money::ZERO,
            cache_write_5m: Money::ZERO,
            cache_write_1h: Money::ZERO,
            cache_read: Money::ZERO,
        };
        let usage = TokenUsage { input: 1, ..Default::default() };
        let geo = Ratio { num: 11, den: 10 };
        // 15 x 1.1 = 16.5 -> 17 (half up); 20 x 1.1 = 22 exactly.
        assert_eq!(tokens_cost(&r(15), &usage, geo), Money::from_picos(17));
        assert_eq!(tokens_cost(&r(20), &usage, geo), Money::from_picos(22));
        assert_eq!(tokens_cost(&r(15), &usage, Ratio::ONE), Money::from_picos(15));
    }

    #[test]
    fn cost_pairs_add() {
        let mut c = CostPair { cost: Money::from_usd(1), list_cost: Money::from_usd(2) };
        c += c;
        assert_eq!(c.savings(), Money::from_usd(2));
    }
}

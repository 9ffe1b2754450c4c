//! Usage -> cost (reference 4.1). Pure integer arithmetic on pico-dollars per token.

use std::ops::{Add, AddAssign};

pub use crate::usage::{TokenKind, TokenUsage};

use super::{Rates, ResolvedPrice};
use crate::money::{Money, Ratio};

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
    /// Prices one usage at batch and at standard price. Only succeeded results should be
    /// priced; settlement decides that.
    pub fn cost(&self, usage: &TokenUsage) -> CostPair {
        let geo = match (usage.geo_us, self.geo_us) {
            (true, Some(r)) => r,
            _ => Ratio::ONE,
        };
        let searches = usage.web_search_requests;
        CostPair {
            cost: tokens_cost(&self.batch, usage, geo) + self.web_search_fee_batch.times(searches),
            list_cost: tokens_cost(&self.list, usage, geo) + self.web_search_fee.times(searches),
        }
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
    fn sums_add_every_field() {
        let a = TokenUsage {
            input: 1,
            output: 2,
            cache_write_5m: 3,
            cache_write_1h: 4,
            cache_read: 5,
            web_search_requests: 6,
            geo_us: false,
        };
        let mut b = a;
        b.geo_us = true;
        b += a;
        assert_eq!(
            b,
            TokenUsage {
                input: 2,
                output: 4,
                cache_write_5m: 6,
                cache_write_1h: 8,
                cache_read: 10,
                web_search_requests: 12,
                geo_us: true
            }
        );
        let mut c = CostPair { cost: Money::from_usd(1), list_cost: Money::from_usd(2) };
        c += c;
        assert_eq!(c.savings(), Money::from_usd(2));
    }
}

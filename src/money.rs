//! Exact money. Every amount is an integer count of pico-dollars (1e-12 USD) held in an
//! `i128`, so sums over millions of requests never drift; floats appear only at the edges
//! (Prometheus samples, display), converted from the exact value each time.

use std::fmt;
use std::iter::Sum;
use std::ops::{Add, AddAssign, Neg, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// Pico-dollars per dollar.
pub const PICOS_PER_USD: i128 = 1_000_000_000_000;

/// An exact USD amount in pico-dollars.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Money(i128);

/// Why a decimal could not become an exact [`Money`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MoneyError {
    #[error("`{0}` is not a decimal number")]
    NotANumber(String),
    #[error("`{0}` has more than 12 decimal places; amounts are exact to the pico-dollar")]
    TooPrecise(String),
    #[error("`{0}` is too large")]
    Overflow(String),
}

impl Money {
    pub const ZERO: Money = Money(0);

    pub const fn from_picos(picos: i128) -> Self {
        Money(picos)
    }

    pub const fn picos(self) -> i128 {
        self.0
    }

    pub const fn from_usd(whole_dollars: i64) -> Self {
        Money(whole_dollars as i128 * PICOS_PER_USD)
    }

    /// Parses a plain decimal such as `"3"`, `"0.0625"` or `"-1.5"` exactly.
    pub fn parse_usd(text: &str) -> Result<Self, MoneyError> {
        let t = text.trim();
        let (neg, digits) = match t.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, t),
        };
        let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
        let bad = || MoneyError::NotANumber(text.to_string());
        if int.is_empty() && frac.is_empty() {
            return Err(bad());
        }
        if !int.bytes().all(|b| b.is_ascii_digit()) || !frac.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let frac = frac.trim_end_matches('0');
        if frac.len() > 12 {
            return Err(MoneyError::TooPrecise(text.to_string()));
        }
        let over = || MoneyError::Overflow(text.to_string());
        let whole: i128 = if int.is_empty() { 0 } else { int.parse().map_err(|_| over())? };
        let mut f: i128 = if frac.is_empty() { 0 } else { frac.parse().map_err(|_| over())? };
        f *= 10i128.pow(12 - frac.len() as u32);
        let v = whole.checked_mul(PICOS_PER_USD).and_then(|w| w.checked_add(f)).ok_or_else(over)?;
        Ok(Money(if neg { -v } else { v }))
    }

    /// Converts a config float (`limit_usd = 50.0`) through its shortest decimal form, which
    /// is the number the user wrote, so `0.1` becomes exactly 0.1 dollars.
    pub fn from_f64_usd(value: f64) -> Result<Self, MoneyError> {
        if !value.is_finite() {
            return Err(MoneyError::NotANumber(value.to_string()));
        }
        Self::parse_usd(&format!("{value}"))
    }

    /// For Prometheus samples and charts only; never fed back into arithmetic.
    pub fn to_f64_usd(self) -> f64 {
        let whole = (self.0 / PICOS_PER_USD) as f64;
        let frac = (self.0 % PICOS_PER_USD) as f64 / PICOS_PER_USD as f64;
        whole + frac
    }

    /// Exact decimal string without trailing zeros (`"22.5"`, `"0.000001375"`).
    pub fn usd_exact(self) -> String {
        let sign = if self.0 < 0 { "-" } else { "" };
        let a = self.0.unsigned_abs();
        let p = PICOS_PER_USD as u128;
        let (w, f) = (a / p, a % p);
        if f == 0 {
            return format!("{sign}{w}");
        }
        let frac = format!("{f:012}");
        format!("{sign}{w}.{}", frac.trim_end_matches('0'))
    }

    /// Rounded (half away from zero) to `decimals` places, for display only.
    pub fn usd_rounded(self, decimals: u32) -> String {
        let decimals = decimals.min(12);
        let step = 10u128.pow(12 - decimals);
        let a = self.0.unsigned_abs();
        let rounded = (a + step / 2) / step;
        let sign = if self.0 < 0 && rounded != 0 { "-" } else { "" };
        if decimals == 0 {
            return format!("{sign}{rounded}");
        }
        let scale = 10u128.pow(decimals);
        format!("{sign}{}.{:0width$}", rounded / scale, rounded % scale, width = decimals as usize)
    }

    /// Multiplies a per-token price by a token count.
    pub fn times(self, count: u64) -> Money {
        Money(self.0 * count as i128)
    }

    pub fn checked_add(self, other: Money) -> Option<Money> {
        self.0.checked_add(other.0).map(Money)
    }

    /// For storage in an SQL `BIGINT` column (up to about $9.2 million).
    pub fn to_i64(self) -> Option<i64> {
        i64::try_from(self.0).ok()
    }

    pub const fn from_i64(picos: i64) -> Self {
        Money(picos as i128)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }
}

impl fmt::Display for Money {
    /// `$` and the exact amount; reports choose their own rounding.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "${}", self.usd_exact())
    }
}

impl Add for Money {
    type Output = Money;
    fn add(self, rhs: Money) -> Money {
        Money(self.0 + rhs.0)
    }
}

impl AddAssign for Money {
    fn add_assign(&mut self, rhs: Money) {
        self.0 += rhs.0;
    }
}

impl Sub for Money {
    type Output = Money;
    fn sub(self, rhs: Money) -> Money {
        Money(self.0 - rhs.0)
    }
}

impl SubAssign for Money {
    fn sub_assign(&mut self, rhs: Money) {
        self.0 -= rhs.0;
    }
}

impl Neg for Money {
    type Output = Money;
    fn neg(self) -> Money {
        Money(-self.0)
    }
}

impl Sum for Money {
    fn sum<I: Iterator<Item = Money>>(iter: I) -> Money {
        iter.fold(Money::ZERO, Add::add)
    }
}

/// An exact multiplier such as the 50% batch discount (`1/2`) or the 1.1x US-inference
/// uplift (`11/10`). Applying one must never round: [`Ratio::apply`] refuses when it would.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ratio {
    pub num: i128,
    pub den: i128,
}

impl Ratio {
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// Parses a decimal multiplier like `0.5` or `1.1` exactly (up to 6 decimals).
    pub fn parse(text: &str) -> Option<Ratio> {
        let m = Money::parse_usd(text).ok()?;
        if m.is_negative() {
            return None;
        }
        let den = 1_000_000i128;
        let num = m.picos() / 1_000_000;
        if num * 1_000_000 != m.picos() {
            return None;
        }
        let g = gcd(num, den).max(1);
        Some(Ratio { num: num / g, den: den / g })
    }

    pub fn from_f64(value: f64) -> Option<Ratio> {
        if !value.is_finite() {
            return None;
        }
        Ratio::parse(&format!("{value}"))
    }

    /// `money * num / den`, or `None` when the result is not a whole pico-dollar.
    pub fn apply(self, money: Money) -> Option<Money> {
        let p = money.picos().checked_mul(self.num)?;
        (p % self.den == 0).then_some(Money(p / self.den))
    }

    pub fn then(self, other: Ratio) -> Ratio {
        let num = self.num * other.num;
        let den = self.den * other.den;
        let g = gcd(num, den).max(1);
        Ratio { num: num / g, den: den / g }
    }

    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

fn gcd(mut a: i128, mut b: i128) -> i128 {
    a = a.abs();
    b = b.abs();
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_exactly() {
        assert_eq!(Money::parse_usd("0.0625").unwrap().picos(), 62_500_000_000);
        assert_eq!(Money::parse_usd("22.50").unwrap().usd_exact(), "22.5");
        assert_eq!(Money::parse_usd("-1.000000000001").unwrap().usd_exact(), "-1.000000000001");
        assert!(matches!(Money::parse_usd("0.0000000000001"), Err(MoneyError::TooPrecise(_))));
        assert!(Money::parse_usd("1e3").is_err());
        assert!(Money::parse_usd(".").is_err());
        assert_eq!(Money::from_f64_usd(0.1).unwrap().picos(), 100_000_000_000);
    }

    #[test]
    fn rounds_half_away_from_zero_for_display() {
        let m = Money::parse_usd("2.345").unwrap();
        assert_eq!(m.usd_rounded(2), "2.35");
        assert_eq!((-m).usd_rounded(2), "-2.35");
        assert_eq!(Money::parse_usd("0.004").unwrap().usd_rounded(2), "0.00");
        assert_eq!(Money::from_usd(3000).usd_rounded(2), "3000.00");
    }

    #[test]
    fn ratios_refuse_to_round() {
        let half = Ratio::parse("0.5").unwrap();
        let geo = Ratio::parse("1.1").unwrap();
        assert_eq!(half, Ratio { num: 1, den: 2 });
        assert_eq!(geo, Ratio { num: 11, den: 10 });
        assert_eq!(half.apply(Money::from_picos(3)), None);
        assert_eq!(half.then(geo).apply(Money::from_picos(20)), Some(Money::from_picos(11)));
    }
}

//! The usage model: prompt caching across the simulator's lifetime, and seeded draws for
//! output length, server tool calls and random failures. Everything is a pure function
//! of the seed and stable keys, except the cache, which is applied once per batch when it
//! ends (in end-time order, requests in order) and then stored with the batch.

use std::collections::HashMap;

use jiff::{SignedDuration, Timestamp};

use super::ids::Key;

/// Cache lifetime asked for by a breakpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Ttl {
    FiveMinutes,
    OneHour,
}

/// A cacheable prefix: its identity (model, content, ttl) and its cumulative tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Breakpoint {
    pub key: u64,
    pub tokens: u64,
    pub ttl: Ttl,
}

/// Prefixes shorter than this are not cached (Anthropic's minimum for most models).
pub const MIN_CACHEABLE_TOKENS: u64 = 1_024;

/// Cache outcome of one request, in tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CacheUse {
    pub read: u64,
    pub write_5m: u64,
    pub write_1h: u64,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    written: Timestamp,
    expires: Timestamp,
}

/// Cached prefixes keyed by (model, prefix content, ttl), living in simulated time.
#[derive(Debug, Default)]
pub struct PromptCache {
    entries: HashMap<u64, Entry>,
    pruned_at_len: usize,
}

fn ttl_of(ttl: Ttl) -> SignedDuration {
    match ttl {
        Ttl::FiveMinutes => SignedDuration::from_mins(5),
        Ttl::OneHour => SignedDuration::from_hours(1),
    }
}

impl PromptCache {
    /// Reads the longest live cached prefix, writes every longer breakpoint after it.
    /// A read refreshes the entry's lifetime, as on the real API.
    pub fn apply(&mut self, breakpoints: &[Breakpoint], at: Timestamp) -> CacheUse {
        let eligible: Vec<&Breakpoint> =
            breakpoints.iter().filter(|b| b.tokens >= MIN_CACHEABLE_TOKENS).collect();
        let hit = eligible.iter().rposition(|b| {
            self.entries.get(&b.key).is_some_and(|e| e.written <= at && at < e.expires)
        });
        let mut usage = CacheUse::default();
        let mut covered = 0;
        let mut first_write = 0;
        if let Some(k) = hit {
            let b = eligible[k];
            usage.read = b.tokens;
            covered = b.tokens;
            first_write = k + 1;
            self.put(b, at);
        }
        for b in &eligible[first_write..] {
            let add = b.tokens.saturating_sub(covered);
            match b.ttl {
                Ttl::FiveMinutes => usage.write_5m += add,
                Ttl::OneHour => usage.write_1h += add,
            }
            covered = covered.max(b.tokens);
            self.put(b, at);
        }
        usage
    }

    fn put(&mut self, b: &Breakpoint, at: Timestamp) {
        let expires = at.saturating_add(ttl_of(b.ttl)).unwrap_or(at);
        let e = self.entries.entry(b.key).or_insert(Entry { written: at, expires });
        e.written = e.written.min(at);
        e.expires = e.expires.max(expires);
    }

    /// Drops expired entries once the map has doubled since the last sweep.
    pub fn prune(&mut self, now: Timestamp) {
        if self.entries.len() > 2 * self.pruned_at_len.max(1024) {
            self.entries.retain(|_, e| e.expires > now);
            self.pruned_at_len = self.entries.len();
        }
    }
}

/// How output lengths vary: the knobs `--truncated-fraction` and `--output-exponent`.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OutputShape {
    /// Share of answers that run to the output cap.
    pub truncated_fraction: f64,
    /// The others take `cap * u^exponent` (u uniform): 2 gives a mean of a third of the
    /// cap, 1 a half, 0 always the cap; larger values make answers shorter.
    pub exponent: f64,
}

impl Default for OutputShape {
    fn default() -> Self {
        OutputShape { truncated_fraction: 0.05, exponent: 2.0 }
    }
}

impl OutputShape {
    /// Checks both knobs; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.truncated_fraction) {
            return Err(format!(
                "truncated_fraction: expected a share between 0 and 1, got {}",
                self.truncated_fraction
            ));
        }
        if !(self.exponent.is_finite() && self.exponent >= 0.0) {
            return Err(format!(
                "output_exponent: expected a non-negative number, got {}",
                self.exponent
            ));
        }
        Ok(())
    }
}

/// Seeded per-request draws for one batch.
#[derive(Clone, Copy, Debug)]
pub struct Draws {
    pub seed: u64,
    pub batch_seq: u64,
}

impl Draws {
    fn unit(&self, what: &str, index: u64) -> f64 {
        Key::new(self.seed, what).u64(self.batch_seq).u64(index).unit()
    }

    /// A seeded draw in `[0, 1)` for request `index`, for surface-specific shares.
    pub fn draw(&self, what: &str, index: u64) -> f64 {
        self.unit(what, index)
    }

    /// Output tokens in `[1, max_tokens]` with the default shape: 5% of answers run to
    /// `max_tokens`, the rest take a fraction `u^2` of it (mean one third).
    pub fn output_tokens(&self, index: u64, max_tokens: u32) -> (u32, bool) {
        self.output_tokens_shaped(index, max_tokens, &OutputShape::default())
    }

    /// Output tokens in `[1, max_tokens]`: a share `truncated_fraction` runs to the cap,
    /// the rest take a fraction `u^exponent` of it (mean `1 / (exponent + 1)`).
    pub fn output_tokens_shaped(
        &self,
        index: u64,
        max_tokens: u32,
        shape: &OutputShape,
    ) -> (u32, bool) {
        let max = max_tokens.max(1);
        if self.unit("truncated", index) < shape.truncated_fraction {
            return (max, true);
        }
        let u = self.unit("output", index);
        let f = if shape.exponent == 2.0 { u * u } else { u.powf(shape.exponent) };
        let n = (f64::from(max) * f).round() as u32;
        let n = n.clamp(1, max);
        (n, n == max)
    }

    /// Reasoning (thinking) tokens out of `output` for a model that reasons: a seeded
    /// share in `[0.2, 0.8)`, at most `budget` when the request sets one.
    pub fn reasoning_tokens(&self, index: u64, output: u32, budget: Option<u32>) -> u32 {
        let share = 0.2 + 0.6 * self.unit("reasoning", index);
        let n = (f64::from(output) * share).round() as u32;
        budget.map_or(n, |b| n.min(b))
    }

    /// Server tool calls when the tool is declared: 1 to `max_uses`, seeded.
    pub fn tool_calls(&self, index: u64, what: &str, max_uses: u8) -> u64 {
        if max_uses == 0 {
            return 0;
        }
        1 + (self.unit(what, index) * f64::from(max_uses)) as u64 % u64::from(max_uses)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bp(key: u64, tokens: u64, ttl: Ttl) -> Breakpoint {
        Breakpoint { key, tokens, ttl }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn first_sight_writes_later_sight_reads_until_the_ttl_runs_out() {
        let mut c = PromptCache::default();
        let b = [bp(1, 2000, Ttl::FiveMinutes)];
        let w = c.apply(&b, t("2026-01-01T00:00:00Z"));
        assert_eq!(w, CacheUse { read: 0, write_5m: 2000, write_1h: 0 });
        let r = c.apply(&b, t("2026-01-01T00:04:00Z"));
        assert_eq!(r, CacheUse { read: 2000, ..CacheUse::default() });
        // The read at 00:04 refreshed the entry to 00:09.
        assert_eq!(c.apply(&b, t("2026-01-01T00:08:59Z")).read, 2000);
        assert_eq!(c.apply(&b, t("2026-01-01T00:30:00Z")).write_5m, 2000);
    }

    #[test]
    fn the_longest_hit_is_read_and_longer_prefixes_are_written_by_their_ttl() {
        let mut c = PromptCache::default();
        let at = t("2026-01-01T00:00:00Z");
        c.apply(&[bp(1, 1500, Ttl::OneHour)], at);
        let u = c.apply(&[bp(1, 1500, Ttl::OneHour), bp(2, 4000, Ttl::FiveMinutes)], at);
        assert_eq!(u, CacheUse { read: 1500, write_5m: 2500, write_1h: 0 });
    }

    #[test]
    fn short_prefixes_are_not_cached() {
        let mut c = PromptCache::default();
        let at = t("2026-01-01T00:00:00Z");
        assert_eq!(c.apply(&[bp(1, 1023, Ttl::OneHour)], at), CacheUse::default());
        assert_eq!(c.apply(&[bp(1, 1023, Ttl::OneHour)], at), CacheUse::default());
    }

    #[test]
    fn output_draws_stay_within_bounds_and_are_seeded() {
        let d = Draws { seed: 1, batch_seq: 1 };
        let mut sum = 0u64;
        for i in 0..2000 {
            let (n, at_max) = d.output_tokens(i, 1000);
            assert!((1..=1000).contains(&n));
            assert_eq!(at_max, n == 1000);
            sum += u64::from(n);
        }
        let mean = sum as f64 / 2000.0;
        assert!((300.0..450.0).contains(&mean), "mean {mean}");
        assert_eq!(d.output_tokens(5, 1), (1, true));
        assert_eq!(d.output_tokens(7, 512), Draws { seed: 1, batch_seq: 1 }.output_tokens(7, 512));
        for i in 0..100 {
            assert!((1..=3).contains(&d.tool_calls(i, "web_search", 3)));
        }
    }
}

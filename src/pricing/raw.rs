//! The file as written: strict serde structs with spans, so every later complaint can
//! name the line. Values that users may write as numbers or strings (prices, dates) are
//! kept as `toml::Value` and converted by [`Source`], which owns the error formatting.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::PricingError;
use crate::money::{Money, Ratio};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTable {
    pub version: Spanned<String>,
    pub providers: BTreeMap<Spanned<String>, RawProvider>,
    #[serde(default)]
    pub models: Vec<RawModel>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    /// `anthropic`, `openai` or `gemini`; defaults to the provider's name for those three.
    pub kind: Option<Spanned<String>>,
    pub batch_discount: Spanned<Value>,
    pub web_search_fee_per_1000: Option<Spanned<Value>>,
    #[serde(default)]
    pub web_search_batch_discount: bool,
    pub geo_us_uplift: Option<Spanned<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub provider: Spanned<String>,
    pub id: Spanned<String>,
    #[serde(default)]
    pub aliases: Vec<Spanned<String>>,
    #[serde(default)]
    pub geo_us: bool,
    /// Overrides the provider's discount for this model (a reseller's per-model discount).
    pub batch_discount: Option<Spanned<Value>>,
    /// The model's output maximum: the worst case of a request without an output cap.
    pub max_output_tokens: Option<Spanned<i64>>,
    /// An embeddings model: input is its only class.
    #[serde(default)]
    pub embeddings: bool,
    #[serde(default)]
    pub prices: Vec<Spanned<RawEntry>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEntry {
    pub effective_from: Spanned<Value>,
    pub source: Spanned<String>,
    #[serde(default)]
    pub unconfirmed: bool,
    pub input: Option<Spanned<Value>>,
    pub output: Option<Spanned<Value>>,
    pub cache_write_5m: Option<Spanned<Value>>,
    pub cache_write_1h: Option<Spanned<Value>>,
    pub cache_read: Option<Spanned<Value>>,
    pub batch_cache_read: Option<Spanned<Value>>,
    /// Overrides the model's (or provider's) discount from this entry on.
    pub batch_discount: Option<Spanned<Value>>,
    /// Prompt tokens above which the whole request is priced at the `long_*` rates.
    pub long_context_threshold: Option<Spanned<i64>>,
    pub long_input: Option<Spanned<Value>>,
    pub long_output: Option<Spanned<Value>>,
    pub long_cache_read: Option<Spanned<Value>>,
    pub long_batch_cache_read: Option<Spanned<Value>>,
}

/// The text being parsed, for turning byte offsets into `file:line: key: message`.
pub struct Source<'a> {
    pub text: &'a str,
    pub origin: &'a str,
}

impl Source<'_> {
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end].iter().filter(|&&b| b == b'\n').count() + 1
    }

    pub fn invalid(&self, offset: usize, key: &str, message: impl Into<String>) -> PricingError {
        PricingError::Invalid {
            origin: self.origin.to_string(),
            line: self.line_of(offset),
            key: key.to_string(),
            message: message.into(),
        }
    }

    /// Parses the text, attaching line, column and a best-effort key path to serde errors.
    pub fn parse(&self) -> Result<RawTable, PricingError> {
        toml::from_str(self.text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            let line = self.line_of(offset);
            let line_start =
                self.text[..offset.min(self.text.len())].rfind('\n').map_or(0, |i| i + 1);
            PricingError::Syntax {
                origin: self.origin.to_string(),
                line,
                column: self.text[line_start..offset.min(self.text.len())].chars().count() + 1,
                key: key_path_at(self.text, line),
                message: e.message().trim().to_string(),
            }
        })
    }

    /// A decimal written as a TOML integer, float or string, kept exact.
    pub fn decimal(&self, v: &Spanned<Value>, key: &str) -> Result<Money, PricingError> {
        let text = match v.get_ref() {
            Value::Integer(i) => i.to_string(),
            // `{}` prints the shortest decimal that reads back as the same float: what the user wrote.
            Value::Float(f) if f.is_finite() => format!("{f}"),
            Value::String(s) => s.clone(),
            other => {
                return Err(self.invalid(
                    v.span().start,
                    key,
                    format!("expected a decimal number, found {}", other.type_str()),
                ));
            }
        };
        Money::parse_usd(&text).map_err(|e| self.invalid(v.span().start, key, e.to_string()))
    }

    /// A USD-per-million price: non-negative and a whole number of pico-dollars per token.
    pub fn price_per_token(&self, v: &Spanned<Value>, key: &str) -> Result<Money, PricingError> {
        let per_million = self.decimal(v, key)?;
        if per_million.is_negative() {
            return Err(self.invalid(
                v.span().start,
                key,
                format!("negative price {}", per_million.usd_exact()),
            ));
        }
        let ratio = Ratio { num: 1, den: 1_000_000 };
        ratio.apply(per_million).ok_or_else(|| {
            self.invalid(
                v.span().start,
                key,
                format!(
                    "price {} USD per million tokens is finer than one pico-dollar per token",
                    per_million.usd_exact()
                ),
            )
        })
    }

    /// A multiplier such as `0.5` or `1.1`, exact.
    pub fn ratio(&self, v: &Spanned<Value>, key: &str) -> Result<Ratio, PricingError> {
        let m = self.decimal(v, key)?;
        Ratio::parse(&m.usd_exact()).ok_or_else(|| {
            self.invalid(
                v.span().start,
                key,
                format!("`{}` must be a non-negative decimal with at most 6 places", m.usd_exact()),
            )
        })
    }

    /// A calendar date written as a TOML date (`2026-10-07`) or a string.
    pub fn date(&self, v: &Spanned<Value>, key: &str) -> Result<jiff::civil::Date, PricingError> {
        let bad = |what: String| self.invalid(v.span().start, key, what);
        match v.get_ref() {
            Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => {
                d.to_string().parse().map_err(|e| bad(format!("bad date: {e}")))
            }
            Value::String(s) => {
                s.parse().map_err(|_| bad(format!("bad date `{s}`, expected YYYY-MM-DD")))
            }
            other => Err(bad(format!("expected a date YYYY-MM-DD, found {}", other.type_str()))),
        }
    }
}

/// Reconstructs `models[3].prices[1].cache_read` for a line from the table headers above
/// it, because serde errors carry a span but not the path. Assumes the usual layout of
/// `[[models]]` / `[[models.prices]]` headers; falls back to the bare key otherwise.
fn key_path_at(text: &str, line: usize) -> String {
    let (mut prefix, mut model, mut price) = (String::new(), -1i64, -1i64);
    let mut key = String::new();
    for (i, l) in text.lines().enumerate().take(line) {
        let t = l.trim();
        if let Some(h) = t.strip_prefix("[[").and_then(|r| r.split("]]").next()) {
            match h.trim() {
                "models" => {
                    (model, price) = (model + 1, -1);
                    prefix = format!("models[{model}]");
                }
                "models.prices" => {
                    price += 1;
                    prefix = format!("models[{model}].prices[{price}]");
                }
                other => prefix = other.to_string(),
            }
            key.clear();
        } else if let Some(h) = t.strip_prefix('[').and_then(|r| r.split(']').next()) {
            prefix = h.trim().to_string();
            key.clear();
        } else if i + 1 == line {
            key = t.split('=').next().unwrap_or("").trim().to_string();
        }
    }
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key,
        (false, true) => prefix,
        (false, false) => format!("{prefix}.{key}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "version = \"v\"\n[providers.anthropic]\nbatch_discount = 0.5\nfoo = 1\n\n[[models]]\nid = \"a\"\n[[models.prices]]\ninput = 1\n[[models]]\n[[models.prices]]\n[[models.prices]]\ncache_read = 2\n";

    #[test]
    fn key_paths_follow_table_headers() {
        assert_eq!(key_path_at(TEXT, 1), "version");
        assert_eq!(key_path_at(TEXT, 4), "providers.anthropic.foo");
        assert_eq!(key_path_at(TEXT, 7), "models[0].id");
        assert_eq!(key_path_at(TEXT, 9), "models[0].prices[0].input");
        assert_eq!(key_path_at(TEXT, 13), "models[1].prices[1].cache_read");
        assert_eq!(key_path_at(TEXT, 11), "models[1].prices[0]");
    }

    #[test]
    fn decimals_are_exact_whatever_the_toml_type() {
        let src = Source { text: "", origin: "t" };
        let v = |v: Value| Spanned::new(0..0, v);
        let k = "k";
        assert_eq!(
            src.decimal(&v(Value::Float(0.1)), k).unwrap(),
            Money::parse_usd("0.1").unwrap()
        );
        assert_eq!(src.decimal(&v(Value::Integer(3)), k).unwrap(), Money::from_usd(3));
        assert_eq!(src.decimal(&v("0.0625".into()), k).unwrap().picos(), 62_500_000_000);
        assert_eq!(src.price_per_token(&v(Value::Float(0.0625)), k).unwrap().picos(), 62_500);
        assert!(src.price_per_token(&v(Value::Float(0.0000001)), k).is_err());
        assert_eq!(src.ratio(&v(Value::Float(1.1)), k).unwrap(), Ratio { num: 11, den: 10 });
    }
}

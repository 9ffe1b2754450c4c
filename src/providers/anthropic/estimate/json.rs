//! `cache_control` and raw JSON the model reads (tool schemas, tool inputs, unknown fields).

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use super::ctx::Ctx;
use super::scalar::{Path, Scalar, reject_scalars, type_error};
use crate::estimate::Tokens;
use crate::estimate::{Tally, Ttl};

/// `cache_control`: `{"type": "ephemeral", "ttl": "5m" | "1h"}` or null.
pub struct CacheSeed<'c, 'p> {
    pub ctx: &'c Ctx,
    pub path: &'p Path<'p>,
}

impl<'de> DeserializeSeed<'de> for CacheSeed<'_, '_> {
    type Value = Option<Ttl>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Option<Ttl>, D::Error> {
        d.deserialize_any(self)
    }
}

impl CacheSeed<'_, '_> {
    /// `null` means no breakpoint; any other non-object is an error.
    fn wrong<E: de::Error>(self, got: Scalar) -> Result<Option<Ttl>, E> {
        if matches!(got, Scalar::Null) {
            return Ok(None);
        }
        Err(type_error(self.ctx, self.path, "an object like {\"type\": \"ephemeral\"}", &got))
    }
}

impl<'de> Visitor<'de> for CacheSeed<'_, '_> {
    type Value = Option<Ttl>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("cache_control")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Option<Ttl>, A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Option<Ttl>, A::Error> {
        let mut ttl = Ttl::FiveMinutes;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let at = self.path.key(&key);
            let v = map.next_value::<Scalar<'de>>()?;
            match (&*key, v) {
                ("type", Scalar::Str(s)) if s == "ephemeral" => {}
                ("type", other) => return Err(type_error(self.ctx, &at, "\"ephemeral\"", &other)),
                ("ttl", Scalar::Str(s)) if s == "5m" => ttl = Ttl::FiveMinutes,
                ("ttl", Scalar::Str(s)) if s == "1h" => ttl = Ttl::OneHour,
                ("ttl", other) => {
                    return Err(type_error(self.ctx, &at, "\"5m\" or \"1h\"", &other));
                }
                _ => {}
            }
        }
        Ok(Some(ttl))
    }
}

/// Any JSON the model reads rendered as text (tool schemas, tool inputs). Bound: its
/// strings plus, per value, quotes, separators and a newline with indentation.
pub struct JsonSeed<'t> {
    pub tally: &'t mut Tally,
    pub depth: u64,
}

impl JsonSeed<'_> {
    fn node(&mut self, extra_upper: u64, extra_milli: u64) {
        self.tally
            .add(Tokens { upper: 4 + 2 * self.depth + extra_upper, milli: 1_000 + extra_milli });
    }

    fn number(mut self, text_len: u64, bits: u64) {
        self.tally.hash_bytes(&bits.to_le_bytes());
        self.node(text_len, 975 * text_len);
    }
}

impl<'de> DeserializeSeed<'de> for JsonSeed<'_> {
    type Value = ();
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for JsonSeed<'_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(mut self) -> Result<(), E> {
        self.node(4, 1_000);
        Ok(())
    }
    fn visit_bool<E>(mut self, _: bool) -> Result<(), E> {
        self.node(5, 1_000);
        Ok(())
    }
    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        self.number(digits(v.unsigned_abs()) + u64::from(v < 0), v as u64);
        Ok(())
    }
    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        self.number(digits(v), v);
        Ok(())
    }
    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        self.number(format!("{v:?}").len() as u64, v.to_bits());
        Ok(())
    }
    fn visit_str<E>(mut self, s: &str) -> Result<(), E> {
        self.tally.text(s);
        self.node(0, 0);
        Ok(())
    }
    fn visit_seq<A: SeqAccess<'de>>(mut self, mut seq: A) -> Result<(), A::Error> {
        self.node(0, 0);
        let depth = self.depth + 1;
        while seq.next_element_seed(JsonSeed { tally: &mut *self.tally, depth })?.is_some() {}
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(mut self, mut map: A) -> Result<(), A::Error> {
        self.node(0, 0);
        let depth = self.depth + 1;
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            self.tally.text(&key);
            map.next_value_seed(JsonSeed { tally: &mut *self.tally, depth })?;
        }
        Ok(())
    }
}

fn digits(v: u64) -> u64 {
    v.checked_ilog10().map_or(1, |d| u64::from(d) + 1)
}

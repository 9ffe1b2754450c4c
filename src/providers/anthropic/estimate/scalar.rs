//! Small shared pieces of the visitors: field paths for messages, a type-revealing JSON
//! value, and macros that turn an unexpected JSON type into a typed problem.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ctx::Ctx;
use crate::estimate::Problem;

/// A field path inside one request, kept as a chain on the stack so descending costs
/// nothing until a message needs it.
#[derive(Clone, Copy)]
pub enum Path<'p> {
    Root,
    Key(&'p Path<'p>, &'p str),
    Index(&'p Path<'p>, usize),
}

impl<'p> Path<'p> {
    pub fn key(&'p self, k: &'p str) -> Path<'p> {
        Path::Key(self, k)
    }

    pub fn index(&'p self, i: usize) -> Path<'p> {
        Path::Index(self, i)
    }
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, k) => f.write_str(k),
            Path::Key(p, k) => write!(f, "{p}.{k}"),
            Path::Index(p, i) => write!(f, "{p}[{i}]"),
        }
    }
}

/// Any JSON value, keeping scalars and skipping the content of containers: lets a
/// visitor check a field's type itself and say what it got.
#[derive(Debug)]
pub enum Scalar<'a> {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    Array,
    Object,
}

impl<'de> de::Deserialize<'de> for Scalar<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Scalar<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_unit<E>(self) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Null)
    }
    fn visit_bool<E>(self, v: bool) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Int(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Float(v))
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Scalar<'de>, E> {
        Ok(Scalar::Str(Cow::Owned(v)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Scalar<'de>, A::Error> {
        while a.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Scalar<'de>, A::Error> {
        while a.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Scalar::Object)
    }
}

/// Implements the scalar `visit_*` methods of a container visitor as "wrong type"
/// failures, through the visitor's own `wrong(self, got)`; `(no_str)` leaves strings to
/// the visitor.
macro_rules! reject_scalars {
    () => {
        reject_scalars!(no_str);
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
            self.wrong(crate::providers::anthropic::estimate::scalar::Scalar::Str(v.into()))
        }
    };
    (no_str) => {
        fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
            self.wrong(crate::providers::anthropic::estimate::scalar::Scalar::Null)
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Self::Value, E> {
            self.wrong(crate::providers::anthropic::estimate::scalar::Scalar::Bool(v))
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<Self::Value, E> {
            self.wrong(crate::providers::anthropic::estimate::scalar::Scalar::Int(v.into()))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<Self::Value, E> {
            self.wrong(crate::providers::anthropic::estimate::scalar::Scalar::Int(v.into()))
        }
        fn visit_f64<E: serde::de::Error>(self, v: f64) -> Result<Self::Value, E> {
            self.wrong(crate::providers::anthropic::estimate::scalar::Scalar::Float(v))
        }
    };
}
pub(crate) use reject_scalars;

/// Generates the `DeserializeSeed` (via `deserialize_any`) of a seed with `ctx` and `path`
/// fields, and its `wrong` helper that turns an unexpected JSON type into a typed problem.
macro_rules! seed {
    ($seed:ident, $value:ty, $expected:literal) => {
        impl<'de> serde::de::DeserializeSeed<'de> for $seed<'_, '_, '_> {
            type Value = $value;
            fn deserialize<D: serde::de::Deserializer<'de>>(
                self,
                d: D,
            ) -> Result<$value, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl $seed<'_, '_, '_> {
            fn wrong<E: serde::de::Error>(
                self,
                got: crate::providers::anthropic::estimate::scalar::Scalar,
            ) -> Result<$value, E> {
                Err(crate::providers::anthropic::estimate::scalar::type_error(
                    self.ctx, self.path, $expected, &got,
                ))
            }
        }
    };
}
pub(crate) use seed;

/// The next value of `map`, which must be a string; anything else is a problem at `path`.
pub fn next_str<'de, A: MapAccess<'de>>(
    map: &mut A,
    ctx: &Ctx,
    path: &Path,
) -> Result<Cow<'de, str>, A::Error> {
    match map.next_value::<Scalar<'de>>()? {
        Scalar::Str(s) => Ok(s),
        other => Err(type_error(ctx, path, "a string", &other)),
    }
}

/// Records a "must be X, got Y" problem at `path`.
pub fn type_error<E: de::Error>(ctx: &Ctx, path: &Path, expected: &'static str, got: &Scalar) -> E {
    ctx.fail(path, Problem::WrongType { expected, got: show(got) })
}

/// A short rendering of a JSON value for messages: scalars as written (strings quoted and
/// cut at 40 characters), containers by kind.
pub fn show(v: &Scalar<'_>) -> String {
    match v {
        Scalar::Null => "null".into(),
        Scalar::Bool(b) => b.to_string(),
        Scalar::Int(i) => i.to_string(),
        Scalar::Float(x) => x.to_string(),
        Scalar::Str(s) => {
            let cut: String = s.chars().take(40).collect();
            let more = if cut.len() < s.len() { "..." } else { "" };
            format!("{:?}", format!("{cut}{more}"))
        }
        Scalar::Array => "an array".into(),
        Scalar::Object => "an object".into(),
    }
}

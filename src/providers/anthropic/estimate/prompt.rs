//! One request's `params`: validated field by field and reduced to what pricing needs
//! (model, `max_tokens`, region, web searches) and the token tally of its prompt, split
//! into the sections that form a cached prefix in order: tools, then system, then messages.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::content::{MessagesSeed, SystemSeed};
use super::ctx::Ctx;
use super::json::{CacheSeed, JsonSeed};
use super::scalar::{Path, Scalar, next_str, reject_scalars, show};
use super::tools::ToolsSeed;
use crate::estimate::Tokens;
use crate::estimate::{MAX_MAX_TOKENS, Problem};
pub use crate::estimate::{Tally, Ttl, WebSearch};

/// Framing of every request (start of prompt, assistant turn), at most / typically.
pub const REQUEST_OVERHEAD: Tokens = Tokens::fixed(16, 4);

/// Everything a request sends, by section.
#[derive(Default)]
pub struct Prompt {
    pub tools: Tally,
    pub system: Tally,
    pub messages: Tally,
    /// Sent but never part of a cached prefix (`tool_choice`, `output_config`, unknown).
    pub extra: Tokens,
    /// Top-level `cache_control`: a breakpoint after the last block.
    pub auto_cache: Option<Ttl>,
}

impl Prompt {
    pub fn total(&self) -> Tokens {
        self.tools.tokens + self.system.tokens + self.messages.tokens + self.extra
    }
}

/// The validated essentials of one request's `params`.
pub struct Params<'a> {
    pub model: Cow<'a, str>,
    pub max_tokens: u64,
    /// `inference_geo: "us"`.
    pub geo_us: bool,
    pub web_search: WebSearch,
    pub prompt: Prompt,
}

pub struct ParamsSeed<'c, 'p> {
    pub ctx: &'c Ctx,
    pub path: &'p Path<'p>,
}

impl<'de> DeserializeSeed<'de> for ParamsSeed<'_, '_> {
    type Value = Params<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Params<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl ParamsSeed<'_, '_> {
    fn wrong<'de, E: de::Error>(self, got: Scalar) -> Result<Params<'de>, E> {
        let problem = Problem::WrongType { expected: "an object", got: show(&got) };
        Err(self.ctx.fail(self.path, problem))
    }

    fn type_error<E: de::Error>(&self, key: &str, expected: &'static str, got: &Scalar) -> E {
        let problem = Problem::WrongType { expected, got: show(got) };
        self.ctx.fail(&self.path.key(key), problem)
    }
}

impl<'de> Visitor<'de> for ParamsSeed<'_, '_> {
    type Value = Params<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a params object")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Params<'de>, A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Params<'de>, A::Error> {
        let (ctx, path) = (self.ctx, self.path);
        let (mut model, mut max_tokens, mut has_messages) = (None, None, false);
        let mut geo_us = false;
        let mut web_search = None;
        let mut p = Prompt::default();
        // At the very start, so every cached prefix includes it.
        p.tools.overhead(REQUEST_OVERHEAD, 0);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let at = path.key(&key);
            match &*key {
                "model" => model = Some(next_str(&mut map, ctx, &at)?),
                "max_tokens" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Int(n) if (1..=i128::from(MAX_MAX_TOKENS)).contains(&n) => {
                        max_tokens = Some(n as u64);
                    }
                    Scalar::Int(n) => {
                        let got = n.to_string();
                        return Err(ctx.fail(&at, Problem::MaxTokens { got }));
                    }
                    other => return Err(self.type_error(&key, "an integer >= 1", &other)),
                },
                "messages" => {
                    map.next_value_seed(MessagesSeed { ctx, path: &at, tally: &mut p.messages })?;
                    has_messages = true;
                }
                "system" => {
                    map.next_value_seed(SystemSeed { ctx, path: &at, tally: &mut p.system })?;
                }
                "tools" => {
                    let seed = ToolsSeed { ctx, path: &at, tally: &mut p.tools };
                    web_search = map.next_value_seed(seed)?;
                }
                "cache_control" => {
                    p.auto_cache = map.next_value_seed(CacheSeed { ctx, path: &at })?
                }
                "stream" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Bool(false) | Scalar::Null => {}
                    Scalar::Bool(true) => return Err(ctx.fail(&at, Problem::Stream)),
                    other => return Err(self.type_error(&key, "a boolean", &other)),
                },
                "inference_geo" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Str(s) => geo_us = s == "us",
                    Scalar::Null => {}
                    other => return Err(self.type_error(&key, "a string", &other)),
                },
                // Sampling and bookkeeping: nothing the model reads as input.
                "temperature" | "top_p" | "top_k" | "stop_sequences" | "metadata"
                | "service_tier" | "thinking" | "speed" | "container" => {
                    map.next_value::<IgnoredAny>()?;
                }
                // Sent to the model but never part of a cached prefix: `tool_choice`,
                // `output_config`, and (for the bound's sake) anything unknown.
                _ => {
                    let mut t = Tally::default();
                    t.text(&key);
                    map.next_value_seed(JsonSeed { tally: &mut t, depth: 1 })?;
                    p.extra += t.tokens;
                }
            }
        }
        let model = model.ok_or_else(|| ctx.fail(&path.key("model"), Problem::Missing))?;
        let max_tokens =
            max_tokens.ok_or_else(|| ctx.fail(&path.key("max_tokens"), Problem::Missing))?;
        if !has_messages {
            return Err(ctx.fail(&path.key("messages"), Problem::Missing));
        }
        Ok(Params { model, max_tokens, geo_us, web_search, prompt: p })
    }
}

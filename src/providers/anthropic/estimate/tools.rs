//! `tools`: each definition counted as JSON, plus the tool-use system prompt once; web
//! search tools also bound the searches a request may bill.

use std::borrow::Cow;
use std::fmt;

use serde::de::{MapAccess, SeqAccess, Visitor};

use super::ctx::Ctx;
use super::json::{CacheSeed, JsonSeed};
use super::scalar::{Path, Scalar, next_str, reject_scalars, seed, type_error};
use crate::estimate::Tokens;
use crate::estimate::{Tally, WebSearch};

/// The tool-use system prompt Anthropic adds when `tools` is non-empty: documented from
/// 159 to 530 tokens (Claude 3), reported up to ~935 for later models.
pub(super) const TOOLS_PROMPT: Tokens = Tokens::fixed(1_000, 350);
/// Searches assumed for a web search tool without `max_uses`: the server-side tool loop
/// pauses (`stop_reason: "pause_turn"`) after 10 iterations by default.
pub(super) const WEB_SEARCHES_UNCAPPED: u64 = 10;
/// Delimiters of one tool definition.
pub(super) const TOOL_OVERHEAD: Tokens = Tokens::fixed(16, 4);

/// `tools`: each definition counted as JSON, plus the tool-use system prompt once.
pub struct ToolsSeed<'c, 'p, 't> {
    pub ctx: &'c Ctx,
    pub path: &'p Path<'p>,
    pub tally: &'t mut Tally,
}
seed!(ToolsSeed, WebSearch, "an array of tools");

impl<'de> Visitor<'de> for ToolsSeed<'_, '_, '_> {
    type Value = WebSearch;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of tools")
    }
    reject_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<WebSearch, A::Error> {
        self.wrong(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<WebSearch, A::Error> {
        let mut web: WebSearch = None;
        let mut i = 0;
        loop {
            let at = self.path.index(i);
            let seed =
                ToolSeed { ctx: self.ctx, path: &at, tally: &mut *self.tally, first: i == 0 };
            match seq.next_element_seed(seed)? {
                None => return Ok(web),
                Some(searches) => {
                    if let Some(n) = searches {
                        web = Some(web.unwrap_or(0).saturating_add(n));
                    }
                }
            }
            i += 1;
        }
    }
}

struct ToolSeed<'c, 'p, 't> {
    ctx: &'c Ctx,
    path: &'p Path<'p>,
    tally: &'t mut Tally,
    /// The first tool brings the tool-use system prompt.
    first: bool,
}
seed!(ToolSeed, WebSearch, "a tool object");

impl<'de> Visitor<'de> for ToolSeed<'_, '_, '_> {
    type Value = WebSearch;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a tool")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<WebSearch, A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<WebSearch, A::Error> {
        let (ctx, path, tally) = (self.ctx, self.path, self.tally);
        if self.first {
            tally.overhead(TOOLS_PROMPT, 5);
        }
        tally.overhead(TOOL_OVERHEAD, 3);
        let (mut ttl, mut web, mut max_uses) = (None, false, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let at = path.key(&key);
            match &*key {
                "cache_control" => ttl = map.next_value_seed(CacheSeed { ctx, path: &at })?,
                "type" => {
                    let s = next_str(&mut map, ctx, &at)?;
                    web = s.starts_with("web_search");
                    tally.text(&s);
                }
                "max_uses" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Int(n) if n >= 0 => max_uses = Some(n.min(u64::MAX.into()) as u64),
                    other => return Err(type_error(ctx, &at, "a non-negative integer", &other)),
                },
                _ => {
                    tally.text(&key);
                    map.next_value_seed(JsonSeed { tally: &mut *tally, depth: 1 })?;
                }
            }
        }
        if let Some(ttl) = ttl {
            tally.mark(ttl);
        }
        Ok(web.then(|| max_uses.unwrap_or(WEB_SEARCHES_UNCAPPED)))
    }
}

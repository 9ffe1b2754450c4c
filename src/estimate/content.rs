//! Visitors for what the model reads: messages, content blocks, system, tools, and raw
//! JSON (tool schemas, tool inputs). Each adds to a [`Tally`] as it goes and drops the
//! text; only a base64 `data` string is held (borrowed) until its block's type is known.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::error::{Problem, show};
use super::media;
use super::parse::{Ctx, Path, Scalar, reject_scalars};
use super::prompt::{Tally, Ttl, WebSearch};
use super::tokens::Tokens;

/// Role markers and turn separators of one message.
const MESSAGE_OVERHEAD: Tokens = Tokens::fixed(8, 3);
/// Delimiters of one content block.
const BLOCK_OVERHEAD: Tokens = Tokens::fixed(8, 2);
/// Delimiters around the system prompt.
const SYSTEM_OVERHEAD: Tokens = Tokens::fixed(8, 2);
/// The tool-use system prompt Anthropic adds when `tools` is non-empty: documented from
/// 159 to 530 tokens (Claude 3), reported up to ~935 for later models.
const TOOLS_PROMPT: Tokens = Tokens::fixed(1_000, 350);
/// Searches assumed for a web search tool without `max_uses`: the server-side tool loop
/// pauses (`stop_reason: "pause_turn"`) after 10 iterations by default.
const WEB_SEARCHES_UNCAPPED: u64 = 10;
/// Delimiters of one tool definition.
const TOOL_OVERHEAD: Tokens = Tokens::fixed(16, 4);

/// Generates the `DeserializeSeed` (via `deserialize_any`) and the `wrong` helper that
/// turns an unexpected JSON type into a typed problem at the seed's path.
macro_rules! seed {
    ($seed:ident, $value:ty, $expected:literal) => {
        impl<'de> DeserializeSeed<'de> for $seed<'_, '_, '_> {
            type Value = $value;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<$value, D::Error> {
                d.deserialize_any(self)
            }
        }
        impl $seed<'_, '_, '_> {
            fn wrong<E: de::Error>(self, got: Scalar) -> Result<$value, E> {
                let problem = Problem::WrongType { expected: $expected, got: show(&got) };
                Err(self.ctx.fail(self.path, problem))
            }
        }
    };
}

fn type_error<E: de::Error>(ctx: &Ctx, path: &Path, expected: &'static str, got: &Scalar) -> E {
    ctx.fail(path, Problem::WrongType { expected, got: show(got) })
}

/// `messages`: an array of `{role, content}`.
pub struct MessagesSeed<'c, 'p, 't> {
    pub ctx: &'c Ctx,
    pub path: &'p Path<'p>,
    pub tally: &'t mut Tally,
}
seed!(MessagesSeed, (), "an array of messages");

impl<'de> Visitor<'de> for MessagesSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an array of messages")
    }
    reject_scalars!();
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut i = 0;
        loop {
            let at = self.path.index(i);
            let seed = MessageSeed { ctx: self.ctx, path: &at, tally: &mut *self.tally };
            if seq.next_element_seed(seed)?.is_none() {
                return Ok(());
            }
            i += 1;
        }
    }
}

struct MessageSeed<'c, 'p, 't> {
    ctx: &'c Ctx,
    path: &'p Path<'p>,
    tally: &'t mut Tally,
}
seed!(MessageSeed, (), "a message object");

impl<'de> Visitor<'de> for MessageSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a message")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (ctx, path, tally) = (self.ctx, self.path, self.tally);
        tally.overhead(MESSAGE_OVERHEAD, 1);
        let (mut role, mut content) = (false, false);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let at = path.key(&key);
            match &*key {
                "role" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Str(s) if s == "user" || s == "assistant" => {
                        tally.hash_bytes(s.as_bytes());
                        role = true;
                    }
                    other => return Err(type_error(ctx, &at, "\"user\" or \"assistant\"", &other)),
                },
                "content" => {
                    map.next_value_seed(ContentSeed { ctx, path: &at, tally: &mut *tally })?;
                    content = true;
                }
                _ => {
                    tally.text(&key);
                    map.next_value_seed(JsonSeed { tally: &mut *tally, depth: 1 })?;
                }
            }
        }
        if !role {
            return Err(ctx.fail(&path.key("role"), Problem::Missing));
        }
        if !content {
            return Err(ctx.fail(&path.key("content"), Problem::Missing));
        }
        Ok(())
    }
}

/// `content`: a string, or an array of content blocks.
struct ContentSeed<'c, 'p, 't> {
    ctx: &'c Ctx,
    path: &'p Path<'p>,
    tally: &'t mut Tally,
}
seed!(ContentSeed, (), "a string or an array of content blocks");

impl<'de> Visitor<'de> for ContentSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("content")
    }
    reject_scalars!(no_str);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.tally.text(s);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        blocks(self.ctx, self.path, self.tally, seq)
    }
}

fn blocks<'de, A: SeqAccess<'de>>(
    ctx: &Ctx,
    path: &Path,
    tally: &mut Tally,
    mut seq: A,
) -> Result<(), A::Error> {
    let mut i = 0;
    loop {
        let at = path.index(i);
        if seq.next_element_seed(BlockSeed { ctx, path: &at, tally: &mut *tally })?.is_none() {
            return Ok(());
        }
        i += 1;
    }
}

/// `system`: a string or an array of text blocks.
pub struct SystemSeed<'c, 'p, 't> {
    pub ctx: &'c Ctx,
    pub path: &'p Path<'p>,
    pub tally: &'t mut Tally,
}
seed!(SystemSeed, (), "a string or an array of text blocks");

impl<'de> Visitor<'de> for SystemSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a system prompt")
    }
    reject_scalars!(no_str);
    fn visit_str<E: de::Error>(self, s: &str) -> Result<(), E> {
        self.tally.overhead(SYSTEM_OVERHEAD, 4);
        self.tally.text(s);
        Ok(())
    }
    fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Object)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<(), A::Error> {
        self.tally.overhead(SYSTEM_OVERHEAD, 4);
        blocks(self.ctx, self.path, self.tally, seq)
    }
}

/// One content block of any type. Unknown fields and types are counted as JSON, so the
/// bound holds for block types this code has never seen.
struct BlockSeed<'c, 'p, 't> {
    ctx: &'c Ctx,
    path: &'p Path<'p>,
    tally: &'t mut Tally,
}
seed!(BlockSeed, (), "a content block object");

impl<'de> Visitor<'de> for BlockSeed<'_, '_, '_> {
    type Value = ();
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a content block")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<(), A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let (ctx, path, tally) = (self.ctx, self.path, self.tally);
        tally.overhead(BLOCK_OVERHEAD, 2);
        let (mut kind, mut ttl, mut source) = (None, None, None);
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let at = path.key(&key);
            match &*key {
                "type" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Str(s) => {
                        tally.hash_bytes(s.as_bytes());
                        kind = Some(s);
                    }
                    other => return Err(type_error(ctx, &at, "a string", &other)),
                },
                "text" | "thinking" | "data" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Str(s) => tally.text(&s),
                    other => return Err(type_error(ctx, &at, "a string", &other)),
                },
                "source" => {
                    let seed = SourceSeed { ctx, path: &at, tally: &mut *tally };
                    source = Some(map.next_value_seed(seed)?);
                }
                "content" => {
                    map.next_value_seed(ContentSeed { ctx, path: &at, tally: &mut *tally })?;
                }
                "cache_control" => ttl = map.next_value_seed(CacheSeed { ctx, path: &at })?,
                // Opaque to the model's input count.
                "signature" | "is_error" => {
                    map.next_value::<IgnoredAny>()?;
                }
                _ => {
                    tally.text(&key);
                    map.next_value_seed(JsonSeed { tally: &mut *tally, depth: 1 })?;
                }
            }
        }
        let kind = kind.ok_or_else(|| ctx.fail(&path.key("type"), Problem::Missing))?;
        let media = matches!(&*kind, "image" | "document");
        match source {
            Some(src) if &*kind == "image" => tally.add(src.image()),
            Some(src) if &*kind == "document" => tally.add(src.document()),
            None if media => return Err(ctx.fail(&path.key("source"), Problem::Missing)),
            _ => {}
        }
        if let Some(ttl) = ttl {
            tally.mark(ttl);
        }
        Ok(())
    }
}

/// An image or document `source`. The data stays borrowed from the body.
struct Source<'a> {
    kind: Option<Cow<'a, str>>,
    media_type: Option<Cow<'a, str>>,
    data: Option<Cow<'a, str>>,
}

impl Source<'_> {
    fn image(&self) -> Tokens {
        match (self.kind.as_deref(), &self.data) {
            (Some("base64"), Some(d)) => media::base64_image(d),
            _ => media::IMAGE_UNKNOWN,
        }
    }

    fn document(&self) -> Tokens {
        match (self.kind.as_deref(), &self.data) {
            (Some("text"), Some(d)) => Tokens::of_text(d),
            // Already counted block by block.
            (Some("content"), _) => Tokens::default(),
            (Some("base64"), Some(d)) if self.media_type.as_deref() != Some("text/plain") => {
                media::pdf(Some(d))
            }
            (Some("base64"), Some(d)) => Tokens::of_text(d),
            // URL, file id, or unknown: the page limit.
            _ => media::pdf(None),
        }
    }
}

struct SourceSeed<'c, 'p, 't> {
    ctx: &'c Ctx,
    path: &'p Path<'p>,
    tally: &'t mut Tally,
}

impl<'de> DeserializeSeed<'de> for SourceSeed<'_, '_, '_> {
    type Value = Source<'de>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Source<'de>, D::Error> {
        d.deserialize_any(self)
    }
}

impl SourceSeed<'_, '_, '_> {
    fn wrong<'de, E: de::Error>(self, got: Scalar) -> Result<Source<'de>, E> {
        Err(type_error(self.ctx, self.path, "a source object", &got))
    }
}

impl<'de> Visitor<'de> for SourceSeed<'_, '_, '_> {
    type Value = Source<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a source")
    }
    reject_scalars!();
    fn visit_seq<A: SeqAccess<'de>>(self, _: A) -> Result<Source<'de>, A::Error> {
        self.wrong(Scalar::Array)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Source<'de>, A::Error> {
        let (ctx, path, tally) = (self.ctx, self.path, self.tally);
        let mut src = Source { kind: None, media_type: None, data: None };
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            let at = path.key(&key);
            if &*key == "content" {
                map.next_value_seed(ContentSeed { ctx, path: &at, tally: &mut *tally })?;
                continue;
            }
            let s = match map.next_value::<Scalar<'de>>()? {
                Scalar::Str(s) => s,
                Scalar::Null => continue,
                other => return Err(type_error(ctx, &at, "a string", &other)),
            };
            tally.hash_bytes(s.as_bytes());
            match &*key {
                "type" => src.kind = Some(s),
                "media_type" => src.media_type = Some(s),
                "data" => src.data = Some(s),
                _ => {}
            }
        }
        Ok(src)
    }
}

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
                "type" => match map.next_value::<Scalar<'de>>()? {
                    Scalar::Str(s) => {
                        web = s.starts_with("web_search");
                        tally.text(&s);
                    }
                    other => return Err(type_error(ctx, &at, "a string", &other)),
                },
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

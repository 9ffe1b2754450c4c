//! Visitors for what the model reads in messages and the system prompt: content blocks
//! of every type, images and documents. Each adds to a [`Tally`] as it goes and drops the
//! text; only a base64 `data` string is held (borrowed) until its block's type is known.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

use super::ctx::Ctx;
use super::json::{CacheSeed, JsonSeed};
use super::media;
use super::scalar::{Path, Scalar, next_str, reject_scalars, seed, type_error};
use crate::estimate::Problem;
use crate::estimate::Tally;
use crate::estimate::Tokens;

/// Role markers and turn separators of one message.
pub(super) const MESSAGE_OVERHEAD: Tokens = Tokens::fixed(8, 3);
/// Delimiters of one content block.
pub(super) const BLOCK_OVERHEAD: Tokens = Tokens::fixed(8, 2);
/// Delimiters around the system prompt.
pub(super) const SYSTEM_OVERHEAD: Tokens = Tokens::fixed(8, 2);
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
                "type" => {
                    let s = next_str(&mut map, ctx, &at)?;
                    tally.hash_bytes(s.as_bytes());
                    kind = Some(s);
                }
                "text" | "thinking" | "data" => tally.text(&next_str(&mut map, ctx, &at)?),
                "source" => {
                    let seed = SourceSeed { ctx, path: &at, tally: &mut *tally };
                    source = Some(map.next_value_seed(seed)?);
                }
                "content" => {
                    map.next_value_seed(ContentSeed { ctx, path: &at, tally: &mut *tally })?;
                }
                "cache_control" => ttl = map.next_value_seed(CacheSeed { ctx, path: &at })?,
                // Opaque to the model's input count. A thinking block's `signature` is not:
                // whether the upstream counts it is unconfirmed, so the worst case does
                // (below, as any other field).
                "is_error" => {
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

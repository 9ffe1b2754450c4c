//! The same walk over a large JSON body on several threads. The body is cut into its
//! request elements by a scan for `{"custom_id"` (SIMD `memmem`), each element is parsed
//! on its own, and the parsed requests are folded in body order, so the estimate is the
//! serial walk's to the byte (the cache expectation depends on that order).
//!
//! Why a cut found this way is safe: the parts are only used if every element parses as a
//! whole JSON value, the text before the first is exactly `{"requests": [`, the text
//! between neighbours is a comma and the text after the last is `]}`, all up to
//! whitespace. Then the body *is* that array of those elements (JSON's grammar has one
//! parse), whatever a needle inside a nested value or a string may have matched: a wrong
//! cut leaves some element incomplete and the caller runs the serial walk, which also
//! gives every error its message. Bodies in another shape (`params` first, an escaped
//! key) take the serial walk too.

use std::borrow::Cow;

use memchr::memmem;
use serde::de::DeserializeSeed;

use super::ctx::Ctx;
use super::parse::{Request, RequestSeed};
use crate::estimate::fold;
use crate::estimate::{Mark, RequestAt, Tokens, WebSearch};

const NEEDLE: &[u8] = b"{\"custom_id\"";

/// One request reduced to what the folder needs, kept until its turn to be folded.
pub struct Parsed<'a> {
    pub custom_id: Cow<'a, str>,
    pub model: Cow<'a, str>,
    pub max_tokens: u64,
    pub geo_us: bool,
    pub web_search: WebSearch,
    pub input: Tokens,
    pub marks: Vec<Mark>,
}

impl<'a> Parsed<'a> {
    pub fn as_request(&self) -> fold::Request<'_> {
        fold::Request {
            custom_id: &self.custom_id,
            model: &self.model,
            max_tokens: self.max_tokens,
            geo_us: self.geo_us,
            web_search: self.web_search,
            input: self.input,
            marks: &self.marks,
        }
    }

    pub fn of(req: Request<'a>) -> Parsed<'a> {
        let p = req.params;
        let mut marks = Vec::new();
        super::flatten(&p.prompt, &mut marks);
        Parsed {
            custom_id: req.custom_id,
            input: p.prompt.total(),
            model: p.model,
            max_tokens: p.max_tokens,
            geo_us: p.geo_us,
            web_search: p.web_search,
            marks,
        }
    }
}

/// Where the elements of a body lie: the end of the last (the closing `]`) and the start
/// of each part.
pub struct Cuts {
    close: usize,
    /// Part boundaries: element starts, ascending, the first element's included.
    parts: Vec<usize>,
}

fn ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// `body[..at]` without trailing whitespace ends with `want`: the position of `want`.
fn back(body: &[u8], at: usize, want: u8) -> Option<usize> {
    let end = body[..at].iter().rposition(|&b| !ws(b))?;
    (body[end] == want).then_some(end)
}

/// The comma before an element starting at `at`, if `at` looks like one (`}` ws `,` ws).
fn comma_before(body: &[u8], at: usize) -> Option<usize> {
    let comma = back(body, at, b',')?;
    back(body, comma, b'}')?;
    Some(comma)
}

/// The first element start at or after `from` that looks like one.
fn next_start(
    finder: &memmem::Finder<'_>,
    body: &[u8],
    mut from: usize,
    end: usize,
) -> Option<usize> {
    while from < end {
        let at = from + finder.find(&body[from..end])?;
        if comma_before(body, at).is_some() {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// Skips whitespace from `i`, then expects `lit`; the position after it.
fn expect(body: &[u8], i: usize, lit: &[u8]) -> Option<usize> {
    let i = i + body.get(i..)?.iter().position(|&b| !ws(b))?;
    body[i..].starts_with(lit).then_some(i + lit.len())
}

/// Where the first element starts, if the body opens with `{"requests": [{"custom_id"`.
pub fn first_element(body: &[u8]) -> Option<usize> {
    let mut i = expect(body, 0, b"{")?;
    i = expect(body, i, b"\"requests\"")?;
    i = expect(body, i, b":")?;
    i = expect(body, i, b"[")?;
    Some(expect(body, i, NEEDLE)? - NEEDLE.len())
}

/// The closing `]` of a body that ends with `]}`.
fn closing(body: &[u8]) -> Option<usize> {
    let brace = back(body, body.len(), b'}')?;
    back(body, brace, b']')
}

/// `starts` and up to `parts - 1` more part starts, evenly over what follows the last.
fn more_starts(body: &[u8], close: usize, mut starts: Vec<usize>, parts: usize) -> Cuts {
    let finder = memmem::Finder::new(NEEDLE);
    let base = *starts.last().expect("a first start");
    for k in 1..parts {
        let from = (base + (close - base) * k / parts).max(starts[starts.len() - 1] + 1);
        match next_start(&finder, body, from, close) {
            Some(s) => starts.push(s),
            None => break,
        }
    }
    Cuts { close, parts: starts }
}

/// Finds the first element and `parts` part starts, or `None` if the body does not have
/// the plain shape (then the serial walk judges it).
pub fn cut(body: &[u8], parts: usize) -> Option<Cuts> {
    let first = first_element(body)?;
    let close = closing(body)?;
    Some(more_starts(body, close, vec![first], parts))
}

/// The last element start in `head[from..]` that looks like one, for the first part of a
/// body whose rest is still to come: it ends the part walked so far (the element there
/// may be incomplete; it belongs to the rest).
pub fn last_start(head: &[u8], from: usize) -> Option<usize> {
    let finder = memmem::Finder::new(NEEDLE);
    // Most bodies have an element start within the last MiB of what has arrived; a body
    // of larger elements is searched from `from`.
    let near_end = head.len().saturating_sub(1 << 20).max(from);
    let mut end = next_start(&finder, head, near_end, head.len())
        .or_else(|| next_start(&finder, head, from, near_end))?;
    while let Some(e) = next_start(&finder, head, end + 1, head.len()) {
        end = e;
    }
    Some(end)
}

/// The cuts of the whole body whose first element starts at `first` and whose elements
/// before `end` were walked already, as part 0: what follows `end` is cut into up to
/// `parts` more.
pub fn cut_after(body: &[u8], (first, end): (usize, usize), parts: usize) -> Option<Cuts> {
    (first_element(body)? == first && body.get(end..)?.starts_with(NEEDLE)).then_some(())?;
    comma_before(body, end)?;
    let close = closing(body)?;
    (close > end).then(|| more_starts(body, close, vec![first, end], parts))
}

/// One part of a body still arriving: its elements from `start` to the one at `end`.
pub fn part((start, end): (usize, usize)) -> Cuts {
    // No element of the part ends at the closing bracket: it has not arrived.
    Cuts { close: usize::MAX, parts: vec![start, end] }
}

impl Cuts {
    pub fn parts(&self) -> usize {
        self.parts.len()
    }

    /// Parses the elements of part `k` in order, handing each to `f`. `None` at the first
    /// element that does not parse whole, or when `f` says stop.
    pub fn walk<'a>(
        &self,
        body: &'a [u8],
        k: usize,
        mut f: impl FnMut(Request<'a>) -> Option<()>,
    ) -> Option<()> {
        let finder = memmem::Finder::new(NEEDLE);
        let end = self.parts.get(k + 1).map_or(self.close, |&s| s);
        let mut start = self.parts[k];
        let ctx = Ctx::new(None);
        ctx.in_request.set(true);
        let mut n = 0u64;
        loop {
            let next = next_start(&finder, body, start + 1, end);
            let stop = match next {
                Some(s) => comma_before(body, s)?,
                None if end == self.close => self.close,
                None => comma_before(body, end)?,
            };
            ctx.at.set(RequestAt { index: n, line: None });
            let mut de = serde_json::Deserializer::from_slice(&body[start..stop]);
            let req = RequestSeed { ctx: &ctx }.deserialize(&mut de).ok()?;
            de.end().ok()?;
            f(req)?;
            n += 1;
            match next {
                Some(s) => start = s,
                None => return Some(()),
            }
        }
    }
}

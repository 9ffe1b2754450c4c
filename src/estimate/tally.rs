//! The running token count and content hash of a prompt section, with its cache
//! breakpoints. A leaf shared by the front-ends' section visitors (an Anthropic body's
//! tools, system and messages) and the folder that prices the breakpoints.

use xxhash_rust::xxh3::xxh3_64_with_seed;

use super::tokens::Tokens;

/// A prompt-cache lifetime (`cache_control.ttl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ttl {
    FiveMinutes,
    OneHour,
}

/// A `cache_control` breakpoint: the size and identity of the prefix it ends.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub tokens: Tokens,
    pub hash: u64,
    pub ttl: Ttl,
}

/// Running token count and content hash of one prompt section, with its breakpoints.
/// The hash is a chain (each piece hashed with the hash so far as its seed), not a
/// streaming hasher: eight bytes instead of a 600-byte state that every request moved
/// around several times (a tenth of the walk's time went to those copies). Equal
/// sections still hash alike, which is all a prefix's identity needs.
#[derive(Default)]
pub struct Tally {
    pub tokens: Tokens,
    hash: u64,
    pub marks: Vec<Mark>,
}

impl Tally {
    /// Text the model reads: counted and hashed.
    pub fn text(&mut self, s: &str) {
        self.tokens += Tokens::of_text(s);
        self.hash_bytes(s.as_bytes());
    }

    /// Fixed framing tokens; `tag` keeps different structures from hashing alike.
    pub fn overhead(&mut self, t: Tokens, tag: u8) {
        self.tokens += t;
        self.hash = xxh3_64_with_seed(&[0xFF, tag], self.hash);
    }

    /// Content that is counted some other way (image pixels, JSON structure).
    pub fn add(&mut self, t: Tokens) {
        self.tokens += t;
    }

    pub fn hash_bytes(&mut self, b: &[u8]) {
        self.hash = xxh3_64_with_seed(b, self.hash ^ (b.len() as u64).rotate_left(32));
    }

    /// Ends a cached prefix here.
    pub fn mark(&mut self, ttl: Ttl) {
        self.marks.push(Mark { tokens: self.tokens, hash: self.hash, ttl });
    }

    pub fn digest(&self) -> u64 {
        self.hash
    }
}

/// Worst-case web searches of a request: `None` without the web search tool.
pub type WebSearch = Option<u64>;

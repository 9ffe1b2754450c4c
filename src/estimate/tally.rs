//! The running token count and content hash of a prompt section, with its cache
//! breakpoints. A leaf shared by the front-ends' section visitors (an Anthropic body's
//! tools, system and messages) and the folder that prices the breakpoints.

use xxhash_rust::xxh3::Xxh3Default;

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
pub struct Tally {
    pub tokens: Tokens,
    hash: Xxh3Default,
    pub marks: Vec<Mark>,
}

impl Default for Tally {
    fn default() -> Self {
        Tally { tokens: Tokens::default(), hash: Xxh3Default::new(), marks: Vec::new() }
    }
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
        self.hash.update(&[0xFF, tag]);
    }

    /// Content that is counted some other way (image pixels, JSON structure).
    pub fn add(&mut self, t: Tokens) {
        self.tokens += t;
    }

    pub fn hash_bytes(&mut self, b: &[u8]) {
        self.hash.update(&(b.len() as u64).to_le_bytes());
        self.hash.update(b);
    }

    /// Ends a cached prefix here.
    pub fn mark(&mut self, ttl: Ttl) {
        self.marks.push(Mark { tokens: self.tokens, hash: self.hash.digest(), ttl });
    }

    pub fn digest(&self) -> u64 {
        self.hash.digest()
    }
}

/// Worst-case web searches of a request: `None` without the web search tool.
pub type WebSearch = Option<u64>;

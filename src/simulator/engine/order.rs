//! Results-file helpers every surface shares: a seeded line order that is not the request
//! order (clients must match on their ids), filler answer text, and the chunked byte
//! stream with an optional cut in the middle of a line.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use futures_util::Stream;

use super::ids::Key;
use super::stats::Stats;

/// Bytes per chunk handed to the socket.
pub const CHUNK: usize = 64 * 1024;
/// Longest generated answer text, in words: the usage numbers carry the size, the text
/// only has to look like an answer.
const MAX_WORDS: u32 = 120;

const WORDS: [&str; 32] = [
    "the", "batch", "result", "shows", "a", "clear", "summary", "of", "key", "points", "and",
    "notes", "that", "data", "suggests", "further", "review", "is", "useful", "for", "this",
    "case", "with", "several", "items", "in", "order", "to", "improve", "overall", "quality",
    "here",
];

/// A seeded permutation of `0..n`: position `k` holds `(offset + k * stride) % n`.
#[derive(Clone, Copy, Debug)]
pub struct Order {
    n: u64,
    offset: u64,
    stride: u64,
}

impl Order {
    /// The seeded order of a batch's `n` lines.
    pub fn seeded(seed: u64, batch_seq: u64, n: u64) -> Self {
        let key = Key::new(seed, "order").u64(batch_seq);
        let offset = key.hash64() % n.max(1);
        let mut stride = (n / 2 + 1).max(1) | 1;
        while gcd(stride, n.max(1)) != 1 {
            stride += 1;
        }
        Order { n, offset, stride }
    }

    /// Request order (Gemini inline responses keep it).
    pub fn identity(n: u64) -> Self {
        Order { n, offset: 0, stride: 1 }
    }

    pub fn at(&self, k: u64) -> u64 {
        ((u128::from(self.offset) + u128::from(k) * u128::from(self.stride))
            % u128::from(self.n.max(1))) as u64
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// A few words per output token, from a cheap generator seeded per line.
pub fn answer_text(state: u64, output_tokens: u32) -> String {
    let mut text = Vec::new();
    write_answer(state, output_tokens, &mut text);
    String::from_utf8(text).unwrap_or_default()
}

/// [`answer_text`] appended to `out`. Its words are lowercase ASCII, so the same bytes
/// are also the text as a JSON string's contents (nothing to escape).
pub fn write_answer(mut state: u64, output_tokens: u32, out: &mut Vec<u8>) {
    let words = (output_tokens * 3 / 4).clamp(1, MAX_WORDS);
    out.reserve(words as usize * 7);
    for w in 0..words {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        if w > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(WORDS[(state >> 59) as usize].as_bytes());
    }
    out.push(b'.');
}

/// Appends `value` as JSON to `out`; `false`, with `out` as it was, if it cannot be
/// written (the chunk keeps no half line).
pub fn append_json(out: &mut Vec<u8>, value: &impl serde::Serialize) -> bool {
    let start = out.len();
    let ok = serde_json::to_writer(&mut *out, value).is_ok();
    if !ok {
        out.truncate(start);
    }
    ok
}

/// Renders the lines of a results file straight into the chunk being sent: a line of its
/// own per call (allocated, grown, then copied into the chunk) was a quarter of the
/// simulator's time in a large download.
pub trait LineSource: Send + 'static {
    /// Positions in the file (some may render nothing).
    fn positions(&self) -> u64;
    /// Appends the line at `position` (without its newline) to `out`; `false`, with
    /// nothing appended, when the file holds no line there (a file of only some of the
    /// batch's lines).
    fn line(&self, position: u64, out: &mut Vec<u8>) -> bool;

    /// The file's size in bytes, newlines included.
    fn size(&self) -> u64 {
        let mut buf = Vec::new();
        (0..self.positions())
            .map(|k| {
                buf.clear();
                if self.line(k, &mut buf) { buf.len() as u64 + 1 } else { 0 }
            })
            .sum()
    }
}

/// A results download in progress: whole lines in chunks, optionally cut in the middle
/// of the line at position `cut_at`.
pub struct Lines<S> {
    src: S,
    next: u64,
    cut_at: Option<u64>,
    stats: Arc<Stats>,
}

impl<S: LineSource> Lines<S> {
    /// `cut` is a draw in `[0, 1)` the stream scales to its length.
    pub fn new(src: S, cut: Option<f64>, stats: Arc<Stats>) -> Self {
        let cut_at = cut.map(|u| (u * src.positions() as f64) as u64);
        Lines { src, next: 0, cut_at, stats }
    }

    /// The next chunk of whole lines; `true` when it ends with the half line of a cut.
    fn chunk(&mut self) -> Option<(Bytes, bool)> {
        let n = self.src.positions();
        if self.next >= n {
            return None;
        }
        let mut buf = Vec::with_capacity(CHUNK + 4096);
        let mut whole = 0;
        while self.next < n && buf.len() < CHUNK {
            let k = self.next;
            self.next += 1;
            let start = buf.len();
            if !self.src.line(k, &mut buf) {
                continue;
            }
            if self.cut_at.is_some_and(|c| k >= c) {
                buf.truncate(start + (buf.len() - start) / 2);
                self.next = n;
                self.stats.faults.cut_results.fetch_add(1, Ordering::Relaxed);
                self.stats.result_lines.fetch_add(whole, Ordering::Relaxed);
                return Some((Bytes::from(buf), true));
            }
            buf.push(b'\n');
            whole += 1;
        }
        self.stats.result_lines.fetch_add(whole, Ordering::Relaxed);
        Some((Bytes::from(buf), false))
    }
}

/// The body stream of a results download. A cut download sends its half line, waits a
/// moment so the server flushes it, then fails, which makes the server drop the
/// connection without finishing the chunked body.
pub fn stream<S: LineSource>(
    lines: Lines<S>,
) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send {
    futures_util::stream::unfold((lines, false), |(mut lines, broken)| async move {
        if broken {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            let err = std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "simulated cut");
            return Some((Err(err), (lines, false)));
        }
        loop {
            let (chunk, cut) = lines.chunk()?;
            // A chunk of skipped positions only: keep going rather than send nothing.
            if chunk.is_empty() && !cut {
                continue;
            }
            return Some((Ok(chunk), (lines, cut)));
        }
    })
}

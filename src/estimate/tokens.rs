//! Token counts of text without the provider's tokenizer, which is not public for current
//! models: a hard upper bound, and a realistic estimate fitted against a real one.
//!
//! Upper bound: Claude's published tokenizer is a byte-level BPE over NFKC-normalised text,
//! so every token covers at least one byte of the normalised UTF-8. A text therefore never
//! has more tokens than its NFKC byte length; NFKC only grows a few compatibility
//! characters (ligatures, squared CJK words), bounded per character by [`NFKC_GROWTH`].
//! Newer tokenizers produce more tokens for the same text (about 30% for Claude 4.7+), but
//! still at least one byte per token, so the bound holds for them too.
//!
//! Expected: a linear model over character classes, fitted by
//! `scripts/measure-tokenizer.py fit` on English, Korean, Chinese/Japanese and code; the
//! weights are in milli-tokens so sums over a batch stay integers.

use std::ops::{Add, AddAssign};

/// Token counts of some input: `upper` never below what the model counts, `milli` the
/// expected count in thousandths (rounded up to whole tokens only per request).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub upper: u64,
    pub milli: u64,
}

impl Tokens {
    /// A fixed amount: `upper` tokens at most, `expected` tokens typically.
    pub const fn fixed(upper: u64, expected: u64) -> Tokens {
        Tokens { upper, milli: expected * 1000 }
    }

    /// Expected whole tokens (rounded up).
    pub fn expected(self) -> u64 {
        self.milli.div_ceil(1000)
    }

    /// Counts one text.
    pub fn of_text(text: &str) -> Tokens {
        let mut c = Classes::default();
        c.add(text.as_bytes());
        c.tokens()
    }
}

impl Add for Tokens {
    type Output = Tokens;
    fn add(self, o: Tokens) -> Tokens {
        Tokens { upper: self.upper + o.upper, milli: self.milli + o.milli }
    }
}

impl AddAssign for Tokens {
    fn add_assign(&mut self, o: Tokens) {
        self.upper += o.upper;
        self.milli += o.milli;
    }
}

/// Fitted weights (milli-tokens per feature), `scripts/measure-tokenizer.py fit` on the
/// Claude 2-era tokenizer (half of the corpus; `measure` reports on the other half).
/// Spaces and indentation fit to about zero and are left out. A word costs about 0.8 token plus a little per letter; spaces
/// before words are free (BPE merges them into the word); Hangul is about 1.3 tokens per
/// syllable, Han and kana about 0.95 per character.
const W_WORD: u64 = 790;
const W_LETTER: u64 = 60;
const W_DIGIT: u64 = 940;
const W_PUNCT: u64 = 635;
const W_NEWLINE: u64 = 1365;
const W_HANGUL: u64 = 1340;
const W_CJK: u64 = 945;
const W_OTHER_CHAR: u64 = 45;
const W_OTHER_BYTE: u64 = 100;

/// The fast path takes ASCII in blocks this long: long enough to amortise the check,
/// short enough that mixed text still finds all-ASCII blocks.
const BLOCK: usize = 32;

/// Bytes counted in `u8` lanes before they are added up (every count fits a `u8`).
const CHUNK: usize = 128;

fn is_letter(b: u8) -> bool {
    (b | 0x20).wrapping_sub(b'a') < 26
}

/// Character-class counts, the features of the expected-token model.
#[derive(Default, Debug, PartialEq, Eq)]
struct Classes {
    upper: u64,
    words: u64,
    letters: u64,
    digits: u64,
    punct: u64,
    newlines: u64,
    hangul: u64,
    cjk: u64,
    other_chars: u64,
    other_bytes: u64,
}

impl Classes {
    /// Counts `s`: runs of all-ASCII [`BLOCK`]s in branch-free passes the compiler
    /// vectorises, everything else a character at a time. Text is mostly ASCII, and the
    /// byte-at-a-time loop alone was half the CPU of a 193 MB create.
    fn add(&mut self, s: &[u8]) {
        let mut prev_letter = false;
        let mut i = 0;
        while i < s.len() {
            let run = s[i..].chunks_exact(BLOCK).take_while(|b| b.is_ascii()).count() * BLOCK;
            if run > 0 {
                self.ascii_run(&s[i..i + run], &mut prev_letter);
                i += run;
                continue;
            }
            // A block holding other bytes (or the tail): a character at a time up to the
            // end of the block, then look for ASCII again.
            let end = (i + BLOCK).min(s.len());
            while i < end {
                i = self.char_at(s, i, &mut prev_letter);
            }
        }
    }

    /// A non-empty all-ASCII run. Same classes as [`Classes::char_at`]; a word starts at
    /// a letter whose previous byte (`prev_letter` before the run) is not one. Counts
    /// go through `u8` lanes per [`CHUNK`] so the loops vectorise; pairs of neighbours
    /// are read from the input itself rather than from stored flags.
    fn ascii_run(&mut self, r: &[u8], prev_letter: &mut bool) {
        let mut starts = u64::from(is_letter(r[0]) && !*prev_letter);
        for chunk in r.chunks(CHUNK) {
            let (mut l, mut d, mut n, mut sp) = (0u8, 0u8, 0u8, 0u8);
            for &b in chunk {
                l += u8::from(is_letter(b));
                d += u8::from(b.wrapping_sub(b'0') < 10);
                n += u8::from(b == b'\n') + u8::from(b == b'\r') + u8::from(b == b'\t');
                sp += u8::from(b == b' ');
            }
            let (l, d, n, sp) = (u64::from(l), u64::from(d), u64::from(n), u64::from(sp));
            self.letters += l;
            self.digits += d;
            self.newlines += n;
            self.punct += chunk.len() as u64 - l - d - n - sp;
        }
        let last = r.len() - 1;
        for (prev, cur) in r[..last].chunks(CHUNK).zip(r[1..].chunks(CHUNK)) {
            let mut st = 0u8;
            for (&a, &b) in prev.iter().zip(cur) {
                st += u8::from(is_letter(b) & !is_letter(a));
            }
            starts += u64::from(st);
        }
        self.words += starts;
        self.upper += r.len() as u64;
        *prev_letter = is_letter(r[last]);
    }

    /// Counts the character at `i`; returns where the next one starts.
    fn char_at(&mut self, s: &[u8], i: usize, prev_letter: &mut bool) -> usize {
        let b = s[i];
        if b < 0x80 {
            let letter = b.is_ascii_alphabetic();
            if letter {
                self.letters += 1;
                self.words += u64::from(!*prev_letter);
            } else if b.is_ascii_digit() {
                self.digits += 1;
            } else if matches!(b, b'\n' | b'\r' | b'\t') {
                self.newlines += 1;
            } else if b != b' ' {
                self.punct += 1;
            }
            *prev_letter = letter;
            self.upper += 1;
            return i + 1;
        }
        *prev_letter = false;
        let (cp, len) = decode(s, i);
        self.upper += nfkc_bytes(cp, len as u64);
        if (0xAC00..=0xD7A3).contains(&cp)
            || (0x1100..=0x11FF).contains(&cp)
            || (0x3130..=0x318F).contains(&cp)
        {
            self.hangul += 1;
        } else if (0x3040..=0x30FF).contains(&cp)
            || (0x3400..=0x9FFF).contains(&cp)
            || (0xF900..=0xFAFF).contains(&cp)
        {
            self.cjk += 1;
        } else {
            self.other_chars += 1;
            self.other_bytes += len as u64;
        }
        i + len
    }

    fn tokens(&self) -> Tokens {
        let milli = W_WORD * self.words
            + W_LETTER * self.letters
            + W_DIGIT * self.digits
            + W_PUNCT * self.punct
            + W_NEWLINE * self.newlines
            + W_HANGUL * self.hangul
            + W_CJK * self.cjk
            + W_OTHER_CHAR * self.other_chars
            + W_OTHER_BYTE * self.other_bytes;
        // The fit can exceed the bound on tiny texts (a lone newline); the bound wins.
        Tokens { upper: self.upper, milli: milli.min(self.upper * 1000) }
    }
}

/// Decodes the (valid, it came from a `&str`) UTF-8 sequence at `i`.
fn decode(s: &[u8], i: usize) -> (u32, usize) {
    let b = s[i];
    let (len, init) = match b {
        0xC0..=0xDF => (2, u32::from(b & 0x1F)),
        0xE0..=0xEF => (3, u32::from(b & 0x0F)),
        _ => (4, u32::from(b & 0x07)),
    };
    let cp = s[i + 1..i + len].iter().fold(init, |cp, &c| (cp << 6) | u32::from(c & 0x3F));
    (cp, len)
}

/// UTF-8 bytes of the NFKC form of one character, at most.
fn nfkc_bytes(cp: u32, len: u64) -> u64 {
    if cp < 0xA8 || (0xAC00..=0xD7A3).contains(&cp) || (0x4E00..=0x9FFF).contains(&cp) {
        return len;
    }
    match NFKC_GROWTH.binary_search_by(|&(lo, hi, _)| {
        if hi < cp {
            std::cmp::Ordering::Less
        } else if lo > cp {
            std::cmp::Ordering::Greater
        } else {
            std::cmp::Ordering::Equal
        }
    }) {
        Ok(k) => len.max(NFKC_GROWTH[k].2),
        Err(_) => len,
    }
}

/// Code point ranges whose NFKC form is longer in UTF-8 than the character, with the
/// longest form's byte count (`scripts/measure-tokenizer.py nfkc-table`, Unicode 14;
/// ranges closer than 64 code points merged, which only makes the bound coarser).
const NFKC_GROWTH: [(u32, u32, u64); 34] = [
    (0xA8, 0xBE, 5),
    (0x13F, 0x149, 3),
    (0x1C4, 0x1C6, 3),
    (0x2D8, 0x2DD, 3),
    (0x344, 0x385, 5),
    (0x587, 0x587, 4),
    (0x675, 0x678, 4),
    (0x958, 0x95F, 6),
    (0x9DC, 0x9DF, 6),
    (0xA33, 0xA5E, 6),
    (0xB5C, 0xB5D, 6),
    (0xE33, 0xE33, 6),
    (0xEB3, 0xEDD, 6),
    (0xF43, 0xFB9, 9),
    (0x1FC1, 0x1FEE, 5),
    (0x2033, 0x2057, 12),
    (0x2150, 0x2189, 6),
    (0x222C, 0x2230, 9),
    (0x247D, 0x2487, 4),
    (0x2A0C, 0x2A0C, 12),
    (0x2ADC, 0x2ADC, 5),
    (0x309B, 0x309F, 6),
    (0x30FF, 0x30FF, 6),
    (0x3200, 0x327D, 8),
    (0x32C0, 0x33FE, 18),
    (0xFA6C, 0xFA6C, 4),
    (0xFACF, 0xFB4F, 6),
    (0xFBDD, 0xFDFC, 33),
    (0xFE71, 0xFE7F, 4),
    (0xFEF5, 0xFEFC, 4),
    (0x1D15E, 0x1D164, 12),
    (0x1D1BB, 0x1D1C0, 12),
    (0x1F12A, 0x1F12A, 7),
    (0x1F200, 0x1F248, 9),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upper_bound_is_utf8_bytes_for_ordinary_text() {
        assert_eq!(Tokens::of_text("Hello, world").upper, 12);
        assert_eq!(Tokens::of_text("안녕하세요").upper, 15);
        assert_eq!(Tokens::of_text("中文").upper, 6);
        assert_eq!(Tokens::of_text("").upper, 0);
    }

    #[test]
    fn upper_bound_covers_nfkc_expansion() {
        // U+FDFA expands to 18 Arabic letters and spaces (33 bytes); U+3316 to 6 katakana.
        assert_eq!(Tokens::of_text("\u{FDFA}").upper, 33);
        assert_eq!(Tokens::of_text("\u{3316}").upper, 18);
        assert_eq!(Tokens::of_text("x\u{FB01}").upper, 1 + 6);
    }

    #[test]
    fn expected_follows_the_fitted_weights() {
        // "Hello, world": 2 words, 10 letters, 1 punct.
        let t = Tokens::of_text("Hello, world");
        assert_eq!(t.milli, 2 * W_WORD + 10 * W_LETTER + W_PUNCT);
        assert_eq!(t.expected(), 3);
        assert_eq!(Tokens::of_text("안녕").milli, 2 * W_HANGUL);
        assert_eq!(Tokens::of_text("日本").milli, 2 * W_CJK);
        assert_eq!(Tokens::of_text("é").milli, W_OTHER_CHAR + 2 * W_OTHER_BYTE);
        assert_eq!(Tokens::of_text("fn(x)").milli, 2 * W_WORD + 3 * W_LETTER + 2 * W_PUNCT);
    }

    #[test]
    fn expected_never_exceeds_upper() {
        for s in ["\n", "\n\n\n", "1", "a", ";", "é", "😀", "fn main() {}\n"] {
            let t = Tokens::of_text(s);
            assert!(t.expected() <= t.upper, "{s:?}: {t:?}");
        }
    }

    #[test]
    fn growth_table_is_sorted_and_disjoint() {
        for w in NFKC_GROWTH.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0);
        }
    }
}

#[cfg(test)]
#[path = "tokens_oracle.rs"]
mod oracle;

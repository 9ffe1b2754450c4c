//! The simulator's own token model. It is deliberately independent of `crate::estimate`:
//! the simulator is the yardstick the estimator is checked against, so it must not share
//! its arithmetic.
//!
//! Rules (per run of characters of one class):
//! - Latin words: 1 token per started 6 letters (`1 + (n-1)/6`), a leading space is free;
//!   plain English prose lands near 1.3 tokens per word once punctuation is counted,
//!   dense business prose with long words near 1.7.
//! - Other alphabetic scripts (Cyrillic, Greek, Arabic, ...): 1 token per 2 letters.
//! - CJK ideographs, kana, Hangul and other non-ASCII symbols (emoji): 1 token per char.
//! - Digits: 1 token per started group of 3.
//! - ASCII punctuation: 1 token per char; a run of one repeated char (`-----`) is 1 per 4.
//! - Whitespace: a single space is free; other runs cost `1 + (n-1)/4`.
//!
//! Bound: every rule spends at least one UTF-8 byte per token, so
//! `count(s) <= s.len()` for every string. the README (simulator section) states the per-request bound.

/// Tokens of one string under the rules above.
pub fn count(text: &str) -> u64 {
    let mut tokens = 0u64;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let class = Class::of(c);
        let mut run = 1u64;
        // Punctuation runs only merge when the same character repeats.
        while let Some(&next) = chars.peek() {
            let same = match class {
                Class::Punct => next == c,
                _ => Class::of(next) == class,
            };
            if !same {
                break;
            }
            run += 1;
            chars.next();
        }
        tokens += match class {
            Class::Latin => 1 + (run - 1) / 6,
            Class::OtherScript => run.div_ceil(2),
            Class::Wide => run,
            Class::Digit => run.div_ceil(3),
            Class::Punct => run.div_ceil(4),
            Class::Space if run == 1 && c == ' ' => 0,
            Class::Space => 1 + (run - 1) / 4,
        };
    }
    tokens
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Latin,
    OtherScript,
    Wide,
    Digit,
    Punct,
    Space,
}

impl Class {
    fn of(c: char) -> Class {
        if c.is_ascii_alphabetic() {
            return Class::Latin;
        }
        if c.is_ascii_digit() {
            return Class::Digit;
        }
        if c.is_whitespace() {
            return Class::Space;
        }
        if c.is_ascii() {
            return Class::Punct;
        }
        let u = c as u32;
        if is_wide(u) {
            return Class::Wide;
        }
        // Accented Latin (Latin-1 supplement and Latin Extended A/B) reads like ASCII words.
        if (0xC0..=0x24F).contains(&u) && c.is_alphabetic() {
            return Class::Latin;
        }
        if c.is_alphanumeric() {
            return Class::OtherScript;
        }
        Class::Wide
    }
}

/// CJK ideographs, kana, Hangul, fullwidth forms: one token per character.
fn is_wide(u: u32) -> bool {
    matches!(u,
        0x1100..=0x11FF | 0x2E80..=0x303F | 0x3040..=0x30FF | 0x3130..=0x318F
        | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF
        | 0xFF00..=0xFFEF | 0x20000..=0x3FFFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROSE: &str = "The quarterly report shows that revenue grew by 12% compared with \
        last year, while operating costs remained stable. Management expects the new \
        product line, launched in September, to contribute significantly to growth; \
        however, supply-chain constraints could delay deliveries to international customers.";

    const CODE: &str = "fn main() {\n    let xs: Vec<u32> = (0..10).map(|x| x * 2).collect();\n    \
        println!(\"{:?}\", xs);\n}\n";

    const NOVEL: &str = "It was a bright cold day in April, and the clocks were striking \
        thirteen. Winston Smith, his chin nuzzled into his breast in an effort to escape the \
        vile wind, slipped quickly through the glass doors of Victory Mansions, though not \
        quickly enough to prevent a swirl of gritty dust from entering along with him.";

    fn per_word(text: &str) -> f64 {
        count(text) as f64 / text.split_whitespace().count() as f64
    }

    #[test]
    fn english_prose_is_about_one_point_three_tokens_per_word() {
        let plain = per_word(NOVEL);
        assert!((1.2..=1.45).contains(&plain), "plain prose: {plain}");
        let dense = per_word(PROSE);
        assert!((1.45..=1.9).contains(&dense), "dense prose: {dense}");
    }

    #[test]
    fn code_is_denser_than_prose() {
        let prose = PROSE.len() as f64 / count(PROSE) as f64;
        let code = CODE.len() as f64 / count(CODE) as f64;
        assert!(code < prose, "chars per token: code {code}, prose {prose}");
    }

    #[test]
    fn cjk_and_hangul_cost_one_token_per_character() {
        assert_eq!(count("東京都"), 3);
        assert_eq!(count("안녕하세요"), 5);
        assert_eq!(count("こんにちは"), 5);
    }

    #[test]
    fn digits_and_punctuation_are_separate_tokens() {
        assert_eq!(count("1234567"), 3);
        assert_eq!(count("a,b"), 3);
        assert_eq!(count("--------"), 2);
        assert_eq!(count(" hello"), 1);
        assert_eq!(count(""), 0);
    }

    #[test]
    fn never_more_tokens_than_utf8_bytes() {
        // A small deterministic generator over many scripts, spaces and symbols.
        let pool: Vec<char> = "aZ é Ω Ж ش 東 한 カ 7 . - _ \n\t 😀 ‐ ½ ١ ·".chars().collect();
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        for len in 0..400 {
            let mut s = String::new();
            for _ in 0..len {
                state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                s.push(pool[(state >> 33) as usize % pool.len()]);
            }
            assert!(count(&s) <= s.len() as u64, "{s:?}: {} > {}", count(&s), s.len());
        }
    }
}

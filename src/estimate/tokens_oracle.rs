//! The byte-at-a-time classifier the fast path replaced, kept as its oracle: on any text
//! both must give exactly the same counts.

use proptest::prelude::*;

use super::{Classes, decode, nfkc_bytes};

/// The classifier as it was before the fast path, unchanged.
fn reference(s: &[u8]) -> Classes {
    let mut c = Classes::default();
    let mut prev_letter = false;
    let mut i = 0;
    while i < s.len() {
        let b = s[i];
        if b < 0x80 {
            let letter = b.is_ascii_alphabetic();
            if letter {
                c.letters += 1;
                c.words += u64::from(!prev_letter);
            } else if b.is_ascii_digit() {
                c.digits += 1;
            } else if matches!(b, b'\n' | b'\r' | b'\t') {
                c.newlines += 1;
            } else if b != b' ' {
                c.punct += 1;
            }
            prev_letter = letter;
            c.upper += 1;
            i += 1;
            continue;
        }
        prev_letter = false;
        let (cp, len) = decode(s, i);
        i += len;
        c.upper += nfkc_bytes(cp, len as u64);
        if (0xAC00..=0xD7A3).contains(&cp)
            || (0x1100..=0x11FF).contains(&cp)
            || (0x3130..=0x318F).contains(&cp)
        {
            c.hangul += 1;
        } else if (0x3040..=0x30FF).contains(&cp)
            || (0x3400..=0x9FFF).contains(&cp)
            || (0xF900..=0xFAFF).contains(&cp)
        {
            c.cjk += 1;
        } else {
            c.other_chars += 1;
            c.other_bytes += len as u64;
        }
    }
    c
}

fn fast(s: &str) -> Classes {
    let mut c = Classes::default();
    c.add(s.as_bytes());
    c
}

/// Characters from every class and around every boundary the classifier tests: ASCII
/// class edges (`@` `[` `` ` `` `{` `/` `:`), controls, Hangul, kana, Han, NFKC growers,
/// 2-, 3- and 4-byte sequences.
fn interesting_char() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => proptest::char::range('\0', '\x7F'),
        4 => proptest::sample::select(vec!['a', 'z', 'A', 'Z', '@', '[', '`', '{', '0', '9', '/', ':', ' ', '\n', '\r', '\t']),
        1 => proptest::char::range('\u{80}', '\u{7FF}'),
        1 => proptest::char::range('\u{AC00}', '\u{D7A3}'),
        1 => proptest::char::range('\u{1100}', '\u{11FF}'),
        1 => proptest::char::range('\u{3000}', '\u{33FF}'),
        1 => proptest::char::range('\u{4E00}', '\u{9FFF}'),
        1 => proptest::char::range('\u{F900}', '\u{FEFF}'),
        1 => proptest::char::range('\u{1D100}', '\u{1F64F}'),
        1 => any::<char>(),
    ]
}

/// Mostly-ASCII text with runs long enough to reach the block path, and odd lengths so
/// blocks start at every offset.
fn text() -> impl Strategy<Value = String> {
    let run = prop_oneof![
        3 => proptest::collection::vec(proptest::char::range(' ', '~'), 0..80)
            .prop_map(|v| v.into_iter().collect::<String>()),
        2 => proptest::collection::vec(interesting_char(), 0..40)
            .prop_map(|v| v.into_iter().collect::<String>()),
        1 => any::<String>(),
    ];
    proptest::collection::vec(run, 0..12).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4_000))]

    #[test]
    fn fast_path_counts_exactly_like_the_byte_loop(s in text()) {
        prop_assert_eq!(fast(&s), reference(s.as_bytes()));
    }

    #[test]
    fn every_suffix_counts_like_the_byte_loop(s in text(), cut in 0usize..64) {
        // Every start offset relative to the blocks, including mid-text.
        let start = s.char_indices().map(|(i, _)| i).find(|&i| i >= cut).unwrap_or(s.len());
        prop_assert_eq!(fast(&s[start..]), reference(&s.as_bytes()[start..]));
    }
}

#[test]
fn long_ascii_and_mixed_texts_count_like_the_byte_loop() {
    let english = "The quarterly report shows that revenue grew 12% (3 points) faster.\n\t";
    let korean = "이번 분기 보고서에 따르면 클라우드 부문의 매출이, 예상보다 빠르게 성장했고 ";
    let code = "fn parse(line: &str) -> Result<(String, u64), Error> {\r\n    Ok(x?)\n}\n";
    for s in [
        english.repeat(50),
        korean.repeat(20),
        code.repeat(30),
        [english, korean, code, "ﬁ\u{FDFA}😀"].concat().repeat(17),
    ] {
        for start in 0..40 {
            let Some(t) = s.get(start..) else { continue };
            assert_eq!(fast(t), reference(t.as_bytes()));
        }
    }
}

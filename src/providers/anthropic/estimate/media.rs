//! Tokens of images and PDFs, read from the few header bytes that fix them, decoded
//! straight out of the base64 text without decoding the whole file.
//!
//! Images (platform.claude.com vision docs): about `width * height / 750` tokens after the
//! image is scaled down to fit the model's cap. Older models cap the long edge at 1568 px
//! and the size at about 1,600 tokens; Claude 4.7+ reads up to 2576 px and 4,784 tokens,
//! billed in 28 px patches. The upper bound takes the larger of both formulas at the
//! high-resolution cap; the expectation uses the standard cap.
//!
//! PDFs: each page is sent as extracted text plus a page image. Measured text PDFs cost
//! 2,100 to 2,500 tokens a page; the bound allows 3,000 text tokens (the top of the
//! documented 1,500-3,000 range) plus a full high-resolution page image.

use crate::estimate::Tokens;

/// Per image block, beyond its pixels (measured: +3 or +4).
const IMAGE_OVERHEAD: u64 = 8;
const HIRES_EDGE: u64 = 2576;
const HIRES_CAP: u64 = 4784;
const STD_EDGE: u64 = 1568;
const STD_CAP: u64 = 1600;

/// An image whose size cannot be read (URL, file id, unknown format).
pub const IMAGE_UNKNOWN: Tokens = Tokens::fixed(HIRES_CAP + IMAGE_OVERHEAD, STD_CAP);

/// One PDF page.
const PAGE: Tokens = Tokens::fixed(3_000 + HIRES_CAP + IMAGE_OVERHEAD, 2_300);
/// Pages assumed when the count cannot be read: the API's 100-page limit for the bound,
/// a short document for the expectation.
const PAGES_UNKNOWN_UPPER: u64 = 100;
const PAGES_UNKNOWN_EXPECTED: u64 = 10;

/// Tokens of an image of known size.
pub fn image_tokens(width: u64, height: u64) -> Tokens {
    let (hw, hh) = fit_edge(width, height, HIRES_EDGE);
    let by_area = (hw * hh).div_ceil(750).min(HIRES_CAP);
    let by_patch = (hw.div_ceil(28) * hh.div_ceil(28)).min(HIRES_CAP);
    let (sw, sh) = fit_edge(width, height, STD_EDGE);
    let expected = (sw * sh).div_ceil(750).min(STD_CAP);
    Tokens::fixed(by_area.max(by_patch) + IMAGE_OVERHEAD, expected)
}

/// Tokens of a base64 image, from its header when the format is recognised.
pub fn base64_image(data: &str) -> Tokens {
    match image_size(&B64(data.as_bytes())) {
        Some((w, h)) => image_tokens(w, h),
        None => IMAGE_UNKNOWN,
    }
}

/// Tokens of a PDF: by its page count when readable, else the page limit.
pub fn pdf(data: Option<&str>) -> Tokens {
    match data.and_then(|d| pdf_pages(&B64(d.as_bytes()))) {
        Some(n) => Tokens::fixed(PAGE.upper * n, PAGE.expected() * n),
        None => Tokens::fixed(
            PAGE.upper * PAGES_UNKNOWN_UPPER,
            PAGE.expected() * PAGES_UNKNOWN_EXPECTED,
        ),
    }
}

fn fit_edge(w: u64, h: u64, edge: u64) -> (u64, u64) {
    let long = w.max(h);
    if long <= edge || long == 0 {
        return (w, h);
    }
    (w * edge / long, h * edge / long)
}

/// Random access into base64 text without decoding all of it.
struct B64<'a>(&'a [u8]);

impl B64<'_> {
    fn len(&self) -> usize {
        self.0.len() / 4 * 3
    }

    /// Decoded byte `i`, or `None` past the end or on a non-alphabet character.
    fn get(&self, i: usize) -> Option<u8> {
        let g = i / 3 * 4;
        let quad = self.0.get(g..g + 4)?;
        let mut v = 0u32;
        for &c in quad {
            v = (v << 6) | sextet(c)?;
        }
        Some((v >> (16 - 8 * (i % 3) as u32)) as u8)
    }

    fn bytes<const N: usize>(&self, at: usize) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        for (k, b) in out.iter_mut().enumerate() {
            *b = self.get(at + k)?;
        }
        Some(out)
    }
}

fn sextet(c: u8) -> Option<u32> {
    Some(match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'+' | b'-' => 62,
        b'/' | b'_' => 63,
        b'=' => 0,
        _ => return None,
    } as u32)
}

/// Width and height from a PNG, GIF, WebP or JPEG header.
fn image_size(d: &B64) -> Option<(u64, u64)> {
    let head: [u8; 30] = d.bytes(0)?;
    let be32 =
        |o: usize| u64::from(u32::from_be_bytes([head[o], head[o + 1], head[o + 2], head[o + 3]]));
    let le16 = |o: usize| u64::from(u16::from_le_bytes([head[o], head[o + 1]]));
    let le24 =
        |o: usize| u64::from(head[o]) | u64::from(head[o + 1]) << 8 | u64::from(head[o + 2]) << 16;
    if head.starts_with(b"\x89PNG\r\n\x1a\n") {
        return Some((be32(16), be32(20)));
    }
    if head.starts_with(b"GIF8") {
        return Some((le16(6), le16(8)));
    }
    if head.starts_with(b"RIFF") && &head[8..12] == b"WEBP" {
        return match &head[12..16] {
            b"VP8 " => Some((le16(26) & 0x3FFF, le16(28) & 0x3FFF)),
            b"VP8L" => {
                let bits = u32::from_le_bytes([head[21], head[22], head[23], head[24]]);
                Some((u64::from(bits & 0x3FFF) + 1, u64::from((bits >> 14) & 0x3FFF) + 1))
            }
            b"VP8X" => Some((le24(24) + 1, le24(27) + 1)),
            _ => None,
        };
    }
    if head.starts_with(&[0xFF, 0xD8]) {
        return jpeg_size(d);
    }
    None
}

/// Walks JPEG segments to the first start-of-frame marker.
fn jpeg_size(d: &B64) -> Option<(u64, u64)> {
    let mut at = 2;
    for _ in 0..256 {
        let [ff, marker, hi, lo] = d.bytes::<4>(at)?;
        if ff != 0xFF {
            return None;
        }
        let is_sof = matches!(marker, 0xC0..=0xCF) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let [h1, h0, w1, w0] = d.bytes::<4>(at + 5)?;
            return Some((
                u64::from(u16::from_be_bytes([w1, w0])),
                u64::from(u16::from_be_bytes([h1, h0])),
            ));
        }
        at += 2 + usize::from(u16::from_be_bytes([hi, lo]));
    }
    None
}

/// Page count: the larger of the number of `/Type /Page` objects and the largest
/// `/Count` of a page tree. `None` when neither is visible (compressed object streams).
fn pdf_pages(d: &B64) -> Option<u64> {
    const CHUNK: usize = 64 * 1024;
    /// Longest marker plus its number: a marker starting this close to the end of the
    /// buffer waits for the next chunk.
    const TAIL: usize = 32;
    let (mut pages, mut count) = (0u64, 0u64);
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + TAIL);
    let (mut at, len) = (0, d.len());
    loop {
        let end = (at + CHUNK).min(len);
        let mut last = end == len;
        for i in at..end {
            match d.get(i) {
                Some(b) => buf.push(b),
                None => {
                    last = true;
                    break;
                }
            }
        }
        let limit = if last { buf.len() } else { buf.len().saturating_sub(TAIL) };
        scan_pdf(&buf, limit, &mut pages, &mut count);
        if last {
            break;
        }
        buf.drain(..limit);
        at = end;
    }
    let n = pages.max(count);
    (n > 0).then_some(n)
}

/// Counts the markers that start before `limit`.
fn scan_pdf(w: &[u8], limit: usize, pages: &mut u64, count: &mut u64) {
    for i in 0..limit {
        if w[i] != b'/' {
            continue;
        }
        let rest = &w[i + 1..];
        if let Some(after) = rest.strip_prefix(b"Type") {
            let t = skip_ws(after);
            if after[t..].starts_with(b"/Page") && !after[t + 5..].starts_with(b"s") {
                *pages += 1;
            }
        } else if let Some(after) = rest.strip_prefix(b"Count") {
            let digits = &after[skip_ws(after)..];
            let n = digits
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .take(9)
                .fold(0u64, |n, &b| n * 10 + u64::from(b - b'0'));
            *count = (*count).max(n);
        }
    }
}

fn skip_ws(s: &[u8]) -> usize {
    s.iter().take_while(|b| b.is_ascii_whitespace()).count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::providers::anthropic::estimate::testutil::{b64, png};

    #[test]
    fn image_tokens_follow_the_area_formula_and_the_caps() {
        // 750x750 fits both caps: 750 tokens expected, max(750, 27*27) + 8 at most.
        assert_eq!(image_tokens(750, 750), Tokens::fixed(750 + 8, 750));
        // 4000x3000 is scaled to 1568x1176 (expected, capped at 1600) and 2576x1932.
        let t = image_tokens(4000, 3000);
        assert_eq!(t.expected(), 1600);
        assert_eq!(t.upper, 4784 + 8);
    }

    #[test]
    fn reads_png_gif_webp_and_jpeg_headers() {
        assert_eq!(image_size(&B64(b64(&png(640, 480)).as_bytes())), Some((640, 480)));
        let mut gif = b"GIF89a".to_vec();
        gif.extend_from_slice(&[0x20, 0x03, 0x58, 0x02]);
        gif.resize(40, 0);
        assert_eq!(image_size(&B64(b64(&gif).as_bytes())), Some((800, 600)));
        let mut webp = b"RIFF\0\0\0\0WEBPVP8X\x0a\0\0\0\0\0\0\0".to_vec();
        webp.extend_from_slice(&[0x1F, 0x03, 0x00, 0x57, 0x02, 0x00]);
        webp.resize(40, 0);
        assert_eq!(image_size(&B64(b64(&webp).as_bytes())), Some((800, 600)));
        // SOI, an APP0 segment of 16 bytes, then SOF0 with height 600 and width 800.
        let mut jpeg = vec![0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10];
        jpeg.extend_from_slice(&[0; 14]);
        jpeg.extend_from_slice(&[0xFF, 0xC0, 0x00, 0x11, 0x08, 0x02, 0x58, 0x03, 0x20, 3]);
        jpeg.resize(60, 0);
        assert_eq!(image_size(&B64(b64(&jpeg).as_bytes())), Some((800, 600)));
        assert_eq!(base64_image("not base64!"), IMAGE_UNKNOWN);
    }

    #[test]
    fn counts_pdf_pages_or_falls_back_to_the_page_limit() {
        let mut pdf_bytes =
            b"%PDF-1.4\n1 0 obj << /Type /Pages /Count 3 /Kids [2 0 R] >>\n".to_vec();
        for _ in 0..2 {
            pdf_bytes.extend_from_slice(b"2 0 obj << /Type /Page /Parent 1 0 R >>\n");
        }
        pdf_bytes.resize(200_000, b' ');
        pdf_bytes.extend_from_slice(b"<< /Type/Page >> << /Type /Page >>");
        let data = b64(&pdf_bytes);
        assert_eq!(pdf_pages(&B64(data.as_bytes())), Some(4));
        assert_eq!(pdf(Some(&data)).upper, 4 * PAGE.upper);
        assert_eq!(pdf(None).upper, 100 * PAGE.upper);
        assert_eq!(pdf(None).expected(), 10 * 2_300);
    }
}

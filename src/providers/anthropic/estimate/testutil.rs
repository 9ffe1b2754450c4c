//! Helpers shared by the estimator's unit tests.

use crate::pricing::PriceTable;

/// Two models: `claude-test` (Sonnet-like prices, US uplift, an alias) and `claude-small`.
pub const TABLE: &str = r#"
version = "test"

[providers.anthropic]
batch_discount = 0.5
web_search_fee_per_1000 = 10
geo_us_uplift = 1.1

[[models]]
provider = "anthropic"
id = "claude-test"
aliases = ["claude-test-20260101"]
geo_us = true
[[models.prices]]
effective_from = 2025-01-01
source = "test"
input = 3
output = 15
cache_write_5m = 3.75
cache_write_1h = 6
cache_read = 0.3

[[models]]
provider = "anthropic"
id = "claude-small"
[[models.prices]]
effective_from = 2025-01-01
source = "test"
input = 1
output = 5
cache_write_5m = 1.25
cache_write_1h = 2
cache_read = 0.1
"#;

pub fn table() -> PriceTable {
    PriceTable::parse(TABLE, "test.toml").expect("test table parses")
}

pub fn b64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for c in bytes.chunks(3) {
        let v = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for k in 0..4 {
            if k <= c.len() {
                out.push(A[(v >> (18 - 6 * k)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The first bytes of a PNG of the given size (enough for its header).
pub fn png(w: u32, h: u32) -> Vec<u8> {
    let mut v = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    v.extend_from_slice(&w.to_be_bytes());
    v.extend_from_slice(&h.to_be_bytes());
    v.extend_from_slice(&[8, 6, 0, 0, 0, 0, 0, 0, 0, 0]);
    v
}

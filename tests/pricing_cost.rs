//! The cost engine against hand-computed figures (reference 4.1), on the shipped table.

use std::path::PathBuf;

use batchcost::money::Money;
use batchcost::pricing::{CostPair, PriceTable, ResolvedPrice, TokenKind, TokenUsage};
use batchcost::providers::anthropic::wire::Usage;

fn price(model: &str) -> ResolvedPrice {
    let table = PriceTable::load(&PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
        .expect("shipped table");
    table.resolve(model, "2026-11-01T00:00:00Z".parse().unwrap()).expect(model)
}

fn usd(s: &str) -> Money {
    Money::parse_usd(s).unwrap()
}

/// Sums `n` individually priced requests, as settlement does.
fn repeat(p: &ResolvedPrice, usage: &TokenUsage, n: u64) -> CostPair {
    (0..n).map(|_| p.cost(usage)).sum()
}

#[test]
fn large_batch_on_sonnet_and_haiku() {
    let usage = TokenUsage { input: 5_000, output: 3_000, ..Default::default() };
    let sonnet = repeat(&price("claude-sonnet-4-6"), &usage, 100_000);
    assert_eq!(sonnet, CostPair { cost: usd("3000"), list_cost: usd("6000") });
    assert_eq!(sonnet.savings(), usd("3000"));
    let haiku = repeat(&price("claude-haiku-4-5"), &usage, 100_000);
    assert_eq!(haiku, CostPair { cost: usd("1000"), list_cost: usd("2000") });
}

#[test]
fn small_requests_cost_dollars_not_thousands() {
    let usage = TokenUsage { input: 500, output: 200, ..Default::default() };
    let total = repeat(&price("claude-sonnet-4-6"), &usage, 10_000);
    assert_eq!(total.cost, usd("22.50"));
    assert_eq!(total.list_cost, usd("45.00"));
    assert_ne!(total.cost, usd("22500"), "a per-thousand / per-million mix-up");
    assert_eq!(total.cost.usd_rounded(2), "22.50");
}

#[test]
fn shared_cached_prefix() {
    // Sonnet 4.6, base input $3/M. Batch = 50%, 5m write = 1.25x, read = 0.1x, so in a batch:
    // input $1.50/M, output $7.50/M, 5m write $1.875/M, read $0.15/M.
    //   first request:  6,000 x 1.875 + 300 x 1.50 + 200 x 7.50 = 11,250 + 450 + 1,500 = $0.0132
    //   9,999 others:  (6,000 x 0.15  + 300 x 1.50 + 200 x 7.50) = 2,850 -> $0.00285 each
    //                  = $28.49715
    //   batch total  = $28.51035; standard price is exactly twice that = $57.0207.
    let p = price("claude-sonnet-4-6");
    let first = TokenUsage { input: 300, output: 200, cache_write_5m: 6_000, ..Default::default() };
    let rest = TokenUsage { input: 300, output: 200, cache_read: 6_000, ..Default::default() };
    let total = p.cost(&first) + repeat(&p, &rest, 9_999);
    assert_eq!(total.cost, usd("28.51035"));
    assert_eq!(total.list_cost, usd("57.0207"));
    // The multipliers and the table agree for this model.
    assert_eq!(p.batch.cache_write_5m.times(4), p.batch.input.times(5));
    assert_eq!(p.batch.cache_read.times(10), p.batch.input);
}

const RICH_USAGE: &str = r#"{
    "input_tokens": 1000, "output_tokens": 2000,
    "cache_creation_input_tokens": 3000, "cache_read_input_tokens": 4000,
    "cache_creation": {"ephemeral_5m_input_tokens": 1000, "ephemeral_1h_input_tokens": 2000},
    "server_tool_use": {"web_search_requests": 3, "web_fetch_requests": 1},
    "service_tier": "batch", "inference_geo": "us"
}"#;

#[test]
fn one_hour_writes_web_search_and_us_inference() {
    let wire: Usage = serde_json::from_str(RICH_USAGE).unwrap();
    let usage = TokenUsage::from_anthropic(&wire);
    assert_eq!(
        usage,
        TokenUsage {
            input: 1000,
            output: 2000,
            cache_write_5m: 1000,
            cache_write_1h: 2000,
            cache_read: 4000,
            web_search_requests: 3,
            geo_us: true,
            prompt_tokens: None,
        }
    );
    // Opus 4.6 (geo uplift): 1000x5 + 2000x25 + 1000x6.25 + 2000x10 + 4000x0.5 = 83,250 -> $0.08325
    // standard x1.1 = $0.091575, plus 3 searches x $0.01 = $0.121575;
    // batch: $0.041625 x1.1 = $0.0457875, plus the undiscounted fee $0.03 = $0.0757875.
    let opus = price("claude-opus-4-6").cost(&usage);
    assert_eq!(opus, CostPair { cost: usd("0.0757875"), list_cost: usd("0.121575") });
    // Haiku 4.5 has no uplift: 1000 + 10,000 + 1,250 + 4,000 + 400 = 16,650 -> $0.01665 + $0.03.
    let haiku = price("claude-haiku-4-5").cost(&usage);
    assert_eq!(haiku, CostPair { cost: usd("0.038325"), list_cost: usd("0.04665") });
}

#[test]
fn plain_cache_creation_total_counts_as_five_minute_writes() {
    let wire: Usage = serde_json::from_str(
        r#"{"input_tokens": 10, "output_tokens": 20, "cache_creation_input_tokens": 3000,
            "cache_read_input_tokens": null, "inference_geo": "global"}"#,
    )
    .unwrap();
    let usage = TokenUsage::from_anthropic(&wire);
    assert_eq!((usage.cache_write_5m, usage.cache_write_1h, usage.cache_read), (3000, 0, 0));
    assert!(!usage.geo_us);
    // Sonnet 4.6 batch: 10 x 1.5 + 20 x 7.5 + 3000 x 1.875 = 15 + 150 + 5,625 = $0.00579
    assert_eq!(price("claude-sonnet-4-6").cost(&usage).cost, usd("0.00579"));
}

#[test]
fn web_search_batch_discount_is_a_setting() {
    let text = std::fs::read_to_string(
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pricing/valid_minimal.toml"),
    )
    .unwrap();
    let at = "2026-01-01T00:00:00Z".parse().unwrap();
    let usage = TokenUsage { web_search_requests: 1000, ..Default::default() };
    let plain = PriceTable::parse(&text, "t").unwrap().resolve("claude-sonnet-4-6", at).unwrap();
    assert_eq!(plain.cost(&usage), CostPair { cost: usd("10"), list_cost: usd("10") });
    let discounted = text.replace(
        "web_search_fee_per_1000 = 10",
        "web_search_fee_per_1000 = 10\nweb_search_batch_discount = true",
    );
    let p = PriceTable::parse(&discounted, "t").unwrap().resolve("claude-sonnet-4-6", at).unwrap();
    assert_eq!(p.cost(&usage), CostPair { cost: usd("5"), list_cost: usd("10") });
}

#[test]
fn openai_cached_tokens_in_a_batch() {
    let usage =
        TokenUsage { input: 1_000_000, cache_read: 1_000_000, output: 0, ..Default::default() };
    // gpt-5 lists a batch cached price: 0.625 + 0.0625.
    assert_eq!(price("gpt-5").cost(&usage).cost, usd("0.6875"));
    // gpt-4o does not: cached tokens at the batch input price, 1.25 + 1.25.
    assert_eq!(price("gpt-4o").cost(&usage), CostPair { cost: usd("2.5"), list_cost: usd("3.75") });
}

#[test]
fn every_token_kind_is_priced_by_its_own_rate() {
    let p = price("claude-opus-5-5");
    for kind in TokenKind::ALL {
        let mut usage = TokenUsage::default();
        match kind {
            TokenKind::Input => usage.input = 1,
            TokenKind::Output => usage.output = 1,
            TokenKind::CacheWrite5m => usage.cache_write_5m = 1,
            TokenKind::CacheWrite1h => usage.cache_write_1h = 1,
            TokenKind::CacheRead => usage.cache_read = 1,
        }
        assert_eq!(usage.get(kind), 1);
        let c = p.cost(&usage);
        assert_eq!((c.cost, c.list_cost), (p.batch.get(kind), p.list.get(kind)), "{kind:?}");
    }
    let labels: Vec<&str> = TokenKind::ALL.iter().map(|k| k.as_str()).collect();
    assert_eq!(labels, ["input", "output", "cache_write_5m", "cache_write_1h", "cache_read"]);
    // Opus 5.5 reads at 0.05x: $0.20/M standard, $0.10/M in a batch.
    assert_eq!(p.list.cache_read.times(1_000_000), usd("0.2"));
    assert_eq!(p.batch.cache_read.times(1_000_000), usd("0.1"));
}

//! The price table: malformed tables are rejected at the right line and key, the shipped
//! table loads, lookups follow aliases and price history, and `pricing check` exits right.

use std::path::{Path, PathBuf};
use std::process::Command;

use batchcost::money::Money;
use batchcost::pricing::{PriceTable, PricingError};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    repo().join("tests/fixtures/pricing").join(format!("{name}.toml"))
}

fn shipped() -> PriceTable {
    PriceTable::load(&repo().join("pricing.toml")).expect("shipped pricing.toml must load")
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

/// USD per million tokens -> pico-dollars per token.
fn per_m(usd: &str) -> Money {
    Money::from_picos(Money::parse_usd(usd).unwrap().picos() / 1_000_000)
}

/// (fixture, line, key path, part of the message)
const MALFORMED: &[(&str, usize, &str, &str)] = &[
    ("missing_class", 28, "models[1].prices[0].cache_read", "missing price class"),
    ("negative_price", 42, "models[1].prices[1].cache_read", "negative price -0.3"),
    ("unknown_key", 35, "models[1].prices[0].cache_raed", "unknown field `cache_raed`"),
    ("duplicate_id", 26, "models[1].id", "`claude-sonnet-4-6` is already used by models[0]"),
    ("duplicate_alias", 27, "models[1].aliases[0]", "`shared` is already used by models[0] (`a`)"),
    ("alias_is_other_id", 27, "models[1].aliases[0]", "`claude-sonnet-4-6` is already used"),
    ("bad_date", 28, "models[1].prices[0].effective_from", "bad date `2026-13-01`"),
    (
        "same_effective_from",
        36,
        "models[1].prices[1].effective_from",
        "repeats models[1].prices[0]",
    ),
    ("empty_source", 29, "models[1].prices[0].source", "must name the page"),
    ("unknown_provider", 25, "models[1].provider", "unknown provider `gemini`"),
    ("unknown_provider_section", 9, "providers.mistral.kind", "needs a kind"),
    ("too_precise", 30, "models[1].prices[0].input", "finer than one pico-dollar per token"),
    ("inexact_after_geo", 32, "models[1].prices[0].output", "after the geo uplift"),
    ("no_entries", 26, "models[1].prices", "has no price entries"),
    ("non_numeric_string", 31, "models[1].prices[0].output", "`fifteen` is not a decimal number"),
    ("non_numeric_bool", 33, "models[1].prices[0].cache_write_1h", "found boolean"),
    ("syntax_error", 30, "models[1].prices[0].input", "expected newline"),
    ("openai_cache_write", 32, "models[1].prices[0].cache_write_5m", "not applicable to openai"),
    ("wrong_type_id", 26, "models[1].id", "expected a string"),
];

#[test]
fn malformed_tables_name_line_and_key() {
    for &(name, line, key, message) in MALFORMED {
        let err = PriceTable::load(&fixture(name)).expect_err(name);
        let shown = err.to_string();
        assert_eq!(err.line(), Some(line), "{name}: {shown}");
        assert_eq!(err.key(), Some(key), "{name}: {shown}");
        let prefix = format!("{name}.toml:{line}:");
        assert!(shown.starts_with(&prefix), "{name}: {shown}");
        assert!(shown.contains(&format!(" {key}: ")), "{name}: {shown}");
        assert!(shown.contains(message), "{name}: {shown}");
    }
}

#[test]
fn syntax_errors_carry_the_column() {
    let err = PriceTable::load(&fixture("wrong_type_id")).unwrap_err();
    assert!(matches!(err, PricingError::Syntax { line: 26, column: 6, .. }), "{err}");
}

#[test]
fn valid_fixture_loads() {
    PriceTable::load(&fixture("valid_minimal")).expect("valid_minimal loads");
}

#[test]
fn missing_file_is_an_io_error() {
    let err = PriceTable::load(Path::new("/nonexistent/pricing.toml")).unwrap_err();
    assert!(matches!(err, PricingError::Io { .. }));
    assert!(err.to_string().contains("/nonexistent/pricing.toml"));
}

#[test]
fn shipped_table_covers_every_reference_model() {
    let t = shipped();
    assert!(!t.version().is_empty());
    let models = t.models();
    let now = ts("2026-11-01T00:00:00Z");
    for id in [
        "claude-fable-5-1",
        "claude-mythos-5-1",
        "claude-fable-5",
        "claude-mythos-5",
        "claude-opus-5-5",
        "claude-opus-5",
        "claude-opus-4-8",
        "claude-opus-4-7",
        "claude-opus-4-6",
        "claude-opus-4-5",
        "claude-opus-4-1-20250805",
        "claude-opus-4-20250514",
        "claude-3-opus-20240229",
        "claude-sonnet-5",
        "claude-sonnet-5-5",
        "claude-sonnet-4-6",
        "claude-sonnet-4-5",
        "claude-sonnet-4-20250514",
        "claude-3-7-sonnet-20250219",
        "claude-haiku-4-5",
        "claude-3-5-haiku-20241022",
        "claude-3-haiku-20240307",
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4.1",
        "gpt-4o",
        "o3",
        "o4-mini",
        "gpt-5.5",
    ] {
        let p = t.resolve(id, now).unwrap_or_else(|| panic!("{id} not priced"));
        assert_eq!(p.model, id);
        assert!(models.contains(&(p.provider.clone(), id.to_string())), "{id}");
        assert!(!p.source.is_empty());
    }
    // Haiku 3's cache prices deviate from the multipliers; the table must keep them.
    let h3 = t.resolve("claude-3-haiku-20240307", now).unwrap();
    assert_eq!(h3.list.cache_write_5m, per_m("0.30"));
    assert_eq!(h3.list.cache_read, per_m("0.03"));
    assert_eq!(h3.batch.output, per_m("0.625"));
}

#[test]
fn aliases_resolve_to_the_canonical_id() {
    let t = shipped();
    let now = ts("2026-11-01T00:00:00Z");
    for (alias, id) in [
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-haiku-4-5-20251001", "claude-haiku-4-5"),
        ("claude-opus-4-5-20251101", "claude-opus-4-5"),
    ] {
        let p = t.resolve(alias, now).unwrap();
        assert_eq!(p.model, id);
        assert_eq!(p.provider, "anthropic");
    }
    assert!(t.resolve("claude-sonnet-9", now).is_none(), "unknown models are never priced");
    assert!(t.models().iter().all(|(_, id)| id != "claude-sonnet-4-5-20250929"));
}

#[test]
fn history_picks_the_entry_in_force_by_utc_date() {
    let t = shipped();
    let before = t.resolve("claude-sonnet-5-5", ts("2026-10-06T23:59:59Z")).unwrap();
    assert_eq!(before.list.cache_read, per_m("0.20"));
    assert_eq!(before.batch.cache_read, per_m("0.10"));
    assert!(!before.unconfirmed);
    let after = t.resolve("claude-sonnet-5-5", ts("2026-10-07T00:00:00Z")).unwrap();
    assert_eq!(after.list.cache_read, per_m("0.10"));
    assert_eq!(after.batch.cache_read, per_m("0.05"));
    assert_eq!(after.effective_from, jiff::civil::date(2026, 10, 7));
    assert!(after.unconfirmed);
    // 2026-10-06 21:00 in New York is already 2026-10-07 in UTC.
    let ny = "2026-10-06T21:00:00-04:00".parse::<jiff::Timestamp>().unwrap();
    assert_eq!(t.resolve("claude-sonnet-5-5", ny).unwrap().list.cache_read, per_m("0.10"));
    // Nothing in force before the first entry.
    assert!(t.resolve("claude-haiku-4-5", ts("2025-09-30T12:00:00Z")).is_none());
    assert!(t.resolve("claude-haiku-4-5", ts("2025-10-01T00:00:00Z")).is_some());
}

#[test]
fn entries_may_be_written_in_any_order() {
    let text = std::fs::read_to_string(fixture("valid_minimal")).unwrap()
        + "\n[[models]]\nprovider = \"anthropic\"\nid = \"m\"\n"
        + "[[models.prices]]\neffective_from = 2026-06-01\nsource = \"s\"\n"
        + "input = 2\noutput = 10\ncache_write_5m = 2.5\ncache_write_1h = 4\ncache_read = 0.2\n"
        + "[[models.prices]]\neffective_from = \"2026-01-01\"\nsource = \"s\"\n"
        + "input = \"1\"\noutput = 5\ncache_write_5m = 1.25\ncache_write_1h = 2\ncache_read = 0.1\n";
    let t = PriceTable::parse(&text, "inline.toml").unwrap();
    assert_eq!(t.resolve("m", ts("2026-03-01T00:00:00Z")).unwrap().list.input, per_m("1"));
    assert_eq!(t.resolve("m", ts("2026-07-01T00:00:00Z")).unwrap().list.input, per_m("2"));
}

#[test]
fn openai_cached_input_follows_the_batch_row() {
    let t = shipped();
    let now = ts("2026-11-01T00:00:00Z");
    let gpt5 = t.resolve("gpt-5", now).unwrap();
    assert_eq!(gpt5.batch.cache_read, per_m("0.0625"));
    assert_eq!(gpt5.list.cache_read, per_m("0.125"));
    assert_eq!(gpt5.batch.input, per_m("0.625"));
    // No batch cached price: cached tokens cost the batch input price.
    let g4o = t.resolve("gpt-4o", now).unwrap();
    assert_eq!(g4o.batch.cache_read, per_m("1.25"));
    assert_eq!(g4o.batch.cache_read, g4o.batch.input);
    // A standard cached price but none in the batch row: batch input in a batch.
    let o3 = t.resolve("o3", now).unwrap();
    assert_eq!(o3.list.cache_read, per_m("0.5"));
    assert_eq!(o3.batch.cache_read, per_m("1"));
    // No cached price at all: cached tokens cost input, at both tiers.
    let flash = t.resolve("gemini-3.8-flash", now).unwrap();
    assert_eq!(flash.list.cache_read, flash.list.input);
    assert_eq!(flash.batch.cache_read, flash.batch.input);
    // No cache-write classes: a write would bill as input.
    assert_eq!(gpt5.list.cache_write_5m, gpt5.list.input);
    assert_eq!(gpt5.batch.cache_write_1h, gpt5.batch.input);
    assert_eq!(gpt5.geo_us, None);
}

fn batchcost(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_batchcost")).args(args).current_dir(repo()).output().unwrap()
}

#[test]
fn pricing_check_exits_0_on_the_shipped_table() {
    let out = batchcost(&["pricing", "check"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let sonnet = text.lines().find(|l| l.contains("claude-sonnet-4-6")).unwrap();
    assert!(sonnet.contains("anthropic") && sonnet.contains("3.75") && sonnet.contains("geo_us"));
    let cut = text.lines().find(|l| l.contains("claude-sonnet-5-5") && l.contains("2026-10-07"));
    assert!(cut.unwrap().contains("UNCONFIRMED"));
    assert!(text.contains("claude-haiku-4-5-20251001"));
}

#[test]
fn pricing_check_exits_2_with_the_line_on_a_bad_table() {
    let path = fixture("negative_price");
    let out = batchcost(&["pricing", "check", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("negative_price.toml:42: models[1].prices[1].cache_read: negative price -0.3"),
        "{err}"
    );
    assert!(out.stdout.is_empty());
    let missing = batchcost(&["pricing", "check", "/nonexistent/pricing.toml"]);
    assert_eq!(missing.status.code(), Some(2));
}

#[test]
fn provider_settings_and_version_are_validated() {
    let base = std::fs::read_to_string(fixture("valid_minimal")).unwrap();
    let cases = [
        ("version = \"test\"", "version = \" \"", 1, "version", "must not be empty"),
        (
            "batch_discount = 0.5\nweb",
            "batch_discount = 1.5\nweb",
            4,
            "providers.anthropic.batch_discount",
            "between 0 and 1",
        ),
        (
            "geo_us_uplift = 1.1",
            "geo_us_uplift = 1.0000001",
            6,
            "providers.anthropic.geo_us_uplift",
            "at most 6 places",
        ),
        (
            "web_search_fee_per_1000 = 10",
            "web_search_fee_per_1000 = -10",
            5,
            "providers.anthropic.web_search_fee_per_1000",
            "non-negative",
        ),
    ];
    for (from, to, line, key, message) in cases {
        let text = base.replacen(from, to, 1);
        assert_ne!(text, base, "{from}");
        let err = PriceTable::parse(&text, "p.toml").unwrap_err();
        assert_eq!((err.line(), err.key()), (Some(line), Some(key)), "{err}");
        assert!(err.to_string().contains(message), "{err}");
    }
}

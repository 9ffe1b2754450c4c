//! Provider kinds in the price table: the OpenAI and Gemini class rules, OpenAI-compatible
//! upstreams with their own discounts, long-context tiers, and worked costs computed by
//! hand in the comments (USD per million x tokens = micro-dollars).

use std::path::PathBuf;

use batchcost::money::Money;
use batchcost::pricing::{CostPair, PriceTable, ProviderKind, ResolvedPrice, TokenUsage};

fn shipped() -> PriceTable {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    PriceTable::load(&path).expect("shipped table")
}

fn ts(s: &str) -> jiff::Timestamp {
    s.parse().unwrap()
}

fn now() -> jiff::Timestamp {
    ts("2026-11-01T00:00:00Z")
}

fn usd(s: &str) -> Money {
    Money::parse_usd(s).unwrap()
}

fn pair(cost: &str, list: &str) -> CostPair {
    CostPair { cost: usd(cost), list_cost: usd(list) }
}

fn price(provider: &str, model: &str) -> ResolvedPrice {
    shipped().resolve_for(provider, model, now()).unwrap_or_else(|| panic!("{provider}/{model}"))
}

const HEAD: &str = r#"version = "t"

[providers.anthropic]
batch_discount = 0.5
geo_us_uplift = 1.1

[providers.openai]
batch_discount = 0.5

[providers.gemini]
batch_discount = 0.5

[providers.together]
kind = "openai"
batch_discount = 0.2
"#;

/// A table of `HEAD` plus one model of `provider` with the given extra lines.
fn table(provider: &str, model_lines: &str, entry_lines: &str) -> String {
    format!(
        "{HEAD}\n[[models]]\nprovider = \"{provider}\"\nid = \"m\"\n{model_lines}\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"test\"\n{entry_lines}\n"
    )
}

/// The 1-based line of the first line containing `needle`.
fn line_of(text: &str, needle: &str) -> usize {
    text.lines().position(|l| l.contains(needle)).expect(needle) + 1
}

/// Asserts `text` is rejected at the line holding `at`, with `key` and `message`.
fn rejects(text: &str, at: &str, key: &str, message: &str) {
    let err = PriceTable::parse(text, "kinds.toml").expect_err(key);
    let shown = err.to_string();
    let line = line_of(text, at);
    assert!(shown.starts_with(&format!("kinds.toml:{line}: {key}: ")), "{shown}\n---\n{text}");
    assert!(shown.contains(message), "{shown}");
    assert_eq!(err.line(), Some(line));
    assert_eq!(err.key(), Some(key));
}

const GEMINI_OK: &str = "input = 1.25\noutput = 10\ncache_read = 0.125";

#[test]
fn each_kind_rejects_the_classes_it_does_not_have() {
    let k = "models[0].prices[0]";
    let t = table("gemini", "", &format!("{GEMINI_OK}\ncache_write_1h = 2"));
    rejects(&t, "cache_write_1h", &format!("{k}.cache_write_1h"), "not applicable to gemini");
    let t = table("together", "", "input = 1\noutput = 2\ncache_write_5m = 1.25");
    rejects(&t, "cache_write_5m", &format!("{k}.cache_write_5m"), "not applicable to openai");
    let anthropic =
        "input = 3\noutput = 15\ncache_write_5m = 3.75\ncache_write_1h = 6\ncache_read = 0.3";
    let t = table("anthropic", "", &format!("{anthropic}\nbatch_cache_read = 0.15"));
    rejects(&t, "batch_cache_read", &format!("{k}.batch_cache_read"), "only for openai and gemini");
    let t = table("anthropic", "", &format!("{anthropic}\nlong_context_threshold = 200000"));
    rejects(
        &t,
        "long_context_threshold",
        &format!("{k}.long_context_threshold"),
        "only for openai and gemini",
    );
    let t = table("gemini", "", "input = 1");
    rejects(&t, "effective_from", &format!("{k}.output"), "missing price class");
    let t = table("openai", "embeddings = true", "input = 0.02\noutput = 1");
    rejects(&t, "output = 1", &format!("{k}.output"), "embeddings model is priced on input only");
    let t = table("anthropic", "embeddings = true", anthropic);
    rejects(&t, "id = \"m\"", "models[0].embeddings", "anthropic has no embeddings");
    let t = table("openai", "geo_us = true", "input = 1\noutput = 2");
    rejects(&t, "id = \"m\"", "models[0].geo_us", "anthropic-only");
    let t = table("openai", "max_output_tokens = 0", "input = 1\noutput = 2");
    rejects(&t, "max_output_tokens", "models[0].max_output_tokens", "must be > 0");
}

#[test]
fn provider_names_and_kinds_are_validated() {
    let t = HEAD.replace("kind = \"openai\"\n", "");
    rejects(&t, "batch_discount = 0.2", "providers.together.kind", "needs a kind");
    let t = HEAD.replace("kind = \"openai\"", "kind = \"mistral\"");
    rejects(&t, "kind = \"mistral\"", "providers.together.kind", "unknown kind `mistral`");
    let t = HEAD.replace(
        "[providers.gemini]\nbatch_discount = 0.5",
        "[providers.gemini]\nbatch_discount = 0.5\ngeo_us_uplift = 1.1",
    );
    let at = "geo_us_uplift = 1.1\n\n[providers.together]";
    let line = t[..t.find(at).unwrap()].lines().count() + 1;
    let err = PriceTable::parse(&t, "kinds.toml").unwrap_err();
    assert_eq!(
        (err.line(), err.key()),
        (Some(line), Some("providers.gemini.geo_us_uplift")),
        "{err}"
    );
    let t = HEAD.replace("[providers.together]", "[providers.Together]");
    rejects(&t, "[providers.Together]", "providers.Together", "lowercase");
}

#[test]
fn long_context_fields_come_together() {
    let k = "models[0].prices[0]";
    let tier = "long_context_threshold = 200000\nlong_input = 2.5\nlong_output = 15\nlong_cache_read = 0.25";
    PriceTable::parse(&table("gemini", "", &format!("{GEMINI_OK}\n{tier}")), "ok").unwrap();
    let t = table("gemini", "", &format!("{GEMINI_OK}\nlong_input = 2.5\nlong_output = 15"));
    rejects(
        &t,
        "long_input",
        &format!("{k}.long_context_threshold"),
        "needs long_context_threshold",
    );
    let t = table(
        "gemini",
        "",
        &format!(
            "{GEMINI_OK}\nlong_context_threshold = 200000\nlong_input = 2.5\nlong_cache_read = 0.25"
        ),
    );
    rejects(
        &t,
        "long_context_threshold",
        &format!("{k}.long_output"),
        "needs long_output because output is set",
    );
    let t = table(
        "gemini",
        "",
        &format!(
            "{GEMINI_OK}\nlong_context_threshold = 200000\nlong_input = 2.5\nlong_output = 15"
        ),
    );
    rejects(
        &t,
        "long_context_threshold",
        &format!("{k}.long_cache_read"),
        "because cache_read is set",
    );
    let t = table("gemini", "", &format!("input = 1\noutput = 2\n{tier}"));
    rejects(&t, "long_cache_read", &format!("{k}.long_cache_read"), "without cache_read");
    let t = table("gemini", "", &format!("{GEMINI_OK}\n{}", tier.replace("200000", "0")));
    rejects(&t, "long_context_threshold", &format!("{k}.long_context_threshold"), "must be > 0");
}

#[test]
fn prices_stay_exact_after_each_discount() {
    let k = "models[0].prices[0]";
    // 0.000001/M = 1 pico per token; x 0.8 (together's 20% discount) = 0.8: not whole.
    let t = table("together", "", "input = 1\noutput = 0.000001");
    rejects(&t, "output = 0.000001", &format!("{k}.output"), "after the batch discount");
    // A model override: 0.000002 x (1 - 0.75) = 0.5 pico.
    let t = table("openai", "batch_discount = 0.75", "input = 0.000002\noutput = 1");
    rejects(&t, "input = 0.000002", &format!("{k}.input"), "after the batch discount");
    // An entry override, on the long tier: 0.000003 x 0.5 = 1.5 pico.
    let tier =
        "long_context_threshold = 10\nlong_input = 0.000003\nlong_output = 1\nlong_cache_read = 1";
    let t = table("gemini", "", &format!("{GEMINI_OK}\n{tier}"));
    rejects(&t, "long_input", &format!("{k}.long_input"), "after the batch discount");
    // The 1.1 uplift is checked for geo_us anthropic models only.
    let a = "input = 0.000005\noutput = 1\ncache_write_5m = 1\ncache_write_1h = 1\ncache_read = 1";
    // 0.00001/M = 10 picos: x 0.5 = 5, x 1.1 = 11, but x 0.55 = 5.5.
    PriceTable::parse(&table("anthropic", "", &a.replace("0.000005", "0.00001")), "ok").unwrap();
    let t = table("anthropic", "geo_us = true", &a.replace("0.000005", "0.00001"));
    rejects(
        &t,
        "input = 0.00001",
        &format!("{k}.input"),
        "after the batch discount and geo uplift",
    );
    let t = table("openai", "", "input = 0.000002\noutput = 1\nbatch_discount = 1.5");
    rejects(&t, "batch_discount = 1.5", &format!("{k}.batch_discount"), "between 0 and 1");
}

#[test]
fn ids_are_unique_per_provider_not_across_providers() {
    let two = format!(
        "{HEAD}\n[[models]]\nprovider = \"together\"\nid = \"gpt-4o\"\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\ninput = 2.5\noutput = 10\n\n[[models]]\nprovider = \"openai\"\nid = \"gpt-4o\"\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\ninput = 2.5\noutput = 10\n"
    );
    let t = PriceTable::parse(&two, "two").unwrap();
    // The first-party row wins the provider-less lookup even though the reseller comes first.
    assert_eq!(t.resolve("gpt-4o", now()).unwrap().provider, "openai");
    assert_eq!(t.resolve_for("together", "gpt-4o", now()).unwrap().batch.output, usd("0.000008"));
    assert_eq!(t.resolve_for("openai", "gpt-4o", now()).unwrap().batch.output, usd("0.000005"));
    assert!(t.resolve_for("gemini", "gpt-4o", now()).is_none());
    assert_eq!(t.provider_kind("together"), Some(ProviderKind::OpenAi));
    // A section without models still has its kind; an unknown name has none.
    assert_eq!(t.provider_kind("gemini"), Some(ProviderKind::Gemini));
    assert_eq!(t.provider_kind("groq"), None);
    let dup = format!(
        "{two}\n[[models]]\nprovider = \"together\"\nid = \"x\"\naliases = [\"gpt-4o\"]\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\ninput = 1\noutput = 1\n"
    );
    rejects(&dup, "aliases = [\"gpt-4o\"]", "models[2].aliases[0]", "of provider `together`");
}

#[test]
fn openai_cached_tokens_bill_at_the_batch_cached_price_or_batch_input() {
    // 10,000 prompt tokens of which 8,000 cached; 1,000 completion tokens (600 reasoning inside).
    let u = TokenUsage { input: 2_000, cache_read: 8_000, output: 1_000, ..Default::default() };
    // gpt-5 lists a batch cached price ($0.0625):
    //   batch 2,000 x 0.625 + 8,000 x 0.0625 + 1,000 x 5 = 1,250 + 500 + 5,000 = $0.00675
    //   list  2,000 x 1.25  + 8,000 x 0.125  + 1,000 x 10 = 2,500 + 1,000 + 10,000 = $0.0135
    assert_eq!(price("openai", "gpt-5").cost(&u), pair("0.00675", "0.0135"));
    // gpt-4o's batch row has none: cached tokens cost the batch input price ($1.25):
    //   batch 2,000 x 1.25 + 8,000 x 1.25 + 1,000 x 5 = 2,500 + 10,000 + 5,000 = $0.0175
    //   list  2,000 x 2.5  + 8,000 x 1.25 + 1,000 x 10 = 5,000 + 10,000 + 10,000 = $0.025
    let g4o = price("openai", "gpt-4o");
    assert_eq!(g4o.cost(&u), pair("0.0175", "0.025"));
    assert_eq!(g4o.max_output_tokens, Some(16_384));
    // Embeddings: 1M prompt tokens x $0.01 batch ($0.02 list); no output class.
    let emb = price("openai", "text-embedding-3-small");
    assert!(emb.embeddings && emb.batch.output == Money::ZERO);
    let e = TokenUsage { input: 1_000_000, ..Default::default() };
    assert_eq!(emb.cost(&e), pair("0.01", "0.02"));
}

#[test]
fn an_openai_compatible_upstream_prices_with_its_own_discounts() {
    let text = format!(
        "{HEAD}\n[[models]]\nprovider = \"together\"\nid = \"gpt-4o\"\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\ninput = 2.5\noutput = 10\ncache_read = 1.25\n\n[[models]]\nprovider = \"together\"\nid = \"llama-70b\"\nbatch_discount = 0.5\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\ninput = 0.88\noutput = 0.88\n[[models.prices]]\neffective_from = 2026-06-01\nsource = \"t\"\nbatch_discount = 0.25\ninput = 0.88\noutput = 0.88\n"
    );
    let t = PriceTable::parse(&text, "together").unwrap();
    let u = TokenUsage { input: 2_000, cache_read: 8_000, output: 1_000, ..Default::default() };
    // together's 20% discount: batch input 2.0, cached (no batch row price) 2.0, output 8.0:
    //   batch 2,000 x 2 + 8,000 x 2 + 1,000 x 8 = 4,000 + 16,000 + 8,000 = $0.028
    //   list as OpenAI's: $0.025 (2,000 x 2.5 + 8,000 x 1.25 + 1,000 x 10)
    let g = t.resolve_for("together", "gpt-4o", now()).unwrap();
    assert_eq!((g.provider.as_str(), g.kind), ("together", ProviderKind::OpenAi));
    assert_eq!(g.cost(&u), pair("0.028", "0.025"));
    // The per-model 50% override, then an entry changing it to 25% from 2026-06-01:
    //   1M in + 1M out at 0.88: list $1.76; batch 0.44 + 0.44 = $0.88, then 0.66 + 0.66 = $1.32.
    let m = TokenUsage { input: 1_000_000, output: 1_000_000, ..Default::default() };
    let before = t.resolve_for("together", "llama-70b", ts("2026-05-31T23:59:59Z")).unwrap();
    assert_eq!(before.cost(&m), pair("0.88", "1.76"));
    let after = t.resolve_for("together", "llama-70b", ts("2026-06-01T00:00:00Z")).unwrap();
    assert_eq!(after.cost(&m), pair("1.32", "1.76"));
}

#[test]
fn gemini_long_context_reprices_the_whole_request() {
    let pro = price("gemini", "gemini-2.5-pro");
    assert_eq!(pro.kind, ProviderKind::Gemini);
    assert_eq!(pro.tier_threshold(), Some(200_000));
    // 150,000 prompt tokens (50,000 cached), 2,000 answer + 3,000 thinking = 5,000 output.
    let below = TokenUsage {
        input: 100_000,
        cache_read: 50_000,
        output: 5_000,
        prompt_tokens: Some(150_000),
        ..Default::default()
    };
    // Short tier: batch input 0.625, cached at the standard cache price 0.125, output 5:
    //   batch 100,000 x 0.625 + 50,000 x 0.125 + 5,000 x 5  = 62,500 + 6,250 + 25,000 = $0.09375
    //   list  100,000 x 1.25  + 50,000 x 0.125 + 5,000 x 10 = 125,000 + 6,250 + 50,000 = $0.18125
    assert_eq!(pro.cost(&below), pair("0.09375", "0.18125"));
    // 250,000 prompt tokens (50,000 cached): every token at the long rates 1.25 / 0.25 / 7.5:
    //   batch 200,000 x 1.25 + 50,000 x 0.25 + 5,000 x 7.5 = 250,000 + 12,500 + 37,500 = $0.30
    //   list  200,000 x 2.5  + 50,000 x 0.25 + 5,000 x 15  = 500,000 + 12,500 + 75,000 = $0.5875
    let above = TokenUsage { input: 200_000, prompt_tokens: Some(250_000), ..below };
    assert_eq!(pro.cost(&above), pair("0.30", "0.5875"));
    // Exactly at the threshold is still the short tier ("above" re-prices).
    assert_eq!(pro.rates_for_prompt(200_000).batch, pro.batch);
    assert_eq!(pro.rates_for_prompt(200_001).batch, pro.long_context.unwrap().batch);
    // Worst case: a prompt bound that can cross the threshold prices the short usage long:
    //   100,000 x 1.25 + 50,000 x 0.25 + 5,000 x 7.5 = 125,000 + 12,500 + 37,500 = $0.175
    assert_eq!(pro.cost_for_prompt(&below, 250_000).cost, usd("0.175"));
    // Tool-use prompt tokens bill as input but are outside promptTokenCount: with
    // prompt_tokens = 199,000 the 204,000 input tokens stay short: 204,000 x 0.625 = $0.1275;
    // derived from the classes (204,000 > 200,000) they would be long: 204,000 x 1.25 = $0.255.
    let tool = TokenUsage { input: 204_000, prompt_tokens: Some(199_000), ..Default::default() };
    assert_eq!(pro.cost(&tool).cost, usd("0.1275"));
    assert_eq!(pro.cost(&TokenUsage { prompt_tokens: None, ..tool }).cost, usd("0.255"));
    // Flash has no tier at all.
    assert_eq!(price("gemini", "gemini-2.5-flash").tier_threshold(), None);
}

#[test]
fn gemini_thinking_tokens_bill_as_output() {
    let flash = price("gemini", "gemini-2.5-flash");
    // candidatesTokenCount 1,000 + thoughtsTokenCount 4,000 = output 5,000; 2,000 prompt tokens.
    //   batch 2,000 x 0.15 + 5,000 x 1.25 = 300 + 6,250 = $0.00655 (answer only: $0.00155)
    //   list  2,000 x 0.30 + 5,000 x 2.50 = 600 + 12,500 = $0.0131
    let u = TokenUsage { input: 2_000, output: 1_000 + 4_000, ..Default::default() };
    assert_eq!(flash.cost(&u), pair("0.00655", "0.0131"));
    assert_eq!(flash.max_output_tokens, Some(65_536));
}

#[test]
fn shipped_table_has_the_reference_gemini_and_openai_models() {
    let t = shipped();
    for id in [
        "gemini-2.5-pro",
        "gemini-2.5-flash",
        "gemini-2.5-flash-lite",
        "gemini-3-pro-preview",
        "gemini-3.1-pro-preview",
        "gemini-3-flash-preview",
        "gemini-3.1-flash-lite",
        "gemini-3.5-flash",
        "gemini-3.5-flash-lite",
        "gemini-3.6-flash",
        "gemini-3.7-flash",
        "gemini-3.8-flash",
    ] {
        let p = t.resolve_for("gemini", id, now()).unwrap_or_else(|| panic!("{id}"));
        assert!(p.max_output_tokens.is_some(), "{id}");
    }
    for id in [
        "gpt-5",
        "gpt-5-mini",
        "gpt-5-nano",
        "gpt-4.1",
        "gpt-4.1-mini",
        "gpt-4o",
        "gpt-4o-mini",
        "o3",
        "o4-mini",
        "text-embedding-3-large",
    ] {
        assert!(t.resolve_for("openai", id, now()).is_some(), "{id}");
    }
    assert!(t.resolve_for("gemini", "gemini-3.8-flash", now()).unwrap().unconfirmed);
    // The intro price of 3.6 Flash ends on 2027-01-01: input 0.375 -> 0.75 in a batch.
    let later = t.resolve_for("gemini", "gemini-3.6-flash", ts("2027-01-01T00:00:00Z")).unwrap();
    assert_eq!(later.batch.input, usd("0.00000075"));
    // o3's price cut on 2025-06-10: batch output $20 -> $4.
    let o3 = t.resolve_for("openai", "o3", ts("2025-06-09T12:00:00Z")).unwrap();
    assert_eq!(o3.batch.output, usd("0.00002"));
}

#[test]
fn pricing_check_prints_kinds_tiers_and_flags() {
    let text = format!(
        "{HEAD}\n[[models]]\nprovider = \"together\"\nid = \"llama-70b\"\nmax_output_tokens = 4096\nbatch_discount = 0.5\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\ninput = 0.88\noutput = 0.88\n\n[[models]]\nprovider = \"gemini\"\nid = \"pro\"\n[[models.prices]]\neffective_from = 2025-01-01\nsource = \"t\"\n{GEMINI_OK}\nlong_context_threshold = 200000\nlong_input = 2.5\nlong_output = 15\nlong_cache_read = 0.25\n"
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kinds.toml");
    std::fs::write(&path, text).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_batchcost"))
        .args(["pricing", "check", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let shown = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<&str> = shown.lines().collect();
    let llama = lines.iter().find(|l| l.contains("llama-70b")).unwrap();
    assert!(llama.starts_with("together(openai)"), "{llama}");
    // Write classes are n/a; batch input/output at the model's own 50%, not together's 20%.
    let cells: Vec<&str> = llama.split_whitespace().collect();
    assert_eq!(&cells[4..12], ["0.88", "0.88", "n/a", "n/a", "0.88", "0.44", "0.44", "0.44"]);
    assert!(llama.contains("batch x0.5") && llama.contains("max_out 4096"), "{llama}");
    // The long tier is its own row right under its entry, at the long rates.
    let pro = lines.iter().position(|l| l.contains(" pro ")).unwrap();
    let long: Vec<&str> = lines[pro + 1].split_whitespace().collect();
    assert_eq!(long[..2], ["gemini", "prompt>200000"]);
    assert_eq!(long[2..10], ["2.5", "15", "n/a", "n/a", "0.25", "1.25", "7.5", "0.25"]);
}

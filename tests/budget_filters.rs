//! Budgets with `provider` and `models` filters at admission, through the real HTTP path:
//! a batch counts against a budget only for the requests the filters select. And the
//! `[upstream.NAME]` tables with `kind`: several at once, named mistakes.

mod common;

use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::config::{Config, Period};
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::Timestamp;
use serde_json::{Value, json};

fn table() -> PriceTable {
    PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
        .unwrap()
}

fn worst(body: &Value) -> Money {
    let bytes = serde_json::to_vec(body).unwrap();
    estimate_bytes(&bytes, &table(), &EstimateOptions::new(Timestamp::now(), 0.5))
        .unwrap()
        .worst
        .cost
}

/// One body with `n` requests on each of two models.
fn mixed(tag: &str, n: usize) -> Value {
    let a = batch_body(&format!("{tag}s"), "claude-sonnet-4-6", n, 1_000);
    let b = batch_body(&format!("{tag}h"), "claude-haiku-4-5", n, 1_000);
    let mut reqs = a["requests"].as_array().unwrap().clone();
    reqs.extend(b["requests"].as_array().unwrap().iter().cloned());
    json!({ "requests": reqs })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn model_and_provider_filters_select_what_a_budget_holds() {
    let sonnet_only = batch_body("s", "claude-sonnet-4-6", 5, 1_000);
    let haiku_only = batch_body("h", "claude-haiku-4-5", 5, 1_000);
    let both = mixed("m", 5);
    // Room for the sonnet share of `both` and nothing more.
    let sonnet_share = worst(&batch_body("ms", "claude-sonnet-4-6", 5, 1_000));
    let mut sonnet = budget("sonnet-daily", None, Period::Day, sonnet_share);
    sonnet.models = Some(vec!["claude-sonnet-4-6".into()]);
    // A budget of another upstream never holds anything here, however small.
    let mut elsewhere = budget("elsewhere-daily", None, Period::Day, Money::ZERO);
    elsewhere.provider = Some("elsewhere".into());
    let h = harness(vec![sonnet, elsewhere], Arc::new(SystemClock), sim_config()).await;

    // Haiku only: the sonnet budget does not apply at all.
    let (status, v, _) = h.submit("alpha-key", &haiku_only).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(h.budget("sonnet-daily").await["reserved_usd"], "0");

    // Mixed: only the sonnet requests' worst case is held against it, and it fits exactly.
    let (status, v, _) = h.submit("alpha-key", &both).await;
    assert_eq!(status, 200, "{v}");
    assert!(worst(&both) > sonnet_share);
    assert_eq!(h.budget("sonnet-daily").await["reserved_usd"], sonnet_share.usd_exact());

    // Now full: more sonnet is refused, naming the budget and what was asked.
    let (status, v, _) = h.submit("beta-key", &sonnet_only).await;
    assert_eq!(status, 429, "{v}");
    assert_eq!(v["error"]["budget"]["name"], "sonnet-daily");
    assert_eq!(v["error"]["budget"]["requested_usd"], worst(&sonnet_only).usd_exact());
    assert_eq!(h.budget("elsewhere-daily").await["reserved_usd"], "0");
    h.stop().await;
}

fn env(k: &str) -> Option<String> {
    ["ANTHROPIC_API_KEY", "TOGETHER_KEY", "K", "ADMIN"].contains(&k).then(|| format!("v-{k}"))
}

fn load(upstreams: &str, budgets: &str) -> Result<batchcost::config::Settings, String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("batchcost.toml");
    let text = format!(
        "listen = \"127.0.0.1:0\"\npricing = \"pricing.toml\"\ntimezone = \"Asia/Seoul\"\n\
         [storage]\nurl = \"sqlite::memory:\"\n{upstreams}\n[admin]\ntoken_env = \"ADMIN\"\n\
         [[projects]]\nname = \"p\"\napi_key_envs = [\"K\"]\n{budgets}"
    );
    std::fs::write(&path, text).unwrap();
    Config::load(&path).and_then(|c| c.resolve(&path, &env)).map_err(|e| e.to_string())
}

const ANTHROPIC: &str =
    "[upstream.anthropic]\nbase_url = \"http://a\"\napi_key_env = \"ANTHROPIC_API_KEY\"\n";

#[test]
fn upstreams_by_name_with_kinds() {
    let two = format!(
        "{ANTHROPIC}[upstream.together]\nkind = \"openai\"\nbase_url = \"http://t/\"\napi_key_env = \"TOGETHER_KEY\"\n"
    );
    let s = load(&two, "").unwrap();
    let got: Vec<(&str, &str, &str)> = s
        .upstreams
        .iter()
        .map(|u| (u.name.as_str(), u.kind.as_str(), u.base_url.as_str()))
        .collect();
    assert_eq!(got, [("anthropic", "anthropic", "http://a"), ("together", "openai", "http://t")]);

    let cases = [
        (
            "[upstream.together]\nbase_url = \"http://t\"\napi_key_env = \"TOGETHER_KEY\"\n".to_string(),
            String::new(),
            "upstream.together.kind: required",
        ),
        (
            "[upstream.anthropic]\nkind = \"claude\"\nbase_url = \"http://a\"\napi_key_env = \"ANTHROPIC_API_KEY\"\n".into(),
            String::new(),
            "upstream.anthropic.kind: expected one of anthropic, openai, gemini, got `claude`",
        ),
        (
            ANTHROPIC.to_string(),
            "[[budgets]]\nname = \"b\"\nperiod = \"day\"\nlimit_usd = 1.0\nprovider = \"openai\"\n".into(),
            "budgets[0].provider: no upstream named `openai`",
        ),
        (
            ANTHROPIC.to_string(),
            "[[budgets]]\nname = \"b\"\nperiod = \"day\"\nlimit_usd = 1.0\nmodels = []\n".into(),
            "budgets[0].models: expected at least one model",
        ),
        (
            "[upstream.anthropic]\nbase_url = \"http://a\"\napi_key_env = \"MISSING\"\n".into(),
            String::new(),
            "upstream.anthropic.api_key_env: environment variable `MISSING` is not set",
        ),
    ];
    for (up, budgets, expected) in cases {
        let err = load(&up, &budgets).unwrap_err();
        assert!(err.contains(expected), "expected `{expected}` in: {err}");
    }
}

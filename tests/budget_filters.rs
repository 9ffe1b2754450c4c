//! Budgets with `provider` and `models` filters at admission, through the real HTTP path:
//! a batch counts against a budget only for the requests the filters select. And the
//! `[upstream.NAME]` tables with `kind`: several at once, named mistakes.

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::config::{Config, Period};
use batchcost::estimate::EstimateOptions;
use batchcost::money::Money;
use batchcost::pricing::{PriceTable, TokenUsage};
use batchcost::providers::anthropic::estimate::estimate_bytes;
use batchcost::providers::anthropic::wire::{BatchResult, ResultLine};
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

/// Settlement charges each window what its budget counts: a `models` filter's window the
/// cost and tokens of its models' lines only, an unfiltered one the whole batch. The batch
/// and the spend report still carry all of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_models_filter_is_charged_only_its_models_at_settlement() {
    let mut sonnet = budget("sonnet-daily", None, Period::Day, Money::from_usd(100));
    sonnet.models = Some(vec!["claude-sonnet-4-6".into()]);
    let all = budget("all-daily", None, Period::Day, Money::from_usd(100));
    let h = harness(vec![sonnet, all], Arc::new(SystemClock), sim_config()).await;
    let (status, v, _) = h.submit("alpha-key", &mixed("x", 12)).await;
    assert_eq!(status, 200, "{v}");
    let id = v["id"].as_str().unwrap().to_string();
    let rec = h.wait_settled(&id).await;

    // Each model's cost and tokens, from the result lines fetched through the gateway.
    let text = h.results("alpha-key", &id).await;
    let submitted: Timestamp = rec["submitted_at"].as_str().unwrap().parse().unwrap();
    let table = table();
    let mut by_model: BTreeMap<String, (Money, u64, u64)> = BTreeMap::new();
    for line in text.lines() {
        let l: ResultLine = serde_json::from_str(line).unwrap();
        if let BatchResult::Succeeded { message } = l.result {
            let price = table.resolve(&message.model, submitted).unwrap();
            let usage = TokenUsage::from_anthropic(&message.usage);
            let m = by_model.entry(price.model.clone()).or_default();
            m.0 += price.cost(&usage).cost;
            m.1 += usage.input + usage.cache_write_5m + usage.cache_write_1h + usage.cache_read;
            m.2 += usage.output;
        }
    }
    assert_eq!(by_model.len(), 2, "both models answered: {by_model:?}");
    let (s_cost, s_in, s_out) = by_model["claude-sonnet-4-6"];
    let total: Money = by_model.values().map(|m| m.0).sum();
    assert!(s_cost > Money::ZERO && total > s_cost);

    let sb = h.budget("sonnet-daily").await;
    assert_eq!(sb["spent_usd"], s_cost.usd_exact());
    assert_eq!(sb["reserved_usd"], "0");
    let ab = h.budget("all-daily").await;
    assert_eq!(ab["spent_usd"], total.usd_exact());
    assert_eq!(ab["reserved_usd"], "0");
    // The token totals follow the same split (read straight from the ledger's windows).
    let refs: Vec<_> =
        h.gw.app
            .settings
            .budgets
            .iter()
            .map(|b| batchcost::budgets::window_ref(b, &h.gw.app.settings.timezone, submitted))
            .collect();
    let windows = h.gw.app.ledger.windows(&refs).await.unwrap();
    let w = |name: &str| windows.iter().find(|w| w.budget == name).unwrap().clone();
    assert_eq!(
        (w("sonnet-daily").spent_input_tokens, w("sonnet-daily").spent_output_tokens),
        (s_in, s_out)
    );
    let (all_in, all_out) = by_model.values().fold((0, 0), |a, m| (a.0 + m.1, a.1 + m.2));
    assert_eq!(
        (w("all-daily").spent_input_tokens, w("all-daily").spent_output_tokens),
        (all_in, all_out)
    );

    // Reports are unchanged: the batch and its models in full.
    assert_eq!(rec["cost_usd"], total.usd_exact());
    let today = submitted.to_zoned(h.gw.app.settings.timezone.clone()).date();
    let (from, to) = (today.yesterday().unwrap(), today.tomorrow().unwrap().tomorrow().unwrap());
    let report = h.admin(&format!("/api/reports/spend?from={from}&to={to}&group_by=model")).await;
    assert_eq!(report["totals"]["cost_usd"], total.usd_exact(), "{report}");
    let rows: BTreeMap<String, Money> = report["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let cost = Money::parse_usd(r["cost_usd"].as_str().unwrap()).unwrap();
            (r["model"].as_str().unwrap().to_string(), cost)
        })
        .collect();
    let lines: BTreeMap<String, Money> = by_model.iter().map(|(m, c)| (m.clone(), c.0)).collect();
    assert_eq!(rows, lines);
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

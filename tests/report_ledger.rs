//! Reports over a real SQLite ledger: every form agrees with the ledger to the pico-dollar,
//! days are Seoul days decided by submission (as budget windows are), and FOCUS rows are
//! one per batch, model and token class with consistent unit prices.

mod report_support;

use std::collections::{BTreeMap, BTreeSet};

use batchcost::config::Period;
use batchcost::money::Money;
use batchcost::report::{CSV_COLUMNS, FOCUS_COLUMNS};
use report_support::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_json_table_and_focus_agree_with_the_ledger_exactly() {
    let (f, total) = filled().await;
    let (from, to) = ("2026-03-10", "2026-03-13");
    let csv = f.report(from, to, "day,project,model", "csv").await;
    let rows = csv_maps(&csv);
    assert_eq!(csv.lines().next().unwrap(), CSV_COLUMNS.join(","));
    let csv_total: Money = rows.iter().map(|r| money(&r["cost_usd"])).sum();
    assert_eq!(csv_total, total);
    for r in &rows {
        assert_eq!(money(&r["savings_usd"]), money(&r["list_cost_usd"]) - money(&r["cost_usd"]));
    }
    // 3 Seoul days: (10th: alpha sonnet, alpha haiku, beta opus), (11th: alpha sonnet, beta
    // haiku), (12th: alpha haiku): in day, then key order.
    let keys: Vec<(String, String, String)> = rows
        .iter()
        .map(|r| {
            let g = |k: &str| r[k].clone().unwrap_or_default();
            (g("date"), g("project"), g("model"))
        })
        .collect();
    let expected = [
        ("2026-03-10", "alpha", "claude-haiku-4-5"),
        ("2026-03-10", "alpha", "claude-sonnet-4-6"),
        ("2026-03-10", "beta", "claude-opus-4-6"),
        ("2026-03-11", "alpha", "claude-sonnet-4-6"),
        ("2026-03-11", "beta", "claude-haiku-4-5"),
        ("2026-03-12", "alpha", "claude-haiku-4-5"),
    ];
    let expected: Vec<_> =
        expected.iter().map(|(a, b, c)| (a.to_string(), b.to_string(), c.to_string())).collect();
    assert_eq!(keys, expected);
    assert!(
        rows.iter().all(|r| r["provider"].as_deref() == Some("anthropic")),
        "provider is filled in every grouping"
    );
    assert_eq!(rows[1]["requests_errored"].as_deref(), Some("2"));

    let json: Value = serde_json::from_str(&f.report(from, to, "project", "json").await).unwrap();
    assert_eq!(json["timezone"], TZ);
    assert_eq!(json["from"], from);
    assert_eq!(json["group_by"], serde_json::json!(["project"]));
    assert_eq!(json["totals"]["cost_usd"], total.usd_exact());
    assert_eq!(json["totals"]["batches"], 5);
    let projects: Vec<&Value> = json["rows"].as_array().unwrap().iter().collect();
    assert_eq!(projects.len(), 2);
    assert_eq!(projects[0]["project"], "alpha");
    assert_eq!(projects[0]["batches"], 3, "the two-model batch counts once");
    assert!(projects[0]["date"].is_null() && projects[0]["model"].is_null());
    let sum: Money =
        projects.iter().map(|p| Money::parse_usd(p["cost_usd"].as_str().unwrap()).unwrap()).sum();
    assert_eq!(sum, total);

    let focus = f.report(from, to, "", "focus").await;
    let lines = csv_maps(&focus);
    assert_eq!(focus.lines().next().unwrap(), FOCUS_COLUMNS.join(","));
    let billed: Money = lines.iter().map(|l| money(&l["BilledCost"])).sum();
    assert_eq!(billed, total);
    let list: Money = lines.iter().map(|l| money(&l["ListCost"])).sum();
    assert_eq!(list, Money::parse_usd(json["totals"]["list_cost_usd"].as_str().unwrap()).unwrap());

    let table = f.report(from, to, "day", "table").await;
    let total_line = table.lines().last().unwrap();
    assert!(total_line.starts_with("TOTAL"), "{table}");
    assert!(total_line.contains(&format!(" {}", total.usd_rounded(2))), "{table}");
    assert!(table.lines().any(|l| l.starts_with("2026-03-11")), "{table}");
    assert!(
        table.lines().next().unwrap().contains("2026-03-10 to 2026-03-12 inclusive"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn focus_has_one_row_per_batch_model_and_class_with_consistent_units() {
    let (f, _) = filled().await;
    let focus = f.report("2026-03-10", "2026-03-13", "", "focus").await;
    let lines = csv_maps(&focus);
    let mut seen = BTreeSet::new();
    let mut per_batch_model: BTreeMap<(String, String), Money> = BTreeMap::new();
    for l in &lines {
        let get = |k: &str| l[k].clone().unwrap_or_default();
        let (start, end) = (ts(&get("ChargePeriodStart")), ts(&get("ChargePeriodEnd")));
        assert!(end > start, "{l:?}");
        assert!(get("BillingPeriodStart").ends_with('Z') && get("ChargePeriodStart").len() == 20);
        assert_eq!(get("SubAccountId"), get("SubAccountName"));
        assert!(["alpha", "beta"].contains(&get("SubAccountId").as_str()));
        assert!(get("ResourceId").starts_with("msgbatch_"));
        let sku = get("SkuId");
        let parts: Vec<&str> = sku.split('/').collect();
        assert_eq!(parts.len(), 3, "provider/model/class: {sku}");
        assert_eq!(parts[0], "anthropic");
        assert!(
            seen.insert((get("ResourceId"), sku.clone())),
            "one row per batch, model and class"
        );
        *per_batch_model.entry((get("ResourceId"), parts[1].to_string())).or_default() +=
            money(&l["BilledCost"]);
        assert_eq!(money(&l["EffectiveCost"]), money(&l["BilledCost"]));
        assert_eq!(money(&l["ContractedCost"]), money(&l["BilledCost"]));
        match get("ChargeCategory").as_str() {
            "Usage" => {
                // Exact: PricingQuantity x unit price = cost, for list and contracted prices.
                let q = Money::parse_usd(&get("PricingQuantity")).unwrap();
                for (price, cost) in
                    [("ListUnitPrice", "ListCost"), ("ContractedUnitPrice", "BilledCost")]
                {
                    let p = Money::parse_usd(&get(price)).unwrap();
                    assert_eq!(
                        q.picos() * p.picos(),
                        money(&l[cost]).picos() * 1_000_000_000_000,
                        "{price} x PricingQuantity = {cost}: {l:?}"
                    );
                }
                let consumed: u64 = get("ConsumedQuantity").trim_end_matches(".0").parse().unwrap();
                match parts[2] {
                    // pricing.toml: no batch discount on the search fee.
                    "web_search" => {
                        assert_eq!(get("PricingUnit"), "1000 Requests");
                        assert_eq!(money(&l["ListCost"]), money(&l["BilledCost"]));
                    }
                    _ => {
                        assert!(
                            money(&l["ListCost"]) > money(&l["BilledCost"]),
                            "the batch saving"
                        );
                        assert_eq!(get("PricingUnit"), "1000000 Tokens");
                        assert_eq!(get("ConsumedUnit"), "Tokens");
                        assert_eq!(
                            Money::parse_usd(&get("PricingQuantity")).unwrap().picos(),
                            consumed as i128 * 1_000_000
                        );
                    }
                }
            }
            "Adjustment" => {
                assert_eq!(parts[2], "geo_us_uplift");
                assert_eq!(parts[1], "claude-opus-4-6", "only the US batch has an uplift");
                assert!(l["PricingQuantity"].is_none() && l["ConsumedQuantity"].is_none());
            }
            other => panic!("unexpected ChargeCategory {other}"),
        }
    }
    let classes: BTreeSet<String> =
        seen.iter().map(|(_, s)| s.rsplit('/').next().unwrap().to_string()).collect();
    let want = [
        "input",
        "output",
        "cache_write_5m",
        "cache_write_1h",
        "cache_read",
        "web_search",
        "geo_us_uplift",
    ];
    assert_eq!(classes, want.iter().map(|s| s.to_string()).collect());
    // Each batch-model's rows add up to the ledger's stored cost for it.
    for ((batch, model), billed) in per_batch_model {
        let rec = f.ledger.batch_by_upstream("anthropic", &batch).await.unwrap().unwrap();
        let usage = f.ledger.model_usage(&rec.sub_id).await.unwrap();
        let stored = usage.iter().find(|m| m.model == model).unwrap().cost;
        assert_eq!(billed, stored, "{batch} {model}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_submitted_at_2350_in_seoul_counts_on_that_day_in_reports_and_budgets() {
    let f = Fixture::new(vec![budget("alpha-daily", Some("alpha"), Period::Day)]).await;
    // 23:50 KST on 10 March, settled 00:30 KST on 11 March.
    let cost = f
        .settle(Batch {
            id: "msgbatch_late",
            project: "alpha",
            submitted: "2026-03-10T14:50:00Z",
            ended: "2026-03-10T15:30:00Z",
            models: vec![("claude-sonnet-4-6", vec![usage(1, 0, false), usage(2, 0, false)])],
            errored: 0,
        })
        .await;
    let day = |from: &'static str, to: &'static str| {
        let f = &f;
        async move {
            let v: Value = serde_json::from_str(&f.report(from, to, "day", "json").await).unwrap();
            (Money::parse_usd(v["totals"]["cost_usd"].as_str().unwrap()).unwrap(), v)
        }
    };
    let (first, v) = day("2026-03-10", "2026-03-11").await;
    assert_eq!(first, cost);
    assert_eq!(v["rows"][0]["date"], "2026-03-10");
    assert_eq!(day("2026-03-11", "2026-03-12").await.0, Money::ZERO);
    assert_eq!(f.spent("alpha-daily", "alpha", "2026-03-10T14:59:59Z").await, cost);
    assert_eq!(f.spent("alpha-daily", "alpha", "2026-03-10T15:00:00Z").await, Money::ZERO);
    // FOCUS still carries the real submit and end instants.
    let focus = csv_maps(&f.report("2026-03-10", "2026-03-11", "", "focus").await);
    assert!(!focus.is_empty());
    for l in &focus {
        assert_eq!(l["ChargePeriodStart"].as_deref(), Some("2026-03-10T14:50:00Z"));
        assert_eq!(l["ChargePeriodEnd"].as_deref(), Some("2026-03-10T15:30:00Z"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_month_boundary_in_seoul_follows_the_submission_day() {
    let f = Fixture::new(vec![budget("all-monthly", None, Period::Month)]).await;
    // 23:50 KST on 31 March (14:50 UTC), ended 00:30 KST on 1 April.
    let march = f
        .settle(Batch {
            id: "msgbatch_march",
            project: "beta",
            submitted: "2026-03-31T14:50:00Z",
            ended: "2026-03-31T15:30:00Z",
            models: vec![("claude-haiku-4-5", vec![usage(3, 0, false)])],
            errored: 0,
        })
        .await;
    // 00:05 KST on 1 April is still 31 March in UTC.
    let april = f
        .settle(Batch {
            id: "msgbatch_april",
            project: "beta",
            submitted: "2026-03-31T15:05:00Z",
            ended: "2026-03-31T16:00:00Z",
            models: vec![("claude-haiku-4-5", vec![usage(4, 0, false)])],
            errored: 0,
        })
        .await;
    let total = |from, to| {
        let f = &f;
        async move {
            let csv = f.report(from, to, "", "csv").await;
            money(&csv_maps(&csv)[0]["cost_usd"])
        }
    };
    assert_eq!(total("2026-03-01", "2026-04-01").await, march);
    assert_eq!(total("2026-04-01", "2026-05-01").await, april);
    assert_eq!(total("2026-03-31", "2026-04-02").await, march + april);
    assert_eq!(f.spent("all-monthly", "beta", "2026-03-20T00:00:00Z").await, march);
    assert_eq!(f.spent("all-monthly", "beta", "2026-04-20T00:00:00Z").await, april);
    let focus = csv_maps(&f.report("2026-03-01", "2026-04-01", "", "focus").await);
    for l in &focus {
        // The billing period is the Seoul month, as UTC instants.
        assert_eq!(l["BillingPeriodStart"].as_deref(), Some("2026-02-28T15:00:00Z"));
        assert_eq!(l["BillingPeriodEnd"].as_deref(), Some("2026-03-31T15:00:00Z"));
        assert_eq!(l["ResourceId"].as_deref(), Some("msgbatch_march"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_range_streams_in_many_chunks_and_an_empty_one_still_has_its_frame() {
    let f = Fixture::new(vec![]).await;
    for i in 0..400 {
        let submitted = format!("2026-05-{:02}T0{}:00:00Z", 1 + i % 28, i % 10);
        let id = format!("msgbatch_{i:04}");
        f.settle(Batch {
            id: &id,
            project: if i % 2 == 0 { "alpha" } else { "beta" },
            submitted: &submitted,
            ended: &submitted,
            models: vec![("claude-sonnet-4-6", vec![usage(i, 0, false)])],
            errored: 0,
        })
        .await;
    }
    let q = f.query("2026-05-01", "2026-06-01", "", "focus");
    let (text, chunks) = f.report_chunks(&q).await;
    assert!(text.len() > 3 * 64 * 1024, "{}", text.len());
    assert!(chunks >= 3, "the export is handed on in chunks as it is produced, got {chunks}");
    let v: Value =
        serde_json::from_str(&f.report("2027-01-01", "2027-02-01", "day", "json").await).unwrap();
    assert_eq!(v["rows"], serde_json::json!([]));
    assert_eq!(v["totals"]["cost_usd"], "0");
    let csv = f.report("2027-01-01", "2027-02-01", "day", "csv").await;
    assert_eq!(csv.lines().count(), 1);
    let table = f.report("2027-01-01", "2027-02-01", "day", "table").await;
    assert!(table.contains("no settled batches"), "{table}");
}

/// A batch whose model has since left the price table: FOCUS cannot price its classes.
async fn with_retired_model(f: &Fixture) {
    use batchcost::ledger::{Hold, ModelUsage, NewSubmission, Settlement, TokenTotals};
    let at = ts("2026-03-12T05:00:00Z");
    let sub = NewSubmission {
        sub_id: "sub_retired".into(),
        project: "alpha".into(),
        provider: "anthropic".into(),
        submitted_at: at,
        request_count: 1,
        body_hash: "retired".into(),
        custom_id_fingerprint: 0,
        hold: Hold { usd: Money::from_usd(1), input_tokens: 0, output_tokens: 0 },
        windows: vec![],
        estimate_json: "{}".into(),
        dedupe_since: at,
        lease: None,
        bounds: Vec::new(),
    };
    f.ledger.admit(&sub).await.unwrap();
    f.ledger.mark_submitted("sub_retired", "msgbatch_retired", at).await.unwrap();
    let usage = ModelUsage {
        model: "claude-retired-1".into(),
        tokens: TokenTotals { input: 100, ..Default::default() },
        cost: Money::from_picos(50_000_000),
        list_cost: Money::from_picos(100_000_000),
        ..Default::default()
    };
    let s = Settlement {
        ended_at: at,
        settled_at: at,
        models: vec![usage],
        budget_models: Default::default(),
    };
    assert!(f.ledger.settle("sub_retired", &s).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failure_mid_report_cuts_the_http_body_instead_of_ending_it() {
    let (f, total) = filled().await;
    with_retired_model(&f).await;
    // CSV and JSON need no prices: the retired model's cost is reported.
    let v: Value =
        serde_json::from_str(&f.report("2026-03-10", "2026-03-13", "", "json").await).unwrap();
    let retired = Money::from_picos(50_000_000);
    assert_eq!(v["totals"]["cost_usd"], (total + retired).usd_exact());
    // FOCUS fails, naming batch and model; over HTTP the body is cut off, not completed.
    let q = f.query("2026-03-10", "2026-03-13", "", "focus");
    let (ledger, pricing, served) = (f.ledger.clone(), f.pricing.clone(), q.clone());
    let app = axum::Router::new().route(
        "/r",
        axum::routing::get(move || {
            let (ledger, pricing, q) = (ledger.clone(), pricing.clone(), served.clone());
            async move { batchcost::report::http::response(ledger.as_ref(), &pricing, &q) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let resp = reqwest::get(format!("http://{addr}/r")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 200, "the status was sent before the failure");
    assert!(resp.text().await.is_err(), "a cut-off body must not read as complete");
    server.abort();
    let mut chunks = batchcost::report::spend_report(f.ledger.as_ref(), &f.pricing, &q);
    let mut err = None;
    while let Some(c) = futures_util::StreamExt::next(&mut chunks).await {
        if let Err(e) = c {
            err = Some(e.to_string());
        }
    }
    let err = err.expect("the FOCUS stream ends with an error");
    assert!(err.contains("msgbatch_retired") && err.contains("claude-retired-1"), "{err}");
}

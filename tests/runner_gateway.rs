//! `batchcost run` against the real gateway and simulator: splitting, every result once,
//! the summary's cost equal to the ledger's, budgets and dry runs sending nothing.

mod runner_support;

use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::money::Money;
use runner_support::*;
use serde_json::Value;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_25000_item_run_splits_into_batches_and_writes_every_result_once_at_the_ledger_cost() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let input = write_input(h.dir.path(), "big", 25_000, |_| None);
    let out = h.dir.path().join("big.out.jsonl");
    let summary = h.dir.path().join("big.summary.json");
    let o = output({
        let mut c = run_cmd(&h, &input, &["--yes", "--max-batch-requests", "4000"]);
        c.arg("--out").arg(&out).arg("--summary-json").arg(&summary);
        c
    })
    .await;
    assert!(o.status.success(), "stdout: {}\nstderr: {}", text(&o.stdout), text(&o.stderr));

    let (order, by) = results(&out);
    assert_eq!(order.len(), 25_000);
    let expected: Vec<String> = (0..25_000).map(|i| format!("big-{i}")).collect();
    assert_eq!(order, expected, "results are in input order");
    assert!(by.values().all(|v| v["result"]["type"] == "succeeded" && v["attempts"] == 1));

    let s: Value = serde_json::from_str(&std::fs::read_to_string(&summary).unwrap()).unwrap();
    assert_eq!(s["succeeded"], 25_000);
    assert_eq!(s["batches"], 7, "25,000 at 4,000 per batch is 7 batches");
    // The ledger's own records, found from the gateway's list of the project's batches.
    let r = h.get("/v1/messages/batches?limit=100", As::Key(PROJECTS[0].1)).await;
    let list: Value = r.json().await.unwrap();
    let ids: Vec<&str> =
        list["data"].as_array().unwrap().iter().map(|b| b["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 7);
    let mut ledger = Money::ZERO;
    let mut ledger_list = Money::ZERO;
    for id in &ids {
        let rec = h.wait_settled(id).await;
        ledger += Money::parse_usd(rec["cost_usd"].as_str().unwrap()).unwrap();
        ledger_list += Money::parse_usd(rec["list_cost_usd"].as_str().unwrap()).unwrap();
    }
    assert!(ledger > Money::ZERO);
    assert_eq!(s["cost_usd"].as_str().unwrap(), ledger.usd_exact());
    assert_eq!(s["list_cost_usd"].as_str().unwrap(), ledger_list.usd_exact());
    assert_eq!(s["savings_usd"].as_str().unwrap(), (ledger_list - ledger).usd_exact());
    let counts = upstream_counts(&h, "big-").await;
    assert_eq!(counts.len(), 25_000);
    assert!(counts.values().all(|n| *n == 1), "the upstream saw every item once");
    let stdout = text(&o.stdout);
    assert!(stdout.contains("plan: 25000 requests in 7 batches"), "{stdout}");
    assert!(stdout.contains(&format!("${}", ledger.usd_exact())), "{stdout}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_plan_over_a_budget_sends_nothing_and_exits_non_zero_with_the_budget_numbers() {
    let b = budget("alpha-tiny", Some("alpha"), Period::Day, Money::parse_usd("0.001").unwrap());
    let h = harness(vec![b], Arc::new(SystemClock), sim_config()).await;
    let input = write_input(h.dir.path(), "over", 2_000, |_| None);
    let o = output(run_cmd(&h, &input, &["--yes", "--max-batch-requests", "500"])).await;
    assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(
        err.contains("alpha-tiny")
            && err.contains("remaining $0.001")
            && err.contains("nothing was sent"),
        "{err}"
    );
    assert!(text(&o.stdout).contains("BREAKS"), "{}", text(&o.stdout));
    assert_eq!(h.sim.stats().create_attempts, 0);
    assert!(!input.with_extension("jsonl.state.json").exists(), "no state without a submission");
    // The project key alone is enough for the estimate: the gateway checks its project.
    let mut key_only = std::process::Command::new(env!("CARGO_BIN_EXE_batchcost"));
    key_only
        .arg("run")
        .arg(&input)
        .args(["--gateway", &h.base, "--yes"])
        .env("BATCHCOST_API_KEY", PROJECTS[0].1);
    let o = output(key_only).await;
    assert_eq!(o.status.code(), Some(1), "stderr: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("budgets (project `alpha`):") && out.contains("BREAKS"), "{out}");
    assert_eq!(h.sim.stats().create_attempts, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dry_run_prints_the_plan_and_sends_nothing() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let input = write_input(h.dir.path(), "dry", 1_200, |_| None);
    let o = output(run_cmd(&h, &input, &["--dry-run", "--max-batch-requests", "500"])).await;
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let out = text(&o.stdout);
    assert!(out.contains("plan: 1200 requests in 3 batches"), "{out}");
    assert!(out.contains("batch 2: 200 requests"), "{out}");
    assert!(out.contains("worst case") && out.contains("standard price"), "{out}");
    assert!(out.contains("dry run: nothing was sent"), "{out}");
    // A cap on each batch's worst case splits further, every batch within it.
    let o = output(run_cmd(&h, &input, &["--dry-run", "--max-batch-usd", "0.01"])).await;
    assert!(o.status.success(), "stderr: {}", text(&o.stderr));
    let out = text(&o.stdout);
    let worst: Vec<f64> = out
        .lines()
        .filter_map(|l| l.split(", worst $").nth(1)?.split(',').next()?.parse().ok())
        .collect();
    assert!(worst.len() > 1, "{out}");
    assert!(worst.iter().all(|w| *w <= 0.01), "{out}");
    let o = output(run_cmd(&h, &input, &["--dry-run", "--max-batch-usd", "0.000001"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("alone has a worst case of"), "{}", text(&o.stderr));
    assert_eq!(h.sim.stats().create_attempts, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn duplicate_custom_ids_are_refused_up_front_naming_the_line() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let input = write_input(h.dir.path(), "dup", 10, |_| None);
    let mut text_in = std::fs::read_to_string(&input).unwrap();
    let again = text_in.lines().nth(3).unwrap().to_string();
    text_in.push_str(&again);
    text_in.push('\n');
    std::fs::write(&input, text_in).unwrap();
    let o = output(run_cmd(&h, &input, &["--yes"])).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("line 11") && err.contains("dup-3") && err.contains("request 4"), "{err}");
    assert_eq!(h.sim.stats().create_attempts, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn plain_items_with_a_template_become_requests_named_by_their_id() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let items = h.dir.path().join("items.jsonl");
    let text_in: String = (0..30)
        .map(|i| format!("{}\n", serde_json::json!({"id": format!("doc-{i}"), "text": format!("document {i}"), "limit": 8 + i})))
        .collect();
    std::fs::write(&items, text_in).unwrap();
    let tpl = h.dir.path().join("template.json");
    std::fs::write(
        &tpl,
        r#"{"model": "claude-haiku-4-5", "max_tokens": "{{limit}}", "messages": [{"role": "user", "content": "Summarise: {{text}}"}]}"#,
    )
    .unwrap();
    let out = h.dir.path().join("items.out.jsonl");
    let o = output({
        let mut c = run_cmd(&h, &items, &["--yes", "--order", "custom-id"]);
        c.arg("--template").arg(&tpl).arg("--out").arg(&out);
        c
    })
    .await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (order, by) = results(&out);
    let mut sorted: Vec<String> = (0..30).map(|i| format!("doc-{i}")).collect();
    sorted.sort();
    assert_eq!(order, sorted, "--order custom-id");
    assert!(by.values().all(|v| v["result"]["type"] == "succeeded"));
    // max_tokens came from each item: the simulator never writes more than it.
    assert!(by["doc-0"]["result"]["message"]["usage"]["output_tokens"].as_u64().unwrap() <= 8);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_key_or_an_unknown_upstream_is_told_before_anything_is_sent() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let input = write_input(h.dir.path(), "probe", 5, |_| None);
    let o = output({
        let mut c = run_cmd(&h, &input, &["--yes"]);
        c.env("BATCHCOST_API_KEY", "not-a-key");
        c
    })
    .await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("refused the project key from $BATCHCOST_API_KEY"), "{err}");
    assert!(!err.contains("not-a-key"), "the key itself is never printed: {err}");
    let o = output(run_cmd(&h, &input, &["--yes", "--provider", "nosuch"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o.stderr).contains("--provider nosuch:"), "{}", text(&o.stderr));
    let o = output(run_cmd(&h, &input, &["--yes", "--provider", "openai"])).await;
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(h.sim.stats().create_attempts, 0);
    h.stop().await;
}

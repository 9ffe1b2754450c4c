//! `batchcost run` for OpenAI (Files + Batches) and Gemini (inline requests and uploaded
//! files) through the real gateway and the simulator: runs split across several batches
//! with every result in `--out` once and the summary's cost equal to the ledger's.

mod runner_support;

use std::path::{Path, PathBuf};
use std::process::Output;

use batchcost::money::Money;
use runner_support::*;
use serde_json::Value;

fn summary(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// The run's upstream batches: those answering ids that start with `prefix`.
fn ours<'b>(batches: &'b [UpBatch], prefix: &str) -> Vec<&'b UpBatch> {
    batches.iter().filter(|b| b.lines.iter().any(|(id, _)| id.starts_with(prefix))).collect()
}

/// `batchcost run` on `{tag}.jsonl` with `args`, its results in `{tag}.out.jsonl` and its
/// summary in `{tag}.summary.json` beside it; the run must succeed. Returns (output, out,
/// summary).
async fn run_ok(h: &Harness, input: &Path, args: &[&str]) -> (Output, PathBuf, PathBuf) {
    let out = input.with_extension("out.jsonl");
    let sum = input.with_extension("summary.json");
    let o = output({
        let mut c = run_cmd(h, input, args);
        c.arg("--out").arg(&out).arg("--summary-json").arg(&sum);
        c
    })
    .await;
    assert!(o.status.success(), "stdout: {}\nstderr: {}", text(&o.stdout), text(&o.stderr));
    (o, out, sum)
}

/// The upstream answered each of the `n` ids starting with `prefix` exactly once.
fn assert_answered_once(up: &[UpBatch], prefix: &str, n: usize) {
    let counts = answered(up, prefix);
    assert_eq!(counts.len(), n);
    assert!(counts.values().all(|c| *c == 1), "the upstream saw every item once");
}

/// The ledger's settled (cost, list cost) of these upstream batches.
async fn ledger_costs_of(h: &Harness, batches: &[&UpBatch]) -> (Money, Money) {
    let ids: Vec<String> = batches.iter().map(|b| b.id.clone()).collect();
    ledger_costs(h, &ids).await
}

/// The summary's cost and list cost are the ledger's for these batches, and not zero;
/// returns the cost.
async fn assert_summary_costs_the_ledgers(h: &Harness, batches: &[&UpBatch], s: &Value) -> Money {
    let (cost, list) = ledger_costs_of(h, batches).await;
    assert!(cost > Money::ZERO);
    assert_eq!(s["cost_usd"].as_str().unwrap(), cost.usd_exact());
    assert_eq!(s["list_cost_usd"].as_str().unwrap(), list.usd_exact());
    cost
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openai_run_uploads_files_splits_into_batches_and_costs_what_the_ledger_says() {
    let h = harness_all(sim_config(), |_| {}).await;
    let n = 3_000;
    let input = write_openai_input(h.dir.path(), "oa", n);
    // No --provider: the lines are OpenAI batch lines.
    let (o, out, sum) = run_ok(&h, &input, &["--yes", "--max-batch-requests", "700"]).await;
    let stdout = text(&o.stdout);
    assert!(stdout.contains("plan: 3000 requests in 5 batches"), "{stdout}");
    assert!(stdout.contains("for openai"), "{stdout}");
    assert!(stdout.contains("batch price"), "the plan was priced by the gateway: {stdout}");

    let (order, by) = results(&out);
    let expected: Vec<String> = (0..n).map(|i| format!("oa-{i}")).collect();
    assert_eq!(order, expected, "every item once, in input order");
    for v in by.values() {
        assert_eq!(v["response"]["status_code"], 200, "{v}");
        assert_eq!(v["attempts"], 1, "{v}");
    }
    let s = summary(&sum);
    assert_eq!(s["succeeded"], n);
    assert_eq!(s["batches"], 5);
    assert!(s["tokens"]["input"].as_u64().unwrap() > 0, "{s}");

    let up = upstream_openai(&h).await;
    let mine = ours(&up, "oa-");
    assert_eq!(mine.len(), 5, "3,000 at 700 per batch is 5 batches");
    assert_answered_once(&up, "oa-", n);
    let cost = assert_summary_costs_the_ledgers(&h, &mine, &s).await;
    assert!(stdout.contains(&format!("${}", cost.usd_exact())), "{stdout}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gemini_run_of_inline_batches_writes_every_result_once_at_the_ledger_cost() {
    let h = harness_all(sim_config(), |_| {}).await;
    let n = 2_000;
    let input = write_gemini_input(h.dir.path(), "gi", n);
    let args =
        ["--yes", "--provider", "gemini", "--max-batch-requests", "500", "--order", "custom-id"];
    let (o, out, sum) = run_ok(&h, &input, &args).await;
    assert!(text(&o.stdout).contains("plan: 2000 requests in 4 batches"), "{}", text(&o.stdout));

    let (order, by) = results(&out);
    let mut expected: Vec<String> = (0..n).map(|i| format!("gi-{i}")).collect();
    expected.sort();
    assert_eq!(order, expected, "every item once, by key");
    assert!(by.values().all(|v| v["response"].is_object() && v["attempts"] == 1));
    let s = summary(&sum);
    assert_eq!((s["succeeded"].as_u64(), s["batches"].as_u64()), (Some(n as u64), Some(4)));

    let up = upstream_gemini(&h).await;
    let mine = ours(&up, "gi-");
    assert_eq!(mine.len(), 4);
    for b in &mine {
        let m = &b.raw["metadata"];
        assert!(m["inputConfig"]["fileName"].is_null(), "sent inline: {m}");
        assert!(m["output"]["inlinedResponses"].is_object(), "answered inline: {m}");
    }
    assert_answered_once(&up, "gi-", n);
    assert_summary_costs_the_ledgers(&h, &mine, &s).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_gemini_batch_above_the_inline_limit_is_uploaded_as_a_file() {
    let h = harness_all(sim_config(), |_| {}).await;
    let n = 600;
    let input = write_gemini_input(h.dir.path(), "gf", n);
    let args = ["--yes", "--max-batch-requests", "300", "--gemini-inline-bytes", "1000"];
    let (_, out, sum) = run_ok(&h, &input, &args).await;
    let (order, _) = results(&out);
    assert_eq!(order.len(), n);
    let up = upstream_gemini(&h).await;
    let mine = ours(&up, "gf-");
    assert_eq!(mine.len(), 2);
    for b in &mine {
        let m = &b.raw["metadata"];
        assert!(m["inputConfig"]["fileName"].is_string(), "uploaded: {m}");
        assert!(m["output"]["responsesFile"].is_string(), "results in a file: {m}");
    }
    assert!(answered(&up, "gf-").values().all(|c| *c == 1));
    let (cost, _) = ledger_costs_of(&h, &mine).await;
    assert_eq!(summary(&sum)["cost_usd"].as_str().unwrap(), cost.usd_exact());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_and_gemini_plans_over_a_budget_or_with_bad_requests_send_nothing() {
    use batchcost::config::Period;
    let b = budget("alpha-tiny", Some("alpha"), Period::Day, Money::parse_usd("0.001").unwrap());
    let h = harness_all(sim_config(), |s| s.budgets.push(b)).await;
    let openai = write_openai_input(h.dir.path(), "ob", 2_000);
    let gemini = write_gemini_input(h.dir.path(), "gb", 2_000);
    for (input, provider) in [(&openai, "openai"), (&gemini, "gemini")] {
        let o = output(run_cmd(&h, input, &["--yes", "--max-batch-requests", "500"])).await;
        assert_eq!(o.status.code(), Some(1), "{provider}: {}", text(&o.stderr));
        let (out, err) = (text(&o.stdout), text(&o.stderr));
        assert!(out.contains("plan: 2000 requests in 4 batches (at most 500 requests"), "{out}");
        assert!(out.contains(&format!("for {provider}")) && out.contains("BREAKS"), "{out}");
        assert!(
            err.contains("alpha-tiny")
                && err.contains("remaining $0.001")
                && err.contains("nothing was sent"),
            "{provider}: {err}"
        );
    }
    // A model the gateway has no price for: the gateway's estimator names it.
    let bad = h.dir.path().join("bad.jsonl");
    let text_in =
        std::fs::read_to_string(&openai).unwrap().replacen("gpt-5-mini", "gpt-unknown-9", 1);
    std::fs::write(&bad, text_in).unwrap();
    let o = output(run_cmd(&h, &bad, &["--yes"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(text(&o.stderr).contains("gpt-unknown-9"), "{}", text(&o.stderr));
    // A Gemini request without a model and no --model: refused before anything is sent.
    let nomodel = h.dir.path().join("nomodel.jsonl");
    std::fs::write(&nomodel, "{\"key\":\"a\",\"request\":{\"contents\":[]}}\n").unwrap();
    let o = output(run_cmd(&h, &nomodel, &["--yes"])).await;
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("line 1: request.model: required unless --model"),
        "{}",
        text(&o.stderr)
    );
    assert_eq!(h.sim.stats().create_attempts, 0, "nothing was created upstream");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn another_upstream_is_run_with_the_api_its_surface_serves() {
    let h = harness_all(sim_config(), |s| {
        for (name, kind) in [("vertexish", "gemini"), ("togetherish", "openai")] {
            let mut u = s.upstreams.iter().find(|u| u.kind == kind).unwrap().clone();
            u.name = name.into();
            s.upstreams.push(u);
        }
    })
    .await;
    // pricing.toml has no rows for these upstreams, so the gateway's estimator refuses the
    // plans; its message shows which API's format it read the lines in (Gemini's pricer,
    // OpenAI's file checker), and nothing is sent.
    let g = write_gemini_input(h.dir.path(), "vx", 20);
    let o = output(run_cmd(&h, &g, &["--yes", "--provider", "vertexish"])).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(err.contains("model `gemini-2.5-flash` is not in the price table"), "{err}");
    let t = write_openai_input(h.dir.path(), "tx", 20);
    let o = output(run_cmd(&h, &t, &["--yes", "--provider", "togetherish"])).await;
    assert_eq!(o.status.code(), Some(2));
    let err = text(&o.stderr);
    assert!(
        err.contains("line 1: body.model: model \"gpt-5-mini\" is not in the price table for provider togetherish"),
        "{err}"
    );
    assert_eq!(h.sim.stats().create_attempts, 0);
    h.stop().await;
}

//! `kill -9` of the runner at random moments, then the same command again: every item
//! ends with exactly one result, and the upstream received each item exactly once (one
//! attempt each here), including when the kill fell between "create sent" and "create
//! answered" (creates are slowed to widen that window, and some answers are lost). For
//! Anthropic, and for OpenAI, whose create also uploads the input file: a run killed after
//! its upload must find that file again, or its re-sent create would make a second batch.

mod runner_support;

use std::fs::OpenOptions;
use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::SystemClock;
use batchcost::simulator::{Faults, Operation, SimConfig};
use runner_support::*;

const RUNS: u64 = 20;
const ITEMS: usize = 240;

/// A small deterministic generator: the kill moments replay the same way.
fn next(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

/// Half the creates slowed (a wider window between "create sent" and "create answered"),
/// and one in ten answers lost.
fn slow_lossy_creates() -> Faults {
    Faults {
        slow_rate: 0.5,
        slow_ms: 150,
        create_lost_rate: 0.1,
        operations: vec![Operation::Create],
        ..Default::default()
    }
}

/// How long one uninterrupted run of `input` takes, so kills land anywhere within a run;
/// half of it, as a later run may go faster than the probe (less load), and a kill drawn
/// past its end lands nowhere.
async fn probe_span(h: &Harness, input: &Path, args: &[&str]) -> u64 {
    let t = Instant::now();
    let o = output(run_cmd(h, input, args)).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    (t.elapsed().as_millis() / 2).max(50) as u64
}

/// Starts `batchcost run` on `input` one to three times (as `seed` draws), each killed
/// (SIGKILL) after a delay drawn below `span` ms unless it has already ended; stderr goes
/// to the end of `log` if given. Returns how many kills landed inside a run.
async fn kill_runs(
    h: &Harness,
    input: &Path,
    args: &[&str],
    log: Option<&Path>,
    seed: &mut u64,
    span: u64,
) -> u64 {
    let mut kills = 0;
    for _ in 0..=(next(seed) % 3) {
        let delay = Duration::from_millis(next(seed) % span);
        let stderr = match log {
            Some(path) => {
                Stdio::from(OpenOptions::new().create(true).append(true).open(path).unwrap())
            }
            None => Stdio::null(),
        };
        let mut child =
            run_cmd(h, input, args).stdout(Stdio::null()).stderr(stderr).spawn().unwrap();
        tokio::time::sleep(delay).await;
        if child.try_wait().unwrap().is_none() {
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        child.wait().unwrap();
    }
    kills
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn runs_killed_at_random_moments_resume_without_submitting_any_item_twice() {
    let h = harness(
        vec![],
        Arc::new(SystemClock),
        SimConfig { faults: slow_lossy_creates(), ..sim_config() },
    )
    .await;
    let args = ["--yes", "--max-batch-requests", "40"];
    let probe = write_input(h.dir.path(), "probe", ITEMS, |_| None);
    let span = probe_span(&h, &probe, &args).await;

    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut kills = 0;
    let mut adopted = 0;
    for r in 0..RUNS {
        let tag = format!("k{r}");
        let input = write_input(h.dir.path(), &tag, ITEMS, |_| None);
        kills += kill_runs(&h, &input, &args, None, &mut seed, span).await;
        let o = output(run_cmd(&h, &input, &args)).await;
        assert!(o.status.success(), "run {r}: {}", text(&o.stderr));
        adopted += text(&o.stderr).matches("from an earlier run's create").count();
        let (order, by) = results(&input.with_extension("jsonl.results.jsonl"));
        assert_eq!(order.len(), ITEMS, "run {r}");
        assert!(
            by.values().all(|v| v["result"]["type"] == "succeeded" && v["attempts"] == 1),
            "run {r}"
        );
        let counts = upstream_counts(&h, &format!("{tag}-")).await;
        assert_eq!(counts.len(), ITEMS, "run {r}: every item reached the upstream");
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
        assert!(twice.is_empty(), "run {r}: submitted more than once: {twice:?}");
    }
    eprintln!("{kills} kills; {adopted} creates found after a kill left them unanswered");
    assert!(kills >= RUNS, "only {kills} kills landed inside a run");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn openai_runs_killed_at_random_moments_resume_without_submitting_any_item_twice() {
    const RUNS: u64 = 8;
    const ITEMS: usize = 120;
    let h = harness_all(SimConfig { faults: slow_lossy_creates(), ..sim_config() }, |_| {}).await;
    let args = ["--yes", "--provider", "openai", "--max-batch-requests", "40"];
    let probe = write_openai_input(h.dir.path(), "oprobe", ITEMS);
    let span = probe_span(&h, &probe, &args).await;
    let dup: Vec<_> = answered(&upstream_openai(&h).await, "oprobe-")
        .into_iter()
        .filter(|(_, n)| *n != 1)
        .collect();
    assert!(dup.is_empty(), "an uninterrupted run submitted items twice: {dup:?}");

    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut kills = 0;
    for r in 0..RUNS {
        let tag = format!("ok{r}");
        let input = write_openai_input(h.dir.path(), &tag, ITEMS);
        // Each killed run's log, shown if the run goes wrong.
        let log = h.dir.path().join(format!("{tag}.log"));
        kills += kill_runs(&h, &input, &args, Some(&log), &mut seed, span).await;
        let o = output(run_cmd(&h, &input, &args)).await;
        assert!(o.status.success(), "run {r}: {}", text(&o.stderr));
        let (order, by) = results(&input.with_extension("jsonl.results.jsonl"));
        assert_eq!(order.len(), ITEMS, "run {r}");
        assert!(
            by.values().all(|v| v["response"]["status_code"] == 200 && v["attempts"] == 1),
            "run {r}"
        );
        let counts = answered(&upstream_openai(&h).await, &format!("{tag}-"));
        assert_eq!(counts.len(), ITEMS, "run {r}: every item reached the upstream");
        let twice: Vec<_> = counts.iter().filter(|(_, n)| **n != 1).collect();
        assert!(
            twice.is_empty(),
            "run {r}: submitted more than once: {twice:?}\nKILLED RUNS: {}\nFINAL: {}",
            std::fs::read_to_string(&log).unwrap_or_default(),
            text(&o.stderr)
        );
    }
    assert!(kills >= RUNS / 2, "only {kills} kills landed inside a run");
    h.stop().await;
}

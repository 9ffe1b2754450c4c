//! Progress: a live block redrawn in place on a real terminal (a tmux pane, read with
//! `tmux capture-pane`), plain log lines when stderr is a pipe.

mod runner_support;

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::SystemClock;
use batchcost::simulator::SimConfig;
use runner_support::*;

/// Slow enough that a run lasts a few seconds: the display is seen while batches run.
fn slow_sim() -> SimConfig {
    SimConfig { requests_per_second: 0.1, ..sim_config() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn piped_output_gets_plain_progress_lines_without_terminal_codes() {
    let h = harness(vec![], Arc::new(SystemClock), sim_config()).await;
    let input = write_input(h.dir.path(), "plain", 600, |_| None);
    let o = output(run_cmd(&h, &input, &["--yes", "--max-batch-requests", "200"])).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let err = text(&o.stderr);
    assert!(!err.contains('\x1b'), "no escape codes on a pipe: {err:?}");
    assert!(err.lines().any(|l| l.starts_with("progress: batches")), "{err}");
    assert_eq!(err.lines().filter(|l| l.contains("): submitted msgbatch_")).count(), 3, "{err}");
    assert_eq!(err.lines().filter(|l| l.contains(" ended: 200 succeeded")).count(), 3, "{err}");
    h.stop().await;
}

fn tmux(sock: &str, args: &[&str]) -> String {
    let o = Command::new("tmux")
        .arg("-L")
        .arg(sock)
        .args(args)
        .output()
        .expect("tmux is installed (scripts/setup-test-env)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn running(screen: &str) -> bool {
    screen.lines().any(|l| {
        l.starts_with("batches ")
            && l.split(" · ").any(|p| {
                p.strip_suffix(" running")
                    .and_then(|n| n.trim().parse::<u32>().ok())
                    .is_some_and(|n| n > 0)
            })
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_terminal_gets_a_live_block_redrawn_in_place() {
    let h = harness(vec![], Arc::new(SystemClock), slow_sim()).await;
    let input = write_input(h.dir.path(), "live", 900, |_| None);
    let sock = format!("batchcost-runner-{}", std::process::id());
    let cmd = format!(
        "env BATCHCOST_API_KEY={} RUNNER_TEST_ADMIN={} {} run {} --gateway {} --admin-token-env RUNNER_TEST_ADMIN --project alpha --yes --max-batch-requests 300 --poll-min-ms 50 --poll-max-ms 100; echo RUN-EXIT=$?; sleep 300",
        PROJECTS[0].1,
        ADMIN,
        env!("CARGO_BIN_EXE_batchcost"),
        input.display(),
        h.base
    );
    tmux(&sock, &["new-session", "-d", "-s", "run", "-x", "72", "-y", "80", &cmd]);
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut seen_running = false;
    let screen = loop {
        let s = tmux(&sock, &["capture-pane", "-p", "-t", "run"]);
        if running(&s) {
            seen_running = true;
        }
        if s.contains("RUN-EXIT=") {
            break s;
        }
        assert!(Instant::now() < deadline, "the run did not finish:\n{s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    tmux(&sock, &["kill-server"]);
    assert!(screen.contains("RUN-EXIT=0"), "{screen}");
    assert!(seen_running, "the block showed batches running while they ran");
    // Redrawn in place: one block on screen, not one per update, and no plain lines.
    assert_eq!(screen.lines().filter(|l| l.starts_with("batches ")).count(), 1, "{screen}");
    assert_eq!(screen.lines().filter(|l| l.starts_with("requests ")).count(), 1, "{screen}");
    assert!(!screen.contains("progress:"), "{screen}");
    let items = screen.lines().find(|l| l.starts_with("items ")).unwrap();
    assert!(items.contains("900 of 900 succeeded · 0 failed"), "{items}");
    let cost = screen.lines().filter(|l| l.starts_with("cost      $")).collect::<Vec<_>>();
    assert_eq!(cost.len(), 1, "{screen}");
    assert!(cost[0].contains("settled (3 batches)") && cost[0].contains("ETA"), "{}", cost[0]);
    // Log lines scroll above the block.
    assert_eq!(
        screen.lines().filter(|l| l.contains("): submitted msgbatch_")).count(),
        3,
        "{screen}"
    );
    assert!(screen.contains("summary"), "{screen}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ctrl_c_leaves_the_batches_running_and_the_same_command_resumes() {
    let h = harness(
        vec![],
        Arc::new(SystemClock),
        SimConfig { requests_per_second: 0.02, ..sim_config() },
    )
    .await;
    let input = write_input(h.dir.path(), "intr", 400, |_| None);
    let state = input.with_extension("jsonl.state.json");
    let child = run_cmd(&h, &input, &["--yes", "--max-batch-requests", "200"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once both batches are recorded as running.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let st = std::fs::read_to_string(&state).unwrap_or_default();
        if st.matches("\"phase\":\"running\"").count() == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the batches were never running: {st}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let pid = child.id().to_string();
    assert!(Command::new("kill").args(["-INT", &pid]).status().unwrap().success());
    let o = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap()).await.unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = text(&o.stderr);
    assert!(err.contains("interrupted: 2 batches left running upstream; state saved in"), "{err}");
    let batches = upstream_batches(&h).await;
    assert_eq!(batches.len(), 2);
    assert!(batches.iter().all(|(b, _)| b["cancel_initiated_at"].is_null()), "nothing canceled");

    let o = output(run_cmd(&h, &input, &["--yes", "--max-batch-requests", "200"])).await;
    assert!(o.status.success(), "{}", text(&o.stderr));
    let (order, _) = results(&input.with_extension("jsonl.results.jsonl"));
    assert_eq!(order.len(), 400);
    assert_eq!(upstream_batches(&h).await.len(), 2, "resumed, not resubmitted");
    h.stop().await;
}

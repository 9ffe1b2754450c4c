//! `batchcost report` as the real binary: reads a ledger file through a config whose
//! secret variables are not set, prints what the library renders, and exits 2 naming the
//! flag or config key on bad input.

mod report_support;

use std::path::Path;
use std::process::{Command, Output};

use report_support::*;

fn config(dir: &Path, extra: &str) -> std::path::PathBuf {
    config_at(dir, extra, "sqlite://ledger.db")
}

/// A config whose `[storage] url` is `url`.
fn config_at(dir: &Path, extra: &str, url: &str) -> std::path::PathBuf {
    let pricing = Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    let text = format!(
        r#"listen = "127.0.0.1:0"
pricing = "{}"
timezone = "Asia/Seoul"
{extra}
[storage]
url = "{url}"

[upstream.anthropic]
base_url = "https://api.anthropic.com"
api_key_env = "BATCHCOST_REPORT_TEST_UNSET_PROVIDER_KEY"

[[projects]]
name = "alpha"
api_key_envs = ["BATCHCOST_REPORT_TEST_UNSET_ALPHA_KEY"]

[admin]
token_env = "BATCHCOST_REPORT_TEST_UNSET_ADMIN"
"#,
        pricing.display()
    );
    let path = dir.join("batchcost.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn report(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_batchcost"))
        .arg("report")
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("BATCHCOST_REPORT_TEST_UNSET_PROVIDER_KEY")
        .env_remove("BATCHCOST_REPORT_TEST_UNSET_ALPHA_KEY")
        .env_remove("BATCHCOST_REPORT_TEST_UNSET_ADMIN")
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    assert!(o.status.success(), "exit {:?}: {}", o.status, String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn usage_error(o: &Output) -> String {
    assert_eq!(o.status.code(), Some(2), "stdout: {}", String::from_utf8_lossy(&o.stdout));
    assert!(o.stdout.is_empty());
    String::from_utf8(o.stderr.clone()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_prints_every_form_without_any_secret_set() {
    let (f, total) = filled().await;
    let cfg = config_at(f.dir.path(), "", &f.store.url);
    let range = ["--from", "2026-03-10", "--to", "2026-03-13"];
    for (format, group_by) in [
        ("csv", "day,project,model"),
        ("json", "provider"),
        ("focus", ""),
        ("table", "day,project"),
    ] {
        let args: Vec<&str> =
            range.iter().copied().chain(["--format", format, "--group-by", group_by]).collect();
        let printed = stdout(&report(&cfg, &args));
        let mut expected = f.report("2026-03-10", "2026-03-13", group_by, format).await;
        if format == "table" {
            // The table closes with the money still reserved (none here: all settled).
            let open = batchcost::report::inflight::open_batches(f.ledger.as_ref()).await.unwrap();
            let q = f.query("2026-03-10", "2026-03-13", group_by, format);
            expected += &batchcost::report::inflight::section(&open, &q);
        }
        assert_eq!(printed, expected, "{format}");
    }
    let csv = stdout(&report(&cfg, &range));
    assert!(csv.lines().any(|l| l.starts_with("TOTAL")), "table is the default: {csv}");
    let csv = stdout(&report(&cfg, &[range.as_slice(), &["--format", "csv"]].concat()));
    let sum: batchcost::money::Money = csv_maps(&csv).iter().map(|r| money(&r["cost_usd"])).sum();
    assert_eq!(sum, total);
    assert_eq!(csv_maps(&csv).len(), 6, "day,project,model is the default grouping");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_and_config_exit_2_naming_what_is_wrong() {
    let f = Fixture::new(vec![]).await;
    let cfg = config(f.dir.path(), "");
    let run = |args: &[&str]| usage_error(&report(&cfg, args));
    let e = run(&["--from", "2026-13-01", "--to", "2026-04-01"]);
    assert!(e.contains("--from: expected a date YYYY-MM-DD, got `2026-13-01`"), "{e}");
    let e = run(&["--from", "2026-03-01", "--to", "2026-03-01"]);
    assert!(e.contains("--to: `2026-03-01` must be after the start day"), "{e}");
    let e = run(&["--from", "2026-03-01", "--to", "2026-04-01", "--group-by", "day,week"]);
    assert!(e.contains("--group-by: unknown dimension `week`"), "{e}");
    let e = run(&["--from", "2026-03-01", "--to", "2026-04-01", "--format", "xlsx"]);
    assert!(e.contains("--format: unknown format `xlsx`"), "{e}");
    let e = run(&["--to", "2026-04-01"]);
    assert!(e.contains("--from"), "clap names the missing flag: {e}");

    let bad = config(f.dir.path(), "colour = \"blue\"");
    let e = usage_error(&report(&bad, &["--from", "2026-03-01", "--to", "2026-04-01"]));
    assert!(e.contains("batchcost.toml") && e.contains("colour"), "{e}");
    let tz = config(f.dir.path(), "").to_string_lossy().to_string();
    let text = std::fs::read_to_string(&tz).unwrap().replace("Asia/Seoul", "Mars/Olympus");
    std::fs::write(&tz, text).unwrap();
    let e = usage_error(&report(Path::new(&tz), &["--from", "2026-03-01", "--to", "2026-04-01"]));
    assert!(e.contains("timezone: expected an IANA time zone name"), "{e}");

    let elsewhere = tempfile::tempdir().unwrap();
    let no_ledger = config(elsewhere.path(), "");
    let e = usage_error(&report(&no_ledger, &["--from", "2026-03-01", "--to", "2026-04-01"]));
    assert!(e.contains("storage.url: no ledger at"), "{e}");
    assert!(!elsewhere.path().join("ledger.db").exists(), "a report must not create a ledger");
}

#[test]
fn a_runtime_failure_exits_1_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    // Not a ledger at all: opening it fails at run time.
    std::fs::write(dir.path().join("ledger.db"), [b'x'; 4096]).unwrap();
    let o = report(&cfg, &["--from", "2026-03-01", "--to", "2026-04-01", "--format", "csv"]);
    assert_eq!(o.status.code(), Some(1), "{}", String::from_utf8_lossy(&o.stderr));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.starts_with("batchcost: "), "{e}");
}

#[test]
fn help_states_the_range_rule_and_the_day_rule() {
    let o =
        Command::new(env!("CARGO_BIN_EXE_batchcost")).args(["report", "--help"]).output().unwrap();
    let help = String::from_utf8(o.stdout).unwrap();
    assert!(help.contains("first day included"), "{help}");
    assert!(help.contains("first day NOT included"), "{help}");
    assert!(help.contains("counts on the day it was submitted"), "{help}");
    assert!(help.contains("configured timezone"), "{help}");
}

//! The first hour of a new user, as the real binary shows it: the README's "Using it"
//! lines start the gateway, missing variables are reported together, the startup line
//! says what runs, logs are plain text off a terminal or JSON on request, the local stack
//! recipe works, and the help and error texts point at the fix.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_batchcost");

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn readme() -> String {
    std::fs::read_to_string(repo().join("README.md")).unwrap()
}

/// The README's "Using it" section.
fn using_it() -> String {
    let text = readme();
    let start = text.find("\n## Using it").expect("README has a Using it section");
    let rest = &text[start + 1..];
    let end = rest[3..].find("\n## ").map_or(rest.len(), |i| i + 3);
    rest[..end].to_string()
}

/// Variable names of the first `export` line of `section`.
fn exported(section: &str) -> Vec<String> {
    let line = section.lines().find(|l| l.starts_with("export ")).expect("an export line");
    line["export ".len()..]
        .split_whitespace()
        .map(|kv| kv.split('=').next().unwrap().to_string())
        .collect()
}

/// The repository layout the README's relative paths need, in a temporary folder, so the
/// gateway's ledger lands there and not in the checkout.
fn layout() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("examples")).unwrap();
    for f in ["examples/batchcost.toml", "examples/local-stack.toml", "pricing.toml"] {
        std::fs::copy(repo().join(f), dir.path().join(f)).unwrap();
    }
    dir
}

/// A started process and the address it printed.
struct Started {
    child: Child,
    url: String,
}

impl Started {
    fn stop(mut self) -> String {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let status = self.child.wait().unwrap();
        let mut err = String::new();
        self.child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        assert!(status.success(), "exit {status:?}: {err}");
        err
    }
}

/// Spawns `cmd` and waits for its `listening on` line (no sleeps: the line is printed once
/// the port is bound).
fn start(mut cmd: Command) -> Started {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut line).unwrap();
    let Some(url) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
        let _ = child.kill();
        let mut err = String::new();
        child.stderr.take().unwrap().read_to_string(&mut err).unwrap();
        panic!("did not start: {line:?}\n{err}");
    };
    Started { child, url }
}

fn readme_env(cmd: &mut Command, names: &[String]) {
    cmd.env_clear().env("PATH", std::env::var("PATH").unwrap_or_default());
    for n in names {
        cmd.env(n, format!("first-hour-value-of-{n}"));
    }
}

#[test]
fn the_readme_using_it_lines_start_the_gateway() {
    let section = using_it();
    let names = exported(&section);
    assert!(names.contains(&"ANTHROPIC_API_KEY".to_string()), "{names:?}");
    let line = section.lines().find(|l| l.contains("-- serve ")).expect("a serve line");
    let args: Vec<&str> = line.split(" -- ").nth(1).unwrap().split_whitespace().collect();
    assert_eq!(args, ["serve", "--config", "examples/batchcost.toml"]);
    let dir = layout();
    let mut cmd = Command::new(BIN);
    // Port 0 instead of the example's 9400, so the test never collides with a gateway
    // already running on this machine; everything else is the README's.
    cmd.args(&args).args(["--listen", "127.0.0.1:0"]).current_dir(dir.path());
    readme_env(&mut cmd, &names);
    let gw = start(cmd);
    let health = reqwest::blocking::get(format!("{}/healthz", gw.url)).unwrap();
    assert_eq!(health.status(), 200);
    let log = gw.stop();
    assert!(!log.contains('\u{1b}'), "no colour codes when stderr is not a terminal: {log}");
    let started = log.lines().find(|l| l.contains("gateway started")).expect(&log);
    for part in [
        "upstreams=anthropic=https://api.anthropic.com",
        "search (1 key)",
        "search-daily (search, day, $50)",
        "all-monthly (all, month, $2000)",
        "pricing_version=",
        "ledger=sqlite://",
        "batchcost.db",
    ] {
        assert!(started.contains(part), "`{part}` in: {started}");
    }
    assert!(!log.contains("first-hour-value-of"), "no secret in the log: {log}");
    assert!(log.contains("SUPPORT_KEY_NEXT"), "the unset rotation slot is named: {log}");

    // The ledger the gateway created is what `batchcost budgets` reads.
    let o = Command::new(BIN)
        .args(["budgets", "--config", "examples/batchcost.toml"])
        .current_dir(dir.path())
        .env_clear()
        .output()
        .unwrap();
    let text = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    let search = text.lines().find(|l| l.starts_with("search-daily")).expect(&text);
    assert!(search.contains("$50.00") && search.contains("$0.00"), "{search}");
    assert!(search.ends_with("00:00 +09:00"), "local window end with offset: {search}");
    assert!(text.contains("(Asia/Seoul)"), "{text}");
}

#[test]
fn every_missing_variable_is_reported_at_once() {
    let dir = layout();
    let o = Command::new(BIN)
        .args(["serve", "--config", "examples/batchcost.toml"])
        .current_dir(dir.path())
        .env_clear()
        .env("SEARCH_KEY", "set")
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("3 environment variables are not set or empty"), "{e}");
    for (slot, var) in [
        ("projects[1].api_key_envs[0]", "SUPPORT_KEY"),
        ("upstream.anthropic.api_key_env", "ANTHROPIC_API_KEY"),
        ("admin.token_env", "BATCHCOST_ADMIN_TOKEN"),
    ] {
        assert!(e.contains(&format!("{slot}: environment variable `{var}`")), "{var}: {e}");
    }
    assert!(!e.contains("SEARCH_KEY"), "{e}");
    assert!(!e.contains("`SUPPORT_KEY_NEXT` is not set"), "the rotation slot is optional: {e}");
}

#[test]
fn json_logs_parse_line_by_line() {
    let dir = layout();
    let names = exported(&using_it());
    let mut cmd = Command::new(BIN);
    cmd.args(["serve", "--config", "examples/batchcost.toml", "--listen", "127.0.0.1:0"])
        .args(["--log-format", "json"])
        .current_dir(dir.path());
    readme_env(&mut cmd, &names);
    let gw = start(cmd);
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/messages/batches", gw.url))
        .header("x-api-key", "not-a-key")
        .body("{}")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
    let log = gw.stop();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{log}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
        assert!(l["message"].is_string(), "{l}");
    }
    let started = lines.iter().find(|l| l["message"] == "gateway started").expect(&log);
    assert_eq!(started["upstreams"], "anthropic=https://api.anthropic.com");
    assert!(started["budgets"].as_str().unwrap().contains("support-daily"), "{started}");
    // The config key does the same as the flag.
    let mut cmd = Command::new(BIN);
    let cfg = dir.path().join("examples/json.toml");
    let text = std::fs::read_to_string(dir.path().join("examples/batchcost.toml")).unwrap();
    std::fs::write(&cfg, format!("{text}\n[log]\nformat = \"json\"\n")).unwrap();
    cmd.args(["serve", "--config", "examples/json.toml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path());
    readme_env(&mut cmd, &names);
    let log = start(cmd).stop();
    assert!(log.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "{log}");
}

#[test]
fn the_local_stack_recipe_runs_against_the_simulator() {
    let dir = layout();
    let recipe = std::fs::read_to_string(repo().join("examples/local-stack.toml")).unwrap();
    // The recipe's comment lines, uncommented, with `\` continuations joined.
    let commands: String = recipe
        .lines()
        .filter_map(|l| l.strip_prefix('#'))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
        .replace("\\\n", " ");
    let names = exported(&commands);
    assert!(names.contains(&"BATCHCOST_SIMULATOR_KEY".to_string()), "{names:?}");
    let mut sim = Command::new(BIN);
    sim.args(["simulate", "--time-scale", "3600", "--listen", "127.0.0.1:0"]);
    readme_env(&mut sim, &names);
    let sim = start(sim);
    // The recipe's simulator listens on 127.0.0.1:9500; this one took a free port.
    let cfg = dir.path().join("examples/local-stack.toml");
    let text = std::fs::read_to_string(&cfg).unwrap().replace("http://127.0.0.1:9500", &sim.url);
    std::fs::write(&cfg, text).unwrap();
    let mut gw = Command::new(BIN);
    gw.args(["serve", "--config", "examples/local-stack.toml", "--listen", "127.0.0.1:0"])
        .current_dir(dir.path());
    readme_env(&mut gw, &names);
    let gw = start(gw);
    let body = serde_json::json!({"requests": [{"custom_id": "a", "params": {
        "model": "claude-haiku-4-5", "max_tokens": 64,
        "messages": [{"role": "user", "content": "Hello"}]}}]});
    let r = reqwest::blocking::Client::new()
        .post(format!("{}/v1/messages/batches", gw.url))
        .header("x-api-key", "first-hour-value-of-SEARCH_KEY")
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .unwrap();
    let status = r.status();
    let v: serde_json::Value = r.json().unwrap();
    assert_eq!(status, 200, "{v}");
    assert!(v["id"].as_str().unwrap().starts_with("msgbatch_"), "{v}");

    // A batch too large for `search-daily` ($5): the refusal is explained from the 429,
    // the log and /api/batches, as the README's recipe says.
    let requests: Vec<serde_json::Value> = (0..100)
        .map(|i| {
            serde_json::json!({"custom_id": format!("big-{i}"), "params": {
            "model": "claude-opus-4-6", "max_tokens": 64000,
            "messages": [{"role": "user", "content": "Grade this answer."}]}})
        })
        .collect();
    let http = reqwest::blocking::Client::new();
    let r = http
        .post(format!("{}/v1/messages/batches", gw.url))
        .header("x-api-key", "first-hour-value-of-SEARCH_KEY")
        .header("anthropic-version", "2023-06-01")
        .json(&serde_json::json!({ "requests": requests }))
        .send()
        .unwrap();
    assert_eq!(r.status(), 429);
    let v: serde_json::Value = r.json().unwrap();
    let id = v["error"]["refusal_id"].as_str().unwrap().to_string();
    assert!(v["error"]["message"].as_str().unwrap().contains("budget 'search-daily'"), "{v}");
    let listed: serde_json::Value = http
        .get(format!("{}/api/batches?state=refused", gw.url))
        .bearer_auth("first-hour-value-of-BATCHCOST_ADMIN_TOKEN")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(listed["data"][0]["id"], id.as_str(), "{listed}");
    assert_eq!(listed["data"][0]["budget"], "search-daily");
    let log = gw.stop();
    let line = log.lines().find(|l| l.contains("submission refused")).expect(&log);
    assert!(line.contains(&id) && line.contains("project=search"), "{line}");
    sim.stop();
    assert!(dir.path().join("examples/local-stack.db").exists());
}

fn help(args: &[&str]) -> String {
    let o = Command::new(BIN).args(args).arg("--help").output().unwrap();
    assert!(o.status.success());
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn help_names_the_example_the_variables_the_exit_codes_and_the_defaults() {
    let serve = help(&["serve"]);
    for part in [
        "examples/batchcost.toml",
        "ANTHROPIC_API_KEY",
        "BATCHCOST_ADMIN_TOKEN",
        "examples/local-stack.toml",
        "Exit status: 0",
        "2 bad usage or config",
        "--log-format",
    ] {
        assert!(serve.contains(part), "`{part}` in serve --help:\n{serve}");
    }
    let sim = help(&["simulate"]);
    let d = batchcost::simulator::SimConfig::default();
    for part in [
        "[default: 127.0.0.1:9500]".to_string(),
        format!("[default: {}]", d.time_scale),
        format!("[default: {}]", d.seed),
        format!("[default: {}]", d.requests_per_second),
        format!("[default: {}]", d.startup_secs),
    ] {
        assert!(sim.contains(&part), "`{part}` in simulate --help:\n{sim}");
    }
    let report = help(&["report"]);
    assert!(report.contains("this-month") && report.contains("--wide"), "{report}");
}

#[test]
fn a_missing_default_file_suggests_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("b.json");
    std::fs::write(&body, r#"{"requests":[]}"#).unwrap();
    let o = Command::new(BIN).arg("estimate").arg(&body).current_dir(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("pricing.toml") && e.contains("pass --pricing FILE"), "{e}");
    let o = Command::new(BIN).args(["report", "today"]).current_dir(dir.path()).output().unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(e.contains("batchcost.toml") && e.contains("pass --config FILE"), "{e}");
}

#[test]
fn estimate_at_before_a_first_price_says_from_when() {
    let dir = tempfile::tempdir().unwrap();
    let body = dir.path().join("b.json");
    // claude-sonnet-4-5's first entry takes effect on its snapshot date, 2025-09-29.
    std::fs::write(
        &body,
        r#"{"requests":[{"custom_id":"a","params":{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}}]}"#,
    )
    .unwrap();
    let run = |at: &str| {
        Command::new(BIN)
            .arg("estimate")
            .arg(&body)
            .args(["--pricing", repo().join("pricing.toml").to_str().unwrap(), "--at", at])
            .output()
            .unwrap()
    };
    let o = run("2025-06-01T00:00:00Z");
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert!(
        e.contains(r#"model "claude-sonnet-4-5" has no price in force on 2025-06-01 (UTC): its first price in the table takes effect on 2025-09-29"#),
        "{e}"
    );
    assert!(run("2025-10-01T00:00:00Z").status.success());
}

#[test]
fn the_demo_caches_its_system_prompt_and_shows_the_savings() {
    let o = Command::new(BIN)
        .args(["demo", "--exit", "--listen", "127.0.0.1:0"])
        .current_dir(repo())
        .env_remove("BATCHCOST_ADMIN_TOKEN")
        .output()
        .unwrap();
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    let line = out
        .lines()
        .skip_while(|l| !l.starts_with("Prompt caching"))
        .find(|l| l.contains("ticket triage"))
        .unwrap_or_else(|| panic!("no caching line: {out}"));
    let number = |after: &str| -> u64 {
        let rest = &line[line.find(after).unwrap() + after.len()..];
        rest.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert!(number("cache write ") > 0, "{line}");
    // 120 tickets share the prompt: one writes it, the rest read it.
    assert!(number("cache read ") > 100 * number("cache write ") / 2, "{line}");
    let saved = line.split("saved $").nth(1).unwrap().split_whitespace().next().unwrap();
    assert!(saved.parse::<f64>().unwrap() > 0.0, "{line}");
    let hint = batchcost::demo::curl_hint("demo-admin-token", "127.0.0.1:9400");
    assert!(
        hint.contains(
            r#"curl -H "Authorization: Bearer "'demo-admin-token' http://127.0.0.1:9400/metrics"#
        ),
        "{hint}"
    );
    assert!(!hint.contains('$'), "nothing the shell would expand: {hint}");
    assert!(batchcost::demo::curl_hint("it's", "a").contains(r"'it'\''s'"));
}

/// Every path the binary is given in this file exists in the repository.
#[test]
fn shipped_examples_exist() {
    for f in ["examples/batchcost.toml", "examples/local-stack.toml"] {
        assert!(Path::new(&repo().join(f)).exists(), "{f}");
    }
}

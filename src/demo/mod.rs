//! `batchcost demo`: the simulator in-process with accelerated time, a gateway on
//! 127.0.0.1:9400 with a temporary SQLite ledger and the repo's price table, three
//! projects with budgets, sample batches submitted through the real HTTP path (one of them
//! refused by its budget), and a summary of settled costs. `/metrics` stays up until
//! Ctrl-C; `--exit` stops after the summary.

mod anthropic;
mod gemini;
mod openai;
pub mod samples;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::net::TcpListener;

use crate::clock::SystemClock;
use crate::config::{Budget, Limits, Period, Secret, Server, Settings, Tracker, UpstreamSettings};
use crate::error::CliError;
use crate::gateway::{App, Running, start};
use crate::money::Money;

/// Arguments of `batchcost demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Stop after printing the summary instead of serving `/metrics` until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Gateway address.
    #[arg(long, default_value = "127.0.0.1:9400")]
    pub listen: SocketAddr,
    /// Price table.
    #[arg(long, default_value = "pricing.toml")]
    pub pricing: PathBuf,
    /// How much faster than real time the simulated upstream runs.
    #[arg(long, default_value_t = 3600.0)]
    pub time_scale: f64,
}

const PROJECTS: [(&str, &str); 5] = [
    ("search", "demo-search-key"),
    ("support", "demo-support-key"),
    ("evals", "demo-evals-key"),
    openai::PROJECT,
    gemini::PROJECT,
];

/// The demo's admin token: `$BATCHCOST_ADMIN_TOKEN`, else a fixed demo value.
pub fn admin_token() -> String {
    std::env::var("BATCHCOST_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| "demo-admin-token".into())
}

fn budget(name: &str, project: Option<&str>, period: Period, usd: i64, alert_at: &[f64]) -> Budget {
    Budget {
        name: name.into(),
        project: project.map(str::to_string),
        period,
        limit: Some(Money::from_usd(usd)),
        limit_input_tokens: None,
        limit_output_tokens: None,
        alert_at: alert_at.to_vec(),
        policy: Default::default(),
        provider: None,
        models: None,
    }
}

fn settings(args: &DemoArgs, upstream: String, db: &std::path::Path, pricing: PathBuf) -> Settings {
    Settings {
        config_path: PathBuf::from("(demo)"),
        listen: args.listen,
        public_url: String::new(),
        pricing_path: pricing,
        timezone: jiff::tz::TimeZone::system(),
        timezone_name: jiff::tz::TimeZone::system().iana_name().unwrap_or("UTC").to_string(),
        storage_url: format!("sqlite://{}", db.display()),
        durability: Default::default(),
        upstreams: vec![
            UpstreamSettings {
                name: "anthropic".into(),
                kind: "anthropic".into(),
                base_url: upstream.clone(),
                key: Secret::new("demo-provider-key"),
                timeout_secs: 120,
                max_attempts: 4,
            },
            UpstreamSettings {
                // The same simulator serves OpenAI's Files + Batches API too.
                name: "openai".into(),
                kind: "openai".into(),
                base_url: upstream.clone(),
                key: Secret::new("demo-provider-key"),
                timeout_secs: 120,
                max_attempts: 4,
            },
            UpstreamSettings {
                // The same simulator serves Gemini batch mode under /gemini.
                name: "gemini".into(),
                kind: "gemini".into(),
                base_url: format!("{upstream}/gemini"),
                key: Secret::new("demo-provider-key"),
                timeout_secs: 120,
                max_attempts: 4,
            },
        ],
        projects: PROJECTS.iter().map(|(p, k)| (p.to_string(), vec![Secret::new(*k)])).collect(),
        budgets: vec![
            budget("search-daily", Some("search"), Period::Day, 5, &[0.5, 0.8, 1.0]),
            // The triage batch reserves each request's cached prompt as a 1-hour cache write
            // (the worst case); the real cost is one write and 119 cache reads.
            budget("support-daily", Some("support"), Period::Day, 10, &[0.5, 0.8, 1.0]),
            budget("evals-daily", Some("evals"), Period::Day, 10, &[0.8, 1.0]),
            Budget {
                provider: Some("openai".into()),
                ..budget("insights-daily", Some(openai::PROJECT.0), Period::Day, 3, &[0.8, 1.0])
            },
            // Shared by every project, Anthropic and OpenAI alike.
            budget("all-monthly", None, Period::Month, 500, &[0.5, 0.9, 1.0]),
        ],
        admin_token: Secret::new(admin_token()),
        scoped_tokens: Default::default(),
        workflow: Default::default(),
        tracker: Tracker {
            poll_min_ms: 200,
            poll_max_ms: 2_000,
            reconcile_after_secs: 10,
            ..Default::default()
        },
        limits: Limits::default(),
        server: Server::default(),
    }
}

fn find_pricing(p: &std::path::Path) -> PathBuf {
    if p.exists() {
        p.to_path_buf()
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pricing.toml")
    }
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<(), CliError> {
    crate::telemetry::init();
    let dir = std::env::temp_dir().join(format!("batchcost-demo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).context("creating the demo's temporary folder")?;
    let result = run_in(&args, &dir).await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

async fn run_in(args: &DemoArgs, dir: &std::path::Path) -> Result<(), CliError> {
    let sim_listener = TcpListener::bind("127.0.0.1:0").await.context("binding the simulator")?;
    let sim_cfg = crate::simulator::SimConfig {
        api_key: "demo-provider-key".into(),
        time_scale: args.time_scale,
        seed: 42,
        errored_fraction: 0.01,
        ..Default::default()
    };
    let sim = crate::simulator::spawn(sim_cfg, sim_listener).await?;
    let listener = TcpListener::bind(args.listen).await.with_context(|| {
        format!("binding {} (is another batchcost running? try --listen 127.0.0.1:0)", args.listen)
    })?;
    let mut s = settings(args, sim.base_url(), &dir.join("ledger.db"), find_pricing(&args.pricing));
    s.public_url =
        format!("http://{}", listener.local_addr().context("reading the bound address")?);
    let app = App::build(s, Arc::new(SystemClock)).await?;
    let running = start(app, listener).await?;
    println!("listening on http://{}", running.addr);
    let outcome = drive(&running).await;
    let summary = match outcome {
        Ok(s) => s,
        Err(e) => {
            running.shutdown().await;
            sim.shutdown().await;
            return Err(CliError::Runtime(e));
        }
    };
    println!("{summary}");
    if !args.exit {
        println!("{}", curl_hint(&admin_token(), &running.addr.to_string()));
        crate::shutdown::signal().await;
    }
    running.shutdown().await;
    sim.shutdown().await;
    Ok(())
}

/// What to paste to see the metrics: the token actually in use, quoted for the shell (a
/// fresh shell has no `$BATCHCOST_ADMIN_TOKEN`).
pub fn curl_hint(token: &str, addr: &str) -> String {
    let quoted = format!("'{}'", token.replace('\'', r"'\''"));
    format!(
        "metrics: curl -H \"Authorization: Bearer \"{quoted} http://{addr}/metrics   (Ctrl-C to stop)\n\
         budgets: curl -H \"Authorization: Bearer \"{quoted} http://{addr}/api/budgets"
    )
}

/// One submission's outcome.
struct Submitted {
    project: &'static str,
    title: &'static str,
    id: Option<String>,
    refusal: Option<String>,
}

impl Submitted {
    fn new(project: &'static str, title: &'static str, r: Result<String, String>) -> Self {
        let (id, refusal) = match r {
            Ok(id) => (Some(id), None),
            Err(why) => (None, Some(why)),
        };
        Submitted { project, title, id, refusal }
    }
}

/// The line for an OpenAI or Gemini error envelope (both put it under `error.message`).
fn refused(e: Value) -> String {
    format!("refused: {}", e["error"]["message"].as_str().unwrap_or("?"))
}

/// Submits the samples as clients would, waits for settlement, returns the summary text.
async fn drive(running: &Running) -> anyhow::Result<String> {
    let base = format!("http://{}", running.addr);
    let http = reqwest::Client::new();
    let mut subs = Vec::new();
    for b in samples::batches() {
        let key =
            PROJECTS.iter().find(|(p, _)| *p == b.project).map(|(_, k)| *k).unwrap_or_default();
        let r = anthropic::submit(&http, &base, key, &b.body).await?;
        subs.push(Submitted::new(b.project, b.title, r));
    }
    let r = openai::submit(&http, &base).await?.map_err(refused);
    subs.push(Submitted::new(openai::PROJECT.0, "feedback triage (OpenAI, gpt-5-mini)", r));
    let r = gemini::submit(&http, &base).await?.map_err(refused);
    subs.push(Submitted::new(gemini::PROJECT.0, gemini::TITLE, r));
    let token = admin_token();
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut records = Vec::new();
    for s in &subs {
        let Some(id) = &s.id else {
            records.push(None);
            continue;
        };
        loop {
            let v: Value = http
                .get(format!("{base}/api/batches/{id}"))
                .bearer_auth(&token)
                .send()
                .await?
                .json()
                .await?;
            if v["status"] == "settled" {
                records.push(Some(v));
                break;
            }
            if Instant::now() > deadline {
                bail!("batch {id} did not settle within 180 s");
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    let budgets: Value =
        http.get(format!("{base}/api/budgets")).bearer_auth(&token).send().await?.json().await?;
    Ok(render(&subs, &records, &budgets, &running.app.pricing))
}

/// Tokens a batch read from the prompt cache, and what that saved against sending them
/// as plain input (both at batch prices of the entry in force now).
fn cache_figures(v: &Value, pricing: &crate::pricing::PriceTable) -> (u64, u64, Money) {
    let (mut written, mut read, mut saved) = (0, 0, Money::ZERO);
    for m in v["models"].as_array().into_iter().flatten() {
        let t = &m["tokens"];
        let r = t["cache_read"].as_u64().unwrap_or(0);
        written +=
            t["cache_write_5m"].as_u64().unwrap_or(0) + t["cache_write_1h"].as_u64().unwrap_or(0);
        read += r;
        if let Some(p) = pricing.resolve(m["model"].as_str().unwrap_or(""), jiff::Timestamp::now())
        {
            saved += (p.batch.input - p.batch.cache_read).times(r);
        }
    }
    (written, read, saved)
}

/// A UTC timestamp from `/api/budgets` in the machine's zone, with its offset.
fn local_time(utc: &str) -> String {
    utc.parse::<jiff::Timestamp>()
        .map(|t| crate::refusal::local_rfc3339(t, &jiff::tz::TimeZone::system()))
        .unwrap_or_else(|_| utc.to_string())
}

fn render(
    subs: &[Submitted],
    records: &[Option<Value>],
    budgets: &Value,
    pricing: &crate::pricing::PriceTable,
) -> String {
    let mut out = String::from("\nSettled batches\n");
    out += &format!(
        "{:<8} {:<48} {:>9} {:>8} {:>11} {:>11} {:>11} {:>11}\n",
        "project", "batch", "succeeded", "errored", "reserved", "cost", "list cost", "saved"
    );
    let (mut cost, mut list) = (Money::ZERO, Money::ZERO);
    let mut cache_lines = String::new();
    let usd = |v: &Value| Money::parse_usd(v.as_str().unwrap_or("0")).unwrap_or(Money::ZERO);
    for (s, r) in subs.iter().zip(records) {
        match (r, &s.refusal) {
            (Some(v), _) => {
                let sum = |k: &str| {
                    v["models"]
                        .as_array()
                        .map(|a| {
                            a.iter().map(|m| m["requests"][k].as_u64().unwrap_or(0)).sum::<u64>()
                        })
                        .unwrap_or(0)
                };
                let (c, l) = (usd(&v["cost_usd"]), usd(&v["list_cost_usd"]));
                let (written, read, saved) = cache_figures(v, pricing);
                if written + read > 0 {
                    cache_lines += &format!(
                        "{:<8} {:<48} cache write {written} tokens, cache read {read} tokens, saved ${} against uncached input\n",
                        s.project,
                        s.title,
                        saved.usd_rounded(4)
                    );
                }
                cost += c;
                list += l;
                out += &format!(
                    "{:<8} {:<48} {:>9} {:>8} {:>11} {:>11} {:>11} {:>11}\n",
                    s.project,
                    s.title,
                    sum("succeeded"),
                    sum("errored"),
                    format!("${}", usd(&v["reserved_usd"]).usd_rounded(4)),
                    format!("${}", c.usd_rounded(4)),
                    format!("${}", l.usd_rounded(4)),
                    format!("${}", (l - c).usd_rounded(4)),
                );
            }
            (None, Some(why)) => out += &format!("{:<8} {:<48} {why}\n", s.project, s.title),
            (None, None) => {}
        }
    }
    out += &format!(
        "{:<8} {:<48} {:>9} {:>8} {:>11} {:>11} {:>11} {:>11}\n",
        "total",
        "",
        "",
        "",
        "",
        format!("${}", cost.usd_rounded(4)),
        format!("${}", list.usd_rounded(4)),
        format!("${}", (list - cost).usd_rounded(4))
    );
    if !cache_lines.is_empty() {
        out += "\nPrompt caching (included in cost above)\n";
        out += &cache_lines;
    }
    out += "\nBudgets (current windows)\n";
    for b in budgets["budgets"].as_array().into_iter().flatten() {
        out += &format!(
            "{:<14} {:<8} {:<6} limit ${:<8} spent ${:<12} reserved ${:<10} resets {}\n",
            b["name"].as_str().unwrap_or(""),
            b["project"].as_str().unwrap_or(""),
            b["period"].as_str().unwrap_or(""),
            b["limit_usd"].as_str().unwrap_or("-"),
            b["spent_usd"].as_str().unwrap_or(""),
            b["reserved_usd"].as_str().unwrap_or(""),
            local_time(b["window_end"].as_str().unwrap_or("")),
        );
    }
    out
}

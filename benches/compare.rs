//! Side-by-side benchmark (issue 17): the same payloads posted straight to the simulator
//! and through the gateway in one run, each figure also as a ratio to the direct figure
//! and to a plain typed parse of the same bytes (serde into borrowed structs), so the
//! figures survive a noisy machine. Run: `scripts/bench-compare` (or
//! `cargo bench --bench compare`; `REQUESTS=` sets the big batch's size).
//!
//! Measures: the 100,000-request (~193 MB) create (time added, peak RSS / body),
//! `batchcost estimate` on the same bytes, the median a 10-request create adds, admission
//! with 16 clients (and that a budget fitting exactly K submissions admits exactly K),
//! and settlement of the big batch's results (lines/s).

mod support;

use std::borrow::Cow;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use batchcost::estimate::EstimateOptions;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use batchcost::providers::anthropic::results::Lines;
use batchcost::settle::Tally;
use serde::Deserialize;
use support::{ADMIN, CLIENT, EXACT_CLIENT, GATEWAY_ENV, KEY, Proc, body, median, ms, post};

/// A create body as a plain typed parse sees it.
#[derive(Deserialize)]
struct TypedBody<'a> {
    #[serde(borrow)]
    requests: Vec<TypedRequest<'a>>,
}

#[derive(Deserialize)]
struct TypedRequest<'a> {
    #[serde(borrow)]
    custom_id: Cow<'a, str>,
    #[serde(borrow)]
    params: TypedParams<'a>,
}

#[derive(Deserialize)]
struct TypedParams<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    max_tokens: u64,
    #[serde(borrow)]
    messages: Vec<TypedMessage<'a>>,
}

#[derive(Deserialize)]
struct TypedMessage<'a> {
    #[serde(borrow)]
    role: Cow<'a, str>,
    #[serde(borrow)]
    content: Cow<'a, str>,
}

/// One results line as a plain typed parse sees it.
#[derive(Deserialize)]
struct TypedResultLine<'a> {
    #[serde(borrow)]
    custom_id: Cow<'a, str>,
    #[serde(borrow)]
    result: TypedResult<'a>,
}

#[derive(Deserialize)]
struct TypedResult<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow, default)]
    message: Option<TypedResultMessage<'a>>,
}

#[derive(Deserialize)]
struct TypedResultMessage<'a> {
    #[serde(borrow)]
    model: Cow<'a, str>,
    usage: TypedUsage,
}

#[derive(Deserialize)]
struct TypedUsage {
    input_tokens: u64,
    output_tokens: u64,
    #[serde(default)]
    cache_creation_input_tokens: Option<u64>,
    #[serde(default)]
    cache_read_input_tokens: Option<u64>,
}

/// Best of `n` runs of `f`, in seconds (the floor is what a noisy machine hides least).
fn best_of(n: usize, mut f: impl FnMut() -> u64) -> f64 {
    let mut best = f64::MAX;
    let mut sink = 0u64;
    for _ in 0..n {
        let t = Instant::now();
        sink = sink.wrapping_add(f());
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(sink);
    best
}

/// CPU seconds of `n` runs of `f`, per run (this process: the bench's other threads idle).
fn cpu_per_run(n: usize, mut f: impl FnMut() -> u64) -> f64 {
    let c = support::self_cpu();
    let mut sink = 0u64;
    for _ in 0..n {
        sink = sink.wrapping_add(f());
    }
    std::hint::black_box(sink);
    (support::self_cpu() - c).as_secs_f64() / n as f64
}

/// One line of the CPU-time table.
fn cpu_row(
    cpu: &mut Vec<String>,
    what: &str,
    direct: Option<f64>,
    gateway: f64,
    typed: f64,
    unit: &str,
) {
    let scale = if unit == "ms" {
        1e3
    } else if unit == "us" {
        1e6
    } else {
        1.0
    };
    cpu.push(format!(
        "{what:<44} {:>12} {:>12.3} {:>14} {:>14.1}x",
        direct.map_or(String::new(), |d| format!("{:.3}", d * scale)),
        gateway * scale,
        direct.map_or(String::new(), |d| format!("{:.2}x", gateway / d)),
        gateway / typed,
    ));
}

fn typed_parse(bytes: &[u8]) -> u64 {
    let b: TypedBody = serde_json::from_slice(bytes).expect("typed parse");
    b.requests
        .iter()
        .map(|r| {
            let m = &r.params.messages;
            (r.custom_id.len() + r.params.model.len()) as u64
                + r.params.max_tokens
                + m.iter().map(|m| (m.role.len() + m.content.len()) as u64).sum::<u64>()
        })
        .sum()
}

fn typed_results(results: &[u8]) -> u64 {
    let mut n = 0;
    for line in results.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
        let l: TypedResultLine = serde_json::from_slice(line).expect("typed results line");
        n += (l.custom_id.len() + l.result.kind.len()) as u64;
        if let Some(m) = l.result.message {
            let u = &m.usage;
            n += m.model.len() as u64 + u.input_tokens + u.output_tokens;
            n +=
                u.cache_creation_input_tokens.unwrap_or(0) + u.cache_read_input_tokens.unwrap_or(0);
        }
    }
    n
}

/// `batchcost estimate` on `file` under `/usr/bin/time -v`: (wall s, peak RSS bytes,
/// user + system CPU s).
fn estimate_process(file: &Path, pricing: &Path) -> Option<(f64, u64, f64)> {
    let out = Command::new("/usr/bin/time")
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_batchcost"))
        .args(["estimate", "--format", "json", "--pricing"])
        .arg(pricing)
        .arg(file)
        .output()
        .ok()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = String::from_utf8_lossy(&out.stderr);
    let field = |name: &str| {
        report.lines().find_map(|l| l.trim().strip_prefix(name).map(|v| v.trim().to_string()))
    };
    let rss_kb: u64 = field("Maximum resident set size (kbytes):")?.parse().ok()?;
    let wall = field("Elapsed (wall clock) time (h:mm:ss or m:ss):")?;
    let secs = wall.split(':').fold(0.0, |acc, p| acc * 60.0 + p.parse::<f64>().unwrap_or(0.0));
    let user: f64 = field("User time (seconds):")?.parse().ok()?;
    let sys: f64 = field("System time (seconds):")?.parse().ok()?;
    Some((secs, rss_kb * 1024, user + sys))
}

/// `n` small creates from 16 clients at once: submissions per second and how many of
/// them were accepted.
fn burst(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    tag: &str,
    n: usize,
) -> (f64, usize) {
    let t = Instant::now();
    let ok = std::thread::scope(|s| {
        let handles: Vec<_> = (0..16)
            .map(|c| {
                s.spawn(move || {
                    (0..n / 16)
                        .filter(|i| {
                            let b = body(&format!("{tag}{c}-{i}"), 2, 100);
                            support::try_post(http, url, key, b).1.is_success()
                        })
                        .count()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    (n as f64 / t.elapsed().as_secs_f64(), ok)
}

fn main() {
    let requests: usize =
        std::env::var("REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let pricing = Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    let table = PriceTable::load(&pricing).expect("pricing.toml loads");
    let dir = tempfile::tempdir().unwrap();

    // The hold of one small submission, for a budget that fits exactly EXACT of them.
    const EXACT: usize = 200;
    const LEASE: Duration = Duration::from_secs(3);
    let opts = EstimateOptions::new(jiff::Timestamp::now(), 0.5).for_provider("anthropic");
    let hold = estimate_bytes(&body("x0-0", 2, 100), &table, &opts).unwrap().worst.cost;
    let limit = hold.to_f64_usd() * (EXACT as f64 + 0.5);

    let sim = Proc::simulator();
    // Three-second leases (the least the config takes): the first gateway is killed holding the big batch's, and the
    // simulator's clock (100,000x) archives its results 29 upstream days, 25 s, after it
    // ends. With the default 30 s lease the second gateway would only ever see a 404.
    let exact_limit = format!("{limit:.12}");
    let setup = support::Setup {
        exact_limit_usd: Some(&exact_limit),
        lease_secs: LEASE.as_secs(),
        ..support::Setup::new("anthropic", &sim.url)
    };
    let cfg = support::config_for(dir.path(), &setup);
    let gw = Proc::start(&["serve", "--config", cfg.to_str().unwrap()], &GATEWAY_ENV);
    let http =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();
    let mut rows: Vec<[String; 6]> = Vec::new();

    // 1. 10-request creates, alternating direct and through the gateway.
    let small = body("p", 10, 200);
    let typed_small = best_of(200, || typed_parse(&small));
    let mut cpu: Vec<String> = Vec::new();
    let typed_small_cpu = cpu_per_run(20_000, || typed_parse(&small));
    let (mut direct, mut via) = (Vec::new(), Vec::new());
    let (mut sim_cpu, mut gw_cpu) = (Duration::ZERO, Duration::ZERO);
    for i in 0..300 {
        let c = sim.cpu();
        direct.push(post(&http, &sim.url, KEY, body(&format!("d{i}"), 10, 200)).0);
        sim_cpu += sim.cpu() - c;
        let c = gw.cpu();
        via.push(post(&http, &gw.url, CLIENT, body(&format!("g{i}"), 10, 200)).0);
        gw_cpu += gw.cpu() - c;
    }
    cpu_row(
        &mut cpu,
        "10-request create, CPU per create (ms)",
        Some(sim_cpu.as_secs_f64() / 300.0),
        gw_cpu.as_secs_f64() / 300.0,
        typed_small_cpu,
        "ms",
    );
    let (d, g) = (median(direct), median(via));
    let added = g.saturating_sub(d);
    rows.push([
        "10-request create, median (ms)".into(),
        format!("{:.3}", ms(d)),
        format!("{:.3}", ms(g)),
        format!("+{:.3}", ms(added)),
        format!("{:.2}x", ms(g) / ms(d)),
        format!(
            "added = {:.0}x the typed parse ({:.1} us)",
            added.as_secs_f64() / typed_small,
            typed_small * 1e6
        ),
    ]);

    // 2. Admission: 16 clients, 2,000 small submissions each way.
    let typed_tiny = best_of(200, || typed_parse(&body("t", 2, 100)));
    let typed_tiny_cpu = cpu_per_run(50_000, || typed_parse(&body("t", 2, 100)));
    let c = sim.cpu();
    let (rate_direct, _) = burst(&http, &sim.url, KEY, "ad", 2_000);
    let sim_cpu = (sim.cpu() - c).as_secs_f64() / 2_000.0;
    let c = gw.cpu();
    let (rate_gw, admitted) = burst(&http, &gw.url, CLIENT, "ag", 2_000);
    let gw_cpu = (gw.cpu() - c).as_secs_f64() / 2_000.0;
    cpu_row(
        &mut cpu,
        "admission, CPU per submission (us)",
        Some(sim_cpu),
        gw_cpu,
        typed_tiny_cpu,
        "us",
    );
    assert_eq!(admitted, 2_000, "every admission fits the big budget");
    rows.push([
        "admission, 16 clients (/s)".into(),
        format!("{rate_direct:.0}"),
        format!("{rate_gw:.0}"),
        String::new(),
        format!("{:.2}x", rate_gw / rate_direct),
        format!("typed parse alone {:.0}/s", 1.0 / typed_tiny),
    ]);
    // The exact-capacity race at the same speed: more than fit, exactly EXACT admitted.
    let (_, exact_ok) = burst(&http, &gw.url, EXACT_CLIENT, "ex", EXACT + 16 * 8);
    println!(
        "exact capacity: {exact_ok} of {} admitted against a budget fitting {EXACT}: {}",
        EXACT + 16 * 8,
        if exact_ok == EXACT { "no overshoot" } else { "WRONG" }
    );
    assert_eq!(exact_ok, EXACT, "the budget admitted more or fewer than fit");

    // 3. The big create.
    let big = body("bigd", requests, 1_900);
    let size = big.len();
    let typed_big = best_of(3, || typed_parse(&big));
    let typed_big_cpu = cpu_per_run(3, || typed_parse(&big));
    let c = sim.cpu();
    let (t_direct, _) = post(&http, &sim.url, KEY, big);
    let sim_cpu = (sim.cpu() - c).as_secs_f64();
    let base_hwm = gw.kb("VmHWM:");
    let big_gw = body("bigg", requests, 1_900);
    let c = gw.cpu();
    let (t_gw, v) = post(&http, &gw.url, CLIENT, big_gw);
    let gw_cpu = (gw.cpu() - c).as_secs_f64();
    cpu_row(&mut cpu, "big create, CPU (s)", Some(sim_cpu), gw_cpu, typed_big_cpu, "s");
    let id = v["id"].as_str().unwrap().to_string();
    let hwm = gw.kb("VmHWM:") * 1024;
    // Settlement is timed in a fresh process: stop this one before it settles the batch
    // (killed mid-settlement is fine: nothing is recorded until the whole file is in).
    let status = |url: &str| -> serde_json::Value {
        let r = http.get(format!("{url}/api/batches/{id}")).bearer_auth(ADMIN).send().unwrap();
        r.json().unwrap()
    };
    let early = status(&gw.url)["status"] == "settled";
    drop(gw);
    // Its lease on the batch runs out first, so the clock below times settlement, not
    // the takeover (the wait is the config's lease length, not a guess at a server).
    std::thread::sleep(LEASE + Duration::from_millis(200));
    let added = t_gw.saturating_sub(t_direct).as_secs_f64();
    rows.push([
        format!("{requests}-request create, {:.0} MB (s)", size as f64 / 1e6),
        format!("{:.3}", t_direct.as_secs_f64()),
        format!("{:.3}", t_gw.as_secs_f64()),
        format!("+{added:.3}"),
        format!("{:.2}x", t_gw.as_secs_f64() / t_direct.as_secs_f64()),
        format!("added = {:.2}x the typed parse ({typed_big:.3} s)", added / typed_big),
    ]);
    rows.push([
        "  gateway peak RSS / body".into(),
        String::new(),
        format!("{:.0} MB", hwm as f64 / 1e6),
        String::new(),
        format!("{:.2}x body", hwm as f64 / size as f64),
        format!("before the upload {:.0} MB", base_hwm as f64 / 1024.0),
    ]);

    // 5. Settlement by a fresh gateway process, and the parsers alone. The clock starts
    // when a client's retrieve shows the gateway the batch has ended (which settles it at
    // once), not at the process start: the tracker's schedule is not settlement speed.
    let gw2 = Proc::start(&["serve", "--config", cfg.to_str().unwrap()], &GATEWAY_ENV);
    let (c, sim_c) = (gw2.cpu(), sim.cpu());
    let idle_hwm = gw2.kb("VmHWM:");
    let t = Instant::now();
    let seen = http
        .get(format!("{}/v1/messages/batches/{id}", gw2.url))
        .header("x-api-key", CLIENT)
        .header("anthropic-version", "2023-06-01")
        .send()
        .unwrap();
    assert!(seen.status().is_success(), "retrieve: {}", seen.status());
    loop {
        let r = status(&gw2.url);
        if r["status"] == "settled" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "not settled in 20 s: {r}");
        std::thread::sleep(Duration::from_millis(5));
    }
    let settle_rate = requests as f64 / t.elapsed().as_secs_f64();
    let settle_cpu = (gw2.cpu() - c).as_secs_f64();
    // Flat memory: the peak while settling, against the idle process before it began
    // (the results file is about 1 KB a line; holding it would show here).
    let settle_hwm = gw2.kb("VmHWM:");
    let settle_sim_cpu = (sim.cpu() - sim_c).as_secs_f64();
    let results = http
        .get(format!("{}/v1/messages/batches/{id}/results", sim.url))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let tally = best_of(3, || {
        let mut t =
            Tally::new(&Lines, &table, jiff::Timestamp::now(), Some("claude-haiku-4-5".into()));
        for line in results.split(|b| *b == b'\n') {
            t.add_line(line).unwrap();
        }
        t.lines
    });
    let typed_res = best_of(3, || typed_results(&results));
    let typed_res_cpu = cpu_per_run(3, || typed_results(&results));
    cpu_row(
        &mut cpu,
        "settlement, CPU (s; simulator: results)",
        Some(settle_sim_cpu),
        settle_cpu,
        typed_res_cpu,
        "s",
    );
    let lines = requests as f64;
    rows.push([
        "settlement after restart (lines/s)".into(),
        String::new(),
        format!("{settle_rate:.0}"),
        String::new(),
        format!("parser alone {:.0}/s", lines / tally),
        format!(
            "{:.2}x the typed parse ({:.0}/s)",
            (lines / typed_res) / settle_rate,
            lines / typed_res
        ),
    ]);
    rows.push([
        "  settling gateway peak RSS".into(),
        String::new(),
        format!("{:.0} MB", settle_hwm as f64 / 1024.0),
        String::new(),
        format!("+{:.1} MB", settle_hwm.saturating_sub(idle_hwm) as f64 / 1024.0),
        format!(
            "idle before {:.0} MB; results {:.0} MB",
            idle_hwm as f64 / 1024.0,
            results.len() as f64 / 1e6
        ),
    ]);
    drop(gw2);
    if early {
        println!(
            "note: the first gateway had settled the big batch already; the settlement rate is not meaningful"
        );
    }

    // 4. `batchcost estimate` on the same bytes.
    let file = dir.path().join("big.json");
    std::fs::write(&file, body("bigg", requests, 1_900)).unwrap();
    if let Some((secs, rss, est_cpu)) = estimate_process(&file, &pricing) {
        cpu_row(&mut cpu, "batchcost estimate, CPU (s)", None, est_cpu, typed_big_cpu, "s");
        rows.push([
            "batchcost estimate, same body (s)".into(),
            String::new(),
            format!("{secs:.3}"),
            String::new(),
            format!("{:.2}x body RSS", rss as f64 / size as f64),
            format!("{:.2}x the typed parse", secs / typed_big),
        ]);
    }
    let _ = std::fs::remove_file(&file);

    println!();
    println!(
        "{:<40} {:>10} {:>10} {:>10} {:>18}  vs typed parse",
        "measure", "direct", "gateway", "added", "vs direct"
    );
    for r in &rows {
        println!("{:<40} {:>10} {:>10} {:>10} {:>18}  {}", r[0], r[1], r[2], r[3], r[4], r[5]);
    }
    println!();
    println!(
        "{:<44} {:>12} {:>12} {:>14} {:>15}",
        "CPU time (user + system, 10 ms ticks)",
        "simulator",
        "gateway",
        "vs simulator",
        "vs typed parse"
    );
    for l in &cpu {
        println!("{l}");
    }
}

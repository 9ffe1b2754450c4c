//! Gateway benchmarks (issue 4 targets). Run: `cargo bench --bench gateway`.
//!
//! Starts the release binary twice (`simulate` and `serve`) on loopback and measures, with
//! the simulator as the baseline:
//! - the time a 100,000-request (~200 MB) batch adds to a submission, and the gateway's
//!   peak memory relative to the body;
//! - the latency of a small request arriving while that upload is in progress;
//! - the median time a 10-request create adds;
//! - admission throughput of small submissions (SQLite ledger);
//! - settlement: a fresh gateway process settling an ended 100,000-line batch (time, CPU
//!   time, peak RSS),
//!   and the in-process results parser on its own (lines per second).

mod support;

use std::time::{Duration, Instant};

use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::results::Lines;
use batchcost::settle::Tally;
use support::{ADMIN, CLIENT, GATEWAY_ENV, KEY, Proc, body, median, ms, post};

fn main() {
    let dir = tempfile::tempdir().unwrap();
    let env = GATEWAY_ENV;
    let sim = Proc::simulator();
    let cfg = support::config(dir.path(), &sim.url, None);
    let gw = Proc::start(&["serve", "--config", cfg.to_str().unwrap()], &env);
    let http =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();

    // 1. 10-request creates: direct vs through the gateway.
    let (mut direct, mut via) = (Vec::new(), Vec::new());
    for i in 0..200 {
        direct.push(post(&http, &sim.url, KEY, body(&format!("d{i}"), 10, 200)).0);
        via.push(post(&http, &gw.url, CLIENT, body(&format!("g{i}"), 10, 200)).0);
    }
    let (d, g) = (median(direct), median(via));
    println!(
        "10-request create: direct median {:.2} ms, via gateway {:.2} ms, added {:.2} ms",
        ms(d),
        ms(g),
        ms(g.saturating_sub(d))
    );

    // 2. Admission throughput: 2,000 small submissions from 16 clients.
    let n = 2_000;
    let t = Instant::now();
    std::thread::scope(|s| {
        for c in 0..16 {
            let http = &http;
            let url = &gw.url;
            s.spawn(move || {
                for i in 0..n / 16 {
                    post(http, url, CLIENT, body(&format!("t{c}-{i}"), 2, 100));
                }
            });
        }
    });
    let secs = t.elapsed().as_secs_f64();
    println!(
        "admission: {n} submissions in {secs:.2} s = {:.0}/s (16 concurrent clients)",
        n as f64 / secs
    );

    // 3. The 100,000-request batch.
    let big_direct = body("bigd", 100_000, 1_900);
    let size = big_direct.len();
    let (t_direct, _) = post(&http, &sim.url, KEY, big_direct);
    let big = body("bigg", 100_000, 1_900);
    let base_hwm = gw.kb("VmHWM:");
    let small_latency = std::thread::scope(|s| {
        let h = s.spawn(|| post(&http, &gw.url, CLIENT, big));
        // Wait until the upload is well under way, then time a small request.
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        post(&http, &gw.url, CLIENT, body("during", 5, 100));
        let lat = t.elapsed();
        let t = Instant::now();
        let ok =
            http.get(format!("{}/api/budgets", gw.url)).bearer_auth(ADMIN).send().unwrap().status();
        assert!(ok.is_success());
        let admin_lat = t.elapsed();
        let (t_gw, v) = h.join().unwrap();
        (lat, admin_lat, t_gw, v)
    });
    let (lat, admin_lat, t_gw, v) = small_latency;
    assert!(v["id"].is_string(), "{v}");
    let hwm = gw.kb("VmHWM:");
    println!(
        "100,000 requests / {:.0} MB: direct {:.2} s, via gateway {:.2} s, added {:.2} s; gateway peak RSS {:.0} MB ({:.2}x body; before {:.0} MB)",
        size as f64 / 1e6,
        t_direct.as_secs_f64(),
        t_gw.as_secs_f64(),
        t_gw.saturating_sub(t_direct).as_secs_f64(),
        hwm as f64 / 1024.0,
        hwm as f64 * 1024.0 / size as f64,
        base_hwm as f64 / 1024.0,
    );
    println!(
        "during the big upload: a small create (gateway + simulator) {:.1} ms, GET /api/budgets {:.1} ms",
        ms(lat),
        ms(admin_lat)
    );
    // Baseline: the same small create sent straight to the simulator during a big upload.
    let base = std::thread::scope(|s| {
        let h = s.spawn(|| post(&http, &sim.url, KEY, body("bigd2", 100_000, 1_900)));
        std::thread::sleep(Duration::from_millis(300));
        let t = Instant::now();
        post(&http, &sim.url, KEY, body("during-direct", 5, 100));
        let lat = t.elapsed();
        h.join().unwrap();
        lat
    });
    println!(
        "baseline: the small create straight to the simulator during a big direct upload {:.1} ms",
        ms(base)
    );

    // 4. Settlement by a fresh process (its peak RSS is the settlement's own). The batch is
    // created through a gateway in front of a frozen simulator, that gateway stops, upstream
    // time then jumps past the batch's end (results stay while time stands still), and only
    // then does the measured gateway start: it resumes the batch and settles it whole.
    drop(gw);
    let frozen = Proc::frozen_simulator();
    let dir2 = tempfile::tempdir().unwrap();
    let cfg2 = support::config(dir2.path(), &frozen.url, None);
    let id = {
        let submitter = Proc::start(&["serve", "--config", cfg2.to_str().unwrap()], &env);
        let (_, v) = post(&http, &submitter.url, CLIENT, body("bigs", 100_000, 1_900));
        v["id"].as_str().unwrap().to_string()
    };
    let advanced = http
        .post(format!("{}/_sim/advance", frozen.url))
        .header("x-api-key", KEY)
        .json(&serde_json::json!({"seconds": 86_000}))
        .send()
        .unwrap();
    assert!(advanced.status().is_success());
    let upstream: serde_json::Value = http
        .get(format!("{}/v1/messages/batches/{id}", frozen.url))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(upstream["processing_status"], "ended", "{upstream}");
    assert_eq!(upstream["request_counts"]["succeeded"], 100_000, "{upstream}");
    let gw2 = Proc::start(&["serve", "--config", cfg2.to_str().unwrap()], &env);
    let (t, cpu0) = (Instant::now(), gw2.cpu());
    let mut peak_rss = 0;
    loop {
        peak_rss = peak_rss.max(gw2.kb("VmRSS:"));
        let r: serde_json::Value = http
            .get(format!("{}/api/batches/{id}", gw2.url))
            .bearer_auth(ADMIN)
            .send()
            .unwrap()
            .json()
            .unwrap();
        if r["status"] == "settled" {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(300), "not settled: {r}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t.elapsed().as_secs_f64();
    let cpu = gw2.cpu().saturating_sub(cpu0).as_secs_f64();
    println!(
        "settlement after restart of an ended 100,000-line batch (resume, first poll, download, parse, price, record): {took:.2} s = {:.0} lines/s; gateway CPU {cpu:.2} s = {:.0} lines per CPU-s; peak RSS {:.0} MB (VmHWM {:.0} MB)",
        100_000.0 / took,
        100_000.0 / cpu.max(0.01),
        peak_rss as f64 / 1024.0,
        gw2.kb("VmHWM:") as f64 / 1024.0
    );

    // 5. The results parser alone.
    let results = http
        .get(format!("{}/v1/messages/batches/{id}/results", frozen.url))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .send()
        .unwrap()
        .bytes()
        .unwrap();
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let t = Instant::now();
    let mut tally =
        Tally::new(&Lines, &table, jiff::Timestamp::now(), Some("claude-haiku-4-5".into()));
    for line in results.split(|b| *b == b'\n') {
        tally.add_line(line).unwrap();
    }
    let lines = tally.lines;
    let secs = t.elapsed().as_secs_f64();
    println!(
        "results parser: {lines} lines ({:.0} MB) in {secs:.3} s = {:.0} lines/s",
        results.len() as f64 / 1e6,
        lines as f64 / secs
    );
}

//! OpenAI surface benchmarks (issue 11 targets). Run: `cargo bench --bench openai`.
//!
//! Starts the release binary twice (`simulate` and `serve`) on loopback and measures, with
//! the simulator reached directly as the baseline:
//! - the time a 50,000-line (~100 MB) batch input file adds to an upload through the
//!   gateway (validated and priced while it streams through), and the gateway's peak RSS;
//! - the median time a 10-line upload and a batch create add;
//! - in process: the streaming checker alone (MB/s) and settlement of 200,000 output lines
//!   through the OpenAI line decoder (lines/s).

mod support;

use std::io::Write;
use std::time::{Duration, Instant};

use batchcost::pricing::PriceTable;
use batchcost::providers::openai::batchfile::{Checker, Limits};
use batchcost::providers::openai::provider::Lines;
use batchcost::settle::Tally;
use support::{CLIENT, GATEWAY_ENV, KEY, Proc, Setup, median, ms};

/// A batch input file of `n` chat lines of about `bytes_each` bytes of prompt.
fn file(tag: &str, n: usize, bytes_each: usize) -> Vec<u8> {
    let filler: String =
        "The quarterly report shows steady growth in every region. ".repeat(bytes_each / 58 + 1);
    let text = &filler[..bytes_each.min(filler.len())];
    let mut out = Vec::with_capacity(n * (bytes_each + 200));
    for i in 0..n {
        writeln!(
            out,
            r#"{{"custom_id":"{tag}-{i:06}","method":"POST","url":"/v1/chat/completions","body":{{"model":"gpt-5-mini","max_completion_tokens":256,"messages":[{{"role":"user","content":"{text}"}}]}}}}"#
        )
        .unwrap();
    }
    out
}

fn upload(
    http: &reqwest::blocking::Client,
    url: &str,
    key: &str,
    body: Vec<u8>,
) -> (Duration, String) {
    let part = reqwest::blocking::multipart::Part::bytes(body).file_name("in.jsonl");
    let form =
        reqwest::blocking::multipart::Form::new().text("purpose", "batch").part("file", part);
    let t = Instant::now();
    let r = http
        .post(format!("{url}/v1/files"))
        .bearer_auth(key)
        .multipart(form)
        .send()
        .expect("upload");
    let status = r.status();
    let v: serde_json::Value = r.json().unwrap_or_default();
    assert!(status.is_success(), "upload failed: {status} {v}");
    (t.elapsed(), v["id"].as_str().unwrap_or_default().to_string())
}

fn create(http: &reqwest::blocking::Client, url: &str, key: &str, file_id: &str) -> Duration {
    let body = serde_json::json!({"input_file_id": file_id, "endpoint": "/v1/chat/completions", "completion_window": "24h"});
    let t = Instant::now();
    let r =
        http.post(format!("{url}/v1/batches")).bearer_auth(key).json(&body).send().expect("create");
    let status = r.status();
    let text = r.text().unwrap_or_default();
    assert!(status.is_success(), "create failed: {status} {text}");
    t.elapsed()
}

fn in_process(table: &PriceTable) {
    let big = file("cp", 50_000, 2_000);
    let at = jiff::Timestamp::now();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut c = Checker::new(table, "openai", at, Limits::default());
        for chunk in big.chunks(64 * 1024) {
            c.push(chunk).unwrap();
        }
        let s = c.finish().unwrap();
        assert_eq!(s.requests, 50_000);
        best = best.min(t.elapsed());
    }
    println!(
        "checker alone: {:.1} MB in {:.0} ms ({:.0} MB/s)",
        big.len() as f64 / 1e6,
        ms(best),
        big.len() as f64 / 1e6 / best.as_secs_f64()
    );

    let line = r#"{"id":"batch_req_000HS1rGRmo23uamoKWhBSRT","custom_id":"r-XXXXXX","response":{"status_code":200,"request_id":"req_9a2e4b356517754102035a102e5dc012","body":{"choices":[{"finish_reason":"stop","index":0,"logprobs":null,"message":{"annotations":[],"content":"summary order several useful clear review overall the further notes with.","refusal":null,"role":"assistant"}}],"created":1796176719,"id":"chatcmpl-005HxOGl7B6nqhAfBdiYFX7L","model":"gpt-5-mini-2025-08-07","object":"chat.completion","service_tier":"default","system_fingerprint":"fp_sim","usage":{"completion_tokens":29,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":12,"rejected_prediction_tokens":0},"prompt_tokens":1200,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":1024},"total_tokens":1229}}},"error":null}"#;
    let mut results = Vec::with_capacity(200_000 * (line.len() + 1));
    for i in 0..200_000 {
        results.extend_from_slice(line.replace("XXXXXX", &format!("{i:06}")).as_bytes());
        results.push(b'\n');
    }
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let t = Instant::now();
        let mut tally = Tally::new(&Lines, table, at, Some("gpt-5-mini".into()));
        for l in results.split(|b| *b == b'\n') {
            tally.add_line(l).unwrap();
        }
        assert_eq!(tally.lines, 200_000);
        best = best.min(t.elapsed());
    }
    println!(
        "settlement parser: 200,000 output lines ({:.0} MB) in {:.0} ms = {:.0} lines/s",
        results.len() as f64 / 1e6,
        ms(best),
        200_000.0 / best.as_secs_f64()
    );
}

fn main() {
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    in_process(&table);

    let dir = tempfile::tempdir().unwrap();
    let sim = Proc::frozen_simulator();
    let setup = Setup { poll_ms: (60_000, 60_000), ..Setup::new("openai", &sim.url) };
    let cfg = support::config_for(dir.path(), &setup);
    let gw = Proc::start(&["serve", "--config", cfg.to_str().unwrap()], &GATEWAY_ENV);
    let http =
        reqwest::blocking::Client::builder().timeout(Duration::from_secs(600)).build().unwrap();

    // Small: 10-line uploads and creates, direct and through the gateway, interleaved.
    let (mut up_d, mut up_g, mut cr_d, mut cr_g) = (vec![], vec![], vec![], vec![]);
    for i in 0..60 {
        let small = file(&format!("s{i}"), 10, 200);
        let (td, fd) = upload(&http, &sim.url, KEY, small.clone());
        let (tg, fg) = upload(&http, &gw.url, CLIENT, small);
        let cd = create(&http, &sim.url, KEY, &fd);
        let cg = create(&http, &gw.url, CLIENT, &fg);
        if i >= 10 {
            up_d.push(td);
            up_g.push(tg);
            cr_d.push(cd);
            cr_g.push(cg);
        }
    }
    let (ud, ug, cd, cg) = (median(up_d), median(up_g), median(cr_d), median(cr_g));
    println!(
        "10-line upload: direct {:.2} ms, gateway {:.2} ms, added {:.2} ms (median of 50)",
        ms(ud),
        ms(ug),
        ms(ug.saturating_sub(ud))
    );
    println!(
        "batch create:   direct {:.2} ms, gateway {:.2} ms, added {:.2} ms (median of 50)",
        ms(cd),
        ms(cg),
        ms(cg.saturating_sub(cd))
    );

    // Large: a 50,000-line file of about 100 MB.
    let big = file("big", 50_000, 1_850);
    let mb = big.len() as f64 / 1e6;
    let rss_before = gw.kb("VmRSS:");
    let mut direct = vec![];
    let mut through = vec![];
    for _ in 0..3 {
        direct.push(upload(&http, &sim.url, KEY, big.clone()).0);
        through.push(upload(&http, &gw.url, CLIENT, big.clone()).0);
    }
    let (d, g) = (median(direct), median(through));
    let peak = gw.kb("VmHWM:");
    println!(
        "50,000-line upload ({mb:.1} MB): direct {:.0} ms, gateway {:.0} ms, added {:.0} ms (median of 3)",
        ms(d),
        ms(g),
        ms(g.saturating_sub(d))
    );
    println!(
        "gateway memory: RSS before {:.1} MB, peak {:.1} MB = {:.2}x the file",
        rss_before as f64 / 1024.0,
        peak as f64 / 1024.0,
        peak as f64 * 1024.0 / big.len() as f64
    );
}

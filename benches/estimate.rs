//! Estimator benchmark: a generated 100,000-request, ~200 MB batch (the API's request
//! limit near its 256 MB size limit), estimated in-process and by the release binary under
//! `/usr/bin/time -v` for wall time and peak RSS.
//!
//!     cargo bench --bench estimate            # REQUESTS=... BENCH_KEEP=1 optional
//!
//! The batch is written to the temp directory and deleted afterwards (never committed).
//! Targets: under 2 s and under 2x the file size in RSS on a 2-core machine.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use batchcost::estimate::EstimateOptions;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_file;
use serde_json::{Value, json};

const ENGLISH: &str = "The quarterly report shows that revenue from the cloud segment grew faster than \
expected, while costs in the hardware division stayed flat. Analysts pointed to the new pricing \
model, which rewards customers who commit to a year of usage, and to a strong holiday season in \
North America. Management expects the trend to continue, but warned that currency effects could \
reduce reported growth by two or three points in the next quarter. ";
const KOREAN: &str = "이번 분기 보고서에 따르면 클라우드 부문의 매출이 예상보다 빠르게 성장했고, \
하드웨어 부문의 비용은 그대로 유지되었습니다. 분석가들은 1년 약정 고객에게 혜택을 주는 새로운 가격 \
정책과 북미 지역의 연말 특수를 주요 원인으로 꼽았습니다. ";
const CODE: &str = "fn parse_line(line: &str) -> Result<(String, u64), Error> {\n    let (k, v) = \
line.split_once('=').ok_or(Error::Syntax)?;\n    Ok((k.trim().to_string(), v.trim().parse()?))\n}\n";
const MODELS: [&str; 3] = ["claude-sonnet-4-6", "claude-haiku-4-5", "claude-opus-4-7"];

/// Deterministic xorshift, so every run benchmarks the same bytes.
struct Rng(u64);

impl Rng {
    fn next(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

fn request(i: u64, rng: &mut Rng, system: &Value) -> Value {
    let mut text = String::with_capacity(2400);
    for _ in 0..1 + rng.next(4) {
        text.push_str(match rng.next(10) {
            0..=5 => ENGLISH,
            6..=7 => KOREAN,
            _ => CODE,
        });
    }
    let mut params = json!({
        "model": MODELS[rng.next(3) as usize],
        "max_tokens": 256 << rng.next(4),
        "messages": [{"role": "user", "content": [{"type": "text", "text": text}]}],
    });
    if rng.next(10) < 3 {
        params["system"] = system.clone();
    }
    json!({"custom_id": format!("req-{i:06}"), "params": params})
}

fn generate(path: &Path, requests: u64, jsonl: bool) -> std::io::Result<()> {
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(path)?);
    let system = json!([{"type": "text", "text": ENGLISH.repeat(8), "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    if !jsonl {
        out.write_all(b"{\"requests\":[")?;
    }
    for i in 0..requests {
        if i > 0 && !jsonl {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut out, &request(i, &mut rng, &system))?;
        if jsonl {
            out.write_all(b"\n")?;
        }
    }
    if !jsonl {
        out.write_all(b"]}")?;
    }
    out.flush()
}

/// Runs the release binary under `/usr/bin/time -v`: (wall seconds, peak RSS bytes).
fn measure_process(file: &Path, pricing: &Path) -> Option<(f64, u64)> {
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
    let secs =
        wall.split(':').fold(0.0, |acc, part| acc * 60.0 + part.parse::<f64>().unwrap_or(0.0));
    Some((secs, rss_kb * 1024))
}

fn main() {
    let requests: u64 =
        std::env::var("REQUESTS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let pricing = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("pricing.toml");
    let table = PriceTable::load(&pricing).expect("pricing.toml loads");
    let opts = EstimateOptions::new(jiff::Timestamp::now(), 0.5);
    for (name, jsonl) in [("json", false), ("jsonl", true)] {
        let file = std::env::temp_dir().join(format!("batchcost-bench-{requests}.{name}"));
        let t = Instant::now();
        generate(&file, requests, jsonl).expect("writes the batch");
        let size = std::fs::metadata(&file).expect("stat").len();
        println!(
            "{name}: {requests} requests, {:.1} MB, generated in {:.1} s",
            size as f64 / 1e6,
            t.elapsed().as_secs_f64()
        );
        let mut times = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            let e = estimate_file(&file, &table, &opts).expect("estimates");
            times.push(t.elapsed().as_secs_f64());
            assert_eq!(e.requests, requests);
        }
        times.sort_by(f64::total_cmp);
        println!("  in-process estimate_file: best {:.3} s, median {:.3} s", times[0], times[1]);
        match measure_process(&file, &pricing) {
            Some((secs, rss)) => println!(
                "  batchcost estimate (release, /usr/bin/time -v): {secs:.2} s wall, peak RSS {:.1} MB = {:.2}x the file",
                rss as f64 / 1e6,
                rss as f64 / size as f64
            ),
            None => println!("  /usr/bin/time not available: process figures skipped"),
        }
        if std::env::var_os("BENCH_KEEP").is_none() {
            let _ = std::fs::remove_file(&file);
        }
    }
}

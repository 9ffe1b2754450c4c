//! The hostile-input corpus (`tests/hostile/cases.rs`) against a live gateway: every case
//! gets its status and error envelope, nothing is reserved or recorded for it, and a
//! well-behaved client of another project is served right after. Uploads over 256 MB are
//! refused before the client has finished sending them.

mod common;
mod hostile;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::money::Money;
use common::*;
use hostile::cases::{Case, KEY, corpus};
use hostile::raw::{self, Reply, head};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const LIMIT: u64 = 256 * 1024 * 1024;

async fn gateway() -> Harness {
    let usd = Money::parse_usd("100").unwrap();
    harness(
        vec![
            budget("alpha-daily", Some("alpha"), Period::Day, usd),
            budget("beta-daily", Some("beta"), Period::Day, usd),
        ],
        Arc::new(SystemClock),
        sim_config(),
    )
    .await
}

/// What a hostile request must not change.
#[derive(Debug, PartialEq)]
struct Trace {
    alpha_reserved: String,
    ledger_batches: usize,
    upstream_creates: u64,
}

async fn trace(h: &Harness) -> Trace {
    // One statement, so a batch changing state meanwhile is counted once.
    let count = "SELECT count(*) FROM batches";
    let n: i64 = if h.db.url.starts_with("sqlite:") {
        let pool = sqlx::SqlitePool::connect(&format!("{}?mode=ro", h.db.url)).await.unwrap();
        let n = sqlx::query_scalar(count).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    } else {
        let pool = sqlx::PgPool::connect(&h.db.url).await.unwrap();
        let n = sqlx::query_scalar(count).fetch_one(&pool).await.unwrap();
        pool.close().await;
        n
    };
    let ledger_batches = n as usize;
    Trace {
        alpha_reserved: h.budget("alpha-daily").await["reserved_usd"].as_str().unwrap().into(),
        ledger_batches,
        upstream_creates: h.sim.stats().create_attempts,
    }
}

/// A normal submission from project beta, which must go through.
async fn bystander(h: &Harness, tag: &str) {
    let (status, v, _) = h.submit("beta-key", &batch_body(tag, "claude-haiku-4-5", 1, 16)).await;
    assert_eq!(status, 200, "bystander {tag}: {v}");
}

/// Everything wrong with `reply` for `case`, or nothing.
fn check(case: &Case, reply: &Reply) -> Option<String> {
    let v = reply.json();
    let fail = |what: String| {
        Some(format!("{}: {what}; got {} {}", case.name, reply.status, cut(&reply.text())))
    };
    if reply.status != case.status {
        return fail(format!("expected status {}", case.status));
    }
    if case.etype.is_empty() {
        return None;
    }
    if v["type"] != "error" || v["error"]["type"] != case.etype {
        return fail(format!("expected an envelope of type {}", case.etype));
    }
    let message = v["error"]["message"].as_str().unwrap_or_default();
    if !message.contains(&case.needle) {
        return fail(format!("expected the message to mention {:?}", case.needle));
    }
    if message.len() > 1_000 {
        return fail("message longer than 1,000 bytes (echoes the input?)".into());
    }
    None
}

fn cut(s: &str) -> String {
    s.chars().take(300).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_hostile_case_gets_its_error_and_leaves_no_trace() {
    let h = gateway().await;
    let (status, v, _) =
        h.submit("beta-key", &batch_body("beta-own", "claude-haiku-4-5", 2, 16)).await;
    assert_eq!(status, 200, "{v}");
    let others = v["id"].as_str().unwrap().to_string();
    let cases = corpus(&others);
    assert!(cases.len() >= 40, "the corpus has {} cases", cases.len());
    let mut failures = Vec::new();
    for (i, case) in cases.iter().enumerate() {
        let before = trace(&h).await;
        // A well-behaved client of another project is served at the same time.
        let tag = format!("beside-{i}");
        let (reply, ()) = tokio::join!(
            raw::send(h.gw.addr, &case.bytes, Duration::from_secs(60)),
            bystander(&h, &tag)
        );
        eprintln!("{:<40} {} {}", case.name, reply.status, cut(&reply.text()));
        failures.extend(check(case, &reply));
        let mut after = trace(&h).await;
        // The bystander's batch, and nothing else.
        after.ledger_batches -= 1;
        after.upstream_creates -= 1;
        if after != before {
            failures.push(format!("{}: left a trace: {before:?} -> {after:?}", case.name));
        }
    }
    eprintln!("hostile corpus: {} cases, {} failures", cases.len(), failures.len());
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    h.stop().await;
}

/// Streams `total` bytes of body after `head` (chunked when `chunked`) until the server
/// answers; returns the answer and how many body bytes had been sent by then.
async fn flood(
    addr: std::net::SocketAddr,
    head: Vec<u8>,
    chunked: bool,
    total: u64,
) -> (Reply, u64) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = stream.into_split();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    let writer = tokio::spawn(async move {
        wr.write_all(&head).await?;
        let chunk = vec![b' '; 1024 * 1024];
        let mut frame = format!("{:x}\r\n", chunk.len()).into_bytes();
        frame.extend_from_slice(&chunk);
        frame.extend_from_slice(b"\r\n");
        let first = b"{\"requests\":[";
        if chunked {
            wr.write_all(format!("{:x}\r\n", first.len()).as_bytes()).await?;
            wr.write_all(first).await?;
            wr.write_all(b"\r\n").await?;
        } else {
            wr.write_all(first).await?;
        }
        counter.fetch_add(first.len() as u64, Ordering::Relaxed);
        while counter.load(Ordering::Relaxed) + chunk.len() as u64 <= total {
            wr.write_all(if chunked { &frame } else { &chunk }).await?;
            counter.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        }
        if chunked {
            wr.write_all(b"0\r\n\r\n").await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let mut buf = Vec::new();
    let mut piece = vec![0u8; 64 * 1024];
    let reply = tokio::time::timeout(Duration::from_secs(120), async {
        use tokio::io::AsyncReadExt;
        loop {
            match rd.read(&mut piece).await {
                Ok(0) | Err(_) => break,
                Ok(n) => buf.extend_from_slice(&piece[..n]),
            }
            let r = raw::parse(&buf);
            if r.status != 0 && r.json().is_object() {
                break;
            }
        }
        raw::parse(&buf)
    })
    .await
    .expect("no answer to the flood within 120 s");
    let at_answer = sent.load(Ordering::Relaxed);
    writer.abort();
    (reply, at_answer)
}

async fn refuses_a_flood(chunked: bool) {
    let h = gateway().await;
    let before = trace(&h).await;
    let total = 300 * 1024 * 1024;
    let mut headers: Vec<(&str, &[u8])> =
        vec![("x-api-key", KEY), ("anthropic-version", b"2023-06-01")];
    let declared = total.to_string();
    if chunked {
        headers.push(("transfer-encoding", b"chunked"));
    } else {
        headers.push(("content-length", declared.as_bytes()));
    }
    let head = head("POST", b"/v1/messages/batches", &headers);
    let flood = tokio::spawn(flood(h.gw.addr, head, chunked, total));
    // Served meanwhile.
    bystander(&h, "during-flood").await;
    let (reply, sent) = flood.await.unwrap();
    assert_eq!(reply.status, 413, "{}", reply.text());
    assert_eq!(reply.json()["error"]["type"], "request_too_large");
    assert!(sent < total, "the gateway answered only after the whole {sent}-byte body");
    if chunked {
        // It read up to the limit (it cannot know the size sooner), never much past it.
        assert!(sent <= LIMIT + 32 * 1024 * 1024, "{sent} bytes sent before the 413");
    } else {
        // Refused from the header: nothing near the body was read.
        assert!(sent < 64 * 1024 * 1024, "{sent} bytes sent before the 413");
    }
    eprintln!(
        "flood (chunked: {chunked}): answered 413 after {} MB of {} MB",
        sent >> 20,
        total >> 20
    );
    let mut after = trace(&h).await;
    after.ledger_batches -= 1;
    after.upstream_creates -= 1;
    assert_eq!(after, before, "the flood left a trace");
    bystander(&h, "after-flood").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_chunked_body_over_256_mb_is_refused_at_the_limit() {
    refuses_a_flood(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_declared_body_over_256_mb_is_refused_before_it_is_read() {
    refuses_a_flood(false).await;
}

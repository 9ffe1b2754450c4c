//! Slow and stalled clients: a client that never finishes its headers is disconnected
//! after `header_read_timeout_secs`, one that stalls or trickles its body gets a 408 after
//! `body_idle_timeout_secs` / `body_total_timeout_secs`, nothing is reserved for any of
//! them, and other clients are served while they hang on.

mod common;
mod hostile;

use std::sync::Arc;
use std::time::{Duration, Instant};

use batchcost::clock::SystemClock;
use batchcost::config::Period;
use batchcost::money::Money;
use common::*;
use hostile::cases::KEY;
use hostile::raw::{self, head, read_reply};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn gateway() -> Harness {
    let usd = Money::parse_usd("100").unwrap();
    harness_with(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, usd)],
        Arc::new(SystemClock),
        sim_config(),
        |s| {
            s.server.header_read_timeout_secs = 1;
            s.server.body_idle_timeout_secs = 1;
            s.server.body_total_timeout_secs = 3;
        },
    )
    .await
}

async fn bystander(h: &Harness, tag: &str) {
    let (status, v, _) = h.submit("beta-key", &batch_body(tag, "claude-haiku-4-5", 1, 16)).await;
    assert_eq!(status, 200, "bystander {tag}: {v}");
}

/// Waits (at most 20 s) for the server to close `s`; returns the bytes it sent first.
async fn closed_by_server(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let r = tokio::time::timeout(Duration::from_secs(20), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(r.is_ok(), "the server kept a stalled connection open for 20 s");
    got
}

fn create_head(len: usize) -> Vec<u8> {
    let len = len.to_string();
    head(
        "POST",
        b"/v1/messages/batches",
        &[
            ("x-api-key", KEY),
            ("anthropic-version", b"2023-06-01"),
            ("content-length", len.as_bytes()),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clients_that_never_finish_their_headers_are_disconnected() {
    let h = gateway().await;
    // Fifty connections: half send nothing, half stop in the middle of their headers.
    let mut stalled = Vec::new();
    for i in 0..50 {
        let mut s = TcpStream::connect(h.gw.addr).await.unwrap();
        if i % 2 == 1 {
            s.write_all(b"POST /v1/messages/batches HTTP/1.1\r\nhost: gw\r\nx-api-key: alp")
                .await
                .unwrap();
        }
        stalled.push(s);
    }
    let start = Instant::now();
    bystander(&h, "while-stalled").await;
    for s in &mut stalled {
        let said = closed_by_server(s).await;
        // hyper closes without an answer: there is no request to answer yet.
        assert!(
            said.is_empty() || said.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&said)
        );
    }
    assert!(start.elapsed() >= Duration::from_millis(500), "closed before the timeout");
    assert_eq!(h.budget("alpha-daily").await["reserved_usd"], "0");
    bystander(&h, "after-stalled").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_body_that_stalls_gets_a_408_after_the_idle_timeout() {
    let h = gateway().await;
    let mut s = TcpStream::connect(h.gw.addr).await.unwrap();
    s.write_all(&create_head(1_000)).await.unwrap();
    s.write_all(b"{\"requests\":[").await.unwrap();
    bystander(&h, "while-stalled").await;
    let reply = read_reply(&mut s, Duration::from_secs(20)).await;
    assert_eq!(reply.status, 408, "{}", reply.text());
    let v = reply.json();
    assert_eq!(v["error"]["type"], "timeout_error");
    assert_eq!(v["error"]["message"], "no request body data for 1s");
    assert_eq!(h.budget("alpha-daily").await["reserved_usd"], "0");
    assert_eq!(h.sim.stats().create_attempts, 1, "only the bystander's create");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_trickled_body_gets_a_408_after_the_total_timeout() {
    let h = gateway().await;
    let s = TcpStream::connect(h.gw.addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    wr.write_all(&create_head(10_000)).await.unwrap();
    // One byte every 300 ms never trips the 1 s idle timeout; the 3 s total one does.
    let trickle = tokio::spawn(async move {
        for _ in 0..100 {
            if wr.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    bystander(&h, "while-trickling").await;
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(20), rd.read_to_end(&mut buf)).await;
    trickle.abort();
    let reply = raw::parse(&buf);
    assert_eq!(reply.status, 408, "{}", reply.text());
    assert_eq!(reply.json()["error"]["message"], "request body not received within 3s");
    assert_eq!(h.budget("alpha-daily").await["reserved_usd"], "0");
    assert_eq!(h.sim.stats().create_attempts, 1, "only the bystander's create");
    h.stop().await;
}

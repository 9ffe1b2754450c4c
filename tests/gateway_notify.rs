//! Budget threshold webhooks: each `alert_at` threshold is delivered once per window, with
//! three replicas' workers sharing one ledger and a receiver that fails its first
//! attempts; the JSON body's HMAC-SHA256 signature verifies; the Slack body is Slack's; an
//! undeliverable notification stays in the ledger across a restart until delivered.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, StatusCode};
use batchcost::clock::ManualClock;
use batchcost::config::{NotifyFormat, NotifyTarget, Period, Secret};
use batchcost::estimate::EstimateOptions;
use batchcost::gateway::App;
use batchcost::metrics::LedgerSnapshot;
use batchcost::money::Money;
use batchcost::pricing::PriceTable;
use batchcost::providers::anthropic::estimate::estimate_bytes;
use common::*;
use jiff::{SignedDuration, Timestamp};
use serde_json::Value;
use tokio::net::TcpListener;

const SECRET: &str = "webhook-signing-secret";

/// What the receiver saw: (path, headers, body, status it answered).
type Seen = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>, u16)>>>;

/// A webhook receiver failing its first `fail_first` requests with 500.
async fn receiver(fail_first: usize) -> (String, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, headers: HeaderMap, body: axum::body::Bytes| {
            let s = s.clone();
            async move {
                let mut seen = s.lock().unwrap();
                let status = if seen.len() < fail_first { 500 } else { 200 };
                seen.push((uri.path().to_string(), headers, body.to_vec(), status));
                StatusCode::from_u16(status).unwrap()
            }
        },
    );
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (url, seen)
}

fn worst_case(body: &Value) -> Money {
    let table =
        PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
            .unwrap();
    let bytes = serde_json::to_vec(body).unwrap();
    estimate_bytes(&bytes, &table, &EstimateOptions::new(Timestamp::now(), 0.5)).unwrap().worst.cost
}

fn verify(headers: &HeaderMap, body: &[u8]) -> bool {
    let ts = headers["x-batchcost-timestamp"].to_str().unwrap();
    let sig = headers["x-batchcost-signature"].to_str().unwrap();
    let hex = sig.strip_prefix("sha256=").unwrap();
    let tag: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
    let mut msg = format!("{ts}.").into_bytes();
    msg.extend_from_slice(body);
    ring::hmac::verify(&key, &msg, &tag).is_ok()
}

/// Delivered (answered 200) JSON events: (window_start, threshold).
fn delivered(seen: &Seen, path: &str) -> Vec<(String, f64)> {
    let seen = seen.lock().unwrap();
    seen.iter()
        .filter(|(p, _, _, status)| p == path && *status == 200)
        .map(|(_, _, body, _)| {
            let v: Value = serde_json::from_slice(body).unwrap();
            if path == "/slack" {
                return (v["text"].as_str().unwrap().to_string(), 0.0);
            }
            (v["window_start"].as_str().unwrap().to_string(), v["threshold"].as_f64().unwrap())
        })
        .collect()
}

fn count_metric(app: &App, result: &str) -> f64 {
    let snap = LedgerSnapshot { now: Timestamp::now(), windows: vec![], in_flight: vec![] };
    metric(
        &app.metrics.render(&snap).unwrap(),
        "batchcost_notifications_total",
        &[("result", result)],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_threshold_is_delivered_once_per_window_across_three_replicas() {
    let (url, seen) = receiver(3).await;
    let one = batch_body("n0", "claude-haiku-4-5", 5, 1_000);
    let mut b = budget(
        "alpha-daily",
        Some("alpha"),
        Period::Day,
        Money::from_picos(worst_case(&one).picos() * 4),
    );
    b.alert_at = vec![0.25, 0.5, 1.0];
    // 10:00 in Seoul.
    let t0: Timestamp = "2026-05-04T01:00:00Z".parse().unwrap();
    let clock = Arc::new(ManualClock::new(t0));
    let targets = vec![
        NotifyTarget {
            url: Secret::new(format!("{url}/json")),
            format: NotifyFormat::Json,
            secret: Some(Secret::new(SECRET)),
        },
        NotifyTarget {
            url: Secret::new(format!("{url}/slack")),
            format: NotifyFormat::Slack,
            secret: None,
        },
    ];
    let h = harness_with(vec![b], clock.clone(), sim_config(), |s| {
        s.workflow.notify = targets;
        s.workflow.notify_poll_ms = 20;
    })
    .await;
    // Two more replicas on the same ledger, each with its own notification worker.
    let mut replicas = vec![h.gw.app.clone()];
    for _ in 0..2 {
        let app = App::build(h.gw.app.settings.clone(), clock.clone()).await.unwrap();
        tokio::spawn(batchcost::notify::run(app.clone()));
        replicas.push(app);
    }
    let wait_for = |want: usize, what: &'static str| {
        let seen = seen.clone();
        let clock = clock.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            while delivered(&seen, "/json").len() + delivered(&seen, "/slack").len() < want {
                assert!(Instant::now() < deadline, "{what}: {:?}", delivered(&seen, "/json"));
                // Retries are due after a backoff measured on the gateway's clock; a claim's
                // 60 s lease still spans seconds of real time at this pace.
                clock.advance(SignedDuration::from_secs(1));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    for tag in ["n1", "n2"] {
        let (s, v, _) = h.submit("alpha-key", &batch_body(tag, "claude-haiku-4-5", 5, 1_000)).await;
        assert_eq!(s, 200, "{v}");
    }
    wait_for(4, "0.25 and 0.5 to both webhooks").await;
    // Every worker has had rounds since: nothing is sent twice.
    let http = reqwest::Client::new();
    for (i, app) in replicas.iter().enumerate() {
        for _ in 0..3 {
            batchcost::notify::tick(app, &http, &format!("test-{i}")).await.unwrap();
        }
    }
    let day1 = batchcost::clock::rfc3339_micros("2026-05-03T15:00:00Z".parse().unwrap());
    let mut json = delivered(&seen, "/json");
    json.sort_by(|a, b| a.1.total_cmp(&b.1));
    assert_eq!(json, vec![(day1.clone(), 0.25), (day1.clone(), 0.5)]);
    assert_eq!(delivered(&seen, "/slack").len(), 2);
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.iter().filter(|r| r.3 == 500).count(),
            3,
            "the receiver's failures were retried"
        );
        for (path, headers, body, _) in seen.iter() {
            let v: Value = serde_json::from_slice(body).unwrap();
            if path == "/json" {
                assert!(verify(headers, body), "signature does not verify");
                let mut tampered = body.clone();
                tampered.push(b' ');
                assert!(!verify(headers, &tampered));
                assert_eq!(v["type"], "budget.threshold_crossed");
                assert_eq!(v["budget"], "alpha-daily");
                assert_eq!(
                    headers["x-batchcost-delivery"].to_str().unwrap(),
                    v["id"].as_str().unwrap()
                );
            } else {
                assert!(v["text"].as_str().unwrap().contains("alpha-daily"), "{v}");
                assert!(!headers.contains_key("x-batchcost-signature"));
            }
            assert!(!String::from_utf8_lossy(body).contains(SECRET));
        }
    }
    // The next local day is a new window: its first threshold is sent again, once.
    clock.set("2026-05-04T15:00:00Z".parse().unwrap());
    let (s, v, _) = h.submit("alpha-key", &batch_body("n3", "claude-haiku-4-5", 5, 1_000)).await;
    assert_eq!(s, 200, "{v}");
    wait_for(6, "the new window's 0.25").await;
    for (i, app) in replicas.iter().enumerate() {
        batchcost::notify::tick(app, &http, &format!("test-{i}")).await.unwrap();
    }
    let day2 = batchcost::clock::rfc3339_micros("2026-05-04T15:00:00Z".parse().unwrap());
    let json = delivered(&seen, "/json");
    assert_eq!(json.iter().filter(|d| d.0 == day2).count(), 1, "{json:?}");
    assert_eq!(json.len(), 3);
    assert_eq!(delivered(&seen, "/slack").len(), 3);
    // Metrics: each replica counts its own attempts; the sum is every attempt once.
    let sum = |r: &str| replicas.iter().map(|a| count_metric(a, r)).sum::<f64>();
    assert_eq!(sum("delivered"), 6.0);
    assert_eq!(sum("failed"), 3.0);
    let m = h.metrics().await;
    assert_eq!(metric(&m, "batchcost_notifications_pending", &[]), 0.0);
    for app in &replicas[1..] {
        app.shutdown.cancel();
    }
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undelivered_notification_survives_a_restart() {
    // A webhook that refuses connections: bind a port, then free it.
    let dead = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", l.local_addr().unwrap())
    };
    let one = batch_body("r0", "claude-haiku-4-5", 5, 1_000);
    let mut b = budget(
        "alpha-daily",
        Some("alpha"),
        Period::Day,
        Money::from_picos(worst_case(&one).picos() * 2),
    );
    b.alert_at = vec![0.5];
    let clock = Arc::new(ManualClock::new("2026-05-04T01:00:00Z".parse().unwrap()));
    let target = |url: String| NotifyTarget {
        url: Secret::new(url),
        format: NotifyFormat::Slack,
        secret: None,
    };
    let h = harness_with(vec![b], clock.clone(), sim_config(), |s| {
        s.workflow.notify = vec![target(dead.clone())];
        s.workflow.notify_poll_ms = 20;
    })
    .await;
    let (s, v, _) = h.submit("alpha-key", &batch_body("r1", "claude-haiku-4-5", 5, 1_000)).await;
    assert_eq!(s, 200, "{v}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while count_metric(&h.gw.app, "failed") < 2.0 {
        assert!(Instant::now() < deadline, "no failed attempts");
        clock.advance(SignedDuration::from_secs(1));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = h.metrics().await;
    assert_eq!(metric(&m, "batchcost_notifications_pending", &[]), 1.0);
    assert_eq!(count_metric(&h.gw.app, "delivered"), 0.0);
    let mut settings = h.gw.app.settings.clone();
    h.gw.shutdown().await;

    // The next process, now with a working webhook, delivers what the last one could not.
    let (url, seen) = receiver(0).await;
    settings.workflow.notify = vec![target(format!("{url}/slack"))];
    let app = App::build(settings, clock.clone()).await.unwrap();
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while delivered(&seen, "/slack").is_empty() {
        assert!(Instant::now() < deadline, "not delivered after the restart");
        clock.advance(SignedDuration::from_secs(5));
        batchcost::notify::tick(&app, &http, "after-restart").await.unwrap();
    }
    for _ in 0..3 {
        clock.advance(SignedDuration::from_secs(60));
        batchcost::notify::tick(&app, &http, "after-restart").await.unwrap();
    }
    assert_eq!(delivered(&seen, "/slack").len(), 1);
    assert!(delivered(&seen, "/slack")[0].0.contains("50%"), "{:?}", delivered(&seen, "/slack"));
    h.sim.shutdown().await;
}

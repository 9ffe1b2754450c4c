//! The workflow calls (approvals, the notification outbox) on every backend, raced from
//! several handles on one ledger (three pools on PostgreSQL, as three replicas would
//! have): concurrent refusals of one body share one request, one approval admits one
//! batch, and concurrent outbox claims never hand a row to two workers.

use std::collections::HashSet;
use std::sync::Arc;

use batchcost::config::Durability;
use batchcost::ledger::workflow::{ApprovalRequest, Approve, Notification};
use batchcost::ledger::{self, Ledger};
use batchcost::money::Money;
use jiff::Timestamp;

#[path = "storage_support/mod.rs"]
mod storage;

use storage::TestDb;

struct Store {
    handles: Vec<Arc<dyn Ledger>>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

async fn store(pg: bool) -> Store {
    let dir = tempfile::tempdir().unwrap();
    let db = if pg { TestDb::postgres() } else { TestDb::sqlite(dir.path()) };
    let mut handles = Vec::new();
    for _ in 0..if pg { 3 } else { 1 } {
        handles.push(ledger::open(&db.url, Durability::Normal).await.unwrap());
    }
    Store { handles, _db: db, _dir: dir }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn request(n: usize) -> ApprovalRequest {
    ApprovalRequest {
        new_id: format!("apr_{n}"),
        project: "search".into(),
        body_hash: "body".into(),
        budget: "daily".into(),
        hold: Money::from_usd(50),
        threshold: Money::from_usd(10),
        at: ts("2026-03-10T01:00:00Z"),
    }
}

async fn refusals_share_one_request_and_one_approval_admits_once(pg: bool) {
    let s = store(pg).await;
    let tasks: Vec<_> = (0..12)
        .map(|i| {
            let l = s.handles[i % s.handles.len()].clone();
            tokio::spawn(async move { l.request_approval(&request(i)).await.unwrap().id })
        })
        .collect();
    let mut ids = HashSet::new();
    for t in tasks {
        ids.insert(t.await.unwrap());
    }
    assert_eq!(ids.len(), 1, "concurrent refusals of one body opened {ids:?}");
    let id = ids.into_iter().next().unwrap();
    let a = s.handles[0].approval_for("search", "body").await.unwrap().unwrap();
    assert_eq!((a.id.as_str(), a.refusals), (id.as_str(), 12));

    let now = ts("2026-03-10T02:00:00Z");
    let exp = ts("2026-03-11T02:00:00Z");
    let Approve::Approved(a) = s.handles[0].approve(&id, "alice", now, exp).await.unwrap() else {
        panic!("not approved");
    };
    assert_eq!(a.approved_by.as_deref(), Some("alice"));
    let Approve::Approved(again) = s.handles[0].approve(&id, "bob", now, exp).await.unwrap() else {
        panic!("approving twice closed it");
    };
    assert_eq!(again.approved_by.as_deref(), Some("alice"), "a second approval rewrote it");

    let uses: Vec<_> = (0..8)
        .map(|i| {
            let (l, id) = (s.handles[i % s.handles.len()].clone(), id.clone());
            tokio::spawn(
                async move { l.use_approval(&id, &format!("sub_{i}"), now).await.unwrap() },
            )
        })
        .collect();
    let mut used = 0;
    for t in uses {
        used += usize::from(t.await.unwrap());
    }
    assert_eq!(used, 1, "one approval admitted {used} batches");
    assert!(matches!(
        s.handles[0].approve(&id, "alice", now, exp).await.unwrap(),
        Approve::Closed(_)
    ));
}

fn crossing(target: u32) -> Notification {
    Notification {
        budget: "daily".into(),
        project: "search".into(),
        period: "day".into(),
        window_start: ts("2026-03-09T15:00:00Z"),
        window_end: ts("2026-03-10T15:00:00Z"),
        threshold: "0.8".into(),
        target,
        limit: Money::from_usd(100),
        used: Money::from_usd(85),
        created_at: ts("2026-03-10T01:00:00Z"),
        attempts: 0,
    }
}

async fn outbox_rows_are_recorded_once_and_claimed_by_one_worker(pg: bool) {
    let s = store(pg).await;
    let rows: Vec<_> = (0..20).map(crossing).collect();
    let mut new = 0;
    for l in s.handles.iter().chain(s.handles.iter()) {
        new += l.record_crossings(&rows).await.unwrap();
    }
    assert_eq!(new, 20, "a crossing was recorded twice");

    let now = ts("2026-03-10T01:00:05Z");
    let until = ts("2026-03-10T01:01:05Z");
    let claims: Vec<_> = (0..6)
        .map(|i| {
            let l = s.handles[i % s.handles.len()].clone();
            tokio::spawn(async move {
                let w = format!("w{i}");
                let got = l.claim_notifications(&w, now, until, 5).await.unwrap();
                (w, got)
            })
        })
        .collect();
    let mut seen = HashSet::new();
    let mut delivered = 0;
    for t in claims {
        let (w, got) = t.await.unwrap();
        for n in got {
            assert!(seen.insert(n.target), "target {} claimed twice", n.target);
            assert!(s.handles[0].notification_attempt(&n, &w, now, Ok(())).await.unwrap());
            delivered += 1;
        }
    }
    assert_eq!(delivered, 20, "six workers of five claimed {delivered} of 20 rows");
    let c = s.handles[0].outbox_counts().await.unwrap();
    assert_eq!((c.pending, c.delivered), (0, 20));
    let later = ts("2026-03-10T05:00:00Z");
    assert!(s.handles[0].claim_notifications("w9", later, later, 50).await.unwrap().is_empty());
}

macro_rules! both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(false).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(true).await })*
        }
    };
}

both!(
    refusals_share_one_request_and_one_approval_admits_once,
    outbox_rows_are_recorded_once_and_claimed_by_one_worker,
);

//! Ledger guarantees on the SQLite backend: atomic admission under concurrency, exactly-once
//! settlement, release on refusal, client-retry detection.

use std::sync::Arc;

use batchcost::config::Period;
use batchcost::ledger::{
    Admit, BatchState, Hold, Ledger, ModelUsage, NewSubmission, ResultCounts, Settlement,
    SqliteLedger, TokenTotals, WindowRef,
};
use batchcost::money::Money;
use jiff::Timestamp;

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(limit_usd: i64) -> WindowRef {
    WindowRef {
        budget: "daily".into(),
        project: "search".into(),
        period: Period::Day,
        start: ts("2026-03-09T15:00:00Z"),
        end: ts("2026-03-10T15:00:00Z"),
        limit: Some(Money::from_usd(limit_usd)),
        limit_input_tokens: None,
        limit_output_tokens: Some(1_000_000),
        hold: None,
    }
}

fn submission(n: usize, usd: i64, windows: Vec<WindowRef>) -> NewSubmission {
    NewSubmission {
        sub_id: format!("sub_{n}"),
        project: "search".into(),
        provider: "anthropic".into(),
        submitted_at: ts("2026-03-10T01:00:00Z"),
        request_count: 10,
        body_hash: format!("hash{n}"),
        custom_id_fingerprint: n as u64,
        hold: Hold { usd: Money::from_usd(usd), input_tokens: 100, output_tokens: 1_000 },
        windows,
        estimate_json: "{}".into(),
        dedupe_since: ts("2026-03-10T00:50:00Z"),
    }
}

async fn open(dir: &tempfile::TempDir) -> Arc<dyn Ledger> {
    let url = format!("sqlite://{}", dir.path().join("l.db").display());
    Arc::new(SqliteLedger::open(&url).await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hundred_concurrent_admissions_against_room_for_ten_admit_exactly_ten() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    let mut tasks = Vec::new();
    for n in 0..100 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            l.admit(&submission(n, 3, vec![window(30)])).await.unwrap()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Admit::Admitted) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    let w = &ledger.windows(&[window(30)]).await.unwrap()[0];
    assert_eq!(w.reserved, Money::from_usd(30));
    assert_eq!(w.reserved_output_tokens, 10_000);
}

#[tokio::test]
async fn a_refusal_in_one_window_reserves_nothing_in_any() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    let mut tight = window(5);
    tight.budget = "tight".into();
    let s = submission(1, 6, vec![window(100), tight.clone()]);
    match ledger.admit(&s).await.unwrap() {
        Admit::Refused(w) => assert_eq!(w.budget, "tight"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let states = ledger.windows(&[window(100), tight]).await.unwrap();
    assert!(states.iter().all(|w| w.reserved == Money::ZERO));
    assert!(ledger.batch("sub_1").await.unwrap().is_none());
}

#[tokio::test]
async fn settlement_moves_the_hold_to_spent_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    assert!(matches!(
        ledger.admit(&submission(1, 3, vec![window(30)])).await.unwrap(),
        Admit::Admitted
    ));
    assert!(
        ledger.mark_submitted("sub_1", "msgbatch_1", ts("2026-03-10T01:00:01Z")).await.unwrap()
    );
    let cost = Money::parse_usd("1.234567891234").unwrap();
    let s = Settlement {
        ended_at: ts("2026-03-10T02:00:00Z"),
        settled_at: ts("2026-03-10T02:00:00Z"),
        models: vec![ModelUsage {
            model: "claude-sonnet-4-6".into(),
            tokens: TokenTotals { input: 50, output: 400, ..Default::default() },
            requests: ResultCounts { succeeded: 9, errored: 1, ..Default::default() },
            cost,
            list_cost: Money::parse_usd("2.469135782468").unwrap(),
        }],
    };
    assert!(ledger.settle("sub_1", &s).await.unwrap());
    assert!(!ledger.settle("sub_1", &s).await.unwrap(), "a second settlement must be refused");
    let w = &ledger.windows(&[window(30)]).await.unwrap()[0];
    assert_eq!(w.spent, cost);
    assert_eq!(w.reserved, Money::ZERO);
    assert_eq!(w.spent_output_tokens, 400);
    let rec = ledger.batch_by_upstream("anthropic", "msgbatch_1").await.unwrap().unwrap();
    assert_eq!(rec.state, BatchState::Settled);
    assert_eq!(rec.cost, Some(cost));
    assert_eq!(ledger.model_usage("sub_1").await.unwrap().len(), 1);
}

#[tokio::test]
async fn release_refunds_and_a_retried_body_is_recognised() {
    let dir = tempfile::tempdir().unwrap();
    let ledger = open(&dir).await;
    assert!(matches!(
        ledger.admit(&submission(1, 3, vec![window(30)])).await.unwrap(),
        Admit::Admitted
    ));
    let mut retry = submission(2, 3, vec![window(30)]);
    retry.body_hash = "hash1".into();
    match ledger.admit(&retry).await.unwrap() {
        Admit::Duplicate(rec) => assert_eq!(rec.sub_id, "sub_1"),
        other => panic!("expected the first submission back, got {other:?}"),
    }
    assert!(ledger.release("sub_1", "refused upstream").await.unwrap());
    assert!(!ledger.release("sub_1", "again").await.unwrap());
    let w = &ledger.windows(&[window(30)]).await.unwrap()[0];
    assert_eq!(w.reserved, Money::ZERO);
    // A failed submission is not a duplicate: the same body may be sent again.
    assert!(matches!(ledger.admit(&retry).await.unwrap(), Admit::Admitted));
}

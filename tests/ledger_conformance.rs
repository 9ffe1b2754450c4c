//! One conformance suite for every ledger backend: each test runs on SQLite and on
//! PostgreSQL (a fresh database per test). Admission races and exact capacity, settlement
//! exactly once, release, the retry dedupe, recovery claims, leases, settling marks,
//! batched reads, reports and schema versions.

use std::collections::HashSet;
use std::sync::Arc;

use batchcost::config::{Durability, Period};
use batchcost::ledger::workflow::CalibrationSample;
use batchcost::ledger::{
    self, Admit, Backend, BatchState, Hold, Lease, Ledger, ModelUsage, NewSubmission, PollPlan,
    ResultCounts, Settlement, TokenTotals, WindowRef,
};
use batchcost::money::Money;
use futures_util::StreamExt;
use jiff::Timestamp;

#[path = "storage_support/mod.rs"]
mod storage;

use storage::TestDb;

#[derive(Clone, Copy, Debug)]
enum Kind {
    Sqlite,
    Postgres,
}

/// A fresh ledger and as many handles on it as replicas would have (several pools on
/// PostgreSQL; SQLite is one process's ledger, so one).
struct Store {
    handles: Vec<Arc<dyn Ledger>>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

impl Store {
    async fn new(kind: Kind) -> Store {
        let dir = tempfile::tempdir().unwrap();
        let db = match kind {
            Kind::Sqlite => TestDb::sqlite(dir.path()),
            Kind::Postgres => TestDb::postgres(),
        };
        let n = match kind {
            Kind::Sqlite => 1,
            Kind::Postgres => 3,
        };
        let mut handles = Vec::new();
        for _ in 0..n {
            handles.push(ledger::open(&db.url, Durability::Normal).await.unwrap());
        }
        Store { handles, _db: db, _dir: dir }
    }

    fn l(&self) -> &Arc<dyn Ledger> {
        &self.handles[0]
    }

    /// Handle `i` (round-robin over the replicas).
    fn at(&self, i: usize) -> Arc<dyn Ledger> {
        self.handles[i % self.handles.len()].clone()
    }
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn window(budget: &str, limit_usd: i64) -> WindowRef {
    WindowRef {
        budget: budget.into(),
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
        lease: None,
        bounds: Vec::new(),
    }
}

fn lease(owner: &str, now: &str, until: &str) -> Lease {
    Lease { owner: owner.into(), now: ts(now), until: ts(until) }
}

fn settlement(cost: Money) -> Settlement {
    Settlement {
        ended_at: ts("2026-03-10T02:00:00Z"),
        settled_at: ts("2026-03-10T02:00:00Z"),
        models: vec![ModelUsage {
            model: "claude-sonnet-4-6".into(),
            tokens: TokenTotals { input: 50, output: 400, ..Default::default() },
            requests: ResultCounts { succeeded: 9, errored: 1, ..Default::default() },
            cost,
            list_cost: cost + cost,
        }],
        budget_models: Default::default(),
    }
}

/// Admits and marks `n` batches in flight as `msgbatch_{i}`, due at 01:00:01.
async fn in_flight(s: &Store, n: usize) {
    for i in 0..n {
        let l = s.l();
        assert!(matches!(l.admit(&submission(i, 1, vec![])).await.unwrap(), Admit::Admitted));
        let up = format!("msgbatch_{i}");
        assert!(
            l.mark_submitted(&format!("sub_{i}"), &up, ts("2026-03-10T01:00:01Z")).await.unwrap()
        );
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Kind::Sqlite).await })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() { super::$name(super::Kind::Postgres).await })*
        }
    };
}

conformance!(
    concurrent_admissions_admit_exactly_the_room,
    a_refusal_in_one_window_reserves_nothing_in_any,
    settlement_moves_the_hold_to_spent_exactly_once,
    a_models_filter_is_charged_only_its_models,
    concurrent_settlements_record_once,
    release_refunds_and_a_retried_body_is_recognised,
    identical_bodies_at_once_admit_one,
    identical_bodies_that_do_not_fit_are_all_refused,
    admissions_over_shared_windows_in_any_order_add_up,
    an_admission_that_fails_fails_only_itself,
    concurrent_marks_answer_as_if_in_turn,
    due_batches_are_claimed_by_one_replica_at_a_time,
    concurrent_claims_never_share_a_batch,
    a_claim_rounds_polls_are_recorded_as_if_in_turn,
    a_live_create_is_left_alone_by_recovery,
    one_task_settles_at_a_time,
    batched_reads_answer_in_one_go,
    reports_stream_what_was_settled,
    an_older_schema_is_refused_until_migrated,
    version_10_keeps_holds_keys_and_bounds,
);

async fn concurrent_admissions_admit_exactly_the_room(kind: Kind) {
    let s = Store::new(kind).await;
    let mut tasks = Vec::new();
    // 200 holds of $3 against $30 and $45: exactly 10 fit both.
    for n in 0..200 {
        let l = s.at(n);
        tasks.push(tokio::spawn(async move {
            l.admit(&submission(n, 3, vec![window("b-daily", 45), window("a-daily", 30)]))
                .await
                .unwrap()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        if matches!(t.await.unwrap(), Admit::Admitted) {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 10);
    let w = s.l().windows(&[window("a-daily", 30), window("b-daily", 45)]).await.unwrap();
    assert_eq!(w[0].reserved, Money::from_usd(30));
    assert_eq!(w[1].reserved, Money::from_usd(30));
    assert_eq!(w[0].reserved_output_tokens, 10_000);
}

async fn a_refusal_in_one_window_reserves_nothing_in_any(kind: Kind) {
    let s = Store::new(kind).await;
    let sub = submission(1, 6, vec![window("daily", 100), window("tight", 5)]);
    match s.l().admit(&sub).await.unwrap() {
        Admit::Refused(w) => assert_eq!(w.budget, "tight"),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let states = s.l().windows(&[window("daily", 100), window("tight", 5)]).await.unwrap();
    assert!(states.iter().all(|w| w.reserved == Money::ZERO));
    assert!(s.l().batch("sub_1").await.unwrap().is_none());
    // The body was refused, not recorded: sending it again is a new submission.
    let fits = submission(1, 4, vec![window("daily", 100), window("tight", 5)]);
    assert!(matches!(s.l().admit(&fits).await.unwrap(), Admit::Admitted));
}

async fn settlement_moves_the_hold_to_spent_exactly_once(kind: Kind) {
    let s = Store::new(kind).await;
    let l = s.l();
    assert!(matches!(
        l.admit(&submission(1, 3, vec![window("daily", 30)])).await.unwrap(),
        Admit::Admitted
    ));
    assert!(l.mark_submitted("sub_1", "msgbatch_1", ts("2026-03-10T01:00:01Z")).await.unwrap());
    // Beyond 32 bits of pico-dollars: the columns are 64-bit.
    let cost = Money::parse_usd("1.234567891234").unwrap();
    assert!(l.settle("sub_1", &settlement(cost)).await.unwrap());
    assert!(!l.settle("sub_1", &settlement(cost)).await.unwrap(), "settled twice");
    let w = &l.windows(&[window("daily", 30)]).await.unwrap()[0];
    assert_eq!(w.spent, cost);
    assert_eq!(w.reserved, Money::ZERO);
    assert_eq!(w.spent_output_tokens, 400);
    let rec = l.batch_by_upstream("anthropic", "msgbatch_1").await.unwrap().unwrap();
    assert_eq!(rec.state, BatchState::Settled);
    assert_eq!(rec.cost, Some(cost));
    assert_eq!(l.model_usage("sub_1").await.unwrap().len(), 1);
}

/// A mixed-model batch against a budget that counts every model and one whose `models`
/// filter selects one of them: each window is charged exactly its models' lines.
async fn a_models_filter_is_charged_only_its_models(kind: Kind) {
    let s = Store::new(kind).await;
    let l = s.l();
    let mut sonnet_only = window("sonnet", 30);
    sonnet_only.hold = Some(Hold { usd: Money::from_usd(2), input_tokens: 60, output_tokens: 600 });
    let sub = submission(1, 3, vec![window("daily", 30), sonnet_only.clone()]);
    assert!(matches!(l.admit(&sub).await.unwrap(), Admit::Admitted));
    assert!(l.mark_submitted("sub_1", "msgbatch_1", ts("2026-03-10T01:00:01Z")).await.unwrap());
    let line = |model: &str, usd: &str, input: u64, output: u64| ModelUsage {
        model: model.into(),
        tokens: TokenTotals { input, cache_read: 7, output, ..Default::default() },
        requests: ResultCounts { succeeded: 3, ..Default::default() },
        cost: Money::parse_usd(usd).unwrap(),
        list_cost: Money::parse_usd(usd).unwrap(),
    };
    let (sonnet, haiku) = (
        line("claude-sonnet-4-6", "1.000000000007", 40, 300),
        line("claude-haiku-4-5", "0.333333333333", 15, 120),
    );
    let mut settled = settlement(Money::ZERO);
    settled.models = vec![haiku.clone(), sonnet.clone()];
    settled.budget_models =
        [("sonnet".to_string(), vec!["claude-sonnet-4-6".to_string()])].into_iter().collect();
    assert!(l.settle("sub_1", &settled).await.unwrap());
    let w = l.windows(&[window("daily", 30), sonnet_only]).await.unwrap();
    assert_eq!(w[0].spent, sonnet.cost + haiku.cost);
    assert_eq!(w[0].spent, Money::parse_usd("1.33333333334").unwrap());
    assert_eq!((w[0].spent_input_tokens, w[0].spent_output_tokens), (40 + 7 + 15 + 7, 420));
    assert_eq!(w[1].spent, sonnet.cost);
    assert_eq!((w[1].spent_input_tokens, w[1].spent_output_tokens), (47, 300));
    assert!(w.iter().all(|w| w.reserved == Money::ZERO && w.reserved_output_tokens == 0));
    // The batch itself (what reports read) is the whole of it.
    let rec = l.batch("sub_1").await.unwrap().unwrap();
    assert_eq!(rec.cost, Some(sonnet.cost + haiku.cost));
    assert_eq!(l.model_usage("sub_1").await.unwrap(), vec![haiku, sonnet]);
}

async fn concurrent_settlements_record_once(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 1).await;
    let cost = Money::from_usd(2);
    let mut tasks = Vec::new();
    for i in 0..12 {
        let l = s.at(i);
        tasks
            .push(tokio::spawn(async move { l.settle("sub_0", &settlement(cost)).await.unwrap() }));
    }
    let mut recorded = 0;
    for t in tasks {
        recorded += t.await.unwrap() as u32;
    }
    assert_eq!(recorded, 1);
    let rows: Vec<_> =
        s.l().spend_rows(ts("2026-03-01T00:00:00Z"), ts("2026-04-01T00:00:00Z")).collect().await;
    assert_eq!(rows.len(), 1, "one usage row per batch and model");
}

async fn release_refunds_and_a_retried_body_is_recognised(kind: Kind) {
    let s = Store::new(kind).await;
    let l = s.l();
    assert!(matches!(
        l.admit(&submission(1, 3, vec![window("daily", 30)])).await.unwrap(),
        Admit::Admitted
    ));
    let mut retry = submission(2, 3, vec![window("daily", 30)]);
    retry.body_hash = "hash1".into();
    match l.admit(&retry).await.unwrap() {
        Admit::Duplicate(rec) => assert_eq!(rec.sub_id, "sub_1"),
        other => panic!("expected the first submission back, got {other:?}"),
    }
    assert!(l.release("sub_1", "refused upstream").await.unwrap());
    assert!(!l.release("sub_1", "again").await.unwrap());
    let w = &l.windows(&[window("daily", 30)]).await.unwrap()[0];
    assert_eq!(w.reserved, Money::ZERO);
    // A failed submission is not a duplicate: the same body may be sent again.
    assert!(matches!(l.admit(&retry).await.unwrap(), Admit::Admitted));
    // Outside the dedupe window the same body is new, too.
    let mut later = submission(3, 3, vec![window("daily", 30)]);
    later.body_hash = "hash1".into();
    later.submitted_at = ts("2026-03-10T03:00:00Z");
    later.dedupe_since = ts("2026-03-10T02:50:00Z");
    assert!(matches!(l.admit(&later).await.unwrap(), Admit::Admitted));
}

/// 30 submissions of one body at once, spread over the store's handles, each holding
/// `usd` against `daily` with room for `limit`: their answers.
async fn identical_bodies_at_once(s: &Store, usd: i64, limit: i64) -> Vec<Admit> {
    let mut tasks = Vec::new();
    for n in 0..30 {
        let l = s.at(n);
        tasks.push(tokio::spawn(async move {
            let mut sub = submission(n, usd, vec![window("daily", limit)]);
            sub.body_hash = "same".into();
            l.admit(&sub).await.unwrap()
        }));
    }
    let mut answers = Vec::new();
    for t in tasks {
        answers.push(t.await.unwrap());
    }
    answers
}

async fn identical_bodies_at_once_admit_one(kind: Kind) {
    let s = Store::new(kind).await;
    let (mut admitted, mut dups) = (0, HashSet::new());
    for answer in identical_bodies_at_once(&s, 1, 1000).await {
        match answer {
            Admit::Admitted => admitted += 1,
            Admit::Duplicate(rec) => {
                dups.insert(rec.sub_id);
            }
            Admit::Refused(w) => panic!("refused: {w:?}"),
        }
    }
    assert_eq!(admitted, 1);
    assert_eq!(dups.len(), 1, "every retry is answered with the one admitted");
    let w = &s.l().windows(&[window("daily", 1000)]).await.unwrap()[0];
    assert_eq!(w.reserved, Money::from_usd(1));
}

/// On PostgreSQL concurrent admissions go to the server in groups: an identical body in
/// the same group as a refused one must be refused with it, not answered as a retry of a
/// batch that was never recorded.
async fn identical_bodies_that_do_not_fit_are_all_refused(kind: Kind) {
    let s = Store::new(kind).await;
    for answer in identical_bodies_at_once(&s, 6, 5).await {
        match answer {
            Admit::Refused(w) => {
                assert_eq!((w.budget.as_str(), w.reserved), ("daily", Money::ZERO));
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
    }
    let w = &s.l().windows(&[window("daily", 5)]).await.unwrap()[0];
    assert_eq!(w.reserved, Money::ZERO);
    // Nothing of them stayed behind: the same body that fits is a new submission.
    let mut fits = submission(99, 4, vec![window("daily", 5)]);
    fits.body_hash = "same".into();
    assert!(matches!(s.l().admit(&fits).await.unwrap(), Admit::Admitted));
}

/// Admissions from every replica at once, each to its own mix of four shared windows in
/// its own order: none is lost or refused (the windows have room for all) and every
/// window holds exactly the sum of its admissions' holds.
async fn admissions_over_shared_windows_in_any_order_add_up(kind: Kind) {
    let s = Store::new(kind).await;
    let names = ["w1", "w2", "w3", "w4"];
    let mut expected = [0i64; 4];
    let mut tasks = Vec::new();
    for n in 0..120usize {
        // Windows n, n+1, ... (a rotating subset), listed in reverse every other time.
        let mut picked: Vec<usize> = (0..1 + n % 4).map(|k| (n + k) % 4).collect();
        if n % 2 == 1 {
            picked.reverse();
        }
        let usd = 1 + (n % 3) as i64;
        for &w in &picked {
            expected[w] += usd;
        }
        let windows = picked.iter().map(|&w| window(names[w], 1_000)).collect();
        let l = s.at(n);
        tasks.push(tokio::spawn(async move { l.admit(&submission(n, usd, windows)).await }));
    }
    for t in tasks {
        assert!(matches!(t.await.unwrap().unwrap(), Admit::Admitted));
    }
    let refs: Vec<WindowRef> = names.iter().map(|b| window(b, 1_000)).collect();
    let states = s.l().windows(&refs).await.unwrap();
    for (w, usd) in states.iter().zip(expected) {
        assert_eq!(w.reserved, Money::from_usd(usd), "{}", w.budget);
    }
}

/// Admissions are written in groups on both backends: one that the database rejects (its
/// submission id is taken) gets the error, and the admissions around it are unaffected.
async fn an_admission_that_fails_fails_only_itself(kind: Kind) {
    let s = Store::new(kind).await;
    let first = submission(0, 1, vec![window("daily", 100)]);
    assert!(matches!(s.l().admit(&first).await.unwrap(), Admit::Admitted));
    let mut tasks = Vec::new();
    for n in 1..=40 {
        let l = s.at(n);
        let mut sub = submission(n, 1, vec![window("daily", 100)]);
        if n == 20 {
            // A new body under the id of the batch already admitted.
            sub.sub_id = "sub_0".into();
        }
        tasks.push(tokio::spawn(async move { (n, l.admit(&sub).await) }));
    }
    for t in tasks {
        match t.await.unwrap() {
            (20, out) => assert!(out.is_err(), "the taken id was admitted: {out:?}"),
            (n, out) => assert!(matches!(out, Ok(Admit::Admitted)), "{n}: {out:?}"),
        }
    }
    let w = &s.l().windows(&[window("daily", 100)]).await.unwrap()[0];
    assert_eq!(w.reserved, Money::from_usd(40));
}

/// Marks from one replica at once (they go to the server in groups): a batch marked twice
/// is marked once, and a mark that fails fails only itself.
async fn concurrent_marks_answer_as_if_in_turn(kind: Kind) {
    let s = Store::new(kind).await;
    for n in 0..=40 {
        assert!(matches!(s.l().admit(&submission(n, 1, vec![])).await.unwrap(), Admit::Admitted));
    }
    let at = ts("2026-03-10T01:00:01Z");
    assert!(s.l().mark_submitted("sub_40", "msgbatch_taken", at).await.unwrap());
    // First every batch up to 29, five of them twice (a create and a recovery racing);
    // then the rest, one under an upstream id another batch holds.
    let mut first: Vec<(String, String)> = Vec::new();
    for n in 0..30 {
        first.push((format!("sub_{n}"), format!("msgbatch_{n}")));
        if n < 5 {
            first.push((format!("sub_{n}"), format!("msgbatch_again_{n}")));
        }
    }
    let mut then: Vec<(String, String)> =
        (30..40).map(|n| (format!("sub_{n}"), format!("msgbatch_{n}"))).collect();
    then[9].1 = "msgbatch_taken".into();
    let mut won = std::collections::HashMap::new();
    for marks in [first, then] {
        let tasks: Vec<_> = marks
            .into_iter()
            .map(|(sub, up)| {
                let l = Arc::clone(s.l());
                tokio::spawn(async move {
                    let out = l.mark_submitted(&sub, &up, at).await;
                    (sub, up, out)
                })
            })
            .collect();
        for t in tasks {
            let (sub, up, out) = t.await.unwrap();
            if up == "msgbatch_taken" {
                assert!(out.is_err(), "a taken upstream id was recorded: {out:?}");
            } else if out.unwrap() {
                assert!(won.insert(sub.clone(), up).is_none(), "{sub} marked twice");
            }
        }
    }
    assert_eq!(won.len(), 39, "every batch marked once: {won:?}");
    for (sub, up) in &won {
        let b = s.l().batch(sub).await.unwrap().unwrap();
        assert_eq!((b.state, b.upstream_id.as_ref()), (BatchState::InFlight, Some(up)));
    }
    let failed = s.l().batch("sub_39").await.unwrap().unwrap();
    assert_eq!((failed.state, failed.upstream_id), (BatchState::Submitting, None));
}

async fn due_batches_are_claimed_by_one_replica_at_a_time(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 3).await;
    let (t0, t1) = ("2026-03-10T01:00:05Z", "2026-03-10T01:00:35Z");
    let a = s.at(0).claim_due(&lease("a", t0, t1), 10).await.unwrap();
    assert_eq!(a.len(), 3);
    assert!(a.iter().all(|b| b.lease_owner.as_deref() == Some("a")));
    // B finds nothing while A's leases live; A keeps claiming its own.
    assert!(s.at(1).claim_due(&lease("b", t0, t1), 10).await.unwrap().is_empty());
    assert_eq!(s.at(0).claim_due(&lease("a", t0, t1), 10).await.unwrap().len(), 3);
    // A renews; B still finds nothing after the old expiry.
    assert_eq!(s.at(0).renew_leases("a", ts("2026-03-10T01:01:30Z")).await.unwrap(), 3);
    let mid = "2026-03-10T01:01:00Z";
    assert!(
        s.at(1).claim_due(&lease("b", mid, "2026-03-10T01:01:30Z"), 10).await.unwrap().is_empty()
    );
    // A stops renewing (it died): past the lease B takes every batch over.
    let late = "2026-03-10T01:02:00Z";
    let b = s.at(1).claim_due(&lease("b", late, "2026-03-10T01:02:30Z"), 10).await.unwrap();
    assert_eq!(b.len(), 3);
    // A handing over (a clean shutdown) frees them at once.
    assert_eq!(s.at(1).drop_leases("b", None).await.unwrap(), 3);
    assert_eq!(
        s.at(2).claim_due(&lease("c", late, "2026-03-10T01:02:30Z"), 10).await.unwrap().len(),
        3
    );
    // Polled: C hands the lease back with the next poll's schedule, so its heartbeat
    // renews only the two it still has in hand, and the polled one is nobody's until due.
    s.l()
        .schedule_polls("c", &[plan("sub_0", "2026-03-10T05:00:00Z", Some("in_progress"))])
        .await
        .unwrap();
    let b0 = s.l().batch("sub_0").await.unwrap().unwrap();
    assert_eq!((b0.lease_owner, b0.lease_until), (None, None));
    assert_eq!(s.at(2).renew_leases("c", ts("2026-03-10T01:03:00Z")).await.unwrap(), 2);
    // Not yet due: nobody claims it.
    let later = s
        .at(2)
        .claim_due(&lease("c", "2026-03-10T01:03:00Z", "2026-03-10T01:03:30Z"), 10)
        .await
        .unwrap();
    assert_eq!(later.len(), 2);
    // A schedule from a replica whose lease another has taken leaves that lease alone,
    // and so does one written while a settlement of the holder's has it.
    s.l()
        .schedule_polls("a", &[plan("sub_1", "2026-03-10T05:00:00Z", Some("in_progress"))])
        .await
        .unwrap();
    assert_eq!(s.l().batch("sub_1").await.unwrap().unwrap().lease_owner.as_deref(), Some("c"));
    let settling = lease("c", "2026-03-10T01:03:00Z", "2026-03-10T01:03:30Z");
    assert!(s.at(2).begin_settling("sub_2", &settling, "c#1").await.unwrap());
    s.l()
        .schedule_polls("c", &[plan("sub_2", "2026-03-10T05:00:00Z", Some("ended"))])
        .await
        .unwrap();
    assert_eq!(s.l().batch("sub_2").await.unwrap().unwrap().lease_owner.as_deref(), Some("c"));
    assert_eq!(s.at(2).renew_leases("c", ts("2026-03-10T01:04:00Z")).await.unwrap(), 2);
}

fn plan(sub_id: &str, next: &str, status: Option<&str>) -> PollPlan {
    PollPlan {
        sub_id: sub_id.into(),
        next_poll_at: ts(next),
        attempts: 1,
        last_status: status.map(str::to_string),
        error: None,
    }
}

async fn a_claim_rounds_polls_are_recorded_as_if_in_turn(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 3).await;
    s.l().schedule_polls("a", &[]).await.unwrap();
    let failed = PollPlan {
        attempts: 4,
        error: Some("upstream answered HTTP 500 while polling".into()),
        ..plan("sub_1", "2026-03-10T03:00:00Z", None)
    };
    let plans = [
        plan("sub_0", "2026-03-10T02:00:00Z", Some("in_progress")),
        failed.clone(),
        // The same batch again: this one stands, with the status recorded before it.
        PollPlan { attempts: 2, ..plan("sub_0", "2026-03-10T04:00:00Z", None) },
    ];
    s.at(1).schedule_polls("b", &plans).await.unwrap();
    let (b0, b1, b2) = (
        s.l().batch("sub_0").await.unwrap().unwrap(),
        s.l().batch("sub_1").await.unwrap().unwrap(),
        s.l().batch("sub_2").await.unwrap().unwrap(),
    );
    assert_eq!(b0.next_poll_at, Some(ts("2026-03-10T04:00:00Z")));
    assert_eq!((b0.poll_attempts, b0.last_status.as_deref()), (2, Some("in_progress")));
    assert_eq!(b1.next_poll_at, Some(ts("2026-03-10T03:00:00Z")));
    assert_eq!((b1.poll_attempts, b1.error), (4, failed.error));
    assert_eq!(b1.last_status, None);
    // Not in the round: untouched.
    assert_eq!((b2.next_poll_at, b2.poll_attempts), (Some(ts("2026-03-10T01:00:01Z")), 0));
    // A later poll that saw no status keeps the one recorded, and clears the error.
    let later = [plan("sub_1", "2026-03-10T05:00:00Z", Some("ended"))];
    s.l().schedule_polls("b", &later).await.unwrap();
    s.l().schedule_polls("b", &[plan("sub_1", "2026-03-10T06:00:00Z", None)]).await.unwrap();
    let b1 = s.l().batch("sub_1").await.unwrap().unwrap();
    assert_eq!((b1.last_status.as_deref(), b1.error), (Some("ended"), None));
}

async fn concurrent_claims_never_share_a_batch(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 60).await;
    let mut tasks = Vec::new();
    for r in 0..6 {
        let l = s.at(r);
        tasks.push(tokio::spawn(async move {
            let owner = format!("replica-{r}");
            let mut mine = Vec::new();
            for _ in 0..5 {
                let got = l
                    .claim_due(&lease(&owner, "2026-03-10T01:00:05Z", "2026-03-10T01:00:35Z"), 4)
                    .await
                    .unwrap();
                // As the tracker does: polled, the round's next polls in one write.
                let plans: Vec<PollPlan> =
                    got.iter().map(|b| plan(&b.sub_id, "2026-03-10T02:00:00Z", None)).collect();
                l.schedule_polls(&owner, &plans).await.unwrap();
                mine.extend(got.into_iter().map(|b| (b.sub_id, owner.clone())));
            }
            mine
        }));
    }
    let mut owner_of = std::collections::HashMap::new();
    for t in tasks {
        for (sub, owner) in t.await.unwrap() {
            if let Some(prev) = owner_of.insert(sub.clone(), owner.clone()) {
                assert_eq!(prev, owner, "{sub} claimed by two replicas");
            }
        }
    }
    assert_eq!(owner_of.len(), 60, "every due batch claimed by someone");
}

async fn a_live_create_is_left_alone_by_recovery(kind: Kind) {
    let s = Store::new(kind).await;
    let mut live = submission(1, 1, vec![]);
    live.lease = Some(lease("a", "2026-03-10T01:00:00Z", "2026-03-10T01:00:30Z"));
    assert!(matches!(s.l().admit(&live).await.unwrap(), Admit::Admitted));
    let orphan = submission(2, 1, vec![]);
    assert!(matches!(s.l().admit(&orphan).await.unwrap(), Admit::Admitted));
    let old_enough = ts("2026-03-10T01:00:10Z");
    let t = ("2026-03-10T01:00:10Z", "2026-03-10T01:00:40Z");
    // Neither another replica nor A's own recovery touches A's create in progress.
    let b = s.at(1).claim_pending(&lease("b", t.0, t.1), old_enough, 10).await.unwrap();
    assert_eq!(b.iter().map(|r| r.sub_id.as_str()).collect::<Vec<_>>(), ["sub_2"]);
    assert!(s.at(0).claim_pending(&lease("a", t.0, t.1), old_enough, 10).await.unwrap().is_empty());
    // Too young: not yet.
    let c = lease("c", "2026-03-10T01:01:00Z", "2026-03-10T01:01:30Z");
    let young = s.at(2).claim_pending(&c, ts("2026-03-09T00:00:00Z"), 10).await.unwrap();
    assert!(young.is_empty());
    // A died: once its lease ran out, recovery may take the create.
    let late = s
        .at(2)
        .claim_pending(&lease("c", "2026-03-10T01:05:00Z", "2026-03-10T01:05:30Z"), old_enough, 10)
        .await
        .unwrap();
    // (B's claim on the orphan ran out too: it stopped working on it.)
    let got: HashSet<&str> = late.iter().map(|r| r.sub_id.as_str()).collect();
    assert_eq!(got, HashSet::from(["sub_1", "sub_2"]));
    assert!(late.iter().all(|r| r.lease_owner.as_deref() == Some("c")));
}

async fn one_task_settles_at_a_time(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 1).await;
    let t = lease("a", "2026-03-10T01:00:05Z", "2026-03-10T01:00:35Z");
    assert!(s.at(0).begin_settling("sub_0", &t, "a#1").await.unwrap());
    assert!(!s.at(0).begin_settling("sub_0", &t, "a#2").await.unwrap(), "a second task of A");
    let b = lease("b", "2026-03-10T01:00:06Z", "2026-03-10T01:00:36Z");
    assert!(!s.at(1).begin_settling("sub_0", &b, "b#1").await.unwrap(), "B, while A's lease lives");
    s.at(0).end_settling("sub_0", "a#1").await.unwrap();
    assert!(s.at(0).begin_settling("sub_0", &t, "a#2").await.unwrap());
    // A dies mid-settlement: after its lease B takes over and settles once.
    let late = lease("b", "2026-03-10T01:01:00Z", "2026-03-10T01:01:30Z");
    assert!(s.at(1).begin_settling("sub_0", &late, "b#2").await.unwrap());
    assert!(s.at(1).settle("sub_0", &settlement(Money::from_usd(1))).await.unwrap());
    let rec = s.l().batch("sub_0").await.unwrap().unwrap();
    assert_eq!((rec.state, rec.lease_owner), (BatchState::Settled, None));
    assert!(!s.at(0).begin_settling("sub_0", &t, "a#3").await.unwrap(), "settled: nothing to do");
}

async fn batched_reads_answer_in_one_go(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 3).await;
    let ids: Vec<String> =
        ["msgbatch_0", "msgbatch_2", "msgbatch_9"].iter().map(|s| s.to_string()).collect();
    let known = s.l().known_upstream_ids("anthropic", &ids).await.unwrap();
    assert_eq!(known, HashSet::from(["msgbatch_0".to_string(), "msgbatch_2".to_string()]));
    assert!(s.l().known_upstream_ids("anthropic", &[]).await.unwrap().is_empty());
    // Ids are the provider's: the same id under another upstream is another batch.
    assert!(s.l().known_upstream_ids("together", &ids).await.unwrap().is_empty());
    let mut other = submission(8, 1, vec![]);
    other.provider = "together".into();
    assert!(matches!(s.l().admit(&other).await.unwrap(), Admit::Admitted));
    assert!(s.l().mark_submitted("sub_8", "msgbatch_0", ts("2026-03-10T01:00:01Z")).await.unwrap());
    let b = s.l().batch_by_upstream("together", "msgbatch_0").await.unwrap().unwrap();
    assert_eq!(b.sub_id, "sub_8");
    let page =
        s.l().project_batches("anthropic", "search", ledger::ListCursor::Newest, 2).await.unwrap();
    assert_eq!(page.len(), 2);
    let next = s
        .l()
        .project_batches(
            "anthropic",
            "search",
            ledger::ListCursor::After(page[1].upstream_id.as_deref().unwrap()),
            10,
        )
        .await
        .unwrap();
    assert_eq!(page.len() + next.len(), 3, "every anthropic batch of the project, once");
    // Windows come back in the order asked, untouched ones at zero.
    let sub = submission(7, 2, vec![window("x", 10)]);
    assert!(matches!(s.l().admit(&sub).await.unwrap(), Admit::Admitted));
    let w = s.l().windows(&[window("y", 10), window("x", 10)]).await.unwrap();
    assert_eq!((w[0].budget.as_str(), w[0].reserved), ("y", Money::ZERO));
    assert_eq!((w[1].budget.as_str(), w[1].reserved), ("x", Money::from_usd(2)));
    assert!(s.l().windows(&[]).await.unwrap().is_empty());
}

async fn reports_stream_what_was_settled(kind: Kind) {
    let s = Store::new(kind).await;
    in_flight(&s, 3).await;
    for i in 0..2 {
        let cost = Money::from_usd(i as i64 + 1);
        assert!(s.l().settle(&format!("sub_{i}"), &settlement(cost)).await.unwrap());
    }
    let rows: Vec<_> = s
        .l()
        .spend_rows(ts("2026-03-10T00:00:00Z"), ts("2026-03-11T00:00:00Z"))
        .map(|r| r.unwrap())
        .collect()
        .await;
    let got: Vec<(String, Money)> = rows.iter().map(|r| (r.sub_id.clone(), r.usage.cost)).collect();
    assert_eq!(got, [("sub_0".into(), Money::from_usd(1)), ("sub_1".into(), Money::from_usd(2))]);
    let flight = s.l().in_flight().await.unwrap();
    assert_eq!(flight.len(), 1);
    assert_eq!((flight[0].batches, flight[0].requests), (1, 10));
    let none: Vec<_> =
        s.l().spend_rows(ts("2026-03-11T00:00:00Z"), ts("2026-03-12T00:00:00Z")).collect().await;
    assert!(none.is_empty());
}

async fn an_older_schema_is_refused_until_migrated(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let db = match kind {
        Kind::Sqlite => TestDb::sqlite(dir.path()),
        Kind::Postgres => TestDb::postgres(),
    };
    let (before, v) = ledger::migrate_url_to(&db.url, 1).await.unwrap();
    assert_eq!((before, v), (ledger::SchemaState::Empty, 1));
    let err = match ledger::open(&db.url, Durability::Normal).await {
        Ok(_) => panic!("opened an older schema"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("run `batchcost migrate`"), "{err}");
    let (before, v) = ledger::migrate_url(&db.url).await.unwrap();
    assert_eq!(before, ledger::SchemaState::Older(Some(1)));
    let latest = ledger::backend_of(&db.url).unwrap().latest();
    assert_eq!(v, latest);
    let l = ledger::open(&db.url, Durability::Normal).await.unwrap();
    assert!(matches!(l.admit(&submission(1, 1, vec![])).await.unwrap(), Admit::Admitted));
    // Migrating again changes nothing.
    assert_eq!(ledger::migrate_url(&db.url).await.unwrap(), (ledger::SchemaState::Current, latest));
}

/// Runs `sql` (several statements) on the database at `url` with the backend's own driver.
async fn raw(kind: Kind, url: &str, sql: &str) {
    match kind {
        Kind::Sqlite => {
            let pool = sqlx::SqlitePool::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
        Kind::Postgres => {
            let pool = sqlx::PgPool::connect(url).await.unwrap();
            sqlx::raw_sql(sql).execute(&pool).await.unwrap();
            pool.close().await;
        }
    }
}

/// Version 10 rebuilt SQLite's `dedupe`, `reservations` and `batch_bounds` tables and
/// changed indexes on both backends: a batch admitted at version 9 keeps its hold (its
/// settlement moves exactly it to spent), its dedupe key (the same body is a retry), its
/// calibration bounds, and is still found by its upstream id.
async fn version_10_keeps_holds_keys_and_bounds(kind: Kind) {
    let dir = tempfile::tempdir().unwrap();
    let db = match kind {
        Kind::Sqlite => TestDb::sqlite(dir.path()),
        Kind::Postgres => TestDb::postgres(),
    };
    ledger::migrate_url_to(&db.url, 9).await.unwrap();
    let w = window("daily", 30);
    let (start, end) = (w.start.as_microsecond(), w.end.as_microsecond());
    let at = ts("2026-03-10T01:00:00Z").as_microsecond();
    let pico = Money::from_usd(3).to_i64().unwrap();
    raw(
        kind,
        &db.url,
        &format!(
            "INSERT INTO budget_windows (budget, window_start, window_end, project, period, \
             limit_pico, limit_output, reserved_pico, reserved_input, reserved_output) \
             VALUES ('daily', {start}, {end}, 'search', 'day', {limit}, 1000000, {pico}, 100, 1000); \
             INSERT INTO batches (sub_id, project, provider, state, submitted_at, request_count, \
             hold_pico, hold_input, hold_output, custom_id_fp, body_hash, estimate_json, \
             upstream_id) VALUES ('sub_1', 'search', 'anthropic', 'in_flight', {at}, 10, \
             {pico}, 100, 1000, 1, 'hash1', '{{}}', 'msgbatch_1'); \
             INSERT INTO dedupe (project, body_hash, sub_id, submitted_at) \
             VALUES ('search', 'hash1', 'sub_1', {at}); \
             INSERT INTO reservations (sub_id, budget, window_start, hold_pico, hold_input, \
             hold_output, state) VALUES ('sub_1', 'daily', {start}, {pico}, 100, 1000, 'held'); \
             INSERT INTO batch_bounds (sub_id, model, input_upper, output_worst, worst_pico, \
             worst_output_pico) VALUES ('sub_1', 'claude-sonnet-4-6', 100, 1000, {pico}, {pico});",
            limit = Money::from_usd(30).to_i64().unwrap(),
        ),
    )
    .await;
    assert_eq!(ledger::migrate_url(&db.url).await.unwrap().1, 10);
    let l = ledger::open(&db.url, Durability::Normal).await.unwrap();
    assert_eq!(l.windows(std::slice::from_ref(&w)).await.unwrap()[0].reserved, Money::from_usd(3));
    let found = l.batch_by_upstream("anthropic", "msgbatch_1").await.unwrap();
    assert_eq!(found.map(|b| b.sub_id).as_deref(), Some("sub_1"));
    let mut retry = submission(2, 3, vec![w.clone()]);
    retry.body_hash = "hash1".into();
    match l.admit(&retry).await.unwrap() {
        Admit::Duplicate(rec) => assert_eq!(rec.sub_id, "sub_1"),
        other => panic!("expected the migrated batch back, got {other:?}"),
    }
    assert!(l.settle("sub_1", &settlement(Money::from_usd(2))).await.unwrap());
    let after = &l.windows(std::slice::from_ref(&w)).await.unwrap()[0];
    assert_eq!((after.reserved, after.spent), (Money::ZERO, Money::from_usd(2)));
    let samples = l.calibration_samples("search", "claude-sonnet-4-6", 10).await.unwrap();
    let want = CalibrationSample {
        input_upper: 100,
        output_worst: 1_000,
        input_actual: 50,
        output_actual: 400,
    };
    assert_eq!(samples, vec![want]);
}

/// A SQLite ledger written before versioned migrations is refused, then adopted by
/// `migrate` with its batches, which keep their dedupe keys.
#[tokio::test]
async fn an_unversioned_sqlite_ledger_is_adopted_by_migrate() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite(dir.path());
    {
        let opts: sqlx::sqlite::SqliteConnectOptions =
            db.url.parse::<sqlx::sqlite::SqliteConnectOptions>().unwrap().create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(opts).await.unwrap();
        let v1 = include_str!("../src/ledger/migrations/sqlite/0001_initial.sql");
        sqlx::raw_sql(v1).execute(&pool).await.unwrap();
        sqlx::query(
            "INSERT INTO batches (sub_id, project, provider, state, submitted_at, request_count, \
             hold_pico, hold_input, hold_output, custom_id_fp, body_hash, estimate_json) \
             VALUES ('old_1', 'search', 'anthropic', 'submitting', $1, 10, 0, 0, 0, 0, 'hash9', '{}')",
        )
        .bind(ts("2026-03-10T00:55:00Z").as_microsecond())
        .execute(&pool)
        .await
        .unwrap();
        pool.close().await;
    }
    let err = ledger::open(&db.url, Durability::Normal).await.err().unwrap().to_string();
    assert!(err.contains("unversioned") && err.contains("batchcost migrate"), "{err}");
    let (before, after) = ledger::migrate_url(&db.url).await.unwrap();
    assert_eq!((before, after), (ledger::SchemaState::Older(None), Backend::Sqlite.latest()));
    let l = ledger::open(&db.url, Durability::Normal).await.unwrap();
    assert_eq!(l.batch("old_1").await.unwrap().unwrap().state, BatchState::Submitting);
    // The old batch holds its body's dedupe key: the same body again is a retry.
    match l.admit(&submission(9, 1, vec![])).await.unwrap() {
        Admit::Duplicate(rec) => assert_eq!(rec.sub_id, "old_1"),
        other => panic!("expected the old batch back, got {other:?}"),
    }
}

/// On PostgreSQL the writes on the create path commit without waiting for their own WAL
/// flush (`src/ledger/pg_flush.rs`); they must still be on disk when the call returns,
/// with everything committed before them. The witness is a row another session commits
/// with `synchronous_commit = off` just before each call: its WAL position must be
/// flushed when the call returns (the WAL writer alone takes up to `wal_writer_delay`).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_writes_are_on_disk_when_they_return() {
    use sqlx::{Connection, PgConnection};
    /// Commits a row without waiting for the flush; the WAL position after it.
    async fn witness(c: &mut PgConnection) -> String {
        sqlx::query("INSERT INTO witness VALUES (1)").execute(&mut *c).await.unwrap();
        sqlx::query_scalar("SELECT pg_current_wal_insert_lsn()::text")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }
    async fn flushed(c: &mut PgConnection, lsn: &str) -> bool {
        sqlx::query_scalar("SELECT pg_current_wal_flush_lsn() >= $1::pg_lsn")
            .bind(lsn)
            .fetch_one(c)
            .await
            .unwrap()
    }
    let s = Store::new(Kind::Postgres).await;
    let mut other = PgConnection::connect(&s._db.url).await.unwrap();
    sqlx::query("SET synchronous_commit = off").execute(&mut other).await.unwrap();
    sqlx::query("CREATE TABLE witness (n INT)").execute(&mut other).await.unwrap();
    let l = s.l();
    let lsn = witness(&mut other).await;
    let sub = submission(1, 1, vec![window("daily", 100)]);
    assert!(matches!(l.admit(&sub).await.unwrap(), Admit::Admitted));
    assert!(flushed(&mut other, &lsn).await, "admission returned before the WAL was flushed");
    let lsn = witness(&mut other).await;
    assert!(l.mark_submitted("sub_1", "msgbatch_1", ts("2026-03-10T01:00:01Z")).await.unwrap());
    assert!(flushed(&mut other, &lsn).await, "mark_submitted returned before the flush");
    let lsn = witness(&mut other).await;
    assert!(l.settle("sub_1", &settlement(Money::from_usd(1))).await.unwrap());
    assert!(flushed(&mut other, &lsn).await, "settlement returned before the WAL was flushed");
    let lsn = witness(&mut other).await;
    l.durable().await.unwrap();
    assert!(flushed(&mut other, &lsn).await, "durable() returned before the WAL was flushed");
}

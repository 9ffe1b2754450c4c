use std::sync::Arc;

use super::*;
use crate::simulator::engine::time::secs;
use crate::simulator::params::{Breakpoint, Invalid, Ttl};

const LC: Lifecycle = Lifecycle {
    seed: 1,
    startup_secs: 60.0,
    requests_per_second: 10.0,
    cancel_grace_secs: 1.0,
    errored_fraction: 0.0,
    ..Lifecycle::DEFAULT
};

fn t0() -> Timestamp {
    "2026-01-10T08:00:00Z".parse().unwrap()
}

fn at(secs_after: f64) -> Timestamp {
    t0().saturating_add(secs(secs_after)).unwrap()
}

fn record(i: usize, invalid: bool, breakpoints: Vec<Breakpoint>) -> RequestRecord {
    RequestRecord {
        custom_id: format!("r{i}").into(),
        model: Arc::from("claude-sonnet-4-6"),
        max_tokens: 100,
        input_tokens: 5000,
        breakpoints: breakpoints.into_boxed_slice(),
        web_search_max: 0,
        web_fetch_max: 0,
        inference_geo: None,
        invalid: invalid.then(|| {
            Box::new(Invalid { error_type: "invalid_request_error", message: "x".into() })
        }),
    }
}

fn records(n: usize) -> Vec<RequestRecord> {
    (0..n).map(|i| record(i, i == 0, vec![])).collect()
}

#[test]
fn counters_stay_in_processing_until_the_end_then_flip_at_once() {
    let mut r = Registry::new(LC);
    let id = r.create(records(100), t0()).id.clone();
    // 100 requests at 10/s after a 60 s startup: the last completes at t0 + 70 s.
    r.advance(at(69.9));
    let v = r.get(&id).unwrap().view(at(69.9), "http://sim");
    assert_eq!(v.processing_status, ProcessingStatus::InProgress);
    assert_eq!(v.request_counts, RequestCounts { processing: 100, ..RequestCounts::default() });
    assert_eq!((v.results_url, v.ended_at), (None, None));
    r.advance(at(70.0));
    let v = r.get(&id).unwrap().view(at(70.0), "http://sim");
    assert_eq!(v.processing_status, ProcessingStatus::Ended);
    assert_eq!(
        v.request_counts,
        RequestCounts { succeeded: 99, errored: 1, ..RequestCounts::default() }
    );
    assert_eq!(v.ended_at.as_deref(), Some("2026-01-10T08:01:10.000000Z"));
    assert_eq!(v.expires_at, "2026-01-11T08:00:00.000000Z");
    assert_eq!(v.results_url.unwrap(), format!("http://sim/v1/messages/batches/{id}/results"));
}

#[test]
fn unfinished_requests_expire_at_24_hours() {
    let lc = Lifecycle { requests_per_second: 1.0 / 3600.0, startup_secs: 0.0, ..LC };
    let mut r = Registry::new(lc);
    let id = r.create(records(30), t0()).id.clone();
    r.advance(at(24.0 * 3600.0));
    let v = r.get(&id).unwrap().view(at(86400.0), "http://sim");
    assert_eq!(v.processing_status, ProcessingStatus::Ended);
    assert_eq!(v.ended_at.as_deref(), Some("2026-01-11T08:00:00.000000Z"));
    // One per hour: requests 1..=24 complete (the first is invalid), 6 expire.
    assert_eq!(
        v.request_counts,
        RequestCounts { succeeded: 23, errored: 1, expired: 6, ..RequestCounts::default() }
    );
}

#[test]
fn cancel_lets_in_flight_requests_finish_and_cancels_the_rest() {
    let mut r = Registry::new(LC);
    let id = r.create(records(100), t0()).id.clone();
    let v = r.cancel(&id, at(62.0)).unwrap().view(at(62.0), "http://sim");
    assert_eq!(v.processing_status, ProcessingStatus::Canceling);
    assert_eq!(v.cancel_initiated_at.as_deref(), Some("2026-01-10T08:01:02.000000Z"));
    assert_eq!(v.request_counts.processing, 100);
    r.advance(at(63.0));
    let v = r.get(&id).unwrap().view(at(63.0), "http://sim");
    assert_eq!(v.processing_status, ProcessingStatus::Ended);
    // Completed by 63 s: requests 0..=29 (at 60.1 .. 63.0 s).
    assert_eq!(
        v.request_counts,
        RequestCounts { succeeded: 29, errored: 1, canceled: 70, ..RequestCounts::default() }
    );
    // Cancel on an ended batch changes nothing.
    let again = r.cancel(&id, at(100.0)).unwrap().view(at(100.0), "http://sim");
    assert_eq!(again, r.get(&id).unwrap().view(at(100.0), "http://sim"));
    assert_eq!(again.cancel_initiated_at, v.cancel_initiated_at);
}

#[test]
fn delete_needs_an_ended_batch_and_results_vanish_at_archival() {
    let mut r = Registry::new(LC);
    let id = r.create(records(3), t0()).id.clone();
    assert!(matches!(r.delete(&id), Err(ApiError::InvalidRequest(_))));
    assert!(matches!(r.results(&id, t0()), Err(ApiError::NotFound(_))));
    let day29 = at(29.0 * 86400.0);
    r.advance(at(100.0));
    assert_eq!(r.results(&id, at(100.0)).unwrap().outcomes.len(), 3);
    r.advance(day29);
    let v = r.get(&id).unwrap().view(day29, "http://sim");
    assert_eq!(v.archived_at.as_deref(), Some("2026-02-08T08:00:00.000000Z"));
    assert!(matches!(r.results(&id, day29), Err(ApiError::NotFound(m)) if m.contains("archived")));
    r.delete(&id).unwrap();
    assert!(matches!(r.get(&id), Err(ApiError::NotFound(_))));
}

#[test]
fn pages_run_newest_first_in_both_directions() {
    let mut r = Registry::new(LC);
    let ids: Vec<String> = (0..5).map(|_| r.create(records(1), t0()).id.clone()).collect();
    let page = |before: Option<&str>, after: Option<&str>| {
        let q = PageQuery {
            limit: 2,
            before_id: before.map(Into::into),
            after_id: after.map(Into::into),
        };
        let (items, more) = r.list(&q).unwrap();
        (items.iter().map(|b| b.id.clone()).collect::<Vec<_>>(), more)
    };
    assert_eq!(page(None, None), (vec![ids[4].clone(), ids[3].clone()], true));
    assert_eq!(page(None, Some(&ids[3])), (vec![ids[2].clone(), ids[1].clone()], true));
    assert_eq!(page(None, Some(&ids[1])), (vec![ids[0].clone()], false));
    assert_eq!(page(Some(&ids[0]), None), (vec![ids[2].clone(), ids[1].clone()], true));
    assert_eq!(page(Some(&ids[2]), None), (vec![ids[4].clone(), ids[3].clone()], false));
    assert!(
        r.list(&PageQuery { limit: 2, before_id: Some("msgbatch_x".into()), after_id: None })
            .is_err()
    );
}

#[test]
fn a_later_batch_with_the_same_prefix_reads_the_cache() {
    let mut r = Registry::new(LC);
    let bp = || vec![Breakpoint { key: 42, tokens: 4000, ttl: Ttl::OneHour }];
    let a = r.create(vec![record(1, false, bp())], t0()).id.clone();
    r.advance(at(61.0));
    let b = r.create(vec![record(1, false, bp())], at(61.0)).id.clone();
    r.advance(at(200.0));
    let first = r.results(&a, at(200.0)).unwrap().outcomes[0];
    let second = r.results(&b, at(200.0)).unwrap().outcomes[0];
    assert_eq!(first, Outcome::Succeeded { read: 0, write_5m: 0, write_1h: 4000 });
    assert_eq!(second, Outcome::Succeeded { read: 4000, write_5m: 0, write_1h: 0 });
}

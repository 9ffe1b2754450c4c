//! The walk on several threads gives the serial walk's estimate exactly, or declines (and
//! the serial walk decides): whatever the body's whitespace, key order, nesting or errors.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::testutil::table;
use super::*;

fn opts() -> EstimateOptions {
    EstimateOptions::new(
        jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_hours(500_000),
        0.5,
    )
}

fn same(body: &str, threads: usize) -> Option<Value> {
    let serial = estimate_serial(body.as_bytes(), &table(), &opts());
    let parallel = estimate_parallel(body.as_bytes(), &table(), &opts(), threads);
    match (&serial, &parallel) {
        (Ok(s), Some(p)) => {
            let (s, p) = (serde_json::to_value(s).unwrap(), serde_json::to_value(p).unwrap());
            assert_eq!(s, p, "threads {threads}: {body}");
            Some(p)
        }
        // A body the serial walk refuses is never estimated on threads.
        (Err(e), Some(_)) => panic!("parallel accepted what serial refused ({e}): {body}"),
        (_, None) => None,
    }
}

/// The body walked as it arrives, its first `heads` bytes at a time (increasing), then
/// the whole: the serial walk's estimate or error, always (the walk may decline, never
/// differ). True if the walk took part.
fn same_early(body: &str, heads: &[usize]) -> bool {
    let serial = estimate_serial(body.as_bytes(), &table(), &opts());
    let t = table();
    let mut walk = HeadWalk::new(&t, &opts());
    for &h in heads {
        walk.more(&body.as_bytes()[..h]);
    }
    let walked = walk.done();
    let took_part = walked.is_some();
    let early = estimate_after_head(body.as_bytes(), walked, &t, &opts());
    match (&serial, &early) {
        (Ok(s), Ok(e)) => {
            let (s, e) = (serde_json::to_value(s).unwrap(), serde_json::to_value(e).unwrap());
            assert_eq!(s, e, "heads {heads:?}: {body}");
        }
        (Err(s), Err(e)) => assert_eq!(s.to_string(), e.to_string(), "heads {heads:?}: {body}"),
        _ => panic!("heads {heads:?}: serial {serial:?}, early {early:?}: {body}"),
    }
    took_part
}

fn req(i: usize, text: &str, cached: bool) -> Value {
    let mut block = json!({"type": "text", "text": text});
    if cached {
        block["cache_control"] = json!({"type": "ephemeral"});
    }
    json!({"custom_id": format!("r{i}"), "params": {
        "model": if i % 3 == 0 { "claude-small" } else { "claude-test" },
        "max_tokens": 10 + i,
        "messages": [{"role": "user", "content": [block]}],
    }})
}

fn body(reqs: &[Value]) -> String {
    json!({ "requests": reqs }).to_string()
}

#[test]
fn a_plain_body_is_estimated_on_threads_exactly_as_alone() {
    // Long shared prefixes, so the expectation depends on the order of the requests.
    let long = "shared context ".repeat(400);
    let reqs: Vec<Value> = (0..60).map(|i| req(i, &long, i % 2 == 0)).collect();
    for threads in [2, 3, 4, 8] {
        assert!(same(&body(&reqs), threads).is_some(), "declined with {threads} threads");
    }
    // The SDKs' spacing (`", "` and `": "`) and a byte-order mark.
    let spaced = body(&reqs).replace("\":", "\": ").replace(",\"", ", \"").replace("},{", "}, {");
    assert!(same(&spaced, 2).is_some());
    assert!(same(&format!("\u{FEFF} {spaced}\n"), 3).is_some());
    // Pretty-printed: not recognised (a newline inside `{"custom_id"`), left to serial.
    let pretty = serde_json::to_string_pretty(&json!({ "requests": reqs })).unwrap();
    assert!(same(&pretty, 2).is_none());
}

#[test]
fn a_body_walked_as_it_arrives_gives_the_same_estimate_however_cut() {
    let long = "shared context ".repeat(40);
    let reqs: Vec<Value> = (0..12).map(|i| req(i, &long, i % 2 == 0)).collect();
    let plain = body(&reqs);
    let spaced = plain.replace("\":", "\": ").replace(",\"", ", \"").replace("},{", "}, {");
    let bom = format!("\u{FEFF} {spaced}\n");
    for b in [&plain, &spaced, &bom] {
        let n = b.len();
        // One head anywhere.
        let walked = (0..=n).filter(|&h| same_early(b, &[h])).count();
        assert!(walked > n / 2, "the walk took part at {walked} of {n} cuts");
        // Pieces of every size, and a walk that starts before the opening is in.
        for step in [1, 7, 64, 333, n / 3] {
            let heads: Vec<usize> = (1..=n / step).map(|k| k * step).collect();
            assert!(same_early(b, &heads), "pieces of {step} bytes");
        }
    }
    // Bodies with a problem early or late: the serial walk's error, worded alike.
    let dup_late = plain.replace(r#""custom_id":"r11""#, r#""custom_id":"r1""#);
    let dup_early = plain.replace(r#""custom_id":"r2""#, r#""custom_id":"r1""#);
    let unknown = plain.replace("claude-small", "claude-nope");
    let broken = plain.replacen("},{", "},,{", 1);
    for b in [dup_late, dup_early, unknown, broken, format!("{plain}x")] {
        for step in [5, 61, 400] {
            let heads: Vec<usize> = (1..=b.len() / step).map(|k| k * step).collect();
            same_early(&b, &heads);
        }
    }
}

#[test]
fn other_shapes_and_bad_bodies_are_left_to_the_serial_walk() {
    let reqs: Vec<Value> = (0..8).map(|i| req(i, "hello", false)).collect();
    let plain = body(&reqs);
    // params before custom_id: no element is recognised.
    let params_first = plain.replace(r#"{"custom_id":"r4","params":"#, r#"{"params":"#);
    assert!(same(&params_first, 2).is_none());
    // A nested object that looks like a request start, inside a tool input.
    let nested = json!({"requests": [
        req(0, "a", false),
        {"custom_id": "x1", "params": {"model": "claude-test", "max_tokens": 5,
            "messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t",
                "name": "n", "input": {"rows": [{"a": 1}, {"custom_id": "fake", "params": {}}]}}]}]}},
        req(2, "b", false),
        req(3, "c", false),
    ]})
    .to_string();
    for threads in [2, 3, 4] {
        same(&nested, threads);
    }
    // The needle inside a string (escaped quotes) and a duplicate custom_id.
    let in_string = plain.replace("hello", r#"x},{\"custom_id\":\"y"#);
    same(&in_string, 2);
    let dup = plain.replace(r#""custom_id":"r5""#, r#""custom_id":"r1""#);
    assert!(same(&dup, 2).is_none());
    // Broken JSON, a second `requests` key, trailing garbage, an unknown model.
    for bad in [
        plain.replacen("},{", "},,{", 1),
        plain.replace("]}", r#"],"requests":[]}"#),
        format!("{plain}x"),
        plain.replace("claude-small", "claude-nope"),
    ] {
        assert!(same(&bad, 2).is_none(), "{bad}");
    }
    // A repeated key is JSON the serial walk accepts (the last wins): both agree.
    same(&plain.replace(r#"{"custom_id":"r6""#, r#"{"custom_id":"r6","custom_id":"r6""#), 2);
}

fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(r#"{"custom_id":"#.to_string()),
        Just(r#"},{"custom_id":"#.to_string()),
        Just(r#"}, {"custom_id": "#.to_string()),
        Just("\\\"".to_string()),
        Just("]}".to_string()),
        "[a-z ]{0,12}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Texts full of the needle and of JSON punctuation never make the threads disagree
    /// with the serial walk (they may decline).
    #[test]
    fn threads_never_disagree(texts in proptest::collection::vec(
        proptest::collection::vec(piece(), 0..6).prop_map(|v| v.concat()), 1..8),
        threads in 2usize..5,
    ) {
        let reqs: Vec<Value> =
            texts.iter().enumerate().map(|(i, t)| req(i, t, i % 2 == 1)).collect();
        same(&body(&reqs), threads);
        // The same texts spliced raw (unescaped) into the body: mostly invalid JSON,
        // sometimes valid in another structure.
        let raw = body(&reqs).replacen(r#""text":""#, &format!(r#""text":"{}"#, texts.concat()), 1);
        same(&raw, threads);
    }

    /// Nor does walking a head first, wherever the head ends.
    #[test]
    fn a_head_never_disagrees(texts in proptest::collection::vec(
        proptest::collection::vec(piece(), 0..6).prop_map(|v| v.concat()), 1..8),
        at in 0.0f64..=1.0,
    ) {
        let reqs: Vec<Value> =
            texts.iter().enumerate().map(|(i, t)| req(i, t, i % 2 == 1)).collect();
        let b = body(&reqs);
        let raw = b.replacen(r#""text":""#, &format!(r#""text":"{}"#, texts.concat()), 1);
        for b in [&b, &raw] {
            let step = ((b.len() as f64 * at) as usize).max(1);
            let heads: Vec<usize> = (1..=b.len() / step).map(|k| k * step).collect();
            same_early(b, &heads);
        }
    }
}

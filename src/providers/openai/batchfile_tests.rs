use super::*;

fn table() -> PriceTable {
    PriceTable::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("pricing.toml"))
        .unwrap()
}

fn at() -> jiff::Timestamp {
    "2026-11-01T00:00:00Z".parse().unwrap()
}

fn chat(id: &str, extra: &str) -> String {
    format!(
        r#"{{"custom_id":"{id}","method":"POST","url":"/v1/chat/completions","body":{{"model":"gpt-5-mini","messages":[{{"role":"user","content":"What is 2+2? Answer briefly."}}]{extra}}}}}"#
    )
}

fn check(
    t: &PriceTable,
    text: &str,
    chunk: usize,
    limits: Limits,
) -> Result<FileSummary, FileError> {
    let mut c = Checker::new(t, "openai", at(), limits);
    for piece in text.as_bytes().chunks(chunk.max(1)) {
        c.push(piece)?;
    }
    c.finish()
}

#[test]
fn chunking_never_changes_the_result() {
    let t = table();
    let mut text = String::new();
    for i in 0..40 {
        text.push_str(&chat(&format!("r{i}"), r#","max_completion_tokens":100"#));
        text.push('\n');
    }
    let whole = check(&t, &text, usize::MAX, Limits::default()).unwrap();
    for chunk in [1, 7, 64, 1000] {
        assert_eq!(check(&t, &text, chunk, Limits::default()).unwrap(), whole, "chunk {chunk}");
    }
    assert_eq!(whole.requests, 40);
    assert_eq!(whole.output_tokens_worst, 4000);
    assert_eq!(whole.endpoint, "/v1/chat/completions");
    assert_eq!(whole.model, "gpt-5-mini");
    assert_eq!(whole.bytes, text.len() as u64);
    // The upper bound covers the text's bytes; the expectation is far below it.
    assert!(whole.input_tokens_upper >= 40 * 28, "{}", whole.input_tokens_upper);
    assert!(whole.input_tokens_expected < whole.input_tokens_upper);
    let fp = (0..40).fold(0u64, |a, i| a.wrapping_add(xxh3_64(format!("r{i}").as_bytes())));
    assert_eq!(whole.custom_id_fingerprint, fp);
}

#[test]
fn caps_come_from_the_line_or_the_table() {
    let t = table();
    let max = t.resolve_for("openai", "gpt-5-mini", at()).unwrap().max_output_tokens.unwrap();
    let cases = [
        (chat("a", ""), max),
        (chat("a", r#","max_tokens":50"#), 50),
        (chat("a", r#","max_tokens":50,"max_completion_tokens":70"#), 70),
        (chat("a", r#","max_completion_tokens":70,"n":3"#), 210),
        (
            r#"{"custom_id":"a","method":"POST","url":"/v1/responses","body":{"model":"gpt-5-mini","input":"hi","max_output_tokens":256}}"#.into(),
            256,
        ),
        (
            r#"{"custom_id":"e","method":"POST","url":"/v1/embeddings","body":{"model":"text-embedding-3-small","input":["a","b"]}}"#.into(),
            0,
        ),
    ];
    for (line, want) in cases {
        let s = check(&t, &line, 5, Limits::default()).unwrap();
        assert_eq!(s.output_tokens_worst, want, "{line}");
    }
}

#[test]
fn a_bad_line_is_refused_with_its_number_and_field() {
    let t = table();
    let good = chat("ok", r#","max_tokens":5"#);
    let cases: Vec<(String, &str)> = vec![
        (
            r#"{"method":"POST","url":"/v1/chat/completions","body":{}}"#.into(),
            "line 2: custom_id: is required",
        ),
        (chat("ok", ""), "line 2: custom_id: duplicates the custom_id of line 1"),
        (
            good.replace("\"POST\"", "\"GET\"").replace("\"ok\"", "\"x\""),
            "line 2: method: must be \"POST\"",
        ),
        (
            good.replace("/v1/chat/completions", "/v1/responses").replace("\"ok\"", "\"x\""),
            "line 2: url: must be \"/v1/chat/completions\" like every line",
        ),
        (
            good.replace("gpt-5-mini", "gpt-5").replace("\"ok\"", "\"x\""),
            "line 2: body.model: must be \"gpt-5-mini\" like every line",
        ),
        (
            good.replace("\"max_tokens\":5", "\"max_tokens\":-1").replace("\"ok\"", "\"x\""),
            "line 2: body.max_tokens: must be an integer from 1",
        ),
        (
            good.replace("\"max_tokens\":5", "\"stream\":true").replace("\"ok\"", "\"x\""),
            "line 2: body.stream: must be false or absent",
        ),
        (
            r#"{"custom_id":"x","method":"POST","url":"/v1/chat/completions","body":"hi"}"#.into(),
            "line 2: body: must be an object",
        ),
        (
            r#"{"custom_id":7,"method":"POST","url":"/v1/chat/completions","body":{}}"#.into(),
            "line 2: custom_id: must be a string, got 7",
        ),
        ("{not json".into(), "line 2: malformed JSON"),
    ];
    for (bad, want) in cases {
        let text = format!("{good}\n{bad}\n");
        let e = check(&t, &text, 3, Limits::default()).unwrap_err().to_string();
        assert!(e.starts_with(want), "{bad}\n  got: {e}\n  want: {want}");
    }
    let first = r#"{"custom_id":"a","method":"POST","url":"/v1/images/generations","body":{"model":"gpt-5-mini"}}"#;
    let e = check(&t, first, 3, Limits::default()).unwrap_err().to_string();
    assert!(e.starts_with("line 1: url: must be one of /v1/responses"), "{e}");
    let unknown = chat("a", "").replace("gpt-5-mini", "gpt-unknown");
    let e = check(&t, &unknown, 3, Limits::default()).unwrap_err().to_string();
    assert!(
        e.contains(
            "body.model: model \"gpt-unknown\" is not in the price table for provider openai"
        ),
        "{e}"
    );
    // A model priced for another provider is refused here too.
    let other = chat("a", "").replace("gpt-5-mini", "claude-sonnet-4-6");
    assert!(check(&t, &other, 3, Limits::default()).is_err());
    assert_eq!(check(&t, "\n\n", 3, Limits::default()).unwrap_err(), FileError::Empty);
}

#[test]
fn limits_count_lines_and_bytes() {
    let t = table();
    let text = format!("{}\n{}\n{}\n", chat("a", ""), chat("b", ""), chat("c", ""));
    let two = Limits { max_lines: 2, max_bytes: 1 << 20 };
    assert_eq!(check(&t, &text, 10, two).unwrap_err(), FileError::TooManyLines { max: 2, line: 3 });
    let small = Limits { max_lines: 10, max_bytes: 100 };
    assert_eq!(check(&t, &text, 10, small).unwrap_err(), FileError::TooLarge { max: 100 });
}

#[test]
fn the_estimate_prices_the_sums_at_the_batch_rates() {
    let t = table();
    let text =
        format!("{}\n{}", chat("a", r#","max_tokens":10"#), chat("b", r#","max_tokens":30"#));
    let s = check(&t, &text, 4, Limits::default()).unwrap();
    let price = t.resolve_for("openai", "gpt-5-mini", at()).unwrap();
    let est = s.estimate(&price, 0.5);
    let want = price.batch.input.times(s.input_tokens_upper) + price.batch.output.times(40);
    assert_eq!(est.worst.cost, want);
    assert_eq!(est.models[0].output_tokens_expected, 20);
    assert!(est.expected.cost < est.worst.cost);
    assert_eq!(est.requests, 2);
    // Round-trips through the ledger's JSON.
    let back: FileSummary = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn images_are_bounded_not_counted_as_base64() {
    let t = table();
    let data = "A".repeat(200_000);
    let line = format!(
        r#"{{"custom_id":"i","method":"POST","url":"/v1/chat/completions","body":{{"model":"gpt-5-mini","max_tokens":5,"messages":[{{"role":"user","content":[{{"type":"text","text":"what is this"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{data}"}}}}]}}]}}}}"#
    );
    let s = check(&t, &line, 4096, Limits::default()).unwrap();
    assert!(s.input_tokens_upper >= IMAGE_TOKENS_UPPER);
    assert!(s.input_tokens_upper < IMAGE_TOKENS_UPPER + 200, "{}", s.input_tokens_upper);
}

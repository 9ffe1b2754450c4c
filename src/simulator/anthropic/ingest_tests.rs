use super::*;

fn models() -> HashSet<String> {
    ["claude-sonnet-4-6".to_string()].into_iter().collect()
}

fn parse_str(body: &str) -> Result<Vec<RequestRecord>, ApiError> {
    parse(body.as_bytes(), &models())
}

fn message_of(body: &str) -> String {
    match parse_str(body) {
        Err(ApiError::InvalidRequest(m)) => m,
        other => panic!("expected a 400, got {other:?}"),
    }
}

const P: &str =
    r#"{"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}"#;

#[test]
fn a_valid_body_becomes_compact_records() {
    let body = format!(
        r#"{{"requests":[{{"custom_id":"a-1","params":{P}}},{{"params":{P},"custom_id":"b_2"}}]}}"#
    );
    let recs = parse_str(&body).unwrap();
    assert_eq!(recs.len(), 2);
    assert_eq!(&*recs[1].custom_id, "b_2");
    assert_eq!(&*recs[0].model, "claude-sonnet-4-6");
    assert!(Arc::ptr_eq(&recs[0].model, &recs[1].model), "model names are interned");
    assert_eq!(recs[0].max_tokens, 5);
    assert!(recs[0].invalid.is_none());
}

#[test]
fn bad_params_are_accepted_and_remembered_for_the_result_line() {
    let body =
        r#"{"requests":[{"custom_id":"a","params":{"model":"claude-sonnet-4-6","messages":[]}}]}"#;
    let recs = parse_str(body).unwrap();
    assert_eq!(recs[0].invalid.as_ref().unwrap().message, "max_tokens: Field required");
}

#[test]
fn structural_errors_name_the_index_and_field() {
    assert_eq!(
        message_of(r#"{"requests":[]}"#),
        "requests: List should have at least 1 item after validation, not 0"
    );
    assert_eq!(message_of(r#"{}"#), "requests: Field required");
    assert_eq!(
        message_of(r#"{"requests":[],"x":1}"#),
        "requests: List should have at least 1 item after validation, not 0"
    );
    assert_eq!(message_of(r#"{"x":1,"requests":[]}"#), "x: Extra inputs are not permitted");
    let dup = format!(
        r#"{{"requests":[{{"custom_id":"a","params":{P}}},{{"custom_id":"b","params":{P}}},{{"custom_id":"a","params":{P}}}]}}"#
    );
    assert!(
        message_of(&dup).starts_with(
            "requests.2.custom_id: Duplicate custom_id 'a' (first used by requests.0)"
        )
    );
    let bad = format!(r#"{{"requests":[{{"custom_id":"a.b","params":{P}}}]}}"#);
    assert!(message_of(&bad).starts_with("requests.0.custom_id: String should match pattern"));
    let long = format!(r#"{{"requests":[{{"custom_id":"{}","params":{P}}}]}}"#, "x".repeat(65));
    assert!(message_of(&long).starts_with("requests.0.custom_id:"));
    let num = format!(r#"{{"requests":[{{"custom_id":7,"params":{P}}}]}}"#);
    assert_eq!(message_of(&num), "requests.0.custom_id: Input should be a valid string");
    assert_eq!(
        message_of(r#"{"requests":[{"custom_id":"a","params":[]}]}"#),
        "requests.0.params: Input should be a valid dictionary"
    );
    assert_eq!(
        message_of(r#"{"requests":[{"custom_id":"a"}]}"#),
        "requests.0.params: Field required"
    );
}

#[test]
fn wrong_shapes_and_malformed_json_are_400s_that_say_what_was_expected() {
    let m = message_of(r#"{"requests":{"a":1}}"#);
    assert!(m.contains("expected `requests` to be a list"), "{m}");
    let m = message_of(r#"[1,2]"#);
    assert!(m.contains("expected the body to be an object"), "{m}");
    let m = message_of(r#"{"requests":["x"]}"#);
    assert!(m.contains("requests.0 to be an object"), "{m}");
    let m = message_of(r#"{"requests":[{"custom_id":"a","params":{}"#);
    assert!(m.starts_with("Malformed JSON body:") && m.contains("line 1"), "{m}");
    let m = message_of(&format!(r#"{{"requests":[{{"custom_id":"a","params":{P}}}]}} trailing"#));
    assert!(m.starts_with("Malformed JSON body:"), "{m}");
}

#[tokio::test]
async fn bodies_over_the_limit_are_413_from_the_header_without_reading() {
    let body = Body::from("{}");
    let err = read_batch(body, Some(MAX_BODY_BYTES + 1), Arc::new(models())).await.err();
    assert!(matches!(err, Some(ApiError::TooLarge(_))));
}

#[tokio::test]
async fn a_streamed_body_past_the_limit_is_413_while_reading() {
    // 257 chunks of 1 MiB of the same buffer: nothing is allocated per chunk.
    let chunk = Bytes::from(vec![b' '; 1024 * 1024]);
    // Whitespace between tokens: the parser skips it without buffering.
    let head = Bytes::from_static(br#"{"requests":["#);
    let chunks = std::iter::once(head).chain(std::iter::repeat_n(chunk, 257));
    let stream = futures_util::stream::iter(chunks.map(Ok::<_, std::io::Error>));
    let err = read_batch(Body::from_stream(stream), None, Arc::new(models())).await.err();
    assert!(matches!(err, Some(ApiError::TooLarge(_))), "{err:?}");
}

use super::*;
use crate::simulator::anthropic::prompt::{
    DOCUMENT_TOKENS, IMAGE_TOKENS, MESSAGE_OVERHEAD, REQUEST_OVERHEAD,
};
use crate::simulator::engine::tokenizer::count;
use serde_json::json;

fn models() -> HashSet<String> {
    ["claude-sonnet-4-6", "claude-haiku-4-5"].iter().map(|s| s.to_string()).collect()
}

fn sum(v: Value) -> Summary {
    summarize(v.as_object().unwrap(), &models(), Mode::Batch)
}

fn error_of(v: Value) -> Invalid {
    sum(v).invalid.expect("should be invalid")
}

#[test]
fn a_plain_request_counts_its_text_and_overheads() {
    let s = sum(json!({"model":"claude-sonnet-4-6","max_tokens":10,
        "messages":[{"role":"user","content":"Hello world"}]}));
    assert_eq!(s.invalid, None);
    assert_eq!(s.input_tokens, REQUEST_OVERHEAD + MESSAGE_OVERHEAD + 2);
    assert_eq!(s.max_tokens, 10);
    assert!(s.breakpoints.is_empty());
}

#[test]
fn bad_params_are_reported_with_their_field() {
    let base = || json!({"model":"claude-sonnet-4-6","max_tokens":10,"messages":[{"role":"user","content":"x"}]});
    let mut v = base();
    v.as_object_mut().unwrap().remove("max_tokens");
    assert_eq!(error_of(v).message, "max_tokens: Field required");
    let mut v = base();
    v["max_tokens"] = json!(0);
    assert!(error_of(v).message.starts_with("max_tokens: Input should be greater"));
    let mut v = base();
    v["max_tokens"] = json!("ten");
    assert_eq!(error_of(v).message, "max_tokens: Input should be a valid integer");
    let mut v = base();
    v["messages"] = json!([]);
    assert!(error_of(v).message.starts_with("messages:"));
    let mut v = base();
    v["stream"] = json!(true);
    assert!(error_of(v).message.starts_with("stream:"));
    let mut v = base();
    v["bogus"] = json!(1);
    assert_eq!(error_of(v).message, "bogus: Extra inputs are not permitted");
    let mut v = base();
    v["messages"][0]["role"] = json!("system");
    assert!(error_of(v).message.starts_with("messages.0.role"));
    let mut v = base();
    v["model"] = json!("claude-nope");
    let e = error_of(v);
    assert_eq!((e.error_type, e.message.as_str()), ("not_found_error", "model: claude-nope"));
}

#[test]
fn breakpoints_identify_prefixes_by_model_content_and_ttl() {
    let req = |model: &str, sys: &str, ttl: &str, question: &str| {
        sum(json!({"model":model,"max_tokens":5,
            "system":[{"type":"text","text":sys,"cache_control":{"type":"ephemeral","ttl":ttl}}],
            "messages":[{"role":"user","content":question}]}))
    };
    let a = req("claude-sonnet-4-6", "You are a careful analyst.", "1h", "first question");
    let b =
        req("claude-sonnet-4-6", "You are a careful analyst.", "1h", "a different second question");
    assert_eq!(a.breakpoints.len(), 1);
    assert_eq!(a.breakpoints[0], b.breakpoints[0], "same prefix, same key and tokens");
    assert!(a.input_tokens < b.input_tokens);
    assert_eq!(a.breakpoints[0].tokens, count("You are a careful analyst."));
    let c = req("claude-sonnet-4-6", "You are a careful analyst!", "1h", "first question");
    assert_ne!(a.breakpoints[0].key, c.breakpoints[0].key);
    let d = req("claude-sonnet-4-6", "You are a careful analyst.", "5m", "first question");
    assert_ne!(a.breakpoints[0].key, d.breakpoints[0].key);
    assert_eq!(d.breakpoints[0].ttl, Ttl::FiveMinutes);
    let e = req("claude-haiku-4-5", "You are a careful analyst.", "1h", "first question");
    assert_ne!(a.breakpoints[0].key, e.breakpoints[0].key);
}

#[test]
fn cache_control_rules_are_enforced() {
    let block = |ttl: &str| json!({"type":"text","text":"x","cache_control":{"type":"ephemeral","ttl":ttl}});
    let five: Vec<Value> = (0..5).map(|_| block("5m")).collect();
    let v = json!({"model":"claude-sonnet-4-6","max_tokens":5,"system":five,
        "messages":[{"role":"user","content":"q"}]});
    assert!(error_of(v).message.contains("maximum of 4"));
    let v = json!({"model":"claude-sonnet-4-6","max_tokens":5,"system":[block("5m"), block("1h")],
        "messages":[{"role":"user","content":"q"}]});
    assert!(error_of(v).message.contains("ttl='1h' must come before"));
    let v = json!({"model":"claude-sonnet-4-6","max_tokens":5,
        "messages":[{"role":"user","content":"q"}],"cache_control":{"type":"ephemeral"}});
    let s = sum(v);
    assert_eq!(s.breakpoints.len(), 1, "automatic caching puts one breakpoint at the end");
    assert_eq!(s.breakpoints[0].tokens + REQUEST_OVERHEAD, s.input_tokens);
}

#[test]
fn server_tools_and_geo_are_noted() {
    let s = sum(json!({"model":"claude-sonnet-4-6","max_tokens":5,"inference_geo":"us",
        "tools":[{"type":"web_search_20250305","name":"web_search","max_uses":3}],
        "messages":[{"role":"user","content":"news?"}]}));
    assert_eq!(s.invalid, None);
    assert_eq!(s.web_search_max, 3);
    assert_eq!(s.inference_geo.as_deref(), Some("us"));
}

#[test]
fn tokens_never_exceed_the_params_bytes_plus_media_costs() {
    let samples = [
        json!({"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":""}]}),
        json!({"model":"claude-sonnet-4-6","max_tokens":5,
            "tools":[{"name":"t","input_schema":{"type":"object","properties":{"a":{"type":"integer","minimum":-5,"maximum":1.5}}}}],
            "system":"東京 안녕 😀 --- 1234567",
            "messages":[{"role":"user","content":[{"type":"text","text":"a,b;c"},
                {"type":"image","source":{"type":"url","url":"https://x/y.png"}}]},
                {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"t","input":{"a":1,"b":[true,null]}}]},
                {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","content":"ok"}]}]}),
        json!({"model":"claude-sonnet-4-6","max_tokens":5,"messages":[{"role":"user","content":[
            {"type":"document","source":{"type":"base64","media_type":"application/pdf","data":"JVBERi0x"}},
            {"type":"document","source":{"type":"text","media_type":"text/plain","data":"plain words"}},
            {"type":"tool_result","tool_use_id":"t","content":[
                {"type":"document","source":{"type":"text","media_type":"text/plain","data":"x"}},
                {"type":"image","source":{"type":"base64","media_type":"image/png","data":"iVBO"}}]}]}]}),
    ];
    for v in samples {
        let s = sum(v.clone());
        assert_eq!(s.invalid, None);
        let bytes = serde_json::to_vec(&v).unwrap().len() as u64;
        let images = v.to_string().matches("\"image\"").count() as u64;
        let pdfs = v.to_string().matches("application/pdf").count() as u64;
        let bound = bytes + IMAGE_TOKENS * images + DOCUMENT_TOKENS * pdfs;
        assert!(s.input_tokens <= bound, "{} > {bound}", s.input_tokens);
        assert!(
            s.input_tokens + DOCUMENT_TOKENS > bound || pdfs == 0,
            "PDFs cost their fixed amount"
        );
    }
}

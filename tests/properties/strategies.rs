//! Generators for the property tests: text in several scripts, free-form JSON, and
//! request `params` with random system / tools / messages structure and cache marks.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Models both the price table and the simulator know.
pub const MODELS: [&str; 4] =
    ["claude-haiku-4-5", "claude-sonnet-4-6", "claude-opus-4-1", "claude-3-5-haiku-20241022"];

const CODE: &str = "{}()[];=<>+-*/&|!\"'#_:.,\\`~^%$@?";

/// One character from a mix of scripts, symbols, whitespace and hard cases (combining
/// marks, joiners, NFKC-expanding compatibility characters, controls).
fn ch() -> impl Strategy<Value = char> {
    prop_oneof![
        6 => prop::char::range('a', 'z'),
        3 => prop::sample::select(vec![' ', ' ', ' ', '\n', '.', ',', '!', '?', '-', '\'']),
        1 => prop::char::range('A', 'Z'),
        1 => prop::char::range('0', '9'),
        2 => prop::char::range('\u{AC00}', '\u{D7A3}'),
        2 => prop::char::range('\u{4E00}', '\u{9FFF}'),
        1 => prop::char::range('\u{3040}', '\u{30FF}'),
        2 => prop::char::range('\u{1F300}', '\u{1FAFF}'),
        1 => prop::sample::select(vec!['\u{200D}', '\u{FE0F}', '\u{1F3FB}', '\u{20E3}']),
        1 => prop::char::range('\u{0400}', '\u{04FF}'),
        1 => prop::char::range('\u{0600}', '\u{06FF}'),
        1 => prop::char::range('\u{0900}', '\u{097F}'),
        1 => prop::char::range('\u{0300}', '\u{036F}'),
        2 => prop::sample::select(CODE.chars().collect::<Vec<_>>()),
        1 => prop::sample::select(vec![
            '\u{FDFA}', '\u{3316}', '\u{FB01}', '\u{00A0}', '\u{3000}', '\u{2028}', '\t', '\r',
            '\u{0001}', '\u{FEFF}', '\u{00BD}', '\u{2163}'
        ]),
        1 => any::<char>(),
    ]
}

/// Text of up to `max` characters.
pub fn text(max: usize) -> impl Strategy<Value = String> {
    prop::collection::vec(ch(), 0..max).prop_map(String::from_iter)
}

/// Short or, now and then, long text.
pub fn body_text() -> impl Strategy<Value = String> {
    prop_oneof![8 => text(80), 2 => text(600), 1 => text(4_000)]
}

/// Any JSON value, nested a few levels.
pub fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        (-1e12f64..1e12).prop_map(|x| json!(x)),
        text(40).prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((text(12), inner), 0..6)
                .prop_map(|kv| Value::Object(kv.into_iter().collect::<Map<_, _>>())),
        ]
    })
}

/// `cache_control`, or none. Only 5-minute marks: the simulator refuses a 1-hour mark
/// after a 5-minute one, and order is not what this property is about; `ttl_1h` asks
/// for 1-hour marks instead.
fn mark(ttl_1h: bool) -> impl Strategy<Value = Option<Value>> {
    let cc = if ttl_1h {
        json!({"type": "ephemeral", "ttl": "1h"})
    } else {
        json!({"type": "ephemeral"})
    };
    prop_oneof![4 => Just(None), 1 => Just(Some(cc))]
}

fn with_mark(mut block: Value, cc: Option<Value>) -> Value {
    if let Some(cc) = cc {
        block["cache_control"] = cc;
    }
    block
}

fn text_block(ttl_1h: bool) -> impl Strategy<Value = Value> {
    (body_text(), mark(ttl_1h))
        .prop_map(|(t, cc)| with_mark(json!({"type": "text", "text": t}), cc))
}

fn tool(ttl_1h: bool) -> BoxedStrategy<Value> {
    prop_oneof![
        4 => (text(20), text(200), json_value(), mark(ttl_1h)).prop_map(|(name, desc, schema, cc)| {
            let schema = json!({"type": "object", "properties": {"x": schema}});
            with_mark(json!({"name": name, "description": desc, "input_schema": schema}), cc)
        }),
        1 => (1u64..8).prop_map(|n| {
            json!({"type": "web_search_20250305", "name": "web_search", "max_uses": n})
        }),
    ]
    .boxed()
}

/// One content block of a message. Media are URL-sourced: for base64 images, base64
/// `text/plain` documents and `content`-sourced documents the simulator charges a flat
/// 1,600 / 3,000 tokens whatever the size, while the API (and the estimator) count the
/// pixels or the text, so a 1x1 PNG is ~41 tokens to the estimator and 1,606 to the
/// simulator: there the yardstick, not the bound, is off (README, "Guarantees").
fn block() -> BoxedStrategy<Value> {
    let url_image =
        json!({"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}});
    let url_pdf =
        json!({"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}});
    prop_oneof![
        6 => text_block(false),
        1 => (Just(url_image), mark(false)).prop_map(|(b, cc)| with_mark(b, cc)),
        1 => (Just(url_pdf), mark(false)).prop_map(|(b, cc)| with_mark(b, cc)),
        1 => (body_text(), mark(false)).prop_map(|(t, cc)| with_mark(
            json!({"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": t}}),
            cc,
        )),
        2 => (text(16), text(20), json_value(), mark(false)).prop_map(|(id, name, input, cc)| with_mark(
            json!({"type": "tool_use", "id": id, "name": name, "input": input}),
            cc,
        )),
        2 => (text(16), prop_oneof![
                body_text().prop_map(Value::String),
                prop::collection::vec(text_block(false), 0..3).prop_map(Value::Array),
            ], mark(false)).prop_map(|(id, content, cc)| with_mark(
            json!({"type": "tool_result", "tool_use_id": id, "content": content}),
            cc,
        )),
        1 => (text(200), text(40)).prop_map(|(t, s)| json!({"type": "thinking", "thinking": t, "signature": s})),
    ]
    .boxed()
}

fn content() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => body_text().prop_map(Value::String),
        3 => prop::collection::vec(block(), 1..5).prop_map(Value::Array),
    ]
}

/// Request `params` the simulator accepts (most of the time: it refuses more than four
/// cache marks, and the caller skips those).
pub fn params() -> impl Strategy<Value = Value> {
    let system = prop_oneof![
        Just(None),
        body_text().prop_map(|t| Some(Value::String(t))),
        prop::collection::vec(text_block(true), 1..3).prop_map(|b| Some(Value::Array(b))),
    ];
    let tools = prop_oneof![
        2 => Just(None),
        1 => prop::collection::vec(tool(true), 1..4).prop_map(Some),
    ];
    let extras = (
        prop::option::of(prop_oneof![
            Just(json!({"type": "auto"})),
            text(20).prop_map(|n| json!({"type": "tool", "name": n})),
        ]),
        prop::option::of(json_value()),
        any::<bool>(),
    );
    (
        prop::sample::select(MODELS.to_vec()),
        1u64..=300_000,
        system,
        tools,
        prop::collection::vec(content(), 1..6),
        extras,
    )
        .prop_map(
            |(model, max_tokens, system, tools, contents, (choice, output_config, auto))| {
                let messages: Vec<Value> = contents
                .into_iter()
                .enumerate()
                .map(|(i, c)| {
                    json!({"role": if i % 2 == 0 { "user" } else { "assistant" }, "content": c})
                })
                .collect();
                let mut p = json!({"model": model, "max_tokens": max_tokens, "messages": messages});
                if let Some(s) = system {
                    p["system"] = s;
                }
                if let Some(t) = tools {
                    p["tools"] = Value::Array(t);
                }
                if let Some(c) = choice {
                    p["tool_choice"] = c;
                }
                if let Some(o) = output_config {
                    p["output_config"] = json!({"format": o});
                }
                if auto {
                    p["cache_control"] = json!({"type": "ephemeral"});
                }
                p
            },
        )
}

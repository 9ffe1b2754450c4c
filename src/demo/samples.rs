//! Sample batches of realistic content for the demo: English summaries with a cached
//! system prompt, Korean translation, code review, and one batch too large for its budget.

use serde_json::{Value, json};

/// One batch a demo project submits.
pub struct SampleBatch {
    pub project: &'static str,
    pub title: &'static str,
    pub body: Value,
}

const TICKETS: [&str; 6] = [
    "Customer reports that invoices exported to CSV drop the currency column when the locale is set to German.",
    "After upgrading to 3.2 the mobile app logs users out every time the phone switches from Wi-Fi to LTE.",
    "The nightly sync job failed twice this week with a timeout talking to the warehouse API; retries succeeded.",
    "A user asks whether archived projects count toward the seat limit on the team plan.",
    "Search results omit documents uploaded in the last hour although the indexer reports them as processed.",
    "Refund requested for a duplicate charge on the annual plan; the second charge happened during a card update.",
];

const KOREAN: [&str; 4] = [
    "배치 작업은 결과를 받을 때까지 최대 24시간이 걸릴 수 있지만 비용은 절반입니다.",
    "이번 분기 예산을 넘지 않도록 프로젝트별 일일 한도를 설정해 주세요.",
    "검색 품질 평가를 위해 질문과 답변 쌍 만 개를 분류해야 합니다.",
    "실패한 요청은 다시 시도할 수 있도록 별도의 배치로 모아 둡니다.",
];

const CODE: [&str; 3] = [
    "fn total(items: &[Item]) -> f64 { items.iter().map(|i| i.price * i.qty as f64).sum() }",
    "def retry(fn, n=3):\n    for i in range(n):\n        try:\n            return fn()\n        except Exception:\n            time.sleep(2 ** i)\n",
    "SELECT project, SUM(cost) FROM spend WHERE day >= date('now', '-7 day') GROUP BY project;",
];

const SUPPORT_SYSTEM: &str = "You are a support triage assistant for a B2B SaaS company. For each ticket, \
write a two-sentence summary, a severity from 1 (cosmetic) to 4 (outage), and the team that should own it \
(billing, mobile, platform, search or accounts). Be precise and never invent details that are not in the ticket.";

fn request(id: String, model: &str, max_tokens: u32, system: Value, text: String) -> Value {
    json!({
        "custom_id": id,
        "params": {
            "model": model,
            "max_tokens": max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": text}]
        }
    })
}

/// The demo's batches, in submission order.
pub fn batches() -> Vec<SampleBatch> {
    let cached_system = json!([{"type": "text", "text": SUPPORT_SYSTEM, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
    let support: Vec<Value> = (0..120)
        .map(|i| {
            let t = TICKETS[i % TICKETS.len()];
            request(
                format!("ticket-{i:04}"),
                "claude-haiku-4-5",
                300,
                cached_system.clone(),
                format!("Ticket #{i}: {t}"),
            )
        })
        .collect();
    let translate: Vec<Value> = (0..60)
        .map(|i| {
            let k = KOREAN[i % KOREAN.len()];
            request(
                format!("ko-{i:04}"),
                "claude-sonnet-4-6",
                400,
                json!("Translate the Korean text into natural English. Keep product terms as they are."),
                k.to_string(),
            )
        })
        .collect();
    let review: Vec<Value> = (0..40)
        .map(|i| {
            let c = CODE[i % CODE.len()];
            request(
                format!("review-{i:04}"),
                "claude-sonnet-4-6",
                800,
                json!("Review the code for bugs and edge cases. Answer with a short list."),
                format!("```\n{c}\n```"),
            )
        })
        .collect();
    let big_eval: Vec<Value> = (0..2_000)
        .map(|i| {
            let c = CODE[i % CODE.len()];
            request(
                format!("eval-{i:05}"),
                "claude-opus-4-6",
                8_000,
                json!("Grade the answer from 1 to 10 and explain."),
                c.to_string(),
            )
        })
        .collect();
    vec![
        SampleBatch {
            project: "support",
            title: "ticket triage (Haiku 4.5, cached system prompt)",
            body: json!({"requests": support}),
        },
        SampleBatch {
            project: "search",
            title: "Korean query translation (Sonnet 4.6)",
            body: json!({"requests": translate}),
        },
        SampleBatch {
            project: "evals",
            title: "code review (Sonnet 4.6)",
            body: json!({"requests": review}),
        },
        SampleBatch {
            project: "evals",
            title: "2,000-request grading run (Opus 4.6)",
            body: json!({"requests": big_eval}),
        },
    ]
}

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

const SUPPORT_INTRO: &str = "You are a support triage assistant for a B2B SaaS company. For each ticket, \
write a two-sentence summary, a severity from 1 (cosmetic) to 4 (outage), and the team that should own it \
(billing, mobile, platform, search or accounts). Be precise and never invent details that are not in the ticket. \
The routing handbook below lists every product area, who owns it, what its tickets usually look like and how \
to grade them.";

/// (area, owning team, what its tickets usually say, what makes one an outage)
const AREAS: [(&str, &str, &str, &str); 20] = [
    (
        "Invoices and CSV exports",
        "billing",
        "missing columns, wrong currency symbols or totals that differ from the dashboard",
        "no customer can download any invoice",
    ),
    (
        "Card payments",
        "billing",
        "declined cards, duplicate charges or charges during a card update",
        "every payment attempt fails",
    ),
    (
        "Refunds",
        "billing",
        "refund requests, partial refunds and credit notes that never arrived",
        "refunds are issued twice or to the wrong customer",
    ),
    (
        "Plans and seats",
        "billing",
        "seat limits, archived projects counting toward limits and plan upgrades",
        "paying customers are locked out by a seat check",
    ),
    (
        "Tax and compliance",
        "billing",
        "VAT numbers, tax exemptions and invoices missing a legal address",
        "invoices are issued without tax for a whole region",
    ),
    (
        "Mobile login",
        "mobile",
        "users logged out when the network changes, biometric prompts that loop",
        "nobody can log in on one platform",
    ),
    (
        "Push notifications",
        "mobile",
        "notifications arriving late, twice, or for the wrong workspace",
        "notifications expose another customer's data",
    ),
    (
        "Offline mode",
        "mobile",
        "edits made offline that vanish or conflict after reconnecting",
        "offline edits overwrite other people's work",
    ),
    (
        "App store releases",
        "mobile",
        "crashes right after an update, features missing in one store",
        "the current release crashes on start for most users",
    ),
    (
        "Sync jobs",
        "platform",
        "nightly syncs timing out, retries that succeed, partial imports",
        "no sync has completed for a day",
    ),
    (
        "Public API",
        "platform",
        "rate limits, pagination that repeats items and unexpected status codes",
        "the API answers 5xx to every caller",
    ),
    (
        "Webhooks",
        "platform",
        "webhooks delivered late, out of order or with a bad signature",
        "webhooks stop for every customer",
    ),
    (
        "Data retention",
        "platform",
        "deleted records that still appear, exports that include archived data",
        "deleted data is served back to customers",
    ),
    (
        "Status and uptime",
        "platform",
        "slow pages, timeouts and questions about the status page",
        "the product is down for a region",
    ),
    (
        "Search indexing",
        "search",
        "documents missing from results although the indexer says processed",
        "search returns nothing for everyone",
    ),
    (
        "Search relevance",
        "search",
        "the right document ranked low, stale snippets, wrong language results",
        "results show documents the user may not read",
    ),
    (
        "Saved searches",
        "search",
        "alerts for saved searches that never fire or fire for old items",
        "alerts leak results across workspaces",
    ),
    (
        "Single sign-on",
        "accounts",
        "SAML or OIDC errors, users created twice, wrong default roles",
        "an identity provider change locks out a company",
    ),
    (
        "Roles and permissions",
        "accounts",
        "users who see too much or too little after a role change",
        "users can read another workspace",
    ),
    (
        "Account deletion",
        "accounts",
        "requests to delete an account or a workspace and confirm it is gone",
        "an account is deleted without its owner asking",
    ),
];

/// The triage system prompt: long enough (several thousand tokens) that the provider
/// caches it (a prompt below the model's minimum cacheable length is never cached), so
/// every ticket after the first reads it from the cache.
pub fn support_system() -> String {
    let mut s = String::from(SUPPORT_INTRO);
    for (i, (area, team, usual, outage)) in AREAS.iter().enumerate() {
        s += &format!(
            "\n\n{n}. {area}. Owner: the {team} team. Tickets in this area usually report {usual}. \
             Grade severity 4 only when {outage}; grade 3 when a paying customer is blocked and \
             no workaround exists; grade 2 when a workaround exists but costs the customer real \
             time; grade 1 for cosmetic problems, questions and requests. When a ticket mentions \
             {area_lower} together with another area, route it to the team whose area the \
             customer is blocked in, and name the other area in the summary. Quote error codes, \
             versions and dates exactly as written in the ticket; if the ticket gives none, say \
             that it gives none. Never promise a fix date, a refund or a credit: the {team} team \
             decides those. If the ticket is written in another language, summarise it in \
             English and keep product names and quoted messages in the original language. \
             Escalation for {area_lower}: page the {team} on-call engineer for severity 4, open a \
             ticket in the {team} queue for severity 3 and 2, and add severity 1 items to the \
             weekly {team} review. Before escalating, check whether the customer already sent \
             the account name, the workspace, the time the problem started with its timezone, \
             the browser or app version, and the steps that reproduce it; list in the summary \
             which of these are still missing so that the {team} team can ask for them in one \
             reply instead of several.",
            n = i + 1,
            area_lower = area.to_lowercase(),
        );
    }
    s
}
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
    let cached_system = json!([{"type": "text", "text": support_system(), "cache_control": {"type": "ephemeral", "ttl": "1h"}}]);
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

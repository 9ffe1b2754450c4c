//! The demo's OpenAI project: a batch input file uploaded through the gateway's OpenAI
//! surface (`/v1/files`, multipart, priced while it streams in) and a batch created from
//! it (`/v1/batches`), exactly as the official `openai` SDK does it. Its spend counts
//! against the same monthly budget as the Anthropic projects.

use serde_json::{Value, json};

/// The OpenAI project and its key.
pub const PROJECT: (&str, &str) = ("insights", "demo-insights-key");

const QUESTIONS: [&str; 5] = [
    "Classify this feedback as praise, complaint or request: 'The export is fast but the CSV lacks headers.'",
    "Classify this feedback as praise, complaint or request: 'Please add SSO for our contractors.'",
    "Classify this feedback as praise, complaint or request: 'Dashboards load instantly now, thank you!'",
    "Classify this feedback as praise, complaint or request: 'Billing emails go to the wrong address.'",
    "Classify this feedback as praise, complaint or request: 'Could the API return totals per project?'",
];

/// The JSONL of the demo's OpenAI batch: 80 chat requests to gpt-5-mini.
pub fn input_file() -> String {
    let mut out = String::new();
    for i in 0..80 {
        let line = json!({
            "custom_id": format!("feedback-{i:03}"),
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-5-mini",
                "max_completion_tokens": 200,
                "messages": [
                    {"role": "system", "content": "Answer with one word, then one sentence of reasoning."},
                    {"role": "user", "content": QUESTIONS[i % QUESTIONS.len()]}
                ]
            }
        });
        out.push_str(&line.to_string());
        out.push('\n');
    }
    out
}

/// Uploads the file and creates the batch: the batch id, or the error answer.
pub async fn submit(http: &reqwest::Client, base: &str) -> anyhow::Result<Result<String, Value>> {
    let part = reqwest::multipart::Part::text(input_file())
        .file_name("feedback.jsonl")
        .mime_str("application/jsonl")?;
    let form = reqwest::multipart::Form::new().text("purpose", "batch").part("file", part);
    let resp =
        http.post(format!("{base}/v1/files")).bearer_auth(PROJECT.1).multipart(form).send().await?;
    let ok = resp.status().is_success();
    let file: Value = resp.json().await?;
    if !ok {
        return Ok(Err(file));
    }
    let body = json!({
        "input_file_id": file["id"],
        "endpoint": "/v1/chat/completions",
        "completion_window": "24h",
        "metadata": {"job": "feedback-triage"},
    });
    let resp =
        http.post(format!("{base}/v1/batches")).bearer_auth(PROJECT.1).json(&body).send().await?;
    let ok = resp.status().is_success();
    let batch: Value = resp.json().await?;
    Ok(if ok { Ok(batch["id"].as_str().unwrap_or_default().to_string()) } else { Err(batch) })
}

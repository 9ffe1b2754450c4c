//! The demo's Gemini project: an inline batch on `gemini-2.5-flash` with thinking, created
//! through the gateway's `/gemini` surface exactly as google-genai sends it, against the
//! same in-process simulator, under the shared monthly budget.

use serde_json::{Value, json};

/// The Gemini project and its client key.
pub const PROJECT: (&str, &str) = ("research", "demo-research-key");
pub const TITLE: &str = "paper triage (Gemini, 2.5 Flash, thinking)";

/// Creates the batch; `Ok(Ok(id))` with the batch id the admin API knows, `Ok(Err(body))`
/// with the gateway's Google-style error when it refused.
pub async fn submit(http: &reqwest::Client, base: &str) -> anyhow::Result<Result<String, Value>> {
    let requests: Vec<Value> = (0..24)
        .map(|i| {
            json!({
                "request": {
                    "contents": [{"role": "user", "parts": [{"text": format!(
                        "Paper {i}: does the abstract claim a new state of the art? Answer yes or no, then one sentence."
                    )}]}],
                    "generationConfig": {"maxOutputTokens": 400, "thinkingConfig": {"thinkingBudget": 256}}
                },
                "metadata": {"key": format!("paper-{i:02}")}
            })
        })
        .collect();
    let body = json!({"batch": {"displayName": "paper-triage", "inputConfig": {"requests": {"requests": requests}}}});
    let resp = http
        .post(format!("{base}/gemini/v1beta/models/gemini-2.5-flash:batchGenerateContent"))
        .header("x-goog-api-key", PROJECT.1)
        .json(&body)
        .send()
        .await?;
    let ok = resp.status().is_success();
    let v: Value = resp.json().await?;
    if !ok {
        return Ok(Err(v));
    }
    let name = v["name"].as_str().unwrap_or_default();
    Ok(Ok(name.strip_prefix("batches/").unwrap_or(name).to_string()))
}

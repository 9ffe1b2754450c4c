//! The demo's Anthropic projects: each sample batch is created through the gateway's
//! Anthropic surface (`POST /v1/messages/batches`) with the headers the official SDK sends,
//! so the demo exercises the same path a client does.

use serde_json::Value;

/// Creates one batch: its id, or why the gateway refused it.
pub async fn submit(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    body: &Value,
) -> anyhow::Result<Result<String, String>> {
    let resp = http
        .post(format!("{base}/v1/messages/batches"))
        .header("x-api-key", key)
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await?;
    let status = resp.status();
    let v: Value = resp.json().await?;
    if status.is_success() {
        return Ok(Ok(v["id"].as_str().unwrap_or_default().to_string()));
    }
    let e = &v["error"];
    // A budget refusal carries its figures: the demo shows them, as a user would want.
    Ok(Err(match e["budget"]["name"].as_str() {
        Some(name) => format!(
            "refused: worst case ${} does not fit `{name}` (limit ${}, spent ${}, reserved ${})",
            e["budget"]["requested_usd"].as_str().unwrap_or("?"),
            e["budget"]["limit_usd"].as_str().unwrap_or("?"),
            e["budget"]["spent_usd"].as_str().unwrap_or("?"),
            e["budget"]["reserved_usd"].as_str().unwrap_or("?"),
        ),
        None => format!("refused: HTTP {status}: {}", e["message"].as_str().unwrap_or("")),
    }))
}

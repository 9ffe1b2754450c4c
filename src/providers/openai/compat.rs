//! What differs between OpenAI and an OpenAI-compatible batch upstream (reference
//! providers-next 3), decided from the upstream's base URL once, at startup. Deviations
//! in the objects themselves (UPPERCASE status words, Together's `{"job": ...}` wrapper,
//! RFC 3339 timestamps) are read by `status`; limits and the upload's `purpose` are here;
//! upstreams that do not serve `/v1/files` + `/v1/batches` at all are refused with a
//! message that says what they offer instead.

use super::batchfile::Limits;

/// One upstream's deviations from OpenAI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Compat {
    pub limits: Limits,
    /// `purpose` of a batch input file on this upstream.
    pub upload_purpose: &'static str,
}

impl Default for Compat {
    fn default() -> Self {
        Compat { limits: Limits::default(), upload_purpose: super::wire::PURPOSE_BATCH }
    }
}

fn host(base_url: &str) -> &str {
    let rest = base_url.split_once("://").map_or(base_url, |(_, r)| r);
    let host = rest.split(['/', '?']).next().unwrap_or("");
    host.rsplit_once('@').map_or(host, |(_, h)| h).split(':').next().unwrap_or("")
}

/// The deviations of the upstream at `base_url`, or why `kind = "openai"` cannot serve it.
pub fn for_base_url(base_url: &str) -> Result<Compat, String> {
    let h = host(base_url).to_ascii_lowercase();
    let is = |d: &str| h == d || h.ends_with(&format!(".{d}"));
    let refuse = |what: &str| {
        Err(format!(
            "{h} does not serve OpenAI's /v1/files + /v1/batches ({what}); kind = \"openai\" \
             cannot track its batches"
        ))
    };
    if is("together.xyz") || is("together.ai") {
        // 100 MB files; input files are uploaded with purpose `batch-api`.
        let limits = Limits { max_lines: 50_000, max_bytes: 100 * 1024 * 1024 };
        return Ok(Compat { limits, upload_purpose: "batch-api" });
    }
    if is("fireworks.ai") {
        return refuse("Fireworks runs batch inference jobs over datasets");
    }
    if is("mistral.ai") {
        return refuse("Mistral has its own /v1/batch/jobs API");
    }
    if is("openrouter.ai") {
        return refuse("OpenRouter batches take inline requests, not files");
    }
    if is("x.ai") {
        return refuse("xAI has its own batch API with incremental requests");
    }
    if is("deepseek.com") {
        return refuse("DeepSeek has no batch API");
    }
    Ok(Compat::default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_upstreams_get_their_limits_or_a_reason() {
        assert_eq!(for_base_url("https://api.openai.com").unwrap(), Compat::default());
        assert_eq!(for_base_url("http://127.0.0.1:9500").unwrap(), Compat::default());
        let t = for_base_url("https://api.together.xyz").unwrap();
        assert_eq!((t.limits.max_bytes, t.upload_purpose), (100 * 1024 * 1024, "batch-api"));
        let e = for_base_url("https://api.fireworks.ai/inference").unwrap_err();
        assert!(e.contains("api.fireworks.ai") && e.contains("datasets"), "{e}");
        assert!(
            for_base_url("https://user@api.mistral.ai:443/v1").unwrap_err().contains("Mistral")
        );
        assert!(for_base_url("https://notx.ai").is_ok());
    }
}

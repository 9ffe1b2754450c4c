//! `batchcost run FILE --gateway URL`: arguments and exit status of the batch runner
//! (the work is in `crate::runner`).

use std::path::PathBuf;
use std::time::Duration;

use super::CliError;
use crate::config::Secret;
use crate::money::Money;
use crate::runner::{Options, Order, RunError};

/// Arguments of `batchcost run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// JSONL input: one request per line in the provider's shape (Anthropic
    /// `{"custom_id", "params"}`, OpenAI `{"custom_id", "method", "url", "body"}`, Gemini
    /// `{"key", "request"}`), or plain items with `--template`.
    pub file: PathBuf,
    /// The batchcost gateway (or a simulator) to submit through, e.g. http://127.0.0.1:9400.
    #[arg(long)]
    pub gateway: String,
    /// Batch API to use: anthropic, openai, gemini, or the name of another upstream of the
    /// gateway (its kind is whichever API answers under `/NAME`) [default: what the
    /// input's first line looks like; anthropic with --template].
    #[arg(long)]
    pub provider: Option<String>,
    /// Gemini: the batch's model, for requests that do not name one in `request.model`.
    #[arg(long)]
    pub model: Option<String>,
    /// Gemini: batches whose inline create body is at most this many bytes are sent as
    /// inline requests, larger ones as an uploaded file [default: 19000000, under the
    /// documented 20 MB].
    #[arg(long)]
    pub gemini_inline_bytes: Option<u64>,
    /// Environment variable holding the project key.
    #[arg(long, default_value = "BATCHCOST_API_KEY")]
    pub key_env: String,
    /// Environment variable holding the gateway's admin (or read) token, for the ledger
    /// costs (`GET /api/batches/{id}`) and for `/api/estimate` where the project key is not
    /// accepted.
    #[arg(long)]
    pub admin_token_env: Option<String>,
    /// Project whose budgets the estimate checks (with the admin token; the project key
    /// implies its own project).
    #[arg(long)]
    pub project: Option<String>,
    /// Request template (JSON: the `params` of each Anthropic request, the `body` of each
    /// OpenAI line (or a whole line with `url` and `body`), the `request` of each Gemini
    /// line), `{{field}}` filled from each input item; the item's `custom_id` or `id`
    /// field names its request.
    #[arg(long)]
    pub template: Option<PathBuf>,
    /// Results, one JSONL line per input item [default: FILE.results.jsonl].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Order of `--out`.
    #[arg(long, value_enum, default_value = "input")]
    pub order: OrderArg,
    /// State file, for resuming [default: FILE.state.json].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// Submit without asking.
    #[arg(long)]
    pub yes: bool,
    /// Print the plan and its cost, send nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Attempts per item, the first included (retryable failures only).
    #[arg(long, default_value_t = 3)]
    pub max_attempts: u32,
    /// Requests per batch, at most the provider's documented limit (Anthropic: 100,000;
    /// OpenAI: 50,000); Gemini documents none, so any number [default: 100,000].
    #[arg(long)]
    pub max_batch_requests: Option<usize>,
    /// Create-body (or input-file) bytes per batch, at most the provider's documented
    /// limit (Anthropic: 256 MiB; OpenAI: 200 MiB); Gemini's 2 GiB is unconfirmed, so any.
    #[arg(long)]
    pub max_batch_bytes: Option<u64>,
    /// Worst-case cost per batch, USD: batches above it are split.
    #[arg(long)]
    pub max_batch_usd: Option<String>,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub summary_json: Option<PathBuf>,
    /// First polling interval, milliseconds (grows 1.5x while nothing changes).
    #[arg(long, default_value_t = 5_000)]
    pub poll_min_ms: u64,
    /// Longest polling interval, milliseconds.
    #[arg(long, default_value_t = 300_000)]
    pub poll_max_ms: u64,
    /// How long to wait at the end for the ledger to settle the last batches, seconds.
    #[arg(long, default_value_t = 600)]
    pub settle_timeout_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OrderArg {
    Input,
    CustomId,
}

fn with_suffix(p: &std::path::Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn secret(var: &str, what: &str) -> Result<Secret, CliError> {
    match std::env::var(var) {
        Ok(v) if !v.is_empty() => Ok(Secret::new(v)),
        _ => Err(CliError::Usage(format!("{what}: environment variable {var} is not set"))),
    }
}

/// Runs the command: 0 when every item succeeded (or a dry run), 2 for bad usage or
/// input, 1 for a plan over budget, an interrupted run, failed items or a runtime error.
pub async fn run(a: RunArgs) -> Result<(), CliError> {
    let key = secret(&a.key_env, "project key (--key-env)")?;
    let admin_token = match &a.admin_token_env {
        Some(v) => Some(secret(v, "admin token (--admin-token-env)")?),
        None => None,
    };
    let max_batch_usd = match &a.max_batch_usd {
        Some(s) => {
            Some(Money::parse_usd(s).ok().filter(|m| *m > Money::ZERO).ok_or_else(|| {
                CliError::Usage(format!(
                    "--max-batch-usd: expected a positive amount in USD, got `{s}`"
                ))
            })?)
        }
        None => None,
    };
    if a.max_attempts == 0 {
        return Err(CliError::Usage("--max-attempts: expected at least 1".into()));
    }
    if a.max_batch_requests == Some(0) {
        return Err(CliError::Usage("--max-batch-requests: expected at least 1".into()));
    }
    let opts = Options {
        out: a.out.unwrap_or_else(|| with_suffix(&a.file, ".results.jsonl")),
        state: a.state.unwrap_or_else(|| with_suffix(&a.file, ".state.json")),
        file: a.file,
        gateway: a.gateway,
        provider: a.provider,
        model: a.model,
        gemini_inline_bytes: a.gemini_inline_bytes,
        key,
        key_env: a.key_env.clone(),
        admin_token,
        project: a.project,
        template: a.template,
        order: match a.order {
            OrderArg::Input => Order::Input,
            OrderArg::CustomId => Order::CustomId,
        },
        yes: a.yes,
        dry_run: a.dry_run,
        max_attempts: a.max_attempts,
        max_batch_requests: a.max_batch_requests,
        max_batch_bytes: a.max_batch_bytes,
        max_batch_usd,
        summary_json: a.summary_json,
        poll_min: Duration::from_millis(a.poll_min_ms.max(1)),
        poll_max: Duration::from_millis(a.poll_max_ms.max(a.poll_min_ms).max(1)),
        settle_timeout: Duration::from_secs(a.settle_timeout_secs),
    };
    crate::runner::run(opts).await.map_err(|e| match e {
        RunError::Usage(m) => CliError::Usage(m),
        other => CliError::Runtime(anyhow::Error::new(other)),
    })
}

//! `batchcost approve ID [--config FILE] [--by NAME]`: approves a batch held for approval,
//! writing to the ledger the config names. It needs no token and works while the gateway
//! is down: whoever can write the ledger can already change any record in it. The approval
//! is recorded as `cli:NAME` (default: `$USER`).

use std::path::{Path, PathBuf};

use crate::cli::CliError;
use crate::config::Config;
use crate::ledger::workflow::Approve;

/// `batchcost approve` arguments.
#[derive(Debug, clap::Args)]
pub struct ApproveArgs {
    /// The approval id from the `approval_required` refusal (`apr_...`).
    pub id: String,
    /// Configuration file (its ledger and `admin.approval_ttl_secs`).
    #[arg(long, default_value = "batchcost.toml")]
    pub config: PathBuf,
    /// Who approves, recorded in the ledger (default: $USER).
    #[arg(long)]
    pub by: Option<String>,
}

pub async fn run(args: ApproveArgs) -> Result<(), CliError> {
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let config = Config::load(&args.config).map_err(|e| usage(&e))?;
    let ttl = config.admin.approval_ttl_secs;
    let settings = config.resolve_for_reports(&args.config).map_err(|e| usage(&e))?;
    if let Some(path) = settings.storage_url.strip_prefix("sqlite://") {
        if !path.starts_with(':') && !Path::new(path).exists() {
            return Err(CliError::Usage(format!(
                "{}: storage.url: no ledger at `{path}`",
                args.config.display()
            )));
        }
    }
    let ledger = crate::ledger::open(&settings.storage_url, crate::config::Durability::Normal)
        .await
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("opening the ledger")))?;
    let who = args
        .by
        .or_else(|| std::env::var("USER").ok())
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| "unknown".into());
    let now = jiff::Timestamp::now();
    let outcome =
        crate::gateway::approve_in(ledger.as_ref(), &args.id, &format!("cli:{who}"), now, ttl)
            .await
            .map_err(|e| CliError::Runtime(anyhow::Error::new(e)))?;
    match outcome {
        Approve::Approved(a) => {
            println!(
                "approved {} for project {} (budget {}, ${}) until {}",
                a.id,
                a.project,
                a.budget,
                a.hold.usd_exact(),
                a.expires_at.map(crate::clock::rfc3339_micros).unwrap_or_default()
            );
            Ok(())
        }
        Approve::NotFound => {
            Err(CliError::Usage(format!("no approval `{}` in the ledger", args.id)))
        }
        Approve::Closed(a) => Err(CliError::Usage(format!(
            "approval `{}` was already used or has expired: submit the batch again for a new one",
            a.id
        ))),
    }
}

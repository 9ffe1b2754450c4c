//! `batchcost migrate [--config FILE]`: creates or upgrades the ledger schema the config's
//! `[storage] url` names (SQLite or PostgreSQL). `serve` never upgrades an existing schema
//! itself (other replicas may still run the older binary), so this is the one upgrade step.

use std::path::PathBuf;

use crate::cli::CliError;
use crate::config::Config;
use crate::ledger::SchemaState;

/// `batchcost migrate` arguments.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Configuration file (its `[storage] url` is migrated).
    #[arg(long, default_value = "batchcost.toml")]
    pub config: PathBuf,
}

/// Runs the migrations and says what changed.
pub async fn run(args: MigrateArgs) -> Result<(), CliError> {
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let config = Config::load(&args.config).map_err(|e| usage(&e))?;
    let settings = config.resolve_for_reports(&args.config).map_err(|e| usage(&e))?;
    crate::ledger::backend_of(&settings.storage_url)
        .map_err(|e| usage(&format!("{}: storage.url: {e}", args.config.display())))?;
    let (before, after) = crate::ledger::migrate_url(&settings.storage_url)
        .await
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("migrating the ledger")))?;
    let from = match before {
        SchemaState::Empty => "an empty database".to_string(),
        SchemaState::Current => format!("version {after} (already current)"),
        SchemaState::Older(None) => "an unversioned ledger".to_string(),
        SchemaState::Older(Some(v)) | SchemaState::Newer(v) => format!("version {v}"),
    };
    println!("ledger schema: {from} -> version {after}");
    Ok(())
}

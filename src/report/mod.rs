//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct ReportArgs {}

/// Runs the command.
pub async fn run(_args: ReportArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

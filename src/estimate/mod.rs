//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {}

/// Runs the command.
pub fn run(_args: EstimateArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {}

/// Runs the command.
pub async fn run(_args: SimulateArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

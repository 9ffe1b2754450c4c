//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs the command.
pub async fn run_serve(_args: ServeArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

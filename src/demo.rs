//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs the command.
pub async fn run(_args: DemoArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

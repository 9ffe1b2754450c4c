//! Placeholder: being written.

use crate::cli::CliError;

/// Arguments of the command.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs the command.
pub fn run_check(_args: CheckArgs) -> Result<(), CliError> {
    Err(CliError::Usage("not built yet".into()))
}

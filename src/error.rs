//! How a command fails, which decides its exit status (contract section 2). Low in the
//! layout so the domain modules that return it never import the command line.

use std::process::ExitCode;

/// Why a command failed, which decides its exit status.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Bad usage, bad config or bad input file: exit 2.
    #[error("{0}")]
    Usage(String),
    /// Something failed at run time: exit 1.
    #[error("{0:#}")]
    Runtime(#[from] anyhow::Error),
}

impl CliError {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            CliError::Usage(_) => ExitCode::from(2),
            CliError::Runtime(_) => ExitCode::from(1),
        }
    }
}

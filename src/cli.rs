//! Command line: one subcommand per job, each owning its own argument struct in its module.
//! Exit status: 0 success, 2 bad usage or bad config, 1 runtime failure.

use std::process::ExitCode;

pub mod migrate;

use clap::{Parser, Subcommand};

mod approve;
pub mod budgets;
mod estimate;
pub mod run;
mod simulate;

/// Budgeted, metered gateway for LLM batch APIs.
#[derive(Debug, Parser)]
#[command(name = "batchcost", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands of the contract, section 2.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gateway.
    Serve(crate::gateway::ServeArgs),
    /// Simulator, gateway and sample traffic in one process; prints settled costs.
    Demo(crate::demo::DemoArgs),
    /// Run the upstream simulator: faithful Anthropic, OpenAI and Gemini batch APIs on loopback.
    Simulate(Box<simulate::SimulateArgs>),
    /// Offline cost preview of a batch body.
    Estimate(estimate::EstimateArgs),
    /// Price table commands.
    #[command(subcommand)]
    Pricing(PricingCommand),
    /// Spend from the ledger, by day, project, provider and model.
    Report(crate::report::ReportArgs),
    /// Approve a batch held for approval (`approval_required`).
    Approve(approve::ApproveArgs),
    /// Budgets now: limit, spent, reserved, remaining, window times in the configured zone.
    Budgets(budgets::BudgetsArgs),
    /// Create or upgrade the ledger schema (SQLite or PostgreSQL).
    Migrate(migrate::MigrateArgs),
    /// Batch runner: preview, split, submit through the gateway, follow, retry, collect.
    Run(Box<run::RunArgs>),
}

/// `batchcost pricing ...`
#[derive(Debug, Subcommand)]
pub enum PricingCommand {
    /// Validate a price table and print it; non-zero exit with a line-numbered message on error.
    Check(crate::pricing::CheckArgs),
}

pub use crate::error::CliError;

/// Parses arguments, runs the command, maps the outcome to an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("batchcost: {e}");
            e.exit_code()
        }
    }
}

/// Runs one command; async ones get a multi-threaded runtime.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Pricing(PricingCommand::Check(args)) => crate::pricing::run_check(args),
        Command::Estimate(args) => estimate::run(args),
        Command::Serve(args) => runtime()?.block_on(crate::gateway::run_serve(args)),
        Command::Demo(args) => runtime()?.block_on(crate::demo::run(args)),
        Command::Simulate(args) => runtime()?.block_on(simulate::run(*args)),
        Command::Migrate(args) => runtime()?.block_on(migrate::run(args)),
        Command::Report(args) => runtime()?.block_on(crate::report::run(args)),
        Command::Approve(args) => runtime()?.block_on(approve::run(args)),
        Command::Budgets(args) => runtime()?.block_on(budgets::run(args)),
        Command::Run(args) => runtime()?.block_on(run::run(*args)),
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("starting the async runtime")))
}

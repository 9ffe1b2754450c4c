//! Finance reports: spend from the ledger by local day, project, provider and model, as a
//! table, CSV, JSON or FinOps FOCUS 1.2. The same code serves `batchcost report` and
//! `GET /api/reports/spend`.
//!
//! A batch's cost belongs to the local day (in the configured timezone) on which it was
//! submitted, the same rule that puts it in a budget window, so reports and budgets agree
//! even for a batch submitted at 23:50 and settled after midnight. Output streams: rows
//! are pulled from a database cursor and written in chunks, never collected.

mod cells;
mod focus;
mod group;
pub mod http;
pub mod inflight;
mod query;
mod render;
mod spend;
mod split;

use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;

use crate::config::Config;
use crate::error::CliError;
use crate::ledger::{Ledger, LedgerError};
use crate::pricing::PriceTable;

pub use focus::COLUMNS as FOCUS_COLUMNS;
pub use group::{SpendKey, SpendTotals};
pub use query::{
    Dimension, Format, GroupBy, Param, ParamError, RANGE_NAMES, ReportQuery, named_range,
};
pub use spend::CSV_COLUMNS;
pub use split::{ChargeClass, ClassCharge, Split, split};

/// Why a report could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// FOCUS needs unit prices; a model that was removed from the price table has none.
    #[error(
        "batch {batch}: model `{model}` has no price in force at its submission in the price \
         table, so its FOCUS unit prices are unknown (restore its entry in pricing.toml)"
    )]
    Unpriced { batch: String, model: String },
}

/// The report as a stream of output chunks. `pricing` is used by the FOCUS form only.
pub fn spend_report(
    ledger: &dyn Ledger,
    pricing: &PriceTable,
    query: &ReportQuery,
) -> BoxStream<'static, Result<Bytes, ReportError>> {
    let rows = ledger.spend_rows(query.from, query.to);
    let enc: Box<dyn render::Encoder> = match query.format {
        Format::Focus => Box::new(focus::FocusEncoder::new(pricing.clone(), query.tz.clone())),
        _ => Box::new(spend::SpendEncoder::new(query)),
    };
    render::render(rows, enc)
}

/// `batchcost report` arguments.
#[derive(Debug, clap::Args)]
#[command(after_help = "Ranges: `batchcost report today` (or yesterday, this-week, last-week, \
    this-month, last-month, last-7-days, 30d), in the configured timezone; weeks begin on \
    Monday. Without a range or --from: this month. --from alone runs through today.\n\n\
    Days are calendar days in the configured timezone. --from is the first day included, \
    --to the first day NOT included: --from 2026-03-01 --to 2026-04-01 is March. A batch's \
    cost counts on the day it was submitted (the same rule as budget windows), even when it \
    settles after midnight. Only settled batches have a cost; the table ends with the money \
    still reserved for batches in flight.\n\n\
    Formats: table (USD rounded to cents per cell; --wide for tokens and list price), csv \
    and json (the contract's columns, exact decimal amounts, provider always filled), focus \
    (FinOps FOCUS 1.2 CSV, one row per batch, model and token class; --group-by does not \
    apply).\n\n\
    Reads the ledger only: no provider key or client keys need to be set.")]
pub struct ReportArgs {
    /// A named range instead of --from/--to: today, yesterday, this-week, last-week,
    /// this-month, last-month, last-N-days or Nd.
    #[arg(value_name = "RANGE", conflicts_with_all = ["from", "to"])]
    pub range: Option<String>,
    /// First day included, YYYY-MM-DD (local day in the configured timezone).
    #[arg(long, value_name = "DATE")]
    pub from: Option<String>,
    /// First day NOT included (exclusive end), YYYY-MM-DD. Default: tomorrow.
    #[arg(long, value_name = "DATE", requires = "from")]
    pub to: Option<String>,
    /// Any of day, project, provider, model, comma-separated; empty or `none` for one total
    /// per provider.
    #[arg(long, value_name = "DIMS", default_value = GroupBy::DEFAULT)]
    pub group_by: String,
    /// table, csv, json or focus.
    #[arg(long, default_value = "table")]
    pub format: String,
    /// Table: every column (tokens, cache, list price, provider).
    #[arg(long)]
    pub wide: bool,
    /// Configuration file (timezone, storage.url, pricing).
    #[arg(long, default_value = "batchcost.toml")]
    pub config: PathBuf,
}

impl ReportArgs {
    /// The query these arguments ask for when "now" is `now` (tests pass a manual clock's).
    pub fn query(
        &self,
        now: jiff::Timestamp,
        tz: &jiff::tz::TimeZone,
        tz_name: &str,
    ) -> Result<ReportQuery, CliError> {
        let (from, to) = match (&self.range, &self.from) {
            (Some(name), _) => {
                let (f, t) = query::named_range(name, now, tz)
                    .map_err(|e| CliError::Usage(format!("RANGE: {e}")))?;
                (f.to_string(), t.to_string())
            }
            (None, Some(from)) => {
                let tomorrow = || query::named_range("today", now, tz).map(|(_, t)| t.to_string());
                let to = match &self.to {
                    Some(t) => t.clone(),
                    None => tomorrow().map_err(CliError::Usage)?,
                };
                (from.clone(), to)
            }
            (None, None) => {
                let (f, t) = query::named_range("this-month", now, tz).map_err(CliError::Usage)?;
                (f.to_string(), t.to_string())
            }
        };
        let mut q = ReportQuery::parse(&from, &to, &self.group_by, &self.format, tz, tz_name)
            .map_err(|e| CliError::Usage(e.flag()))?;
        q.wide = self.wide;
        Ok(q)
    }
}

/// Runs `batchcost report`: writes the report to stdout as it is produced.
pub async fn run(args: ReportArgs) -> Result<(), CliError> {
    let usage = |e: &dyn std::fmt::Display| CliError::Usage(e.to_string());
    let config = Config::load(&args.config).map_err(|e| {
        if args.config.exists() {
            usage(&e)
        } else {
            CliError::Usage(format!(
                "{e}\n  hint: pass --config FILE, the gateway's configuration (its timezone, \
                 storage.url and pricing are read; examples/batchcost.toml shows every key)"
            ))
        }
    })?;
    let settings = config.resolve_for_reports(&args.config).map_err(|e| usage(&e))?;
    let query = args.query(jiff::Timestamp::now(), &settings.timezone, &settings.timezone_name)?;
    if let Some(path) = settings.storage_url.strip_prefix("sqlite://") {
        // Opening a missing SQLite file would create an empty ledger and report zero.
        if !path.starts_with(':') && !Path::new(path).exists() {
            return Err(CliError::Usage(format!(
                "{}: storage.url: no ledger at `{path}`",
                args.config.display()
            )));
        }
    }
    let pricing = PriceTable::load(&settings.pricing_path)
        .map_err(|e| CliError::Usage(format!("{}: pricing: {e}", args.config.display())))?;
    // Reports only read: the durability setting does not matter.
    let ledger = crate::ledger::open(&settings.storage_url, crate::config::Durability::Normal)
        .await
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("opening the ledger")))?;
    let mut chunks = spend_report(ledger.as_ref(), &pricing, &query);
    // Plain blocking writes of 64 KiB chunks: the query runs on another task meanwhile.
    let mut stdout = std::io::stdout().lock();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(|e| CliError::Runtime(anyhow::Error::new(e)))?;
        match stdout.write_all(&chunk) {
            Ok(()) => {}
            // `batchcost report ... | head` is not a failure.
            Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(CliError::Runtime(anyhow::Error::new(e).context("writing"))),
        }
    }
    if query.format == Format::Table {
        let open = inflight::open_batches(ledger.as_ref())
            .await
            .map_err(|e| CliError::Runtime(anyhow::Error::new(e)))?;
        let text = inflight::section(&open, &query);
        if let Err(e) = stdout.write_all(text.as_bytes()) {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                return Err(CliError::Runtime(anyhow::Error::new(e).context("writing")));
            }
        }
    }
    let _ = stdout.flush();
    Ok(())
}

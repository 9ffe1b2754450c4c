//! `batchcost budgets`: every budget's current window as people read it: limit, spent,
//! reserved (batches in flight, at their worst case), remaining, and when the window
//! began and resets in the configured timezone. Reads the config and the ledger only.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::tz::TimeZone;

use crate::budgets::window_ref;
use crate::cli::CliError;
use crate::config::{Config, Settings};
use crate::ledger::WindowState;

/// `batchcost budgets` arguments.
#[derive(Debug, clap::Args)]
#[command(
    after_help = "Spent is settled cost; reserved is the worst case of batches still in flight \
    (released to their real cost when they settle). A submission is refused when spent + \
    reserved + its own worst case would pass a limit. Windows begin at local midnight in the \
    configured timezone. Reads the ledger only: no key needs to be set."
)]
pub struct BudgetsArgs {
    /// Configuration file (budgets, timezone, storage.url).
    #[arg(long, default_value = "batchcost.toml")]
    pub config: PathBuf,
    /// table or json (the same objects as GET /api/budgets, with local window times).
    #[arg(long, default_value = "table")]
    pub format: String,
}

/// The config's budgets without reading any secret: every key variable resolves to a
/// placeholder that is never used.
fn settings(path: &Path) -> Result<Settings, CliError> {
    let config = Config::load(path).map_err(|e| {
        let hint = if path.exists() { "" } else { "\n  hint: pass --config FILE" };
        CliError::Usage(format!("{e}{hint}"))
    })?;
    config
        .resolve(path, &|var| Some(format!("unused placeholder for {var}")))
        .map_err(|e| CliError::Usage(e.to_string()))
}

/// Runs the command.
pub async fn run(args: BudgetsArgs) -> Result<(), CliError> {
    if !matches!(args.format.as_str(), "table" | "json") {
        return Err(CliError::Usage(format!(
            "--format: unknown format `{}`, expected table or json",
            args.format.chars().take(40).collect::<String>()
        )));
    }
    let s = settings(&args.config)?;
    if let Some(path) = s.storage_url.strip_prefix("sqlite://") {
        if !path.starts_with(':') && !Path::new(path).exists() {
            return Err(CliError::Usage(format!(
                "{}: storage.url: no ledger at `{path}`",
                args.config.display()
            )));
        }
    }
    let ledger = crate::ledger::open(&s.storage_url, crate::config::Durability::Normal)
        .await
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("opening the ledger")))?;
    let now = Timestamp::now();
    let refs: Vec<_> = s.budgets.iter().map(|b| window_ref(b, &s.timezone, now)).collect();
    let windows = ledger
        .windows(&refs)
        .await
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("reading budgets")))?;
    let text = if args.format == "json" {
        let list: Vec<_> = windows.iter().map(|w| json(w, &s.timezone)).collect();
        serde_json::to_string_pretty(&serde_json::json!({ "budgets": list })).unwrap_or_default()
            + "\n"
    } else {
        render(&windows, now, &s.timezone, &s.timezone_name)
    };
    print!("{text}");
    Ok(())
}

/// An instant as local time with its offset: `2026-03-11T00:00:00+09:00`.
pub fn local(t: Timestamp, tz: &TimeZone) -> String {
    t.to_zoned(tz.clone()).strftime("%Y-%m-%dT%H:%M:%S%:z").to_string()
}

fn json(w: &WindowState, tz: &TimeZone) -> serde_json::Value {
    serde_json::json!({
        "name": w.budget,
        "project": w.project,
        "period": w.period.as_str(),
        "limit_usd": w.limit.map(|l| l.usd_exact()),
        "spent_usd": w.spent.usd_exact(),
        "reserved_usd": w.reserved.usd_exact(),
        "remaining_usd": w.limit.map(|l| (l - w.spent - w.reserved).usd_exact()),
        "limit_input_tokens": w.limit_input_tokens,
        "spent_input_tokens": w.spent_input_tokens,
        "reserved_input_tokens": w.reserved_input_tokens,
        "limit_output_tokens": w.limit_output_tokens,
        "spent_output_tokens": w.spent_output_tokens,
        "reserved_output_tokens": w.reserved_output_tokens,
        "window_start": local(w.start, tz),
        "window_end": local(w.end, tz),
    })
}

/// The table: one line per budget, money rounded to cents, windows in local time.
pub fn render(windows: &[WindowState], now: Timestamp, tz: &TimeZone, tz_name: &str) -> String {
    let mut out = format!(
        "Budgets at {} ({tz_name}); spent = settled, reserved = worst case of batches in flight\n",
        now.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M %Z")
    );
    let _ = writeln!(
        out,
        "{:<16} {:<10} {:<6} {:>11} {:>11} {:>11} {:>11} {:>6}  window (local)",
        "budget", "project", "period", "limit", "spent", "reserved", "remaining", "used"
    );
    let usd = |m: crate::money::Money| format!("${}", m.usd_rounded(2));
    for w in windows {
        let (limit, remaining, used) = match w.limit {
            Some(l) => {
                let committed = (w.spent + w.reserved).picos();
                let pct = if l.picos() > 0 {
                    format!("{:.1}%", committed as f64 * 100.0 / l.picos() as f64)
                } else {
                    "-".into()
                };
                (usd(l), usd(l - w.spent - w.reserved), pct)
            }
            None => ("-".into(), "-".into(), "-".into()),
        };
        let short = |t: Timestamp| t.to_zoned(tz.clone()).strftime("%Y-%m-%d %H:%M").to_string();
        let offset = w.end.to_zoned(tz.clone()).strftime("%:z").to_string();
        let _ = writeln!(
            out,
            "{:<16} {:<10} {:<6} {:>11} {:>11} {:>11} {:>11} {:>6}  {} to {} {offset}",
            w.budget,
            w.project,
            w.period.as_str(),
            limit,
            usd(w.spent),
            usd(w.reserved),
            remaining,
            used,
            short(w.start),
            short(w.end),
        );
        for (kind, limit, spent, reserved) in [
            ("input tokens", w.limit_input_tokens, w.spent_input_tokens, w.reserved_input_tokens),
            (
                "output tokens",
                w.limit_output_tokens,
                w.spent_output_tokens,
                w.reserved_output_tokens,
            ),
        ] {
            if let Some(l) = limit {
                let _ = writeln!(
                    out,
                    "{:<16} {kind}: limit {l}, spent {spent}, reserved {reserved}, remaining {}",
                    "",
                    l as i128 - spent as i128 - reserved as i128
                );
            }
        }
    }
    if windows.is_empty() {
        out += "(no budgets configured)\n";
    }
    out
}

//! `batchcost estimate FILE`: the table people read and the JSON scripts read.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::PathBuf;

use crate::error::CliError;
use crate::estimate::{DEFAULT_EXPECTED_OUTPUT_FRACTION, Estimate, EstimateOptions};
use crate::money::Money;
use crate::pricing::PriceTable;
use crate::providers::anthropic::estimate::estimate_file;

/// Arguments of `batchcost estimate`.
#[derive(Debug, clap::Args)]
pub struct EstimateArgs {
    /// Batch body: `{"requests": [...]}` JSON, or one `{"custom_id", "params"}` per line.
    pub file: PathBuf,
    /// Price table (the repository's is pricing.toml at its root).
    #[arg(long, default_value = "pricing.toml")]
    pub pricing: PathBuf,
    /// Output: an aligned table (money rounded to cents) or JSON (exact amounts).
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Expected output tokens as a fraction of `max_tokens` (0 to 1).
    #[arg(long, default_value_t = DEFAULT_EXPECTED_OUTPUT_FRACTION)]
    pub expected_output_fraction: f64,
    /// Price as of this instant (RFC 3339, e.g. 2026-01-10T08:00:00Z) instead of now: the
    /// price history applies; before a model's first entry it has no price.
    #[arg(long)]
    pub at: Option<jiff::Timestamp>,
}

/// `--format`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Runs the command. A bad file, body or table is a usage error (exit 2).
pub fn run(args: EstimateArgs) -> Result<(), CliError> {
    let table = PriceTable::load(&args.pricing).map_err(|e| {
        let hint = if args.pricing.exists() {
            ""
        } else {
            "\n  hint: no price table there; pass --pricing FILE (the repository ships \
             pricing.toml at its root; `batchcost pricing check FILE` validates one)"
        };
        CliError::Usage(format!("{e}{hint}"))
    })?;
    let opts = EstimateOptions {
        at: args.at.unwrap_or_else(jiff::Timestamp::now),
        expected_output_fraction: args.expected_output_fraction,
        provider: None,
    };
    let estimate = estimate_file(&args.file, &table, &opts)
        .map_err(|e| CliError::Usage(format!("{}: {}", args.file.display(), e.message())))?;
    let text = match args.format {
        OutputFormat::Table => render_table(&estimate, opts.expected_output_fraction),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(&estimate)
                .map_err(|e| CliError::Runtime(anyhow::Error::new(e)))?;
            s.push('\n');
            s
        }
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .map_err(|e| CliError::Runtime(anyhow::Error::new(e).context("writing to stdout")))
}

const HEADERS: [&str; 9] = [
    "model",
    "requests",
    "input tokens (upper)",
    "input tokens (expected)",
    "output tokens (worst)",
    "worst batch",
    "worst standard",
    "expected batch",
    "expected standard",
];

/// Per-model rows and a total row; money rounded to cents for reading only.
pub fn render_table(e: &Estimate, fraction: f64) -> String {
    let mut rows: Vec<[String; 9]> = vec![HEADERS.map(String::from)];
    for m in &e.models {
        rows.push([
            m.model.clone(),
            thousands(m.requests),
            thousands(m.input_tokens_upper),
            thousands(m.input_tokens_expected),
            thousands(m.output_tokens_worst),
            usd(m.worst.cost),
            usd(m.worst.list_cost),
            usd(m.expected.cost),
            usd(m.expected.list_cost),
        ]);
    }
    let sum =
        |f: fn(&crate::estimate::ModelEstimate) -> u64| thousands(e.models.iter().map(f).sum());
    rows.push([
        "total".into(),
        thousands(e.requests),
        sum(|m| m.input_tokens_upper),
        sum(|m| m.input_tokens_expected),
        sum(|m| m.output_tokens_worst),
        usd(e.worst.cost),
        usd(e.worst.list_cost),
        usd(e.expected.cost),
        usd(e.expected.list_cost),
    ]);
    let widths: Vec<usize> =
        (0..9).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for r in &rows {
        let mut line = format!("{:<w$}", r[0], w = widths[0]);
        for (cell, w) in r.iter().zip(&widths).skip(1) {
            let _ = write!(line, "  {cell:>w$}");
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    let _ = writeln!(
        out,
        "\nworst: input upper bound, cache breakpoints as writes, max_tokens of output.\n\
         expected: estimated input, repeated prefixes read from cache, {}% of max_tokens of output.",
        fraction * 100.0
    );
    out
}

fn usd(m: Money) -> String {
    format!("${}", m.usd_rounded(2))
}

fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn thousands_groups_digits() {
        assert_eq!(super::thousands(0), "0");
        assert_eq!(super::thousands(999), "999");
        assert_eq!(super::thousands(1_234_567), "1,234,567");
    }
}

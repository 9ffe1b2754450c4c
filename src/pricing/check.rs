//! `batchcost pricing check [FILE]`: validate a table and print it, so a price edit can be
//! reviewed before it reaches a running gateway.

use std::fmt::Write as _;
use std::path::PathBuf;

use super::{PriceTable, ProviderKind, Rates};
use crate::error::CliError;
use crate::money::Money;

/// Arguments of `batchcost pricing check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Price table to validate [default: pricing.toml]
    pub file: Option<PathBuf>,
}

/// Validates the table and prints it; a bad table is a usage error (exit 2).
pub fn run_check(args: CheckArgs) -> Result<(), CliError> {
    let path = args.file.unwrap_or_else(|| PathBuf::from("pricing.toml"));
    let table = PriceTable::load(&path).map_err(|e| CliError::Usage(e.to_string()))?;
    print!("{}", render(&table));
    println!("{}: ok", path.display());
    Ok(())
}

/// USD per million tokens, the unit the file is written in.
fn per_million(per_token: Money) -> String {
    per_token.times(1_000_000).usd_exact()
}

/// Kinds without cache-write classes show `n/a` instead of the input price they fall back to.
fn write_price(m: &super::table::Model, per_token: Money) -> String {
    if m.settings.kind == ProviderKind::Anthropic { per_million(per_token) } else { "n/a".into() }
}

/// One aligned row per price entry (standard prices, batch input/output/cached, flags),
/// plus a `>N` row under it for a long-context tier.
pub(super) fn render(table: &PriceTable) -> String {
    let header = [
        "provider", "model", "aliases", "from", "input", "output", "cw_5m", "cw_1h", "c_read",
        "b_in", "b_out", "b_read", "flags",
    ];
    let mut rows: Vec<Vec<String>> = vec![header.iter().map(|s| s.to_string()).collect()];
    for m in table.raw_models() {
        let kind = m.settings.kind.as_str();
        let provider =
            if m.provider == kind { m.provider.clone() } else { format!("{}({kind})", m.provider) };
        for e in &m.entries {
            let mut flags = Vec::new();
            if e.unconfirmed {
                flags.push("UNCONFIRMED".to_string());
            }
            if m.geo_us {
                flags.push(format!("geo_us x{}", m.settings.geo_us.to_f64()));
            }
            if e.batch_ratio != m.settings.batch {
                flags.push(format!("batch x{}", e.batch_ratio.to_f64()));
            }
            if m.embeddings {
                flags.push("embeddings".to_string());
            }
            if let Some(n) = m.max_output_tokens {
                flags.push(format!("max_out {n}"));
            }
            let aliases = if m.aliases.is_empty() { "-".into() } else { m.aliases.join(",") };
            let mut row = |model: String,
                           aliases: String,
                           from: String,
                           list: &Rates,
                           batch: &Rates,
                           flags: String| {
                rows.push(vec![
                    provider.clone(),
                    model,
                    aliases,
                    from,
                    per_million(list.input),
                    if m.embeddings { "-".into() } else { per_million(list.output) },
                    write_price(m, list.cache_write_5m),
                    write_price(m, list.cache_write_1h),
                    per_million(list.cache_read),
                    per_million(batch.input),
                    if m.embeddings { "-".into() } else { per_million(batch.output) },
                    per_million(batch.cache_read),
                    flags,
                ]);
            };
            row(
                m.id.clone(),
                aliases,
                e.effective_from.to_string(),
                &e.list,
                &e.batch,
                flags.join(" "),
            );
            if let Some(l) = &e.long {
                let t = format!("  prompt>{}", l.threshold);
                row(t, String::new(), String::new(), &l.list, &l.batch, "long context".into());
            }
        }
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = format!("pricing version {} (USD per million tokens)\n", table.version());
    for r in &rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            let _ = write!(line, "{cell:<w$}  ", w = widths[c]);
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

//! The grouped spend forms: CSV and JSON with the contract's columns (section 8) and exact
//! decimal amounts, and an aligned table for people with amounts rounded to cents.

use std::io::Write;

use serde::Serialize;

use super::ReportError;
use super::cells;
use super::group::{Grouper, SpendKey, SpendTotals};
use super::query::{DayOf, Dimension, Format, ReportQuery};
use super::render::Encoder;
use crate::ledger::SpendRow;

/// CSV header: the contract's columns, in its order.
pub const CSV_COLUMNS: [&str; 16] = [
    "date",
    "project",
    "provider",
    "model",
    "batches",
    "requests_succeeded",
    "requests_errored",
    "requests_canceled",
    "requests_expired",
    "input_tokens",
    "output_tokens",
    "cache_write_tokens",
    "cache_read_tokens",
    "cost_usd",
    "list_cost_usd",
    "savings_usd",
];

/// One JSON row (and the totals object): dimensions not grouped by are null, amounts are
/// exact decimal strings so no reader turns them into floats.
#[derive(Serialize)]
struct JsonRow<'a> {
    date: Option<String>,
    project: Option<&'a str>,
    provider: Option<&'a str>,
    model: Option<&'a str>,
    batches: u64,
    requests_succeeded: u64,
    requests_errored: u64,
    requests_canceled: u64,
    requests_expired: u64,
    input_tokens: u64,
    output_tokens: u64,
    cache_write_tokens: u64,
    cache_read_tokens: u64,
    cost_usd: String,
    list_cost_usd: String,
    savings_usd: String,
}

impl<'a> JsonRow<'a> {
    fn new(k: &'a SpendKey, t: &SpendTotals) -> Self {
        JsonRow {
            date: k.date.map(|d| d.to_string()),
            project: k.project.as_deref(),
            provider: k.provider.as_deref(),
            model: k.model.as_deref(),
            batches: t.batches,
            requests_succeeded: t.requests_succeeded,
            requests_errored: t.requests_errored,
            requests_canceled: t.requests_canceled,
            requests_expired: t.requests_expired,
            input_tokens: t.input_tokens,
            output_tokens: t.output_tokens,
            cache_write_tokens: t.cache_write_tokens,
            cache_read_tokens: t.cache_read_tokens,
            cost_usd: t.cost.usd_exact(),
            list_cost_usd: t.list_cost.usd_exact(),
            savings_usd: t.savings().usd_exact(),
        }
    }
}

/// What the JSON report says about itself before its rows.
#[derive(Serialize)]
struct JsonHead<'a> {
    from: String,
    /// Excluded.
    to: String,
    timezone: &'a str,
    group_by: Vec<&'static str>,
}

/// Table layout: label columns (the grouped dimensions) then numbers. The default table
/// fits a 100-column terminal; `--wide` adds the token columns and the list price.
const NUMBER_COLUMNS: [(&str, usize); 10] = [
    ("batches", 7),
    ("succeeded", 9),
    ("failed", 6),
    ("input", 14),
    ("output", 14),
    ("cache_write", 13),
    ("cache_read", 14),
    ("cost_usd", 10),
    ("list_usd", 10),
    ("saved_usd", 10),
];

/// Indexes into [`NUMBER_COLUMNS`] of the narrow table.
const NARROW: [usize; 5] = [0, 1, 2, 7, 9];

fn label_width(d: Dimension) -> usize {
    match d {
        Dimension::Day => 10,
        Dimension::Project => 12,
        Dimension::Provider => 9,
        Dimension::Model => 22,
    }
}

/// Table, CSV or JSON over a [`Grouper`].
pub struct SpendEncoder {
    format: Format,
    query: ReportQuery,
    grouper: Grouper,
    rows: u64,
}

impl SpendEncoder {
    pub fn new(query: &ReportQuery) -> Self {
        SpendEncoder {
            format: query.format,
            grouper: Grouper::new(query.group_by, DayOf::new(query.tz.clone())),
            query: query.clone(),
            rows: 0,
        }
    }

    fn drain(&mut self, out: &mut Vec<u8>) {
        let ready = std::mem::take(&mut self.grouper.ready);
        for (k, t) in &ready {
            self.write(k, t, out);
        }
    }

    fn write(&mut self, k: &SpendKey, t: &SpendTotals, out: &mut Vec<u8>) {
        match self.format {
            Format::Csv => csv_row(k, t, out),
            Format::Json => {
                if self.rows > 0 {
                    out.push(b',');
                }
                out.push(b'\n');
                // Serializing plain strings and integers into a Vec cannot fail.
                let _ = serde_json::to_writer(&mut *out, &JsonRow::new(k, t));
            }
            Format::Table => {
                let labels: Vec<String> = self
                    .table_dims()
                    .into_iter()
                    .map(|d| match d {
                        Dimension::Day => k.date.map(|d| d.to_string()).unwrap_or_default(),
                        Dimension::Project => k.project.clone().unwrap_or_default(),
                        Dimension::Provider => k.provider.clone().unwrap_or_default(),
                        Dimension::Model => k.model.clone().unwrap_or_default(),
                    })
                    .collect();
                self.table_line(&labels, t, out);
            }
            Format::Focus => {}
        }
        self.rows += 1;
    }

    /// The table's label columns: the grouped dimensions and the provider (rows are always
    /// per provider), except that a narrow table leaves the provider out when the model
    /// column already names it.
    fn table_dims(&self) -> Vec<Dimension> {
        let by = self.query.group_by;
        Dimension::ALL
            .into_iter()
            .filter(|d| match d {
                Dimension::Provider => by.provider || self.query.wide || !by.model,
                other => by.has(*other),
            })
            .collect()
    }

    fn number_columns(&self) -> Vec<usize> {
        if self.query.wide { (0..NUMBER_COLUMNS.len()).collect() } else { NARROW.to_vec() }
    }

    fn labels(&self) -> Vec<(String, usize)> {
        let dims = self.table_dims();
        if dims.is_empty() {
            return vec![(String::new(), 5)];
        }
        dims.into_iter().map(|d| (d.as_str().to_string(), label_width(d))).collect()
    }

    fn table_line(&self, labels: &[String], t: &SpendTotals, out: &mut Vec<u8>) {
        for (value, (_, w)) in labels.iter().zip(self.labels()) {
            let _ = write!(out, "{value:<w$}  ");
        }
        // Cents, half away from zero: each cell on its own, so rows need not add up to the
        // total line to the cent; CSV and JSON carry the exact amounts.
        let numbers = [
            t.batches.to_string(),
            t.requests_succeeded.to_string(),
            (t.requests_errored + t.requests_canceled + t.requests_expired).to_string(),
            t.input_tokens.to_string(),
            t.output_tokens.to_string(),
            t.cache_write_tokens.to_string(),
            t.cache_read_tokens.to_string(),
            t.cost.usd_rounded(2),
            t.list_cost.usd_rounded(2),
            t.savings().usd_rounded(2),
        ];
        let line: Vec<String> = self
            .number_columns()
            .into_iter()
            .map(|i| {
                let (v, w) = (&numbers[i], NUMBER_COLUMNS[i].1);
                format!("{v:>w$}")
            })
            .collect();
        let _ = writeln!(out, "{}", line.join(" ").trim_end());
    }

    fn table_rule(&self, out: &mut Vec<u8>) {
        let width: usize = self.labels().iter().map(|(_, w)| w + 2).sum::<usize>()
            + self.number_columns().iter().map(|&i| NUMBER_COLUMNS[i].1 + 1).sum::<usize>()
            - 1;
        let _ = writeln!(out, "{}", "-".repeat(width));
    }
}

fn csv_row(k: &SpendKey, t: &SpendTotals, out: &mut Vec<u8>) {
    let date = k.date.map(|d| d.to_string());
    let numbers = [
        t.batches,
        t.requests_succeeded,
        t.requests_errored,
        t.requests_canceled,
        t.requests_expired,
        t.input_tokens,
        t.output_tokens,
        t.cache_write_tokens,
        t.cache_read_tokens,
    ]
    .map(|n| n.to_string());
    let money = [t.cost.usd_exact(), t.list_cost.usd_exact(), t.savings().usd_exact()];
    let labels = [date.as_deref(), k.project.as_deref(), k.provider.as_deref(), k.model.as_deref()];
    cells::record(
        out,
        labels.into_iter().chain(numbers.iter().chain(money.iter()).map(|s| Some(s.as_str()))),
    );
}

impl Encoder for SpendEncoder {
    fn begin(&mut self, out: &mut Vec<u8>) {
        let q = &self.query;
        match self.format {
            Format::Csv => cells::record(out, CSV_COLUMNS.map(Some)),
            Format::Json => {
                let head = JsonHead {
                    from: q.from_date.to_string(),
                    to: q.to_date.to_string(),
                    timezone: &q.tz_name,
                    group_by: q.group_by.dimensions().into_iter().map(Dimension::as_str).collect(),
                };
                let text = serde_json::to_string(&head).unwrap_or_default();
                // Re-open the object to stream the rows into it.
                out.extend_from_slice(&text.as_bytes()[..text.len() - 1]);
                out.extend_from_slice(b",\"rows\":[");
            }
            Format::Table => {
                let last = q.to_date.yesterday().unwrap_or(q.to_date);
                let _ = writeln!(
                    out,
                    "Spend {} to {} inclusive (days in {}), USD rounded to cents; \
                     --format csv or json for exact amounts{}",
                    q.from_date,
                    last,
                    q.tz_name,
                    if q.wide { "" } else { "; --wide for tokens and list price" }
                );
                let labels = self.labels();
                for (name, w) in &labels {
                    let _ = write!(out, "{name:<w$}  ");
                }
                let heads: Vec<String> = self
                    .number_columns()
                    .into_iter()
                    .map(|i| {
                        let (n, w) = NUMBER_COLUMNS[i];
                        format!("{n:>w$}")
                    })
                    .collect();
                let _ = writeln!(out, "{}", heads.join(" "));
                self.table_rule(out);
            }
            Format::Focus => {}
        }
    }

    fn row(&mut self, row: &SpendRow, out: &mut Vec<u8>) -> Result<(), ReportError> {
        self.grouper.add(row);
        if !self.grouper.ready.is_empty() {
            self.drain(out);
        }
        Ok(())
    }

    fn finish(&mut self, out: &mut Vec<u8>) {
        self.grouper.flush();
        self.drain(out);
        let total = self.grouper.total();
        match self.format {
            Format::Json => {
                let key = SpendKey::default();
                out.extend_from_slice(b"\n],\"totals\":");
                let _ = serde_json::to_writer(&mut *out, &JsonRow::new(&key, &total));
                out.extend_from_slice(b"}\n");
            }
            Format::Table => {
                if total.batches == 0 {
                    let _ = writeln!(out, "(no settled batches submitted in this range)");
                }
                self.table_rule(out);
                let mut labels = vec![String::new(); self.labels().len()];
                labels[0] = "TOTAL".into();
                self.table_line(&labels, &total, out);
            }
            Format::Csv | Format::Focus => {}
        }
    }
}

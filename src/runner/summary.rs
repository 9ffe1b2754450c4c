//! The end-of-run summary: items by outcome, batches, tokens, cost, list cost and savings,
//! as a table for people and JSON for scripts (`--summary-json`).

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::input::Input;
use super::provider::Tokens;
use super::state::{Outcome, Phase, State};
use crate::money::Money;

pub struct Summary {
    pub json: Value,
    pub table: String,
    pub all_succeeded: bool,
}

pub fn build(input: &Input, st: &State) -> Summary {
    let mut by: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for (i, it) in st.items.iter().enumerate() {
        let k = match it.outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed | Outcome::Retry => "failed",
            Outcome::Pending => "pending",
        };
        *by.entry(k).or_default() += 1;
        if k != "succeeded" {
            let r = it.reason.clone().unwrap_or_else(|| "not submitted".into());
            let kind = r.split(':').next().unwrap_or("").to_string();
            *reasons.entry(kind).or_default() += 1;
            failures.push(json!({"custom_id": input.ids[i], "attempts": it.attempts, "reason": r}));
        }
    }
    let mut tokens = Tokens::default();
    let (mut cost, mut list) = (Money::ZERO, Money::ZERO);
    let mut uncosted = 0;
    let mut by_attempt: BTreeMap<u32, usize> = BTreeMap::new();
    let mut ledger = Vec::new();
    for b in &st.batches {
        if b.phase == Phase::Refused {
            continue;
        }
        *by_attempt.entry(b.attempt).or_default() += 1;
        tokens.add(&b.tokens);
        let parse = |s: &Option<String>| s.as_deref().and_then(|c| Money::parse_usd(c).ok());
        match (parse(&b.cost_usd), parse(&b.list_cost_usd)) {
            (Some(c), Some(l)) => {
                cost += c;
                list += l;
            }
            _ => uncosted += 1,
        }
        ledger.push(json!({"id": b.id, "attempt": b.attempt, "requests": b.items.len(), "cost_usd": b.cost_usd, "list_cost_usd": b.list_cost_usd}));
    }
    let refused = st.batches.iter().filter(|b| b.phase == Phase::Refused).count();
    let known = uncosted == 0;
    let usd = |m: Money| known.then(|| m.usd_exact());
    let json = json!({
        "items": st.items.len(),
        "succeeded": by.get("succeeded").copied().unwrap_or(0),
        "failed": by.get("failed").copied().unwrap_or(0),
        "pending": by.get("pending").copied().unwrap_or(0),
        "failed_by_reason": reasons,
        "failures": failures,
        "batches": ledger.len(),
        "batches_by_attempt": by_attempt.iter().map(|(a, n)| (a.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "batches_refused": refused,
        "tokens": tokens,
        "cost_usd": usd(cost),
        "list_cost_usd": usd(list),
        "savings_usd": usd(list - cost),
        "batches_without_ledger_cost": uncosted,
        "ledger": ledger,
    });
    let mut t = String::new();
    let row = |t: &mut String, k: &str, v: String| t.push_str(&format!("  {k:<22} {v}\n"));
    t.push_str("summary\n");
    row(&mut t, "items", st.items.len().to_string());
    for (k, v) in &by {
        row(&mut t, &format!("  {k}"), v.to_string());
    }
    for (k, v) in &reasons {
        row(&mut t, &format!("    {k}"), v.to_string());
    }
    let attempts: Vec<String> =
        by_attempt.iter().map(|(a, n)| format!("{n} in attempt {a}")).collect();
    row(&mut t, "batches", format!("{} ({})", ledger.len(), attempts.join(", ")));
    if refused > 0 {
        row(&mut t, "batches refused", refused.to_string());
    }
    row(&mut t, "input tokens", tokens.input.to_string());
    row(&mut t, "output tokens", tokens.output.to_string());
    row(&mut t, "cache write tokens", tokens.cache_write.to_string());
    row(&mut t, "cache read tokens", tokens.cache_read.to_string());
    let money = |m: Money| {
        if known {
            format!("${}", m.usd_exact())
        } else {
            format!("unknown ({uncosted} batches without a ledger cost)")
        }
    };
    row(&mut t, "cost", money(cost));
    row(&mut t, "list cost", money(list));
    row(&mut t, "savings", money(list - cost));
    let shown = failures.iter().take(20);
    if !failures.is_empty() {
        t.push_str(&format!("failed items ({}):\n", failures.len()));
        for f in shown {
            t.push_str(&format!(
                "  {}  after {} attempt(s): {}\n",
                f["custom_id"].as_str().unwrap_or(""),
                f["attempts"],
                f["reason"].as_str().unwrap_or("")
            ));
        }
        if failures.len() > 20 {
            t.push_str(&format!("  ... and {} more (see --summary-json)\n", failures.len() - 20));
        }
    }
    Summary { json, table: t, all_succeeded: failures.is_empty() }
}

//! The preview as people read it: the plan's size, its worst-case and expected cost at
//! batch and standard price, and each budget it fits or breaks, with the numbers.

use std::fmt::Write;

use super::Options;
use super::plan::{BudgetCheck, Preview};
use super::provider::Limits;

pub fn render(o: &Options, provider: &str, items: usize, lim: Limits, pv: &Preview) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "plan: {items} requests in {} batches (at most {} requests and {} each) for {provider} via {}",
        pv.batches.len(),
        lim.max_requests,
        bytes(lim.max_bytes),
        o.gateway
    );
    if let Some(cap) = o.max_batch_usd {
        let _ = writeln!(
            t,
            "      each batch's worst case at most ${} (--max-batch-usd)",
            cap.usd_exact()
        );
    }
    match (&pv.total, &pv.unavailable) {
        (Some(p), _) => {
            let _ = writeln!(t, "cost              worst case        expected");
            let _ = writeln!(
                t,
                "  batch price     ${:<16} ${}",
                p.worst.usd_rounded(4),
                p.expected.usd_rounded(4)
            );
            let _ = writeln!(
                t,
                "  standard price  ${:<16} ${}",
                p.worst_list.usd_rounded(4),
                p.expected_list.usd_rounded(4)
            );
        }
        (None, Some(why)) => {
            let _ = writeln!(t, "cost: no estimate: {why}; budgets are not checked before sending");
        }
        (None, None) => {}
    }
    if o.dry_run {
        for (i, b) in pv.batches.iter().enumerate() {
            let price = b
                .price
                .as_ref()
                .map(|p| {
                    format!(
                        ", worst ${}, expected ${}",
                        p.worst.usd_rounded(4),
                        p.expected.usd_rounded(4)
                    )
                })
                .unwrap_or_default();
            let _ =
                writeln!(t, "  batch {i}: {} requests, {} bytes{price}", b.items.len(), b.bytes);
        }
    }
    if pv.total.is_some() {
        if o.project.is_none() && o.admin_token.is_some() {
            let _ = writeln!(
                t,
                "note: if the gateway took the admin token for the estimate, only budgets covering every project were checked (pass --project NAME)"
            );
        }
        let of = pv.project.as_deref().or(o.project.as_deref());
        let of = of.map(|p| format!(" (project `{p}`)")).unwrap_or_default();
        if pv.budgets.is_empty() {
            let _ = writeln!(t, "budgets{of}: none applies");
        } else {
            let _ = writeln!(t, "budgets{of}:");
        }
        for b in &pv.budgets {
            let _ =
                writeln!(t, "  {} {}", if b.fits() { "fits  " } else { "BREAKS" }, budget_line(b));
        }
    }
    t
}

/// One budget with its numbers.
pub fn budget_line(b: &BudgetCheck) -> String {
    let remaining = b
        .remaining
        .map(|r| format!("${}", r.usd_rounded(4)))
        .unwrap_or_else(|| "no USD limit".into());
    let mut s = format!(
        "`{}`: remaining {remaining}, plan worst case ${} (window ends {})",
        b.name,
        b.plan_worst.usd_rounded(4),
        b.window_end
    );
    if let Some(k) = &b.blocked_by {
        let _ = write!(s, "; a batch alone exceeds its {k} limit");
    }
    s
}

fn bytes(n: u64) -> String {
    if n % (1 << 20) == 0 { format!("{} MiB", n >> 20) } else { format!("{n} bytes") }
}

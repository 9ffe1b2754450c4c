//! The preview: every planned batch priced by the gateway's estimate API (worst case and
//! expected, at batch and standard price), batches over `--max-batch-usd` halved until
//! they fit, and each budget's remaining amount compared with the whole plan.

use serde_json::Value;

use super::client::{CallError, Client};
use super::input::Input;
use super::provider::Provider;
use super::split::halve;
use crate::money::Money;

/// One batch's price as the gateway estimates it.
#[derive(Clone, Debug, Default)]
pub struct Price {
    pub worst: Money,
    pub worst_list: Money,
    pub expected: Money,
    pub expected_list: Money,
}

impl Price {
    pub fn add(&mut self, o: &Price) {
        self.worst += o.worst;
        self.worst_list += o.worst_list;
        self.expected += o.expected;
        self.expected_list += o.expected_list;
    }
}

/// One budget against the plan.
#[derive(Clone, Debug)]
pub struct BudgetCheck {
    pub name: String,
    /// Limit minus spent minus reserved now; `None` for a budget without a USD limit.
    pub remaining: Option<Money>,
    /// A token limit some batch alone would cross.
    pub blocked_by: Option<String>,
    pub window_end: String,
    /// The plan's worst case, summed over its batches.
    pub plan_worst: Money,
}

impl BudgetCheck {
    pub fn fits(&self) -> bool {
        self.blocked_by.is_none() && self.remaining.is_none_or(|r| self.plan_worst <= r)
    }
}

pub struct Planned {
    pub items: Vec<u32>,
    pub bytes: u64,
    pub price: Option<Price>,
}

pub struct Preview {
    /// The project whose budgets were checked, when the gateway says.
    pub project: Option<String>,
    pub batches: Vec<Planned>,
    pub total: Option<Price>,
    pub budgets: Vec<BudgetCheck>,
    /// Why no estimate could be had (the server is not a batchcost gateway, say).
    pub unavailable: Option<String>,
}

/// Why planning stopped.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The input itself is wrong (the gateway's estimator refused it, or an item alone
    /// exceeds the cost cap).
    #[error("{0}")]
    Input(String),
    #[error("estimate: {0}")]
    Call(#[from] CallError),
}

/// Prices `chunks` one by one; halves any whose worst case exceeds `cap`.
pub async fn preview(
    client: &Client,
    provider: &impl Provider,
    input: &Input,
    chunks: Vec<(Vec<u32>, u64)>,
    project: Option<&str>,
    cap: Option<Money>,
) -> Result<Preview, PlanError> {
    let mut todo: Vec<(Vec<u32>, u64)> = chunks.into_iter().rev().collect();
    let mut batches = Vec::new();
    let mut total = Price::default();
    let mut budgets: Vec<BudgetCheck> = Vec::new();
    let mut checked_for = None;
    while let Some((items, bytes)) = todo.pop() {
        let lines = input.lines(&items).map_err(|e| PlanError::Input(e.to_string()))?;
        let refs: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let query = provider.estimate_query(&refs);
        let answer = match estimate(client, provider.body(&refs), &query, project).await {
            Ok(v) => v,
            Err(CallError::Status { status: 404, .. }) if batches.is_empty() => {
                let why = "the server has no /api/estimate (not a batchcost gateway?)";
                return Ok(unpriced(todo, items, bytes, why));
            }
            Err(CallError::Status { status: 400, message, .. }) => {
                return Err(PlanError::Input(message));
            }
            Err(e) => return Err(e.into()),
        };
        let price = price_of(&answer["estimate"]);
        if let Some(cap) = cap.filter(|c| price.worst > *c) {
            if items.len() == 1 {
                return Err(PlanError::Input(format!(
                    "request `{}` alone has a worst case of ${}, above --max-batch-usd ${}",
                    input.ids[items[0] as usize],
                    price.worst.usd_rounded(4),
                    cap.usd_exact()
                )));
            }
            let [a, b] = halve(input, &items, provider.body_overhead());
            todo.push(b);
            todo.push(a);
            continue;
        }
        merge_budgets(&mut budgets, &answer["budgets"], price.worst);
        checked_for = answer["project"].as_str().map(str::to_string);
        total.add(&price);
        batches.push(Planned { items, bytes, price: Some(price) });
    }
    Ok(Preview { project: checked_for, batches, total: Some(total), budgets, unavailable: None })
}

fn unpriced(todo: Vec<(Vec<u32>, u64)>, items: Vec<u32>, bytes: u64, why: &str) -> Preview {
    let mut batches = vec![Planned { items, bytes, price: None }];
    batches.extend(todo.into_iter().rev().map(|(items, bytes)| Planned {
        items,
        bytes,
        price: None,
    }));
    Preview {
        project: None,
        batches,
        total: None,
        budgets: Vec::new(),
        unavailable: Some(why.into()),
    }
}

/// `POST /api/estimate[?project=]`: with the project key (the gateway infers the
/// project), or the admin token and `--project` where the gateway still requires it.
pub async fn estimate(
    client: &Client,
    body: Vec<u8>,
    query: &[(&'static str, String)],
    project: Option<&str>,
) -> Result<Value, CallError> {
    let mut attempt = 0;
    loop {
        let rb = client
            .estimate(project)
            .query(query)
            .header("content-type", "application/json")
            .body(body.clone());
        match client.json(rb).await {
            Err(CallError::Status { status: 401 | 403, .. }) if client.estimate_fall_back() => {}
            Err(e) if e.transient() && attempt < 5 => {
                attempt += 1;
                tokio::time::sleep(super::client::backoff(attempt)).await;
            }
            other => return other,
        }
    }
}

fn money(v: &Value) -> Money {
    v.as_str().and_then(|s| Money::parse_usd(s).ok()).unwrap_or(Money::ZERO)
}

pub fn price_of(est: &Value) -> Price {
    Price {
        worst: money(&est["worst"]["cost_usd"]),
        worst_list: money(&est["worst"]["list_cost_usd"]),
        expected: money(&est["expected"]["cost_usd"]),
        expected_list: money(&est["expected"]["list_cost_usd"]),
    }
}

fn merge_budgets(acc: &mut Vec<BudgetCheck>, answer: &Value, worst: Money) {
    for b in answer.as_array().into_iter().flatten() {
        let name = b["name"].as_str().unwrap_or("?").to_string();
        let blocked = b["blocked_by"].as_str().filter(|k| *k != "usd").map(str::to_string);
        match acc.iter_mut().find(|c| c.name == name) {
            Some(c) => {
                c.plan_worst += worst;
                c.blocked_by = c.blocked_by.take().or(blocked);
            }
            None => acc.push(BudgetCheck {
                name,
                remaining: b["remaining_usd"].as_str().and_then(|s| Money::parse_usd(s).ok()),
                blocked_by: blocked,
                window_end: b["window_end"].as_str().unwrap_or("").to_string(),
                plan_worst: worst,
            }),
        }
    }
}

//! Batch costs from the gateway's ledger (`GET /api/batches/{id}`), read once each batch
//! has settled: the summary's cost is the sum of these, so it agrees with reports, budgets
//! and `/metrics` to the pico-dollar. The record needs the admin (or read) token on
//! gateways that do not open it to the project key; without access the summary says the
//! cost is unknown rather than guessing from a local price table.

use reqwest::Method;

use super::client::{CallError, Client};
use super::state::{Phase, State};

/// Whether the ledger can be read with the credentials given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Unknown,
    Yes,
    /// Refused (401/403) or absent (404: not a batchcost gateway).
    No,
}

/// Reads the cost of every collected batch not yet costed: how many are left, and
/// whether any cost was read.
pub async fn refresh(client: &Client, st: &mut State, access: &mut Access) -> (usize, bool) {
    if *access == Access::No {
        return (0, false);
    }
    let (mut left, mut read) = (0, false);
    for b in st.batches.iter_mut() {
        if b.phase != Phase::Collected || b.cost_usd.is_some() {
            continue;
        }
        let Some(id) = b.id.clone() else { continue };
        let path = format!("/api/batches/{id}");
        match client.read(|| client.service(Method::GET, &path)).await {
            Ok(v) => {
                *access = Access::Yes;
                if v["status"] == "settled" {
                    b.cost_usd = v["cost_usd"].as_str().map(str::to_string);
                    b.list_cost_usd = v["list_cost_usd"].as_str().map(str::to_string);
                    read = true;
                } else {
                    left += 1;
                }
            }
            Err(CallError::Status { status: 401 | 403 | 404, .. })
                if *access == Access::Unknown =>
            {
                *access = Access::No;
                return (0, false);
            }
            Err(_) => left += 1,
        }
    }
    (left, read)
}

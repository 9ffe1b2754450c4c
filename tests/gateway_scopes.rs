//! Scoped service tokens: each reaches exactly the routes its scope allows. Every route is
//! tried with every kind of credential; a missing or unknown token is 401, a known token
//! outside its scope 403, and one inside it gets the route's real answer.

mod common;

use std::sync::Arc;

use batchcost::clock::SystemClock;
use batchcost::config::{Period, Secret};
use batchcost::money::Money;
use common::*;

const METRICS: &str = "scope-metrics-token";
const READ: &str = "scope-read-token";

#[derive(Clone, Copy, Debug)]
enum Cred {
    None,
    Unknown,
    ProjectKey,
    Metrics,
    Read,
    Admin,
}

/// What a route answers when the token's scope covers it.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<serde_json::Value>,
    /// Its answer to an authorised call (404 for an id that does not exist).
    ok: u16,
    /// The credentials whose scope covers it.
    allowed: &'static [&'static str],
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_token_reaches_exactly_what_its_scope_allows() {
    let h = harness_with(
        vec![budget("alpha-daily", Some("alpha"), Period::Day, Money::from_usd(10))],
        Arc::new(SystemClock),
        sim_config(),
        |s| {
            s.scoped_tokens.metrics = Some(Secret::new(METRICS));
            s.scoped_tokens.read = Some(Secret::new(READ));
        },
    )
    .await;
    let estimate = batch_body("scope", "claude-haiku-4-5", 2, 100);
    let routes = [
        Route {
            method: "GET",
            path: "/metrics",
            body: None,
            ok: 200,
            allowed: &["metrics", "admin"],
        },
        Route {
            method: "GET",
            path: "/api/budgets",
            body: None,
            ok: 200,
            allowed: &["read", "admin"],
        },
        Route {
            method: "GET",
            path: "/api/batches/msgbatch_nope",
            body: None,
            ok: 404,
            allowed: &["read", "admin"],
        },
        Route {
            method: "GET",
            path: "/api/batches",
            body: None,
            ok: 200,
            allowed: &["read", "admin"],
        },
        Route {
            method: "GET",
            path: "/api/reports/spend?from=2026-01-01&to=2026-01-02",
            body: None,
            ok: 200,
            allowed: &["read", "admin"],
        },
        Route {
            method: "POST",
            path: "/api/estimate",
            body: Some(estimate),
            ok: 200,
            // A project key estimates for its own project (issue 16).
            allowed: &["read", "admin", "project"],
        },
        Route {
            method: "GET",
            path: "/api/approvals",
            body: None,
            ok: 200,
            allowed: &["read", "admin"],
        },
        Route {
            method: "POST",
            path: "/api/approvals/apr_nope/approve",
            body: None,
            ok: 404,
            allowed: &["admin"],
        },
    ];
    let creds = [
        (Cred::None, "none"),
        (Cred::Unknown, "unknown"),
        (Cred::ProjectKey, "project"),
        (Cred::Metrics, "metrics"),
        (Cred::Read, "read"),
        (Cred::Admin, "admin"),
    ];
    let mut table = Vec::new();
    for r in &routes {
        for (cred, name) in creds {
            let url = format!("{}{}", h.base, r.path);
            let mut req = match r.method {
                "GET" => h.http.get(&url),
                _ => h.http.post(&url),
            };
            if let Some(b) = &r.body {
                req = req.json(b);
            }
            req = match cred {
                Cred::None => req,
                Cred::Unknown => req.bearer_auth("not-a-token"),
                Cred::ProjectKey => req.bearer_auth(PROJECTS[0].1),
                Cred::Metrics => req.bearer_auth(METRICS),
                Cred::Read => req.bearer_auth(READ),
                Cred::Admin => req.bearer_auth(ADMIN),
            };
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            let text = resp.text().await.unwrap();
            let want = if r.allowed.contains(&name) {
                r.ok
            } else if matches!(cred, Cred::None | Cred::Unknown | Cred::ProjectKey) {
                401
            } else {
                403
            };
            if status == 403 {
                let v: serde_json::Value = serde_json::from_str(&text).unwrap();
                assert_eq!(v["error"]["type"], "permission_error", "{text}");
            }
            assert!(!text.contains(READ) && !text.contains(METRICS), "a token leaked: {text}");
            table.push(format!("{} {} as {name}: {status} (want {want})", r.method, r.path));
            assert_eq!(
                status,
                want,
                "{} {} as {name}: {text}\n{}",
                r.method,
                r.path,
                table.join("\n")
            );
        }
    }
    h.stop().await;
}

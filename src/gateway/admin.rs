//! The service's own API: estimates, budgets, ledger records, metrics and health. Every
//! `/api/*` route and `/metrics` need a service token: the admin token reaches all of
//! them, the read token the read-only `/api/*` routes, the metrics token `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::auth::Scope;
use super::error::ApiError;
use super::{App, auth, body};
use crate::budgets::{ALL_PROJECTS, window_ref};
use crate::ledger::{WindowRef, WindowState};
use crate::metrics::LedgerSnapshot;
use crate::submit::{blocked_by, hold_of, windows_for};

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/api/estimate", post(estimate))
        .route("/api/budgets", get(budgets))
        .route("/api/batches", get(super::listing::list))
        .route("/api/batches/{id}", get(batch))
        .route("/api/reports/spend", get(spend_report))
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(app): State<Arc<App>>) -> Response {
    match app.ledger.ping().await {
        Ok(()) => (
            StatusCode::OK,
            axum::Json(json!({"ledger": "ok", "pricing_version": app.pricing.version()})),
        )
            .into_response(),
        Err(e) => ApiError::Unavailable(format!("ledger not ready: {e}")).into_response(),
    }
}

/// Every budget's current window, with its alert fractions.
pub async fn budget_windows(app: &App) -> Result<Vec<(WindowState, Vec<f64>)>, ApiError> {
    let now = app.clock.now();
    let refs: Vec<WindowRef> =
        app.settings.budgets.iter().map(|b| window_ref(b, &app.settings.timezone, now)).collect();
    let states = app.ledger.windows(&refs).await?;
    Ok(states.into_iter().zip(app.settings.budgets.iter().map(|b| b.alert_at.clone())).collect())
}

/// Per budget (in config order): its current window's possible overshoot from batches held
/// below their worst case; zero where the backend cannot tell.
async fn overshoots(app: &App) -> Vec<crate::money::Money> {
    let now = app.clock.now();
    let refs: Vec<WindowRef> =
        app.settings.budgets.iter().map(|b| window_ref(b, &app.settings.timezone, now)).collect();
    app.ledger
        .possible_overshoot(&refs)
        .await
        .unwrap_or_else(|_| vec![crate::money::Money::ZERO; refs.len()])
}

async fn metrics(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::require(&app, &headers, Scope::Metrics)?;
    // A backend without an outbox leaves the gauge at 0.
    if let Ok(c) = app.ledger.outbox_counts().await {
        app.metrics.workflow.set_pending(c.pending);
    }
    let gauge = &app.metrics.workflow.possible_overshoot;
    gauge.reset();
    for (b, o) in app.settings.budgets.iter().zip(overshoots(&app).await) {
        let labels = [b.name.as_str(), crate::budgets::project_label(b), b.period.as_str()];
        gauge.with_label_values(&labels).set(o.to_f64_usd());
    }
    let snap = LedgerSnapshot {
        now: app.clock.now(),
        windows: budget_windows(&app).await?,
        in_flight: app.ledger.in_flight().await?,
    };
    let text = app.metrics.render(&snap).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(resp)
}

/// A budget window as `/api/budgets` shows it: exact decimal strings for money.
#[derive(Serialize)]
struct BudgetView {
    name: String,
    project: String,
    period: &'static str,
    limit_usd: Option<String>,
    spent_usd: String,
    reserved_usd: String,
    remaining_usd: Option<String>,
    limit_input_tokens: Option<u64>,
    spent_input_tokens: u64,
    reserved_input_tokens: u64,
    limit_output_tokens: Option<u64>,
    spent_output_tokens: u64,
    reserved_output_tokens: u64,
    window_start: String,
    window_end: String,
    alert_at: Vec<f64>,
    /// `worst_case` or `calibrated`.
    hold: &'static str,
    /// The most the batches held in this window could still overshoot the limit by.
    possible_overshoot_usd: String,
    approval_above_usd: Option<String>,
    week_starts: Option<String>,
}

fn view(w: &WindowState, alert_at: &[f64]) -> BudgetView {
    BudgetView {
        name: w.budget.clone(),
        project: w.project.clone(),
        period: w.period.as_str(),
        limit_usd: w.limit.map(|l| l.usd_exact()),
        spent_usd: w.spent.usd_exact(),
        reserved_usd: w.reserved.usd_exact(),
        remaining_usd: w.limit.map(|l| (l - w.spent - w.reserved).usd_exact()),
        limit_input_tokens: w.limit_input_tokens,
        spent_input_tokens: w.spent_input_tokens,
        reserved_input_tokens: w.reserved_input_tokens,
        limit_output_tokens: w.limit_output_tokens,
        spent_output_tokens: w.spent_output_tokens,
        reserved_output_tokens: w.reserved_output_tokens,
        window_start: crate::clock::rfc3339_micros(w.start),
        window_end: crate::clock::rfc3339_micros(w.end),
        alert_at: alert_at.to_vec(),
        hold: "worst_case",
        possible_overshoot_usd: "0".into(),
        approval_above_usd: None,
        week_starts: None,
    }
}

async fn budgets(State(app): State<Arc<App>>, headers: HeaderMap) -> Result<Response, ApiError> {
    auth::require(&app, &headers, Scope::Read)?;
    let windows = budget_windows(&app).await?;
    let over = overshoots(&app).await;
    let list: Vec<BudgetView> = windows
        .iter()
        .zip(&app.settings.budgets)
        .zip(over)
        .map(|(((w, a), b), o)| BudgetView {
            hold: match b.policy.hold {
                crate::config::HoldPolicy::WorstCase => "worst_case",
                crate::config::HoldPolicy::Calibrated => "calibrated",
            },
            possible_overshoot_usd: o.usd_exact(),
            approval_above_usd: b.policy.approval_above.map(|m| m.usd_exact()),
            week_starts: (b.period == crate::config::Period::Week)
                .then(|| format!("{:?}", b.policy.week_starts).to_lowercase()),
            ..view(w, a)
        })
        .collect();
    Ok(axum::Json(json!({ "budgets": list })).into_response())
}

async fn batch(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require(&app, &headers, Scope::Read)?;
    // Upstream ids are unique per provider: the first upstream that knows the id.
    let mut rec = None;
    for name in app.providers.keys() {
        rec = app.ledger.batch_by_upstream(name, &id).await?;
        if rec.is_some() {
            break;
        }
    }
    let rec = match rec {
        Some(r) => Some(r),
        None => app.ledger.batch(&id).await?,
    };
    if rec.is_none() {
        if let Some(r) = app.ledger.refusal(&id).await? {
            return Ok(axum::Json(super::listing::refusal_json(&app, &r)).into_response());
        }
    }
    let rec = rec.ok_or_else(|| {
        ApiError::NotFound(format!(
            "no batch `{}` in the ledger",
            id.chars().take(80).collect::<String>()
        ))
    })?;
    let models = app.ledger.model_usage(&rec.sub_id).await?;
    let money = |m: Option<crate::money::Money>| m.map(|v| v.usd_exact());
    Ok(axum::Json(json!({
        "id": rec.upstream_id,
        "submission_id": rec.sub_id,
        "project": rec.project,
        "provider": rec.provider,
        "status": rec.state,
        "upstream_status": rec.last_status,
        "request_count": rec.request_count,
        "reserved_usd": rec.hold.usd.usd_exact(),
        "reserved_input_tokens": rec.hold.input_tokens,
        "reserved_output_tokens": rec.hold.output_tokens,
        "cost_usd": money(rec.cost),
        "list_cost_usd": money(rec.list_cost),
        "submitted_at": crate::clock::rfc3339_micros(rec.submitted_at),
        "ended_at": rec.ended_at.map(crate::clock::rfc3339_micros),
        "settled_at": rec.settled_at.map(crate::clock::rfc3339_micros),
        "last_error": rec.error,
        "models": models.iter().map(|m| json!({
            "model": m.model,
            "tokens": m.tokens,
            "requests": m.requests,
            "cost_usd": m.cost.usd_exact(),
            "list_cost_usd": m.list_cost.usd_exact(),
        })).collect::<Vec<_>>(),
    }))
    .into_response())
}

/// `GET /api/reports/spend`: as `batchcost report`, streamed.
async fn spend_report(
    State(app): State<Arc<App>>,
    Query(params): Query<std::collections::HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    auth::require(&app, &headers, Scope::Read)?;
    let s = &app.settings;
    let query = crate::report::http::parse(&params, &s.timezone, &s.timezone_name)
        .map_err(ApiError::InvalidRequest)?;
    Ok(crate::report::http::response(app.ledger.as_ref(), &app.pricing, &query))
}

#[derive(Deserialize)]
struct EstimateQuery {
    project: Option<String>,
    /// The upstream whose format the body is in (default: Anthropic's).
    provider: Option<String>,
    /// Gemini: the batch's model (its create path names it, not the lines).
    model: Option<String>,
}

/// `POST /api/estimate[?project=NAME]`: the estimate plus, per budget that would apply,
/// whether the worst case fits now. Reserves nothing. Admin token: any project (or none:
/// global budgets only); project key: that project, as if it submitted the body.
async fn estimate(
    State(app): State<Arc<App>>,
    Query(q): Query<EstimateQuery>,
    req: Request,
) -> Result<Response, ApiError> {
    let (parts, raw) = req.into_parts();
    // The admin or read token may ask for any project; a project key answers for its own project,
    // so a client can check a batch against its budgets before sending it.
    let caller = match auth::require(&app, &parts.headers, Scope::Read) {
        Ok(_) => None,
        // A known service token outside its scope (the metrics token) stays refused.
        Err(ApiError::Forbidden(m)) => return Err(ApiError::Forbidden(m)),
        Err(admin_err) => match auth::project(&app, &parts.headers) {
            Ok(p) => Some(p),
            Err(_) if auth::presented_key(&parts.headers).is_none() => return Err(admin_err),
            Err(e) => return Err(e),
        },
    };
    if let (Some(own), Some(asked)) = (&caller, &q.project) {
        if own != asked {
            return Err(ApiError::InvalidRequest(format!(
                "project: a project key estimates for its own project (`{own}`); omit \
                 ?project= or use the admin token"
            )));
        }
    }
    let q = EstimateQuery { project: caller.or(q.project), ..q };
    let body = body::read_limited(&parts.headers, raw, app.settings.limits.max_body_bytes).await?;
    let now = app.clock.now();
    let opts =
        crate::estimate::EstimateOptions::new(now, app.settings.limits.expected_output_fraction);
    let est = {
        let app = app.clone();
        let (provider, model) = (q.provider.clone(), q.model.clone());
        tokio::task::spawn_blocking(move || {
            let (p, m) = (provider.as_deref(), model.as_deref());
            super::estimate_kinds::estimate(&app, p, m, &body, &opts)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(ApiError::InvalidRequest)?
    };
    let hold = hold_of(&est);
    let project = match &q.project {
        Some(p) if app.settings.projects.iter().any(|(n, _)| n == p) => p.clone(),
        Some(p) => {
            return Err(ApiError::InvalidRequest(format!(
                "project: no project named `{}`",
                p.chars().take(64).collect::<String>()
            )));
        }
        None => String::new(),
    };
    // The upstream whose budgets apply: the one the body's models are priced for.
    let provider = est.models.first().map(|m| m.provider.clone()).unwrap_or_default();
    let mut refs: Vec<WindowRef> = if project.is_empty() {
        windows_for(&app, &provider, "", Some(&est), now)
            .into_iter()
            .filter(|w| w.project == ALL_PROJECTS)
            .collect()
    } else {
        windows_for(&app, &provider, &project, Some(&est), now)
    };
    // What submitting would hold in each budget: calibrated budgets hold less.
    let bounds = crate::holds::bounds(&app, &provider, &est, now);
    crate::holds::apply(&app, &project, &provider, &bounds, hold, &mut refs, now).await;
    let states = app.ledger.windows(&refs).await?;
    let budgets: Vec<_> = states
        .iter()
        .zip(&refs)
        .map(|(w, r)| {
            let held = r.hold.unwrap_or(hold);
            let blocked = blocked_by(w, &held);
            let approval_above = app
                .settings
                .budgets
                .iter()
                .find(|b| b.name == w.budget)
                .and_then(|b| b.policy.approval_above);
            json!({
                "name": w.budget,
                "fits": blocked.is_none(),
                "blocked_by": blocked,
                "hold_usd": held.usd.usd_exact(),
                "needs_approval": approval_above.is_some_and(|a| held.usd > a),
                "remaining_usd": w.limit.map(|l| (l - w.spent - w.reserved).usd_exact()),
                "window_end": crate::clock::rfc3339_micros(w.end),
                "resets_at": crate::refusal::local_rfc3339(w.end, &app.settings.timezone),
                // What a submission now would be told, with the fix.
                "message": blocked.map(|kind| crate::refusal::budget_message(
                    w, &hold, kind, Some(&est), &app.pricing, now,
                    &app.settings.timezone, &app.settings.timezone_name,
                )),
            })
        })
        .collect();
    Ok(axum::Json(json!({ "project": q.project, "estimate": est, "budgets": budgets }))
        .into_response())
}

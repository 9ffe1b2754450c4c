//! `GET /v1/messages/batches` for one project: the page comes from the ledger (what the
//! gateway knows the project owns, newest first), each batch's object fresh from the
//! upstream. Filtering the upstream's shared list instead left a project whose batches sat
//! behind many newer batches of others with an empty first page, `has_more: true` and no
//! cursor, which ends the SDKs' auto-pagination.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::Response;
use futures_util::{StreamExt, stream};
use serde_json::Value;

use super::surface::{Surface, forward, json, rewrite};
use crate::gateway::auth;
use crate::gateway::error::ApiError;
use crate::ledger::ListCursor;

/// How many batch objects are fetched from the upstream at once for one page.
const FETCH_CONCURRENCY: usize = 8;

pub async fn list(
    State(s): State<Surface>,
    headers: HeaderMap,
    uri: Uri,
) -> Result<Response, ApiError> {
    let project = auth::project(&s.app, &headers)?;
    let q = ListQuery::parse(uri.query().unwrap_or(""))?;
    let cursor = match (&q.before_id, &q.after_id) {
        (Some(b), _) => ListCursor::Before(b),
        (None, Some(a)) => ListCursor::After(a),
        (None, None) => ListCursor::Newest,
    };
    let limit = q.limit as usize;
    let mut recs =
        s.app.ledger.project_batches(s.provider.name(), &project, cursor, q.limit + 1).await?;
    let has_more = recs.len() > limit;
    if has_more {
        // The extra row is the one farthest from the cursor: the oldest going forwards,
        // the newest going backwards.
        if matches!(cursor, ListCursor::Before(_)) {
            recs.remove(0);
        } else {
            recs.truncate(limit);
        }
    }
    let mut fwd = forward(&headers, &uri);
    fwd.query = q.passthrough();
    let ids: Vec<String> = recs.iter().filter_map(|r| r.upstream_id.clone()).collect();
    let replies: Vec<_> = stream::iter(ids.iter().cloned())
        .map(|id| {
            let (provider, fwd) = (s.provider.clone(), fwd.clone());
            async move { provider.retrieve(&id, &fwd).await }
        })
        .buffered(FETCH_CONCURRENCY)
        .collect()
        .await;
    let mut data = Vec::with_capacity(replies.len());
    let mut last_headers = HeaderMap::new();
    for reply in replies {
        let reply = reply?;
        if reply.status == StatusCode::NOT_FOUND {
            // Deleted upstream: no longer listed, the cursors still move past it.
            continue;
        }
        if !reply.status.is_success() {
            return Err(ApiError::upstream(reply));
        }
        let mut v: Value = serde_json::from_slice(&reply.body).map_err(|_| {
            ApiError::Internal("upstream sent a batch object that is not JSON".into())
        })?;
        rewrite(&s, &mut v);
        last_headers = reply.headers;
        data.push(v);
    }
    let body = serde_json::json!({
        "data": data,
        "has_more": has_more,
        "first_id": ids.first(),
        "last_id": ids.last(),
    });
    Ok(json(StatusCode::OK, &last_headers, &body))
}

struct ListQuery {
    limit: u32,
    before_id: Option<String>,
    after_id: Option<String>,
    /// Other parameters (`beta=true`), passed on to each retrieve.
    rest: Vec<String>,
}

impl ListQuery {
    fn parse(query: &str) -> Result<ListQuery, ApiError> {
        let mut q = ListQuery { limit: 20, before_id: None, after_id: None, rest: Vec::new() };
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            match k {
                "limit" => {
                    q.limit =
                        v.parse().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                            ApiError::InvalidRequest(
                                "limit: expected an integer from 1 to 1000".into(),
                            )
                        })?
                }
                "before_id" => q.before_id = Some(v.to_string()),
                "after_id" => q.after_id = Some(v.to_string()),
                _ => q.rest.push(pair.to_string()),
            }
        }
        Ok(q)
    }

    fn passthrough(&self) -> Option<String> {
        (!self.rest.is_empty()).then(|| self.rest.join("&"))
    }
}

//! Who is calling: a project (by its client key) or the operator (by the admin token).
//! Keys are compared in constant time, against every configured key, so timing reveals
//! neither a key's prefix nor which project matched.

use axum::http::HeaderMap;

use super::App;
use super::error::ApiError;

/// The credential a request carries: `x-api-key`, else `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    if let Some(k) = headers.get("x-api-key").and_then(|v| v.to_str().ok()) {
        return Some(k.trim());
    }
    let auth = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = auth.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Equal without an early exit.
pub fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = a.len() ^ b.len();
    for i in 0..a.len().max(b.len()) {
        diff |= (a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0)) as usize;
    }
    diff == 0
}

/// The calling project, or 401: "no key" and "a key that matches no project" are told
/// apart (the second is a typo or a revoked key; the first a client not configured yet).
pub fn project(app: &App, headers: &HeaderMap) -> Result<String, ApiError> {
    project_by_key(app, presented_key(headers))
}

/// The project whose key `key` is, or 401 as [`project`] tells them apart (for surfaces
/// that carry the key elsewhere: Gemini's `x-goog-api-key` and `?key=`).
pub fn project_by_key(app: &App, key: Option<&str>) -> Result<String, ApiError> {
    if key.is_none_or(str::is_empty) {
        return Err(ApiError::Unauthenticated(NO_KEY));
    }
    let found = key.and_then(|key| {
        let mut hit = None;
        for (name, keys) in &app.settings.projects {
            for k in keys {
                if ct_eq(k.expose().as_bytes(), key.as_bytes()) {
                    hit = Some(name.clone());
                }
            }
        }
        hit
    });
    found.ok_or(ApiError::Unauthenticated(WRONG_KEY))
}

/// 401 message when no key was sent.
pub const NO_KEY: &str = "no API key: send your project key as x-api-key or Authorization: Bearer";
/// 401 message when the key matches no project.
pub const WRONG_KEY: &str =
    "invalid x-api-key: the key sent matches no project (check for a typo or a rotated key)";

/// What a service token may reach. Each route names the least scope it needs; a token
/// reaches a route when its own scope covers that one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `GET /metrics`.
    Metrics,
    /// The read-only `/api/*` routes: budgets, batches, reports, estimates, approvals.
    Read,
    /// Everything, including what changes state (approvals).
    Admin,
}

/// Which token was presented, if any matches. Every configured token is compared, in
/// constant time, so timing does not tell which one matched.
fn token_scope(app: &App, headers: &HeaderMap) -> Option<Scope> {
    let presented = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|a| a.split_once(' '))
        .filter(|(s, _)| s.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())?;
    let tokens = &app.settings.scoped_tokens;
    let candidates = [
        (Some(&app.settings.admin_token), Scope::Admin),
        (tokens.read.as_ref(), Scope::Read),
        (tokens.metrics.as_ref(), Scope::Metrics),
    ];
    let mut hit = None;
    for (secret, scope) in candidates {
        if let Some(t) = secret {
            if ct_eq(presented.as_bytes(), t.expose().as_bytes()) && hit.is_none() {
                hit = Some(scope);
            }
        }
    }
    hit
}

/// A token covering `need`: 401 without a known token, 403 with one whose scope is
/// narrower (the metrics token reaches only `/metrics`, the read token only reads).
pub fn require(app: &App, headers: &HeaderMap, need: Scope) -> Result<Scope, ApiError> {
    let have = token_scope(app, headers)
        .ok_or(ApiError::Unauthenticated("a service token is required as Authorization: Bearer"))?;
    let allowed = match need {
        Scope::Metrics => matches!(have, Scope::Metrics | Scope::Admin),
        Scope::Read => matches!(have, Scope::Read | Scope::Admin),
        Scope::Admin => have == Scope::Admin,
    };
    if allowed {
        Ok(have)
    } else {
        Err(ApiError::Forbidden(match need {
            Scope::Metrics => "this token cannot read /metrics",
            Scope::Read => "this token cannot read /api/*",
            Scope::Admin => "this route needs the admin token",
        }))
    }
}

/// The admin token as `Authorization: Bearer`: 401 without a known token, 403 with a
/// scoped one.
pub fn admin(app: &App, headers: &HeaderMap) -> Result<(), ApiError> {
    require(app, headers, Scope::Admin).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn reads_either_header_and_compares_exactly() {
        let mut h = HeaderMap::new();
        h.insert("authorization", HeaderValue::from_static("Bearer sk-1"));
        assert_eq!(presented_key(&h), Some("sk-1"));
        h.insert("x-api-key", HeaderValue::from_static("sk-2"));
        assert_eq!(presented_key(&h), Some("sk-2"));
        assert!(ct_eq(b"abc", b"abc"));
        assert!(!ct_eq(b"abc", b"abd"));
        assert!(!ct_eq(b"abc", b"abcd"));
        assert!(!ct_eq(b"", b"a"));
    }
}

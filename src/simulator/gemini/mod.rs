//! The Gemini batch-mode surface (reference: providers-next.md section 1), served under
//! `/gemini` so that `http_options={"base_url": "http://HOST:PORT/gemini"}` works with
//! google-genai (whose `v1` paths would otherwise collide with OpenAI's `/v1/batches`
//! and `/v1/files`). Both API versions, `v1` and `v1beta`. Auth is `x-goog-api-key` or
//! `?key=`; upload chunk requests carry the upload session's id instead. Google's error
//! envelope. Wire types come from `crate::providers::gemini::wire`.

mod batches;
mod error;
mod files;
mod ids;
mod request;
mod results;
mod surface;

use std::collections::HashMap;
use std::sync::atomic::Ordering;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::any;
use bytes::Bytes;

use error::ApiError;
pub use surface::{AppState, Surface, new_surface};

use crate::simulator::engine::body::drain;
use crate::simulator::engine::faults::Operation;

/// Gemini models the simulator knows (price reference: providers-next.md 1.8); any other
/// is a 404 at create.
pub const MODELS: &[&str] = &[
    "gemini-2.5-pro",
    "gemini-2.5-flash",
    "gemini-2.5-flash-lite",
    "gemini-2.5-flash-image",
    "gemini-2.0-flash",
    "gemini-2.0-flash-lite",
    "gemini-3-pro-preview",
    "gemini-3.1-pro-preview",
    "gemini-3.5-flash-lite",
    "gemini-3.6-flash",
    "gemini-3.7-flash",
    "gemini-3.8-flash",
];

/// Largest chunk or create body read (the SDK sends 8 MiB chunks).
const BODY_LIMIT: usize = 64 * 1024 * 1024;

/// One route of the surface, parsed from the path after `/gemini/`.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Create { model: String },
    ListBatches,
    GetBatch(String),
    CancelBatch(String),
    DeleteBatch(String),
    UploadStart,
    UploadChunk(String),
    ListFiles,
    GetFile(String),
    DeleteFile(String),
    Download(String),
}

impl Route {
    fn operation(&self) -> Operation {
        match self {
            Route::Create { .. } => Operation::Create,
            Route::ListBatches => Operation::List,
            Route::GetBatch(_) => Operation::Retrieve,
            Route::CancelBatch(_) => Operation::Cancel,
            Route::DeleteBatch(_) => Operation::Delete,
            Route::UploadStart | Route::UploadChunk(_) => Operation::Upload,
            Route::ListFiles | Route::GetFile(_) | Route::DeleteFile(_) => Operation::Files,
            Route::Download(_) => Operation::Results,
        }
    }
}

fn version_ok(v: &str) -> bool {
    v == "v1" || v == "v1beta"
}

/// The route and API version of a call, or `None` (404).
fn route(method: &Method, path: &str, q: &HashMap<String, String>) -> Option<(Route, String)> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    let r = match parts.as_slice() {
        ["upload", v, "files"] if m == "POST" && version_ok(v) => match q.get("upload_id") {
            Some(uid) => (Route::UploadChunk(uid.clone()), v.to_string()),
            None => (Route::UploadStart, v.to_string()),
        },
        ["download", v, "files", f] if m == "GET" && version_ok(v) => {
            (Route::Download(f.strip_suffix(":download")?.to_string()), v.to_string())
        }
        [v, "models", mm] if m == "POST" && version_ok(v) => (
            Route::Create { model: mm.strip_suffix(":batchGenerateContent")?.to_string() },
            v.to_string(),
        ),
        [v, "batches"] if m == "GET" && version_ok(v) => (Route::ListBatches, v.to_string()),
        [v, "batches", b] if version_ok(v) => match (m, b.strip_suffix(":cancel")) {
            ("POST", Some(id)) => (Route::CancelBatch(id.to_string()), v.to_string()),
            ("GET", None) => (Route::GetBatch(b.to_string()), v.to_string()),
            ("DELETE", None) => (Route::DeleteBatch(b.to_string()), v.to_string()),
            _ => return None,
        },
        [v, "files"] if m == "GET" && version_ok(v) => (Route::ListFiles, v.to_string()),
        [v, "files", f] if version_ok(v) => match (m, f.strip_suffix(":download")) {
            ("GET", Some(id)) => (Route::Download(id.to_string()), v.to_string()),
            ("GET", None) => (Route::GetFile(f.to_string()), v.to_string()),
            ("DELETE", None) => (Route::DeleteFile(f.to_string()), v.to_string()),
            _ => return None,
        },
        _ => return None,
    };
    Some(r)
}

/// The surface under `/gemini`.
pub fn router(app: AppState) -> Router {
    let inner = Router::new().route("/{*rest}", any(dispatch)).with_state(app);
    Router::new().nest("/gemini", inner)
}

fn json<T: serde::Serialize>(v: T) -> Response {
    Json(v).into_response()
}

/// Parses the route, authenticates, counts, injects faults, then handles the call.
async fn dispatch(
    State(app): State<AppState>,
    Query(q): Query<HashMap<String, String>>,
    req: Request,
) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().trim_start_matches("/gemini").to_string();
    let headers = req.headers().clone();
    let result = handle(&app, &method, &path, &q, &headers, req.into_body()).await;
    match result {
        Ok(resp) => resp,
        Err(e) => e.render(),
    }
}

async fn handle(
    app: &AppState,
    method: &Method,
    path: &str,
    q: &HashMap<String, String>,
    headers: &HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let Some((route, version)) = route(method, path, q) else {
        drain(&mut body.into_data_stream(), 0).await;
        return Err(ApiError::NotFound(format!("Method not found: {method} /gemini{path}")));
    };
    let op = route.operation();
    app.count(op);
    if !matches!(route, Route::UploadChunk(_)) {
        let key = headers
            .get("x-goog-api-key")
            .and_then(|v| v.to_str().ok())
            .map(|k| (k, &app.stats.auth_x_api_key))
            .or_else(|| q.get("key").map(|k| (k.as_str(), &app.stats.auth_x_api_key)));
        match key {
            Some((k, counter)) if app.key_matches(k) => {
                counter.fetch_add(1, Ordering::Relaxed);
            }
            Some(_) => {
                app.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                drain(&mut body.into_data_stream(), 0).await;
                return Err(ApiError::InvalidArgument(
                    "API key not valid. Please pass a valid API key.".into(),
                ));
            }
            None => {
                app.stats.auth_failures.fetch_add(1, Ordering::Relaxed);
                drain(&mut body.into_data_stream(), 0).await;
                return Err(ApiError::PermissionDenied("Method doesn't allow unregistered callers (callers without established identity). Please use API Key or other form of API consumer identity to call this API.".into()));
            }
        }
    }
    if let Err(fault) = app.inject(op).await {
        drain(&mut body.into_data_stream(), 0).await;
        return Err(fault.into());
    }
    let read = |body: Body| async move {
        axum::body::to_bytes(body, BODY_LIMIT).await.map_err(|_| {
            ApiError::InvalidArgument(format!(
                "Request payload size exceeds the limit: {BODY_LIMIT} bytes."
            ))
        })
    };
    let resp = match route {
        Route::Create { model } => {
            let bytes: Bytes = read(body).await?;
            let op = batches::create(app, model.trim_start_matches("models/"), &bytes)?;
            if app.lose_create() {
                return Err(ApiError::Internal);
            }
            json(op)
        }
        Route::ListBatches => json(batches::list(app, q)?),
        Route::GetBatch(id) => json(batches::get(app, &id)?),
        Route::CancelBatch(id) => json(batches::cancel(app, &id)?),
        Route::DeleteBatch(id) => json(batches::delete(app, &id)?),
        Route::UploadStart => files::start(app, &version, headers, &read(body).await?)?,
        Route::UploadChunk(uid) => files::chunk(app, &version, &uid, headers, read(body).await?)?,
        Route::ListFiles => json(files::list(app, q)?),
        Route::GetFile(id) => json(files::get(app, &version, &id)?),
        Route::DeleteFile(id) => json(files::delete(app, &id)?),
        Route::Download(id) => files::download(app, &id)?,
    };
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_parsed_in_both_versions_and_forms() {
        let q = HashMap::new();
        let r = |m: Method, p: &str| route(&m, p, &q).map(|(r, _)| r);
        assert_eq!(
            r(Method::POST, "/v1beta/models/gemini-2.5-flash:batchGenerateContent"),
            Some(Route::Create { model: "gemini-2.5-flash".into() })
        );
        assert_eq!(r(Method::GET, "/v1/batches/abc"), Some(Route::GetBatch("abc".into())));
        assert_eq!(
            r(Method::POST, "/v1/batches/abc:cancel"),
            Some(Route::CancelBatch("abc".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1/files/batch-x:download"),
            Some(Route::Download("batch-x".into()))
        );
        assert_eq!(
            r(Method::GET, "/download/v1beta/files/batch-x:download"),
            Some(Route::Download("batch-x".into()))
        );
        assert_eq!(r(Method::POST, "/upload/v1beta/files"), Some(Route::UploadStart));
        assert_eq!(r(Method::GET, "/v2/batches"), None);
    }
}

//! The Gemini-compatible surface (contract section 4), under `/NAME` of every upstream of
//! kind `gemini`, in API versions `v1` (google-genai 3.x's default) and `v1beta`: batch
//! create (inline requests or an uploaded file), get, list (the caller's own, from the
//! ledger), cancel and delete; the File API's resumable upload (the upload URL rewritten to
//! the gateway, the bytes priced as they stream through) and the results download. The key
//! is a project key, as `x-goog-api-key` or `?key=`; the client's query string is never
//! passed on (it may carry that key). Paths like `models/{m}:batchGenerateContent` put a
//! verb after the id in one segment, so routing is one catch-all parsed here.

mod batches;
mod error;
mod files;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

pub use self::error::GoogleError;
use crate::app::App;
use crate::gateway::auth;
use crate::providers::Provider;
use crate::providers::gemini::GeminiProvider;

/// One Gemini upstream served at `/NAME`.
#[derive(Clone)]
pub struct Surface {
    pub app: Arc<App>,
    pub provider: Arc<dyn Provider>,
    pub gemini: Arc<GeminiProvider>,
    pub prefix: String,
    /// Resumable uploads in progress, by the gateway's upload id.
    uploads: Arc<Mutex<HashMap<String, files::Upload>>>,
}

impl Surface {
    /// The surface of `provider`, if it speaks Gemini's format.
    pub fn new(app: Arc<App>, provider: Arc<dyn Provider>) -> Option<Surface> {
        let gemini = provider.clone().into_any().downcast::<GeminiProvider>().ok()?;
        let prefix = format!("/{}", provider.name());
        Some(Surface { app, provider, gemini, prefix, uploads: Default::default() })
    }

    pub fn name(&self) -> &str {
        self.provider.name()
    }
}

/// One route, parsed from the path after the prefix.
#[derive(Debug, PartialEq, Eq)]
enum Route {
    Create(String),
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

fn version_ok(v: &str) -> bool {
    v == "v1" || v == "v1beta"
}

/// The value of one query parameter.
pub fn query_param<'q>(uri: &'q Uri, name: &str) -> Option<&'q str> {
    uri.query()?.split('&').find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
}

fn route(method: &Method, path: &str, uri: &Uri) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let m = method.as_str();
    let r = match parts.as_slice() {
        ["upload", v, "files"] if m == "POST" && version_ok(v) => {
            match query_param(uri, "upload_id") {
                Some(id) => Route::UploadChunk(id.to_string()),
                None => Route::UploadStart,
            }
        }
        ["download", v, "files", f] if m == "GET" && version_ok(v) => {
            Route::Download(f.strip_suffix(":download")?.to_string())
        }
        [v, "models", model] if m == "POST" && version_ok(v) => {
            Route::Create(model.strip_suffix(":batchGenerateContent")?.to_string())
        }
        [v, "batches"] if m == "GET" && version_ok(v) => Route::ListBatches,
        [v, "batches", b] if version_ok(v) => match (m, b.strip_suffix(":cancel")) {
            ("POST", Some(id)) => Route::CancelBatch(id.to_string()),
            ("GET", None) => Route::GetBatch(b.to_string()),
            ("DELETE", None) => Route::DeleteBatch(b.to_string()),
            _ => return None,
        },
        [v, "files"] if m == "GET" && version_ok(v) => Route::ListFiles,
        [v, "files", f] if version_ok(v) => match (m, f.strip_suffix(":download")) {
            ("GET", Some(id)) => Route::Download(id.to_string()),
            ("GET", None) => Route::GetFile(f.to_string()),
            ("DELETE", None) => Route::DeleteFile(f.to_string()),
            _ => return None,
        },
        _ => return None,
    };
    Some(r)
}

/// The calling project: `x-goog-api-key`, else `?key=`, else the other surfaces' headers.
pub fn project(s: &Surface, headers: &HeaderMap, uri: &Uri) -> Result<String, GoogleError> {
    let key = headers
        .get("x-goog-api-key")
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .or_else(|| query_param(uri, "key"))
        .or_else(|| auth::presented_key(headers));
    auth::project_by_key(&s.app, key).map_err(GoogleError::from)
}

/// The routes of one Gemini upstream, to be mounted at its prefix.
pub fn router(s: Surface) -> Router<Arc<App>> {
    Router::new().route("/{*rest}", any(dispatch)).with_state(s)
}

async fn dispatch(State(s): State<Surface>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let Some(r) = route(req.method(), &path, req.uri()) else {
        return GoogleError::not_found("route", &path).into_response();
    };
    let result = match r {
        Route::Create(model) => batches::create(s, model, req).await,
        Route::ListBatches => batches::list(&s, req.headers(), req.uri()).await,
        Route::GetBatch(id) => batches::get(&s, &id, req.headers(), req.uri()).await,
        Route::CancelBatch(id) => batches::cancel(&s, &id, req.headers(), req.uri()).await,
        Route::DeleteBatch(id) => batches::delete(&s, &id, req.headers(), req.uri()).await,
        Route::UploadStart => files::start(&s, req).await,
        Route::UploadChunk(id) => files::chunk(&s, &id, req).await,
        Route::ListFiles => files::list(&s, req.headers(), req.uri()).await,
        Route::GetFile(id) => files::get(&s, &id, req.headers(), req.uri(), Method::GET).await,
        Route::DeleteFile(id) => {
            files::get(&s, &id, req.headers(), req.uri(), Method::DELETE).await
        }
        Route::Download(id) => files::download(&s, &id, req.headers(), req.uri()).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_parse_in_both_versions_and_download_forms() {
        let u: Uri = "/x?upload_id=abc&key=k".parse().unwrap();
        let plain: Uri = "/x".parse().unwrap();
        let r = |m: Method, p: &str, u: &Uri| route(&m, p, u);
        assert_eq!(
            r(Method::POST, "/v1/models/gemini-2.5-flash:batchGenerateContent", &plain),
            Some(Route::Create("gemini-2.5-flash".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1beta/batches/abc", &plain),
            Some(Route::GetBatch("abc".into()))
        );
        assert_eq!(
            r(Method::POST, "/v1/batches/abc:cancel", &plain),
            Some(Route::CancelBatch("abc".into()))
        );
        assert_eq!(
            r(Method::POST, "/upload/v1beta/files", &u),
            Some(Route::UploadChunk("abc".into()))
        );
        assert_eq!(r(Method::POST, "/upload/v1/files", &plain), Some(Route::UploadStart));
        assert_eq!(
            r(Method::GET, "/download/v1beta/files/batch-1:download", &plain),
            Some(Route::Download("batch-1".into()))
        );
        assert_eq!(
            r(Method::GET, "/v1/files/batch-1:download", &plain),
            Some(Route::Download("batch-1".into()))
        );
        assert_eq!(r(Method::GET, "/v2/batches", &plain), None);
        assert_eq!(query_param(&u, "key"), Some("k"));
    }
}

//! The API docs page at `/docs`: Swagger UI, its files compiled into the
//! binary (the `utoipa-swagger-ui` crate with its `vendored` Swagger UI
//! release from crates.io), so the page works with no network beyond the
//! gateway itself. The page loads the document from `/openapi.json` on the
//! same origin; "Authorize" takes an API key or a JWT and "Try it out" sends
//! the request through the gateway.
//!
//! Served, all `GET`, nothing else under `/docs/`:
//!
//! * `/docs` and `/docs/`: the page ([`PAGE_HTML`]), which refers to its
//!   files by absolute path so both addresses work;
//! * `/docs/<file>` for each of [`ASSETS`]: Swagger UI's stylesheets,
//!   scripts and icons, and `swagger-initializer.js`, the page's only
//!   script of its own, rendered from [`config`] (a file, not inline, so the
//!   Content-Security-Policy allows scripts from `'self'` only).
//!
//! The gateway routes exactly these paths to the ops service and lets them
//! through without a credential (`envoy/gateway-config` `DOCS_PAGE_PATHS`,
//! `deploy/base/istio`).

use std::sync::{Arc, LazyLock};

use axum::extract::Path;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use crate::error::{AppError, RequestId};

/// The page: Swagger UI's own `index.html` with absolute paths under
/// `/docs/`.
pub const PAGE_HTML: &str = include_str!("../assets/docs.html");

/// The files of the page under `/docs/`, every one of them referenced by
/// [`PAGE_HTML`].
pub const ASSETS: [&str; 7] = [
    "swagger-ui.css",
    "index.css",
    "swagger-ui-bundle.js",
    "swagger-ui-standalone-preset.js",
    "swagger-initializer.js",
    "favicon-32x32.png",
    "favicon-16x16.png",
];

/// What Swagger UI needs, all from the page's own origin: its scripts and
/// stylesheets, the document and the try-it-out requests (`connect-src`),
/// its icons (inline SVG `data:` images of its stylesheet). No inline
/// script, no `eval`, nothing from another origin.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// Swagger UI's settings: the document of this origin, authorisation kept
/// across reloads in the browser's local storage (never in the URL), no
/// online validator badge, no configuration taken from the query string,
/// and the base layout (no top bar to load another document).
pub fn config() -> utoipa_swagger_ui::Config<'static> {
    utoipa_swagger_ui::Config::new(["/openapi.json"])
        .use_base_layout()
        .query_config_enabled(false)
        .persist_authorization(true)
        .validator_url("none")
        .display_request_duration(true)
        .deep_linking(true)
}

static CONFIG: LazyLock<Arc<utoipa_swagger_ui::Config<'static>>> =
    LazyLock::new(|| Arc::new(config()));

/// The routes of the page and its files, for any router state.
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/docs", get(page))
        .route("/docs/", get(page))
        .route("/docs/{file}", get(asset))
}

/// One file of the page: its bytes and content type, `None` for anything
/// not in [`ASSETS`].
pub fn asset_file(name: &str) -> Option<(Vec<u8>, String)> {
    if !ASSETS.contains(&name) {
        return None;
    }
    let file = utoipa_swagger_ui::serve(name, CONFIG.clone()).ok()??;
    Some((file.bytes.into_owned(), file.content_type))
}

fn with_headers(content_type: &str, body: Vec<u8>) -> Response {
    let content_type = HeaderValue::from_str(content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONTENT_SECURITY_POLICY),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::REFERRER_POLICY,
                HeaderValue::from_static("no-referrer"),
            ),
        ],
        body,
    )
        .into_response()
}

/// This documentation page.
#[utoipa::path(get, path = "/docs", operation_id = "getDocs", tag = "Operations",
    responses((status = 200, content_type = "text/html", body = String,
        description = "The API docs page (Swagger UI, served with its files from `/docs/`): \
            Authorize with an API key or a JWT, then Try it out through the gateway.")))]
pub async fn page() -> Response {
    with_headers("text/html; charset=utf-8", PAGE_HTML.as_bytes().to_vec())
}

async fn asset(Path(file): Path<String>, rid: RequestId) -> Result<Response, AppError> {
    let (bytes, content_type) =
        asset_file(&file).ok_or_else(|| AppError::NotFound(rid, "No such endpoint".into()))?;
    Ok(with_headers(&content_type, bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_refers_to_exactly_the_served_files_and_nothing_elsewhere() {
        let mut referenced: Vec<&str> = PAGE_HTML
            .split(['"', '\''])
            .filter_map(|s| s.strip_prefix("/docs/"))
            .collect();
        referenced.sort_unstable();
        let mut served = ASSETS.to_vec();
        served.sort_unstable();
        assert_eq!(referenced, served);
        assert!(!PAGE_HTML.contains("http://") && !PAGE_HTML.contains("https://"));
        // No inline script: every <script> element has a src.
        assert_eq!(
            PAGE_HTML.matches("<script").count(),
            PAGE_HTML.matches("<script src=\"/docs/").count()
        );
    }

    #[test]
    fn every_file_is_compiled_in_with_its_content_type() {
        for name in ASSETS {
            let (bytes, content_type) =
                asset_file(name).unwrap_or_else(|| panic!("{name} missing"));
            assert!(bytes.len() > 100, "{name}");
            let expected = match name.rsplit('.').next() {
                Some("css") => "text/css",
                Some("js") => "text/javascript",
                Some("png") => "image/png",
                _ => unreachable!(),
            };
            assert_eq!(content_type, expected, "{name}");
        }
        assert!(asset_file("index.html").is_none());
        assert!(asset_file("oauth2-redirect.html").is_none());
        assert!(asset_file("../Cargo.toml").is_none());
    }

    #[test]
    fn the_initializer_loads_the_same_origin_document_and_keeps_keys_out_of_the_url() {
        let (bytes, _) = asset_file("swagger-initializer.js").unwrap();
        let js = String::from_utf8(bytes).unwrap();
        assert!(js.contains(r#""url": "/openapi.json""#), "{js}");
        assert!(js.contains(r#""persistAuthorization": true"#), "{js}");
        assert!(js.contains(r#""queryConfigEnabled": false"#), "{js}");
        assert!(js.contains(r#""validatorUrl": "none""#), "{js}");
        assert!(js.contains(r#""layout": "BaseLayout""#), "{js}");
        assert!(!js.contains("{{config}}"), "{js}");
        assert!(!js.contains("http://") && !js.contains("https://"), "{js}");
    }
}

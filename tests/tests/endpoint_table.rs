//! The copies of the endpoint table (filters/core/src/endpoint.rs) that
//! cannot be derived from it, compared with it. The auth filter's public
//! paths and the Envoy routes are derived from the table (their own tests
//! are in filter-core and gateway-config); what is left:
//!
//! * the OpenAPI document of the ops service, generated from the handlers'
//!   annotations in crates that do not depend on filter-core;
//! * the docs page's files the auth filter lets through
//!   (gateway-config `DOCS_PAGE_PATHS`) and the files the ops service
//!   serves (`docs_page::ASSETS`);
//! * the route tables of docs/gateway.md and docs/architecture.md.
//!
//! No Envoy and no backend is started: `cargo test -p e2e --test endpoint_table`.

use filter_core::endpoint::{Access, Endpoint};
use serde_json::Value;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn openapi() -> Value {
    serde_json::from_str(ops_service::docs::openapi_json()).expect("the OpenAPI document is JSON")
}

#[test]
fn the_openapi_document_has_every_endpoint_with_its_method_and_access() {
    let doc = openapi();
    let paths = doc["paths"].as_object().expect("paths");
    for e in Endpoint::ALL {
        let (path, method) = (e.template(), e.method().to_ascii_lowercase());
        let op = &paths
            .get(path)
            .unwrap_or_else(|| panic!("{path} is not documented"))[&method];
        assert!(op.is_object(), "{method} {path} is not documented");
        let secured = op["security"].as_array().is_some_and(|s| !s.is_empty());
        assert_eq!(
            secured,
            e.access() != Access::Public,
            "{method} {path}: documented security differs from the table's access"
        );
        if e.access() == Access::Admin {
            assert!(op["responses"]["403"].is_object(), "{method} {path}: 403");
        }
    }
}

/// Every documented path is a route of the table (the ops service's own
/// /health/live and /health/ready are /health/{service} paths), with the
/// table's method only.
#[test]
fn the_openapi_document_has_nothing_outside_the_table() {
    let doc = openapi();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let concrete = path
            .replace("{ticker}", "AAPL")
            .replace("{service}", "data_service");
        let e = Endpoint::from_path(&concrete);
        assert_ne!(
            e,
            Endpoint::Unmatched,
            "{path} is not in the endpoint table"
        );
        for m in METHODS {
            if item[m].is_object() {
                assert_eq!(m, e.method().to_ascii_lowercase(), "{m} {path}");
            }
        }
    }
}

#[test]
fn the_docs_page_paths_the_auth_filter_lets_through_are_the_served_files() {
    let served: Vec<String> = std::iter::once("/docs/".to_owned())
        .chain(
            ops_service::docs_page::ASSETS
                .iter()
                .map(|f| format!("/docs/{f}")),
        )
        .collect();
    assert_eq!(gateway_config::plugins::DOCS_PAGE_PATHS.to_vec(), served);
}

/// The text of the section whose heading starts with `heading`, up to the
/// next heading of the same level.
fn section(file: &str, heading: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{file}: {e}"));
    let start = text
        .find(&format!("\n{heading}"))
        .unwrap_or_else(|| panic!("{file} has no section {heading:?}"));
    let rest = &text[start + 1..];
    let end = rest[1..].find("\n## ").map_or(rest.len(), |i| i + 1);
    rest[..end].to_owned()
}

/// Whether `text` names `template` as a whole path (`/health` is not
/// named by `/health/detailed`).
fn names(text: &str, template: &str) -> bool {
    text.match_indices(template).any(|(i, _)| {
        let next = text[i + template.len()..].chars().next();
        !next.is_some_and(|c| c.is_ascii_alphanumeric() || "/_.{-".contains(c))
    })
}

#[test]
fn the_docs_route_tables_name_every_endpoint() {
    for (file, heading) in [
        ("docs/gateway.md", "## Routes"),
        ("docs/architecture.md", "## Routes"),
    ] {
        let text = section(file, heading);
        let missing: Vec<&str> = Endpoint::ALL
            .iter()
            .map(|e| e.template())
            .filter(|t| !names(&text, t))
            .collect();
        assert!(
            missing.is_empty(),
            "{file} ({heading}) does not name {missing:?}"
        );
    }
}

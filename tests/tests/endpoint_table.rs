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
//! * the Istio VirtualService (deploy/base/istio/gateway.yaml), written by
//!   hand for Istio's route model;
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

/// The routes of the VirtualService `borrow-rate-api`.
fn virtual_service_routes() -> Vec<Value> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/base/istio/gateway.yaml");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    text.split("\n---\n")
        .map(|d| serde_norway::from_str::<Value>(d).expect("YAML"))
        .find(|d| d["kind"] == "VirtualService")
        .expect("a VirtualService in deploy/base/istio/gateway.yaml")["spec"]["http"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// Whether a VirtualService string match holds for `value`. Regexes are
/// RE2 full matches; this reads the one form the file uses, a literal
/// prefix and one segment (`/api/v1/rates/[^/]+`).
fn string_match(m: &Value, value: &str) -> bool {
    if let Some(exact) = m["exact"].as_str() {
        return value == exact;
    }
    if let Some(prefix) = m["prefix"].as_str() {
        return value.starts_with(prefix);
    }
    if let Some(regex) = m["regex"].as_str() {
        let prefix = regex
            .strip_suffix("[^/]+")
            .filter(|p| !p.contains(['[', '(', '*', '+', '?', '.', '^', '$', '\\']))
            .unwrap_or_else(|| panic!("extend string_match for the regex {regex:?}"));
        return value
            .strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'));
    }
    panic!("unknown string match {m}")
}

/// The first route of `routes` a request with only a method and a path
/// (no other header) takes.
fn istio_route<'a>(routes: &'a [Value], method: &str, path: &str) -> Option<&'a Value> {
    routes.iter().find(|r| match r["match"].as_array() {
        None => true,
        Some(matches) => matches.iter().any(|m| {
            m["headers"].is_null()
                && (m["uri"].is_null() || string_match(&m["uri"], path))
                && (m["method"].is_null() || string_match(&m["method"], method))
        }),
    })
}

/// Every endpoint of the table is served in the Istio shape with its
/// method; another method is a 405 naming it (or, on the ops service's
/// routes, the ops service's own 405); a path outside the table is a 404.
#[test]
fn the_istio_virtual_service_routes_every_endpoint_of_the_table() {
    let routes = virtual_service_routes();
    let status = |r: &Value| r["directResponse"]["status"].as_u64();
    for e in Endpoint::ALL {
        let path = e.example_path();
        let r = istio_route(&routes, e.method(), &path)
            .unwrap_or_else(|| panic!("{} {path}: no route", e.method()));
        assert!(
            r["route"].is_array() || status(r) == Some(200),
            "{} {path}: route {} does not serve it",
            e.method(),
            r["name"]
        );
        let other = if e.method() == "GET" { "POST" } else { "GET" };
        let r = istio_route(&routes, other, &path)
            .unwrap_or_else(|| panic!("{other} {path}: no route"));
        let to_ops = r["route"][0]["destination"]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with("ops-service."));
        if !to_ops {
            assert_eq!(status(r), Some(405), "{other} {path}: route {}", r["name"]);
            assert_eq!(
                r["headers"]["response"]["set"]["allow"].as_str(),
                Some(e.method()),
                "{other} {path}"
            );
        }
    }
    for path in ["/", "/api/v1/rates/AAPL/x", "/internal/v1/keys/verify"] {
        let r = istio_route(&routes, "GET", path).unwrap_or_else(|| panic!("{path}"));
        assert_eq!(status(r), Some(404), "{path}: route {}", r["name"]);
    }
}

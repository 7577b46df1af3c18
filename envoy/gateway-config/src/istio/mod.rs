//! The Istio resources that repeat gateway facts, generated from the same
//! values as the Envoy shapes: the Gateway and the VirtualService (the
//! Envoy routes of routes.rs, endpoint by endpoint of the endpoint table,
//! with their backends, rewrites, timeouts and retries, the same CORS
//! policy and HSTS header), the DestinationRule, the local-reply
//! EnvoyFilter (the same `local_reply_config`), the three WasmPlugins (the
//! filters' own config types as `pluginConfig`), the rate-limit
//! EnvoyFilter (the same filter, domain and descriptors) and the bootstrap
//! override with the same `stats_config`. `gateway-config istio` writes
//! them into deploy/base/istio; `gateway-config istio --check` (and this
//! crate's tests) fail when the checked-in files differ from the generated
//! ones.

use std::collections::BTreeMap;
use std::path::Path;

use filter_core::auth::{JwtAlgorithm, JwtConfig};
use filter_core::endpoint::Endpoint;
use filter_core::metrics::MetricsConfig;
use serde::Serialize;

use crate::envoy::{
    DataSource, HeaderMatch, HttpFilter, LocalReplyConfig, PathMatch, RateLimitPolicy, Route,
    StatsConfig, StringMatcher, Typed,
};
use crate::plugins::{self, AuthTarget};
use crate::settings::{default_rate_limit_timeout, Error, UPSTREAMS};
use crate::{gateway, parts, routes};

mod envoy_filters;
mod routing;
mod wasm_plugins;

use envoy_filters::*;
use routing::*;
use wasm_plugins::*;

const NAMESPACE: &str = "borrow-rate";
/// The ingress gateway's pod label (ingress-gateway.yaml).
const GATEWAY_LABEL: &str = "borrow-rate-gateway";
const IMAGE_TAG: &str = env!("CARGO_PKG_VERSION");

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Resource<S> {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    spec: S,
}

#[derive(Serialize)]
struct Metadata {
    name: &'static str,
    namespace: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<PartOf>,
}

impl Metadata {
    fn new(name: &'static str) -> Self {
        Self {
            name,
            namespace: NAMESPACE,
            labels: None,
        }
    }

    fn part_of_gateway(name: &'static str) -> Self {
        Self {
            labels: Some(PartOf {
                part_of: GATEWAY_LABEL,
            }),
            ..Self::new(name)
        }
    }
}

#[derive(Serialize)]
struct PartOf {
    #[serde(rename = "app.kubernetes.io/part-of")]
    part_of: &'static str,
}

/// A generated file: the rendered-by line, the file's own `header`, then
/// its YAML documents separated by `---`.
pub(super) fn generated(header: &str, documents: &[String]) -> String {
    format!(
        "{}{header}{}",
        crate::RENDERED_HEADER,
        documents.join("---\n")
    )
}

/// The generated files of deploy/base/istio: (file name, contents).
pub fn files() -> Result<Vec<(&'static str, String)>, Error> {
    Ok(vec![
        ("gateway.yaml", gateway_file()?),
        (
            "local-reply.yaml",
            generated(LOCAL_REPLY_HEADER, &[crate::to_yaml(&local_reply())?]),
        ),
        ("wasm-plugins.yaml", wasm_plugins()?),
        (
            "ratelimit.yaml",
            generated(RATE_LIMIT_HEADER, &[crate::to_yaml(&rate_limit())?]),
        ),
        ("stats.yaml", stats()?),
    ])
}

/// Writes the generated resources into `dir`, or with `check` fails when a
/// file there differs from what would be written.
pub fn write_or_check(dir: &Path, check: bool) -> Result<(), Error> {
    for (name, text) in files()? {
        let path = dir.join(name);
        if check {
            let current = std::fs::read_to_string(&path).unwrap_or_default();
            if current != text {
                return Err(Error(format!(
                    "{} differs from the generated one: run `cargo run -p gateway-config -- istio`",
                    path.display()
                )));
            }
        } else {
            std::fs::write(&path, text).map_err(|e| Error(format!("{}: {e}", path.display())))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// deploy/base/istio holds exactly what this module generates: the
    /// Istio shape cannot drift from the local and compose ones.
    #[test]
    fn checked_in_istio_resources_are_the_generated_ones() {
        let dir = crate::settings::repo_root().join("deploy/base/istio");
        if let Err(e) = write_or_check(&dir, true) {
            panic!("{e}");
        }
    }

    /// Whether an Istio string match holds for `value` (regexes are RE2
    /// full matches).
    fn string_match(m: &serde_json::Value, value: &str) -> bool {
        if let Some(exact) = m["exact"].as_str() {
            return value == exact;
        }
        if let Some(prefix) = m["prefix"].as_str() {
            return value.starts_with(prefix);
        }
        let regex = m["regex"].as_str().unwrap_or_else(|| panic!("{m}"));
        regex::Regex::new(&format!("^(?:{regex})$")).is_ok_and(|re| re.is_match(value))
    }

    /// The first route a request with only a method and a path (no other
    /// header) takes.
    fn istio_route<'a>(
        routes: &'a [serde_json::Value],
        method: &str,
        path: &str,
    ) -> Option<&'a serde_json::Value> {
        routes.iter().find(|r| match r["match"].as_array() {
            None => true,
            Some(matches) => matches.iter().any(|m| {
                m["headers"].is_null()
                    && (m["uri"].is_null() || string_match(&m["uri"], path))
                    && (m["method"].is_null() || string_match(&m["method"], method))
            }),
        })
    }

    /// The Istio shape serves every endpoint of the table with its method
    /// on the Envoy shape's backend; another method is a 405 naming it (on
    /// the operator endpoints' route, the ops service's own 405); a path
    /// outside the table is a 404.
    #[test]
    fn the_virtual_service_routes_every_endpoint_as_the_envoy_routes_do() {
        let vs = virtual_service().unwrap_or_else(|e| panic!("{e}"));
        let vs = serde_json::to_value(&vs).unwrap_or_default();
        let routes = vs["spec"]["http"].as_array().cloned().unwrap_or_default();
        let status = |r: &serde_json::Value| r["directResponse"]["status"].as_u64();
        let host = |r: &serde_json::Value| {
            r["route"][0]["destination"]["host"]
                .as_str()
                .map(str::to_owned)
        };
        for e in Endpoint::ALL {
            let path = e.example_path();
            let envoy = routes::endpoint_routes(match e {
                Endpoint::HealthDetailed => Endpoint::HealthService,
                _ => e,
            });
            let want = envoy
                .iter()
                .find_map(|r| r.route.as_ref())
                .and_then(|a| destination(a.cluster).ok())
                .map(|d| d.destination.host);
            let r = istio_route(&routes, e.method(), &path)
                .unwrap_or_else(|| panic!("{} {path}: no route", e.method()));
            assert_eq!(host(r), want, "{} {path}: route {}", e.method(), r["name"]);
            if want.is_none() {
                assert_eq!(status(r), Some(200), "{} {path}", e.method());
            }
            let other = if e.method() == "GET" { "POST" } else { "GET" };
            let r = istio_route(&routes, other, &path)
                .unwrap_or_else(|| panic!("{other} {path}: no route"));
            if r["name"] != "ops" {
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
        // The overlays' cors.yaml patch the CORS origins of these routes by
        // index.
        let with_cors: Vec<(usize, &str)> = routes
            .iter()
            .enumerate()
            .filter(|(_, r)| r["corsPolicy"].is_object())
            .map(|(i, r)| (i, r["name"].as_str().unwrap_or_default()))
            .collect();
        assert_eq!(
            with_cors,
            [
                (0, "cors-preflight"),
                (3, "rates"),
                (5, "calculate-locate"),
                (7, "auth-token"),
                (9, "ops")
            ]
        );
    }

    /// The bootstrap override embeds stats_config as JSON text: it reads
    /// back as the rendered shapes' stats_config.
    #[test]
    fn the_bootstrap_override_holds_the_shapes_stats_config() {
        let text = stats().unwrap_or_default();
        let docs: Vec<serde_json::Value> = text
            .split("\n---\n")
            .filter_map(|d| serde_norway::from_str(d).ok())
            .collect();
        let json = docs
            .iter()
            .find(|d| d["kind"] == "ConfigMap")
            .and_then(|d| d["data"]["custom_bootstrap.json"].as_str())
            .unwrap_or_default();
        let boot: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
        let want = serde_json::to_value(parts::stats_config()).unwrap_or_default();
        assert!(want.is_object());
        assert_eq!(boot["stats_config"], want);
    }

    #[test]
    fn the_example_jwk_coordinates_stay_strings() {
        let text = wasm_plugins().unwrap_or_default();
        assert!(text.contains("\"y\": AiLbqlX8sBYaOO2AcHo_3-X24gBUDggaorGnaPmhHug"));
        assert!(!text.contains(" y: "));
    }
}

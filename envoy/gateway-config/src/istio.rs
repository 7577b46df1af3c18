//! The Istio resources that repeat gateway facts, generated from the same
//! values as the Envoy shapes: the local-reply EnvoyFilter (the same
//! `local_reply_config`), the three WasmPlugins (the filters' own config
//! types as `pluginConfig`), the rate-limit EnvoyFilter (the same filter,
//! domain and descriptors) and the bootstrap override with the same
//! `stats_config`. `gateway-config istio` writes them into
//! deploy/base/istio; `gateway-config istio --check` (and this crate's
//! tests) fail when the checked-in files differ from the generated ones.

use std::collections::BTreeMap;
use std::path::Path;

use filter_core::auth::{JwtAlgorithm, JwtConfig};
use filter_core::metrics::MetricsConfig;
use serde::Serialize;

use crate::envoy::{HttpFilter, LocalReplyConfig, RateLimitPolicy, StatsConfig, Typed};
use crate::parts;
use crate::plugins::{self, AuthTarget};
use crate::settings::{default_rate_limit_timeout, Error};

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

// ---------------------------------------------------------------- local replies

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct EnvoyFilterSpec {
    workload_selector: WorkloadSelector,
    config_patches: Vec<ConfigPatch>,
}

#[derive(Serialize)]
struct WorkloadSelector {
    labels: Labels,
}

#[derive(Serialize)]
struct Labels {
    istio: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigPatch {
    apply_to: &'static str,
    #[serde(rename = "match")]
    match_: PatchMatch,
    patch: Patch,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PatchMatch {
    context: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    listener: Option<ListenerMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    route_configuration: Option<RouteConfigurationMatch>,
}

impl PatchMatch {
    /// The gateway's HTTP connection manager, or with `sub_filter` one of
    /// its HTTP filters.
    fn hcm(sub_filter: Option<&'static str>) -> Self {
        Self {
            context: "GATEWAY",
            listener: Some(ListenerMatch {
                filter_chain: FilterChainMatch {
                    filter: FilterMatch {
                        name: HCM,
                        sub_filter: sub_filter.map(|name| SubFilterMatch { name }),
                    },
                },
            }),
            route_configuration: None,
        }
    }

    /// Every virtual host of the gateway's routes.
    fn any_virtual_host() -> Self {
        Self {
            context: "GATEWAY",
            listener: None,
            route_configuration: Some(RouteConfigurationMatch {
                vhost: VirtualHostMatch {
                    route: RouteMatch { action: "ANY" },
                },
            }),
        }
    }
}

const HCM: &str = "envoy.filters.network.http_connection_manager";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListenerMatch {
    filter_chain: FilterChainMatch,
}

#[derive(Serialize)]
struct FilterChainMatch {
    filter: FilterMatch,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FilterMatch {
    name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    sub_filter: Option<SubFilterMatch>,
}

#[derive(Serialize)]
struct SubFilterMatch {
    name: &'static str,
}

#[derive(Serialize)]
struct RouteConfigurationMatch {
    vhost: VirtualHostMatch,
}

#[derive(Serialize)]
struct VirtualHostMatch {
    route: RouteMatch,
}

#[derive(Serialize)]
struct RouteMatch {
    action: &'static str,
}

#[derive(Serialize)]
struct Patch {
    operation: &'static str,
    value: PatchValue,
}

#[derive(Serialize)]
#[serde(untagged)]
enum PatchValue {
    /// Merged into the HTTP connection manager.
    NetworkFilter {
        name: &'static str,
        typed_config: Typed<HcmPatch>,
    },
    /// An HTTP filter inserted into the chain.
    HttpFilter(HttpFilter),
    /// Merged into a virtual host.
    VirtualHost { rate_limits: Vec<RateLimitPolicy> },
}

/// The part of the HTTP connection manager the patch merges in.
#[derive(Serialize)]
struct HcmPatch {
    local_reply_config: LocalReplyConfig,
}

impl crate::envoy::TypeUrl for HcmPatch {
    const TYPE_URL: &'static str =
        <crate::envoy::HttpConnectionManager as crate::envoy::TypeUrl>::TYPE_URL;
}

const LOCAL_REPLY_HEADER: &str = "\
# The SPEC §6 error envelope for every reply the ingress gateway's Envoy
# generates itself (no healthy upstream, upstream timeout or reset,
# overflow, rate limited, body too large, malformed HTTP), as in the local
# and compose shapes: the same local_reply_config
# (envoy/gateway-config/src/parts.rs).
";

/// An EnvoyFilter on the gateway pods.
fn envoy_filter(name: &'static str, config_patches: Vec<ConfigPatch>) -> Resource<EnvoyFilterSpec> {
    Resource {
        api_version: "networking.istio.io/v1alpha3",
        kind: "EnvoyFilter",
        metadata: Metadata::new(name),
        spec: EnvoyFilterSpec {
            workload_selector: WorkloadSelector {
                labels: Labels {
                    istio: GATEWAY_LABEL,
                },
            },
            config_patches,
        },
    }
}

fn local_reply() -> Resource<EnvoyFilterSpec> {
    envoy_filter(
        "borrow-rate-local-reply",
        vec![ConfigPatch {
            apply_to: "NETWORK_FILTER",
            match_: PatchMatch::hcm(None),
            patch: Patch {
                operation: "MERGE",
                value: PatchValue::NetworkFilter {
                    name: HCM,
                    typed_config: Typed::new(HcmPatch {
                        local_reply_config: parts::local_reply_config(),
                    }),
                },
            },
        }],
    )
}

// ---------------------------------------------------------------- rate limits

const RATE_LIMIT_HEADER: &str = "\
# Rate limiting on the ingress gateway (ingress-gateway.yaml), the same two
# layers, domain and descriptors as the compose and local shapes
# (envoy/gateway-config, parts.rs; docs/rate-limiting.md):
#   * a token bucket per gateway pod and client, sized from each key's own
#     limit, kept by the auth WasmPlugin itself (its `local_rate_limit`
#     section, wasm-plugins.yaml): a backstop that holds while the
#     rate-limit service is down;
#   * the global limit from the rate-limit service (Envoy RLS v3, counters in
#     Redis), shared by every gateway pod, inserted before the router, so it
#     runs after the auth WasmPlugin (AUTHN), which sets x-client-id and
#     x-client-rate-limit.
# The filter is parts::rate_limit_filter with the defaults of
# RATE_LIMIT_TIMEOUT_MS (0.1s) and RATE_LIMIT_FAILURE_MODE (allow:
# failure_mode_deny false, an unreachable rate-limit service lets requests
# through), calling the rate-limit Service's gRPC port; the 429 already says
# \"rate limited\" (envelope + Retry-After), so no x-envoy-ratelimited.
";

fn rate_limit() -> Resource<EnvoyFilterSpec> {
    let cluster = format!("outbound|8090||ratelimit-service.{NAMESPACE}.svc.cluster.local");
    envoy_filter(
        "borrow-rate-ratelimit",
        vec![
            ConfigPatch {
                apply_to: "HTTP_FILTER",
                match_: PatchMatch::hcm(Some("envoy.filters.http.router")),
                patch: Patch {
                    operation: "INSERT_BEFORE",
                    value: PatchValue::HttpFilter(parts::rate_limit_filter_to(
                        &cluster,
                        &default_rate_limit_timeout(),
                        false,
                    )),
                },
            },
            ConfigPatch {
                apply_to: "VIRTUAL_HOST",
                match_: PatchMatch::any_virtual_host(),
                patch: Patch {
                    operation: "MERGE",
                    value: PatchValue::VirtualHost {
                        rate_limits: parts::rate_limit_descriptors(),
                    },
                },
            },
        ],
    )
}

// ---------------------------------------------------------------- stats

const STATS_HEADER: &str = "\
# Metrics of the gateway's wasm filters on the ingress gateway.
#
# The filters encode labels in metric names (docs/architecture.md,
# \"Metrics\"); Envoy extracts them with stats_tags, which live in the
# bootstrap: custom_bootstrap.json is the same stats_config as every other
# shape (envoy/gateway-config, parts::stats_config: tags, and the
# microsecond bucket bounds of the two duration histograms). The gateway
# pods (ingress-gateway.yaml) load this ConfigMap through their
# `sidecar.istio.io/bootstrapOverride` annotation and keep the filters'
# metrics in their Prometheus output with `proxyStatsMatcher`
# (`proxy.istio.io/config` annotation).
#
# Prometheus scrapes each gateway pod's own gateway-metrics container,
# which reads its pod's Envoy on localhost (ingress-gateway.yaml). The
# Service below serves only the public /metrics route: the ops service reads
# one gateway pod's Prometheus port through it (ENVOY_ADMIN_URL in
# deploy/base/kubernetes/config.yaml); nothing scrapes it.
";

/// Istio's Envoy Prometheus port on the gateway pods.
const ENVOY_PROMETHEUS_PORT: u16 = 15090;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ConfigMap {
    api_version: &'static str,
    kind: &'static str,
    metadata: Metadata,
    data: BTreeMap<&'static str, String>,
}

/// The part of the bootstrap Istio merges in.
#[derive(Serialize)]
struct BootstrapOverride {
    stats_config: StatsConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServiceSpec {
    #[serde(rename = "type")]
    type_: &'static str,
    selector: Labels,
    ports: Vec<ServicePort>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ServicePort {
    name: &'static str,
    port: u16,
    target_port: u16,
    protocol: &'static str,
}

fn stats() -> Result<String, Error> {
    let bootstrap = serde_json::to_string_pretty(&BootstrapOverride {
        stats_config: parts::stats_config(),
    })
    .map_err(|e| Error(format!("JSON: {e}")))?;
    let config_map = ConfigMap {
        api_version: "v1",
        kind: "ConfigMap",
        metadata: Metadata::part_of_gateway("borrow-rate-gateway-bootstrap"),
        data: BTreeMap::from([("custom_bootstrap.json", format!("{bootstrap}\n"))]),
    };
    let service = Resource {
        api_version: "v1",
        kind: "Service",
        metadata: Metadata::part_of_gateway("borrow-rate-gateway-stats"),
        spec: ServiceSpec {
            type_: "ClusterIP",
            selector: Labels {
                istio: GATEWAY_LABEL,
            },
            ports: vec![ServicePort {
                name: "http-envoy-prom",
                port: ENVOY_PROMETHEUS_PORT,
                target_port: ENVOY_PROMETHEUS_PORT,
                protocol: "TCP",
            }],
        },
    };
    Ok(format!(
        "{}{STATS_HEADER}{}---\n{}",
        crate::RENDERED_HEADER,
        crate::to_yaml(&config_map)?,
        crate::to_yaml(&service)?
    ))
}

// ---------------------------------------------------------------- wasm plugins

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct WasmPluginSpec<C> {
    selector: Selector,
    #[serde(rename = "type")]
    type_: &'static str,
    url: String,
    image_pull_policy: &'static str,
    phase: &'static str,
    priority: u32,
    fail_strategy: &'static str,
    plugin_config: C,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Selector {
    match_labels: Labels,
}

fn wasm_plugin<C>(
    name: &'static str,
    image: &str,
    phase: &'static str,
    fail_strategy: &'static str,
    plugin_config: C,
) -> Resource<WasmPluginSpec<C>> {
    Resource {
        api_version: "extensions.istio.io/v1alpha1",
        kind: "WasmPlugin",
        metadata: Metadata::new(name),
        spec: WasmPluginSpec {
            selector: Selector {
                match_labels: Labels {
                    istio: GATEWAY_LABEL,
                },
            },
            type_: "HTTP",
            url: format!("oci://registry.example.com/borrow-rate/{image}:{IMAGE_TAG}"),
            image_pull_policy: "IfNotPresent",
            phase,
            priority: 10,
            fail_strategy,
            plugin_config,
        },
    }
}

/// An EXAMPLE ES256 public key whose private half was discarded when it was
/// made: no token verifies against it, so forgetting to replace it (the
/// overlays' auth-jwks.yaml, generated by `gatewayctl jwks`) fails
/// closed.
const EXAMPLE_JWKS: &str = r#"{"keys":[{"kid":"hUlrHVPYaRwTX7ftHqTEh9lzPo9PycGBsKdAH2Vt6oI","kty":"EC","crv":"P-256","alg":"ES256","use":"sig","x":"uftdYAm5mfAweZD0cJON2PyoXYifWID15Ox5Dx4QRQ0","y":"AiLbqlX8sBYaOO2AcHo_3-X24gBUDggaorGnaPmhHug"}]}"#;

const WASM_PLUGINS_HEADER: &str = "\
# The gateway's three proxy-wasm filters on our ingress gateway
# (ingress-gateway.yaml), from the OCI images built by `make wasm-images`
# (deploy/wasm/Dockerfile). Same binaries and the same plugin configuration
# as the compose and local shapes: each pluginConfig is the filter's own
# config type (filters/core), serialised by envoy/gateway-config
# (src/istio.rs); tests/tests/deploy.rs deserialises every pluginConfig of
# every rendered overlay with those types.
#
# auth: Istio's name for the auth service's cluster (port 8083 of the
# Service); the public paths include the docs page's files
# (backends/ops-service/src/docs_page.rs ASSETS); the per-pod backstop of
# the global limit is a token bucket per client, sized from each key's own
# limit (keys without one: the default, RATE_LIMIT_PER_MINUTE;
# docs/rate-limiting.md); a revoked key stops working on every gateway pod
# within 30 s (cache.positive_ttl_seconds). JWT: ES256 — the auth service
# signs with a private key only it holds (Secret
# borrow-rate-jwt-signing-key); this plugin verifies with the public keys in
# `jwks`, so no secret is in any WasmPlugin. The overlays replace the keys
# with the operator's (auth-jwks.yaml, generated by `gatewayctl jwks`;
# docs/deploy.md). The key here is an EXAMPLE whose private half was
# discarded when it was made: no token verifies against it, so forgetting
# to replace it fails closed.
#
# Order on a request: auth (AUTHN) -> validation (AUTHZ) -> rate limits
# (ratelimit.yaml) -> router; metrics (STATS) sees every response. Each
# plugin is the only one of its phase; `priority` is set anyway so that a
# plugin added later has to say where it goes.
#
# Selection: `selector` limits each plugin to the pods labelled
# istio: borrow-rate-gateway, in this namespace only (a WasmPlugin outside
# the root namespace never reaches another namespace's workloads).
#
# Fail strategy (what the gateway does when a plugin cannot be fetched or
# its VM fails):
#   auth        FAIL_CLOSE  no request reaches a backend unauthenticated
#   validation  FAIL_CLOSE  the 400 contract and the 8 KiB body bound hold,
#                           or nothing is served
#   metrics     FAIL_OPEN   losing metrics never takes traffic down
#
# Pinning: the overlays set `sha256` (production: required, checked by the
# deploy checks) to the image digest of the tag in `url`; Istio verifies the
# pulled image against it.
";

fn wasm_plugins() -> Result<String, Error> {
    let jwks = serde_json::from_str(EXAMPLE_JWKS).map_err(|e| Error(format!("JWKS: {e}")))?;
    let auth = plugins::auth(AuthTarget {
        cluster: format!("outbound|8083||auth-service.{NAMESPACE}.svc.cluster.local"),
        authority: format!("auth-service.{NAMESPACE}.svc.cluster.local"),
        jwt: JwtConfig {
            algorithm: JwtAlgorithm::ES256,
            secret: None,
            jwks: Some(jwks),
            issuer: "borrow-rate-gateway".to_owned(),
            audience: "borrow-rate-api".to_owned(),
            leeway_seconds: 30,
        },
        // Istio: the metrics plugin (STATS phase) records them.
        metrics: None,
        local_rate_limit_per_minute: Some(60),
    });
    plugins::check_auth(&auth)?;
    let docs = [
        crate::to_yaml(&wasm_plugin(
            "borrow-rate-auth",
            "auth-filter",
            "AUTHN",
            "FAIL_CLOSE",
            auth,
        ))?,
        crate::to_yaml(&wasm_plugin(
            "borrow-rate-validation",
            "validation-filter",
            "AUTHZ",
            "FAIL_CLOSE",
            plugins::validation(),
        ))?,
        crate::to_yaml(&wasm_plugin(
            "borrow-rate-metrics",
            "metrics-filter",
            "STATS",
            "FAIL_OPEN",
            MetricsConfig::default(),
        ))?,
    ];
    // A JWK's `x` and `y` keys quoted: YAML 1.1 readers
    // (sigs.k8s.io/yaml) take a bare `y` for a boolean.
    let docs: String = docs
        .join("---\n")
        .lines()
        .map(|line| {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            match body.split_once(": ") {
                Some((key @ ("x" | "y"), value)) => format!("{indent}\"{key}\": {value}\n"),
                _ => format!("{line}\n"),
            }
        })
        .collect();
    Ok(format!(
        "{}{WASM_PLUGINS_HEADER}{docs}",
        crate::RENDERED_HEADER
    ))
}

/// The generated files of deploy/base/istio: (file name, contents).
pub fn files() -> Result<Vec<(&'static str, String)>, Error> {
    Ok(vec![
        (
            "local-reply.yaml",
            format!(
                "{}{LOCAL_REPLY_HEADER}{}",
                crate::RENDERED_HEADER,
                crate::to_yaml(&local_reply())?
            ),
        ),
        ("wasm-plugins.yaml", wasm_plugins()?),
        (
            "ratelimit.yaml",
            format!(
                "{}{RATE_LIMIT_HEADER}{}",
                crate::RENDERED_HEADER,
                crate::to_yaml(&rate_limit())?
            ),
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

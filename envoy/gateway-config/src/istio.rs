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

// ---------------------------------------------------------------- gateway and routes

const GATEWAY_HEADER: &str = "\
# Public entry point in Kubernetes: our ingress gateway (ingress-gateway.yaml,
# an Envoy injected by Istio) with the gateway's three wasm filters
# (wasm-plugins.yaml) and the global rate limit (ratelimit.yaml).
#
# The VirtualService's routes are the Envoy shapes' (envoy/gateway-config,
# src/routes.rs), endpoint by endpoint of the endpoint table
# (filters/core/src/endpoint.rs; docs/architecture.md \"Routes\"): the same
# match, method, backend, rewrite, timeout and retries; a known path with
# another method is 405 with `Allow`, anything else 404; local-reply.yaml
# gives those replies their request id. The operator endpoints share one
# route to the ops service (which answers another method itself). CORS
# preflights are answered by Envoy's CORS filter from their route's policy
# (a direct-response route would not be), never forwarded
# (unmatchedPreflights IGNORE; an admitted preflight is answered too).
#
# As the Envoy shape's TLS listener does: HTTPS only (plain HTTP is
# redirected, 301), HSTS on every answer of a route (the Envoy shape sets it
# on its route configuration), and CORS for the origins of CORS_ORIGINS
# (borrow-rate-config; cargo xtask check-deploy holds the two equal; the
# overlays' cors.yaml patch the routes http[0, 3, 5, 7, 9]: cors-preflight,
# rates, calculate-locate, auth-token, ops) with the Envoy shape's methods,
# headers and max age. Access logs: telemetry.yaml.
#
# The HTTPS server's certificate: Secret borrow-rate-tls (tls.crt, tls.key)
# in this namespace, created out of band (docs/deploy.md); rotated by
# replacing it, no restart.
#
# The DestinationRule: circuit breakers and outlier detection per backend,
# matching the Envoy clusters of the compose and local shapes.
";

/// The VirtualService's name (the overlays patch it by name).
const VIRTUAL_SERVICE: &str = "borrow-rate-api";
/// The Gateway's name, and the ingress gateway's.
const GATEWAY: &str = "borrow-rate-gateway";
/// The HTTPS server's Secret.
const TLS_SECRET: &str = "borrow-rate-tls";
/// The base's CORS_ORIGINS (deploy/base/kubernetes/config.yaml; the
/// overlays patch both).
const BASE_CORS_ORIGINS: [&str; 1] = ["https://app.example.com"];

#[derive(Serialize)]
struct GatewaySpec {
    selector: Labels,
    servers: Vec<Server>,
}

#[derive(Serialize)]
struct Server {
    port: ServerPort,
    hosts: Vec<&'static str>,
    tls: ServerTls,
}

#[derive(Serialize)]
struct ServerPort {
    number: u16,
    name: &'static str,
    protocol: &'static str,
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
struct ServerTls {
    #[serde(skip_serializing_if = "Option::is_none")]
    https_redirect: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    mode: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    credential_name: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_protocol_version: Option<&'static str>,
}

fn gateway() -> Resource<GatewaySpec> {
    Resource {
        api_version: "networking.istio.io/v1",
        kind: "Gateway",
        metadata: Metadata::new(GATEWAY),
        spec: GatewaySpec {
            selector: Labels {
                istio: GATEWAY_LABEL,
            },
            servers: vec![
                Server {
                    port: ServerPort {
                        number: 80,
                        name: "http",
                        protocol: "HTTP",
                    },
                    hosts: vec!["*"],
                    tls: ServerTls {
                        https_redirect: Some(true),
                        ..ServerTls::default()
                    },
                },
                Server {
                    port: ServerPort {
                        number: 443,
                        name: "https",
                        protocol: "HTTPS",
                    },
                    hosts: vec!["*"],
                    tls: ServerTls {
                        mode: Some("SIMPLE"),
                        credential_name: Some(TLS_SECRET),
                        min_protocol_version: Some("TLSV1_2"),
                        ..ServerTls::default()
                    },
                },
            ],
        },
    }
}

#[derive(Serialize)]
struct VirtualServiceSpec {
    hosts: Vec<&'static str>,
    gateways: Vec<&'static str>,
    http: Vec<HttpRoute>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpRoute {
    name: String,
    #[serde(rename = "match", skip_serializing_if = "Vec::is_empty")]
    match_: Vec<HttpMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rewrite: Option<Rewrite>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    route: Vec<RouteDestination>,
    #[serde(skip_serializing_if = "Option::is_none")]
    direct_response: Option<IstioDirectResponse>,
    #[serde(skip_serializing_if = "Option::is_none")]
    timeout: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retries: Option<Retries>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cors_policy: Option<IstioCorsPolicy>,
    headers: ResponseHeaders,
}

#[derive(Serialize, Default, PartialEq)]
struct HttpMatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<IstioStringMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<IstioStringMatch>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    headers: BTreeMap<&'static str, IstioStringMatch>,
}

#[derive(Serialize, Clone, PartialEq)]
#[serde(rename_all = "lowercase")]
enum IstioStringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Rewrite {
    #[serde(skip_serializing_if = "Option::is_none")]
    uri: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_regex_rewrite: Option<UriRegexRewrite>,
}

#[derive(Serialize)]
struct UriRegexRewrite {
    #[serde(rename = "match")]
    match_: String,
    rewrite: &'static str,
}

#[derive(Serialize)]
struct RouteDestination {
    destination: Destination,
}

#[derive(Serialize)]
struct Destination {
    host: String,
    port: PortNumber,
}

#[derive(Serialize)]
struct PortNumber {
    number: u16,
}

#[derive(Serialize)]
struct IstioDirectResponse {
    status: u16,
    body: DirectBody,
}

#[derive(Serialize)]
struct DirectBody {
    string: String,
}

#[derive(Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
struct Retries {
    attempts: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    per_try_timeout: Option<&'static str>,
    retry_on: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct IstioCorsPolicy {
    allow_origins: Vec<IstioStringMatch>,
    allow_methods: Vec<&'static str>,
    allow_headers: Vec<&'static str>,
    expose_headers: Vec<&'static str>,
    max_age: String,
    allow_credentials: bool,
    unmatched_preflights: &'static str,
}

#[derive(Serialize)]
struct ResponseHeaders {
    response: HeaderSet,
}

#[derive(Serialize)]
struct HeaderSet {
    set: BTreeMap<&'static str, String>,
}

/// The Envoy shape's CORS policy (gateway.rs) for the base's origins.
fn cors_policy() -> IstioCorsPolicy {
    let list = |s: &'static str| s.split(", ").collect();
    IstioCorsPolicy {
        allow_origins: BASE_CORS_ORIGINS
            .iter()
            .map(|o| IstioStringMatch::Exact((*o).to_owned()))
            .collect(),
        allow_methods: list(gateway::CORS_ALLOW_METHODS),
        allow_headers: list(gateway::CORS_ALLOW_HEADERS),
        expose_headers: list(gateway::CORS_EXPOSE_HEADERS),
        max_age: format!("{}s", gateway::CORS_MAX_AGE_SECONDS),
        allow_credentials: false,
        // A preflight from another origin is answered too (without CORS
        // headers), never forwarded: the Envoy shape's
        // forward_not_matching_preflights false.
        unmatched_preflights: "IGNORE",
    }
}

/// The Service of an Envoy cluster (settings::UPSTREAMS, the compose
/// shape's address: the Service name and port).
fn destination(cluster: &str) -> Result<RouteDestination, Error> {
    let (name, port) = UPSTREAMS
        .iter()
        .find(|(c, _, _)| *c == cluster)
        .and_then(|(_, _, compose)| compose.split_once(':'))
        .ok_or_else(|| Error(format!("no upstream for the cluster {cluster}")))?;
    let number = port
        .parse()
        .map_err(|e| Error(format!("{cluster}: port {port}: {e}")))?;
    Ok(RouteDestination {
        destination: Destination {
            host: format!("{name}.{NAMESPACE}.svc.cluster.local"),
            port: PortNumber { number },
        },
    })
}

/// An Envoy route's match in Istio's terms (`None`: it matches any
/// request, as Istio's route without a match does).
fn http_match(m: &crate::envoy::RouteMatch) -> Result<Option<HttpMatch>, Error> {
    let mut out = HttpMatch {
        uri: match &m.path {
            PathMatch::Prefix(p) if p == "/" => None,
            PathMatch::Prefix(p) => Some(IstioStringMatch::Prefix(p.clone())),
            PathMatch::Path(p) => Some(IstioStringMatch::Exact(p.clone())),
            PathMatch::SafeRegex(r) => Some(IstioStringMatch::Regex(r.regex.clone())),
        },
        ..HttpMatch::default()
    };
    for h in &m.headers {
        match (h.name, &h.spec) {
            (":method", HeaderMatch::StringMatch(StringMatcher::Exact(method))) => {
                out.method = Some(IstioStringMatch::Exact(method.clone()));
            }
            (name, HeaderMatch::PresentMatch(true)) => {
                out.headers
                    .insert(name, IstioStringMatch::Regex(".+".to_owned()));
            }
            (name, _) => return Err(Error(format!("no Istio match for the header {name}"))),
        }
    }
    if !m.query_parameters.is_empty() {
        return Err(Error("no Istio match for query parameters".to_owned()));
    }
    Ok((out != HttpMatch::default()).then_some(out))
}

/// An Envoy route in Istio's terms, named `name`.
fn http_route(name: String, r: &Route) -> Result<HttpRoute, Error> {
    let mut set: BTreeMap<&'static str, String> = r
        .response_headers_to_add
        .iter()
        .map(|h| (h.header.key, h.header.value.clone()))
        .collect();
    set.insert(gateway::HSTS.0, gateway::HSTS.1.to_owned());
    let mut out = HttpRoute {
        name,
        match_: http_match(&r.match_)?.into_iter().collect(),
        rewrite: None,
        route: Vec::new(),
        direct_response: None,
        timeout: None,
        retries: None,
        cors_policy: None,
        headers: ResponseHeaders {
            response: HeaderSet { set },
        },
    };
    if let Some(action) = &r.route {
        out.route = vec![destination(action.cluster)?];
        out.rewrite = match (action.prefix_rewrite, &action.regex_rewrite) {
            (None, None) => None,
            (uri, regex) => Some(Rewrite {
                uri,
                uri_regex_rewrite: regex.as_ref().map(|r| UriRegexRewrite {
                    match_: r.pattern.regex.clone(),
                    rewrite: r.substitution,
                }),
            }),
        };
        out.timeout = Some(action.timeout);
        out.retries = action.retry_policy.as_ref().map(|p| Retries {
            attempts: p.num_retries,
            per_try_timeout: p.per_try_timeout,
            retry_on: p.retry_on,
        });
        out.cors_policy = Some(cors_policy());
    }
    if let Some(d) = &r.direct_response {
        let body = match &d.body {
            Some(DataSource::InlineString(s)) => s.clone(),
            _ => return Err(Error(format!("{}: no inline body", out.name))),
        };
        out.direct_response = Some(IstioDirectResponse {
            status: d.status,
            body: DirectBody { string: body },
        });
    }
    Ok(out)
}

/// The Istio route name of an endpoint: its template's literal segments
/// after /api/v1 (`/api/v1/auth/token` → `auth-token`).
fn route_name(endpoint: Endpoint) -> String {
    if endpoint == Endpoint::Unmatched {
        return "not-found".to_owned();
    }
    let template = endpoint.template();
    template
        .strip_prefix("/api/v1")
        .unwrap_or(template)
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .collect::<Vec<_>>()
        .join("-")
}

const OPS_CLUSTER: &str = "ops_service";

/// The VirtualService's routes: the CORS preflight, then the Envoy routes
/// of each endpoint of the table (routes.rs) in the table's order, the
/// operator endpoints' as one route `ops` (their 405s left to the ops
/// service), then the 404.
fn virtual_service_routes() -> Result<Vec<HttpRoute>, Error> {
    let mut http = vec![http_route(
        "cors-preflight".to_owned(),
        &routes::cors_preflight(),
    )?];
    let mut ops: Option<usize> = None;
    for endpoint in Endpoint::ALL.into_iter().chain([Endpoint::Unmatched]) {
        let envoy = routes::endpoint_routes(endpoint);
        let to_ops = envoy
            .iter()
            .any(|r| r.route.as_ref().is_some_and(|a| a.cluster == OPS_CLUSTER));
        let name = route_name(endpoint);
        for r in &envoy {
            if !to_ops {
                // The served route, then the 405 of the same path.
                let name = match &r.direct_response {
                    Some(d) if d.status == 405 => format!("{name}-method-not-allowed"),
                    _ => name.clone(),
                };
                http.push(http_route(name, r)?);
                continue;
            }
            if r.route.is_none() {
                continue;
            }
            // One route for every operator endpoint, matching each path
            // with any method.
            let mut route = http_route("ops".to_owned(), r)?;
            let mut matches = std::mem::take(&mut route.match_);
            for m in &mut matches {
                m.method = None;
            }
            match ops {
                None => {
                    route.match_ = matches;
                    ops = Some(http.len());
                    http.push(route);
                }
                Some(i) => {
                    let first = &mut http[i];
                    if first.timeout != route.timeout || first.retries != route.retries {
                        return Err(Error(format!(
                            "{}: the operator endpoints' routes differ in timeout or retries",
                            endpoint.template()
                        )));
                    }
                    first.match_.extend(matches);
                }
            }
        }
    }
    Ok(http)
}

fn virtual_service() -> Result<Resource<VirtualServiceSpec>, Error> {
    Ok(Resource {
        api_version: "networking.istio.io/v1",
        kind: "VirtualService",
        metadata: Metadata::new(VIRTUAL_SERVICE),
        spec: VirtualServiceSpec {
            hosts: vec!["*"],
            gateways: vec![GATEWAY],
            http: virtual_service_routes()?,
        },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DestinationRuleSpec {
    host: String,
    traffic_policy: TrafficPolicy,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TrafficPolicy {
    connection_pool: ConnectionPool,
    outlier_detection: OutlierDetection,
}

#[derive(Serialize)]
struct ConnectionPool {
    tcp: TcpPool,
    http: HttpPool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TcpPool {
    max_connections: u32,
    connect_timeout: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct HttpPool {
    http1_max_pending_requests: u32,
    http2_max_requests: u32,
    max_retries: u32,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OutlierDetection {
    consecutive_5xx_errors: u32,
    interval: &'static str,
    base_ejection_time: &'static str,
    max_ejection_percent: u32,
}

fn destination_rule() -> Resource<DestinationRuleSpec> {
    Resource {
        api_version: "networking.istio.io/v1",
        kind: "DestinationRule",
        metadata: Metadata::new("backends"),
        spec: DestinationRuleSpec {
            host: format!("*.{NAMESPACE}.svc.cluster.local"),
            traffic_policy: TrafficPolicy {
                connection_pool: ConnectionPool {
                    tcp: TcpPool {
                        max_connections: 512,
                        connect_timeout: "1s",
                    },
                    http: HttpPool {
                        http1_max_pending_requests: 256,
                        http2_max_requests: 512,
                        max_retries: 16,
                    },
                },
                outlier_detection: OutlierDetection {
                    consecutive_5xx_errors: 5,
                    interval: "10s",
                    base_ejection_time: "30s",
                    max_ejection_percent: 50,
                },
            },
        },
    }
}

fn gateway_file() -> Result<String, Error> {
    Ok(format!(
        "{}{GATEWAY_HEADER}{}---\n{}---\n{}",
        crate::RENDERED_HEADER,
        crate::to_yaml(&gateway())?,
        crate::to_yaml(&virtual_service()?)?,
        crate::to_yaml(&destination_rule())?
    ))
}

/// The generated files of deploy/base/istio: (file name, contents).
pub fn files() -> Result<Vec<(&'static str, String)>, Error> {
    Ok(vec![
        ("gateway.yaml", gateway_file()?),
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

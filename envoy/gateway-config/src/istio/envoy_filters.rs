//! The EnvoyFilters and the bootstrap override: local replies, rate limits, stats.

use super::*;

// ---------------------------------------------------------------- local replies

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EnvoyFilterSpec {
    pub(super) workload_selector: WorkloadSelector,
    pub(super) config_patches: Vec<ConfigPatch>,
}

#[derive(Serialize)]
pub(super) struct WorkloadSelector {
    pub(super) labels: Labels,
}

#[derive(Serialize)]
pub(super) struct Labels {
    pub(super) istio: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigPatch {
    pub(super) apply_to: &'static str,
    #[serde(rename = "match")]
    pub(super) match_: PatchMatch,
    pub(super) patch: Patch,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PatchMatch {
    pub(super) context: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) listener: Option<ListenerMatch>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) route_configuration: Option<RouteConfigurationMatch>,
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

pub(super) const HCM: &str = "envoy.filters.network.http_connection_manager";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListenerMatch {
    pub(super) filter_chain: FilterChainMatch,
}

#[derive(Serialize)]
pub(super) struct FilterChainMatch {
    pub(super) filter: FilterMatch,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct FilterMatch {
    pub(super) name: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) sub_filter: Option<SubFilterMatch>,
}

#[derive(Serialize)]
pub(super) struct SubFilterMatch {
    pub(super) name: &'static str,
}

#[derive(Serialize)]
pub(super) struct RouteConfigurationMatch {
    pub(super) vhost: VirtualHostMatch,
}

#[derive(Serialize)]
pub(super) struct VirtualHostMatch {
    pub(super) route: RouteMatch,
}

#[derive(Serialize)]
pub(super) struct RouteMatch {
    pub(super) action: &'static str,
}

#[derive(Serialize)]
pub(super) struct Patch {
    pub(super) operation: &'static str,
    pub(super) value: PatchValue,
}

#[derive(Serialize)]
#[serde(untagged)]
pub(super) enum PatchValue {
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
pub(super) struct HcmPatch {
    pub(super) local_reply_config: LocalReplyConfig,
}

impl crate::envoy::TypeUrl for HcmPatch {
    const TYPE_URL: &'static str =
        <crate::envoy::HttpConnectionManager as crate::envoy::TypeUrl>::TYPE_URL;
}

pub(super) const LOCAL_REPLY_HEADER: &str = "\
# The SPEC §6 error envelope for every reply the ingress gateway's Envoy
# generates itself (no healthy upstream, upstream timeout or reset,
# overflow, rate limited, body too large, malformed HTTP), as in the local
# and compose shapes: the same local_reply_config
# (envoy/gateway-config/src/parts.rs).
";

/// An EnvoyFilter on the gateway pods.
pub(super) fn envoy_filter(
    name: &'static str,
    config_patches: Vec<ConfigPatch>,
) -> Resource<EnvoyFilterSpec> {
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

pub(super) fn local_reply() -> Resource<EnvoyFilterSpec> {
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

pub(super) const RATE_LIMIT_HEADER: &str = "\
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

pub(super) fn rate_limit() -> Resource<EnvoyFilterSpec> {
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

pub(super) const STATS_HEADER: &str = "\
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
pub(super) const ENVOY_PROMETHEUS_PORT: u16 = 15090;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ConfigMap {
    pub(super) api_version: &'static str,
    pub(super) kind: &'static str,
    pub(super) metadata: Metadata,
    pub(super) data: BTreeMap<&'static str, String>,
}

/// The part of the bootstrap Istio merges in.
#[derive(Serialize)]
pub(super) struct BootstrapOverride {
    pub(super) stats_config: StatsConfig,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServiceSpec {
    #[serde(rename = "type")]
    pub(super) type_: &'static str,
    pub(super) selector: Labels,
    pub(super) ports: Vec<ServicePort>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ServicePort {
    pub(super) name: &'static str,
    pub(super) port: u16,
    pub(super) target_port: u16,
    pub(super) protocol: &'static str,
}

pub(super) fn stats() -> Result<String, Error> {
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
    Ok(super::generated(
        STATS_HEADER,
        &[crate::to_yaml(&config_map)?, crate::to_yaml(&service)?],
    ))
}

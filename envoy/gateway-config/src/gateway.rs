//! The gateway's Envoy bootstrap for one [`Settings`]: listeners, the
//! public HTTP connection manager (routes and filters), clusters.

use std::collections::BTreeMap;

use filter_core::auth::INTERNAL_HEADERS;

use crate::envoy::*;
use crate::parts;
use crate::plugins;
use crate::routes::routes;
use crate::settings::{Error, Settings};

/// The whole bootstrap.
pub fn bootstrap(s: &Settings) -> Result<Bootstrap, Error> {
    let mut listeners = vec![Listener {
        name: "public_http",
        address: Address::socket(&s.listen_address, s.listener_port.clone()),
        per_connection_buffer_limit_bytes: Some(32768),
        listener_filters: Vec::new(),
        filter_chains: vec![FilterChain {
            transport_socket: None,
            filters: vec![hcm(s, false, "public_http")?],
        }],
    }];
    if s.tls {
        listeners.push(Listener {
            name: "public_https",
            address: Address::socket(&s.listen_address, s.tls_port.clone()),
            per_connection_buffer_limit_bytes: Some(32768),
            listener_filters: vec![ListenerFilter {
                name: "envoy.filters.listener.tls_inspector",
                typed_config: Typed::new(TlsInspector {}),
            }],
            filter_chains: vec![FilterChain {
                transport_socket: Some(tls_socket(s)),
                filters: vec![hcm(s, true, "public_https")?],
            }],
        });
    }
    if s.stats_listener {
        listeners.push(internal_admin(s));
    }

    let mut clusters: Vec<Cluster> = [
        "data_service",
        "calculation_service",
        "auth_service",
        "ops_service",
    ]
    .into_iter()
    .map(|name| backend_cluster(s, name, false))
    .collect();
    if s.rate_limiting {
        clusters.push(backend_cluster(s, "rate_limit_service", true));
    }
    if let Some(otlp) = &s.otlp {
        // The OTLP/gRPC receiver of the spans: a collector, Jaeger or
        // Tempo. No health checks: a missing receiver costs dropped spans,
        // never requests.
        clusters.push(Cluster {
            name: "otel_collector",
            type_: "STRICT_DNS",
            dns_lookup_family: Some("V4_ONLY"),
            connect_timeout: "1s",
            per_connection_buffer_limit_bytes: None,
            lb_policy: None,
            typed_extension_protocol_options: http2_only(),
            circuit_breakers: None,
            outlier_detection: None,
            health_checks: Vec::new(),
            common_lb_config: None,
            load_assignment: ClusterLoadAssignment::hosts(
                "otel_collector",
                [Endpoint {
                    address: Address::socket(&otlp.address, Port::Number(otlp.port)),
                    health_check_config: None,
                }],
            ),
        });
    }
    if s.stats_listener {
        clusters.push(Cluster {
            name: "envoy_admin",
            type_: "STATIC",
            dns_lookup_family: None,
            connect_timeout: "0.25s",
            per_connection_buffer_limit_bytes: None,
            lb_policy: None,
            typed_extension_protocol_options: BTreeMap::new(),
            circuit_breakers: None,
            outlier_detection: None,
            health_checks: Vec::new(),
            common_lb_config: None,
            load_assignment: ClusterLoadAssignment::hosts(
                "envoy_admin",
                [Endpoint {
                    address: Address::socket("127.0.0.1", s.admin_port.clone()),
                    health_check_config: None,
                }],
            ),
        });
    }

    Ok(Bootstrap {
        node: Node {
            id: format!("gateway-{}", s.shape.name()),
            cluster: "borrow-rate-gateway",
        },
        // Never reachable from outside the host: the public /metrics is
        // served by the ops service, which filters what it reads from here.
        admin: Admin {
            address: Address::socket("127.0.0.1", s.admin_port.clone()),
        },
        stats_config: parts::stats_config(),
        overload_manager: OverloadManager {
            refresh_interval: "0.25s",
            resource_monitors: vec![ResourceMonitor {
                name: "envoy.resource_monitors.global_downstream_max_connections",
                typed_config: Typed::new(DownstreamConnectionsConfig {
                    max_active_downstream_connections: s.max_downstream_connections,
                }),
            }],
        },
        static_resources: StaticResources {
            listeners,
            clusters,
        },
    })
}

fn tls_socket(s: &Settings) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls",
        typed_config: Typed::new(DownstreamTlsContext {
            common_tls_context: CommonTlsContext {
                alpn_protocols: vec!["h2", "http/1.1"],
                tls_params: TlsParams {
                    tls_minimum_protocol_version: "TLSv1_2",
                    tls_maximum_protocol_version: "TLSv1_3",
                    // TLS 1.2: forward-secret AEAD suites only (TLS 1.3
                    // suites are fixed by BoringSSL and all modern).
                    cipher_suites: vec![
                        "ECDHE-ECDSA-AES128-GCM-SHA256",
                        "ECDHE-RSA-AES128-GCM-SHA256",
                        "ECDHE-ECDSA-AES256-GCM-SHA384",
                        "ECDHE-RSA-AES256-GCM-SHA384",
                        "ECDHE-ECDSA-CHACHA20-POLY1305",
                        "ECDHE-RSA-CHACHA20-POLY1305",
                    ],
                    ecdh_curves: vec!["X25519", "P-256"],
                },
                tls_certificates: vec![TlsCertificate {
                    certificate_chain: DataSource::Filename(format!("{}/gateway.crt", s.cert_dir)),
                    private_key: DataSource::Filename(format!("{}/gateway.key", s.cert_dir)),
                }],
            },
        }),
    }
}

fn router(suppress_envoy_headers: Option<bool>) -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.router",
        typed_config: HttpFilterConfig::Router(Typed::new(Router {
            suppress_envoy_headers,
        })),
    }
}

fn get_only(path: PathMatch, query: Vec<QueryParameterMatcher>) -> Route {
    Route {
        name: None,
        match_: RouteMatch {
            path,
            headers: vec![HeaderMatcher::method("GET")],
            query_parameters: query,
        },
        route: Some(RouteAction {
            cluster: "envoy_admin",
            prefix_rewrite: None,
            regex_rewrite: None,
            timeout: "5s",
            retry_policy: None,
        }),
        direct_response: None,
        response_headers_to_add: Vec::new(),
    }
}

/// Compose shape only: the ops service runs in another container and reads
/// Envoy's admin API through this listener, which exposes exactly the three
/// read-only views it needs (Prometheus stats, cluster membership, route
/// configuration); the admin interface itself stays on 127.0.0.1.
fn internal_admin(s: &Settings) -> Listener {
    let routes = vec![
        get_only(PathMatch::Path("/stats/prometheus".into()), Vec::new()),
        get_only(
            PathMatch::Path("/clusters".into()),
            vec![QueryParameterMatcher {
                name: "format",
                string_match: StringMatcher::exact("json"),
            }],
        ),
        // Route configuration only: the full dump would include the auth
        // filter's plugin configuration.
        get_only(
            PathMatch::Path("/config_dump".into()),
            vec![QueryParameterMatcher {
                name: "resource",
                string_match: StringMatcher::regex("(static|dynamic)_route_configs"),
            }],
        ),
        Route {
            name: None,
            match_: RouteMatch {
                path: PathMatch::Prefix("/".into()),
                headers: Vec::new(),
                query_parameters: Vec::new(),
            },
            route: None,
            direct_response: Some(DirectResponse {
                status: 404,
                body: None,
            }),
            response_headers_to_add: Vec::new(),
        },
    ];
    Listener {
        name: "internal_admin",
        address: Address::socket(&s.listen_address, s.stats_port.clone()),
        per_connection_buffer_limit_bytes: None,
        listener_filters: Vec::new(),
        filter_chains: vec![FilterChain {
            transport_socket: None,
            filters: vec![NetworkFilter {
                name: "envoy.filters.network.http_connection_manager",
                typed_config: Typed::new(HttpConnectionManager {
                    stat_prefix: "internal_admin",
                    route_config: RouteConfiguration {
                        name: "internal_admin",
                        validate_clusters: None,
                        response_headers_to_add: Vec::new(),
                        virtual_hosts: vec![VirtualHost {
                            name: "internal_admin",
                            domains: vec!["*"],
                            rate_limits: Vec::new(),
                            typed_per_filter_config: BTreeMap::new(),
                            routes,
                        }],
                    },
                    http_filters: vec![router(None)],
                    ..Default::default()
                }),
            }],
        }],
    }
}

/// The public HTTP connection manager, shared by the plain (:8000) and the
/// TLS (:8443) listener so both serve exactly the same routes and filters;
/// `tls` adds HSTS.
fn hcm(s: &Settings, tls: bool, stat_prefix: &'static str) -> Result<NetworkFilter, Error> {
    Ok(NetworkFilter {
        name: "envoy.filters.network.http_connection_manager",
        typed_config: Typed::new(HttpConnectionManager {
            stat_prefix,
            codec_type: Some("AUTO"),
            server_name: Some("borrow-rate-gateway"),
            server_header_transformation: Some("OVERWRITE"),
            // Edge proxy: the peer address is the client; no client-supplied
            // X-Forwarded-For hop is trusted, and a client-supplied
            // x-request-id is replaced by Envoy's own.
            use_remote_address: Some(true),
            xff_num_trusted_hops: Some(0),
            generate_request_id: Some(true),
            preserve_external_request_id: Some(false),
            always_set_request_id_in_response: Some(true),
            // Path hygiene before routing: RFC 3986 normalisation, `//`
            // merged, and an escaped slash (%2F, %5C) rejected with 400
            // instead of being routed one way and interpreted another way
            // upstream.
            normalize_path: Some(true),
            merge_slashes: Some(true),
            path_with_escaped_slashes_action: Some("REJECT_REQUEST"),
            // Header limits: 32 KiB in total, 100 headers, no underscores
            // (an `x_client_id` must not slip past a filter that strips
            // `x-client-id`).
            max_request_headers_kb: Some(32),
            common_http_protocol_options: Some(CommonHttpProtocolOptions {
                headers_with_underscores_action: Some("REJECT_REQUEST"),
                max_headers_count: Some(100),
                idle_timeout: Some("60s"),
                max_connection_duration: Some("900s"),
            }),
            http2_protocol_options: Some(Http2ProtocolOptions {
                max_concurrent_streams: 100,
                initial_stream_window_size: 65536,
                initial_connection_window_size: 1048576,
            }),
            // Slowloris and stuck-request protection.
            request_headers_timeout: Some("10s"),
            request_timeout: Some("30s"),
            stream_idle_timeout: Some("30s"),
            drain_timeout: Some("5s"),
            delayed_close_timeout: Some("1s"),
            access_log: parts::access_log(),
            tracing: s.otlp.as_ref().map(|_| tracing(s)),
            local_reply_config: Some(parts::local_reply_config()),
            route_config: RouteConfiguration {
                name: "public_routes",
                validate_clusters: Some(true),
                response_headers_to_add: if tls {
                    vec![HeaderValueOption::overwrite(HSTS.0, HSTS.1)]
                } else {
                    Vec::new()
                },
                virtual_hosts: vec![VirtualHost {
                    name: "gateway",
                    domains: vec!["*"],
                    rate_limits: if s.rate_limiting {
                        parts::rate_limit_descriptors()
                    } else {
                        Vec::new()
                    },
                    typed_per_filter_config: cors_policy(s),
                    routes: routes(s),
                }],
            },
            http_filters: http_filters(s)?,
        }),
    })
}

/// Traces (OTEL_EXPORTER_OTLP_ENDPOINT set): every request is sampled; a
/// W3C `traceparent` is created when the client sent none (a valid one is
/// continued) and passed to every backend, to the auth service's key checks
/// and to the rate-limit service's gRPC calls; the spans go over OTLP/gRPC
/// to the `otel_collector` cluster.
fn tracing(s: &Settings) -> Tracing {
    Tracing {
        random_sampling: Percent { value: 100.0 },
        spawn_upstream_span: true,
        provider: TracingProvider {
            name: "envoy.tracers.opentelemetry",
            typed_config: Typed::new(OpenTelemetryConfig {
                grpc_service: GrpcService {
                    envoy_grpc: EnvoyGrpc {
                        cluster_name: "otel_collector".into(),
                    },
                    timeout: Some("1s".into()),
                },
                service_name: s.otel_service_name.clone(),
            }),
        },
    }
}

/// HSTS on every answer of the TLS listener (and of every Istio route).
pub(crate) const HSTS: (&str, &str) = (
    "strict-transport-security",
    "max-age=31536000; includeSubDomains",
);

/// The CORS policy of every routed route (here and in the Istio
/// VirtualService, istio.rs).
pub(crate) const CORS_ALLOW_METHODS: &str = "GET, POST, OPTIONS";
pub(crate) const CORS_ALLOW_HEADERS: &str = "authorization, content-type, x-api-key, x-request-id";
pub(crate) const CORS_EXPOSE_HEADERS: &str =
    "x-request-id, retry-after, x-ratelimit-limit, x-ratelimit-remaining, x-ratelimit-reset";
pub(crate) const CORS_MAX_AGE_SECONDS: &str = "600";

fn cors_policy(s: &Settings) -> BTreeMap<&'static str, Typed<CorsPolicy>> {
    let mut map = BTreeMap::new();
    if s.cors_origins.is_empty() {
        return map;
    }
    map.insert(
        "envoy.filters.http.cors",
        Typed::new(CorsPolicy {
            allow_origin_string_match: s
                .cors_origins
                .iter()
                .map(|o| {
                    if o == "*" {
                        StringMatcher::regex(".*")
                    } else {
                        StringMatcher::exact(o)
                    }
                })
                .collect(),
            allow_methods: CORS_ALLOW_METHODS,
            allow_headers: CORS_ALLOW_HEADERS,
            expose_headers: CORS_EXPOSE_HEADERS,
            max_age: CORS_MAX_AGE_SECONDS,
            allow_credentials: false,
            // A preflight from another origin is answered here too (without
            // CORS headers, so the browser refuses), never forwarded.
            forward_not_matching_preflights: false,
        }),
    );
    map
}

/// One of the gateway's proxy-wasm filters (Rust, wasm32-wasip1, V8). A
/// filter that cannot run must not let requests through unchecked: the
/// request whose callback trapped fails closed (503 envelope), and the VM
/// is reloaded (with backoff) for the requests after it.
fn wasm_filter(s: &Settings, filter: &'static str, configuration: String) -> HttpFilter {
    HttpFilter {
        name: filter,
        typed_config: HttpFilterConfig::Wasm(Typed::new(Wasm {
            config: PluginConfig {
                name: filter,
                root_id: filter,
                vm_config: VmConfig {
                    vm_id: filter,
                    runtime: "envoy.wasm.runtime.v8",
                    code: AsyncDataSource {
                        local: DataSource::Filename(format!("{}/{filter}.wasm", s.wasm_dir)),
                    },
                },
                configuration: Typed::new(StringValue {
                    value: configuration,
                }),
                failure_policy: "FAIL_RELOAD",
            },
        })),
    }
}

fn header_mutation(ops: Vec<HeaderMutationOp>) -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.header_mutation",
        typed_config: HttpFilterConfig::HeaderMutation(Typed::new(HeaderMutation {
            mutations: Mutations {
                request_mutations: ops,
            },
        })),
    }
}

fn http_filters(s: &Settings) -> Result<Vec<HttpFilter>, Error> {
    let mut filters = Vec::new();
    // 1. Request metrics (SPEC §8). With authentication on, the auth filter
    //    (3.) records them itself (the `metrics` section of its
    //    configuration): one wasm filter fewer per request. Either way the
    //    recording happens when the request is logged, so it covers every
    //    request and every local reply, whichever filter answered.
    if s.wasm && !s.authentication {
        let config = plugins::to_json(&plugins::metrics(s))?;
        filters.push(wasm_filter(s, "metrics_filter", config));
    }
    // 2. CORS before authentication: a preflight carries no credentials,
    //    and 401/429 answers still get the CORS headers a browser needs.
    if !s.cors_origins.is_empty() {
        filters.push(HttpFilter {
            name: "envoy.filters.http.cors",
            typed_config: HttpFilterConfig::Cors(Typed::new(Cors {})),
        });
    }
    // 3a. Tracing on: the request's `traceparent` names Envoy's own span
    //     (Envoy injects it only upstream, after the filters), so the auth
    //     filter's key checks join the request's trace and the filters' log
    //     lines carry its trace id. The router replaces it with its
    //     upstream span on the way to the backend.
    if s.wasm && s.otlp.is_some() {
        filters.push(header_mutation(vec![HeaderMutationOp::Append(
            HeaderValueOption::overwrite("traceparent", "00-%TRACE_ID%-%SPAN_ID%-01"),
        )]));
    }
    if s.authentication && s.wasm {
        // 3. Authentication: API key or JWT; strips client-supplied
        //    internal headers and sets x-client-id and friends; records the
        //    request metrics (1.).
        let config = plugins::gateway_auth(s);
        plugins::check_auth(&config)?;
        filters.push(wasm_filter(s, "auth_filter", plugins::to_json(&config)?));
    } else {
        // 3. Authentication disabled: still strip client-supplied internal
        //    headers, which only the gateway may set.
        filters.push(header_mutation(
            INTERNAL_HEADERS
                .into_iter()
                .map(HeaderMutationOp::Remove)
                .collect(),
        ));
    }
    // 4. The global rate-limit service (the per-client local bucket is in
    //    the auth filter).
    if s.rate_limiting {
        filters.push(parts::rate_limit_filter(
            &s.rate_limit_timeout,
            s.rate_limit_failure_mode_deny,
        ));
    }
    // 5. Request validation (SPEC §4) before anything reaches a backend.
    if s.wasm {
        let config = plugins::to_json(&plugins::validation())?;
        filters.push(wasm_filter(s, "validation_filter", config));
        // The validation filter lets the headers go on and holds only the
        // body (a wasm filter that pauses headers never sees the body); the
        // buffer filter keeps the request from reaching a backend until the
        // whole body has been validated.
        filters.push(HttpFilter {
            name: "envoy.filters.http.buffer",
            typed_config: HttpFilterConfig::Buffer(Typed::new(Buffer {
                max_request_bytes: 65536,
            })),
        });
    }
    filters.push(router(Some(true)));
    Ok(filters)
}

fn http2_only() -> BTreeMap<&'static str, Typed<HttpProtocolOptions>> {
    BTreeMap::from([(
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
        Typed::new(HttpProtocolOptions {
            common_http_protocol_options: None,
            explicit_http_config: ExplicitHttpConfig::Http2ProtocolOptions(Empty {}),
        }),
    )])
}

/// One backend cluster; `http2` for the gRPC rate-limit service.
fn backend_cluster(s: &Settings, name: &'static str, http2: bool) -> Cluster {
    let options = if http2 {
        http2_only()
    } else {
        BTreeMap::from([(
            "envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            Typed::new(HttpProtocolOptions {
                common_http_protocol_options: Some(CommonHttpProtocolOptions {
                    idle_timeout: Some("30s"),
                    ..Default::default()
                }),
                explicit_http_config: ExplicitHttpConfig::HttpProtocolOptions(Empty {}),
            }),
        )])
    };
    let health_port = (name == "rate_limit_service").then_some(s.rate_limit_health_port);
    Cluster {
        name,
        type_: s.cluster_type,
        dns_lookup_family: Some("V4_ONLY"),
        connect_timeout: "0.5s",
        per_connection_buffer_limit_bytes: Some(32768),
        lb_policy: Some("LEAST_REQUEST"),
        typed_extension_protocol_options: options,
        // Fail fast instead of queueing without bound; retries may use at
        // most 20 % of the active requests (at least 3 concurrent retries).
        circuit_breakers: Some(CircuitBreakers {
            thresholds: vec![Thresholds {
                priority: "DEFAULT",
                max_connections: s.cb_max_connections,
                max_pending_requests: s.cb_max_pending_requests,
                max_requests: s.cb_max_requests,
                max_retries: s.cb_max_retries,
                retry_budget: RetryBudget {
                    budget_percent: Percent { value: 20.0 },
                    min_retry_concurrency: 3,
                },
                track_remaining: true,
            }],
        }),
        // Passive ejection of a host that keeps failing.
        outlier_detection: Some(OutlierDetection {
            consecutive_5xx: 5,
            consecutive_gateway_failure: 3,
            consecutive_local_origin_failure: 3,
            split_external_local_origin_errors: true,
            interval: "5s",
            base_ejection_time: "15s",
            max_ejection_time: "120s",
            max_ejection_percent: 50,
        }),
        // Active health checks on GET /health (the rate-limit service
        // answers it on its HTTP port, given per endpoint as
        // health_check_config). The timeout is 3 s, not less: Envoy starts
        // the first round of checks before it compiles the wasm filters on
        // its main thread (about 1.3 s for the three here), and a check
        // whose answer waits behind that compile times out, leaving every
        // backend unhealthy for the first interval after each Envoy start.
        health_checks: vec![HealthCheck {
            timeout: "3s",
            interval: s.hc_interval.clone(),
            interval_jitter: "0.1s",
            no_traffic_interval: s.hc_interval.clone(),
            unhealthy_interval: s.hc_interval.clone(),
            unhealthy_threshold: 2,
            healthy_threshold: 1,
            http_health_check: HttpHealthCheck {
                path: "/health",
                codec_client_type: "HTTP1",
            },
        }],
        common_lb_config: Some(CommonLbConfig {
            healthy_panic_threshold: Percent { value: 0.0 },
        }),
        load_assignment: ClusterLoadAssignment::hosts(
            name,
            s.hosts(name).iter().map(|h| Endpoint {
                address: Address::socket(&h.address, Port::Number(h.port)),
                health_check_config: health_port.map(|port_value| HealthCheckConfig { port_value }),
            }),
        ),
    }
}

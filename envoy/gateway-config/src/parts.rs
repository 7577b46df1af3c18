//! Pieces of the configuration that more than one place uses: the local
//! reply mapping (every shape and the Istio EnvoyFilter), the access log,
//! the stats tags and histogram buckets, the rate-limit filter and its
//! descriptors.

use filter_core::endpoint::Endpoint;

use crate::envoy::*;

// ---------------------------------------------------------------- stats

/// Bootstrap `stats_config`.
///
/// The metrics filter defines its metrics with labels encoded in the name,
/// e.g. `http_requests_total.endpoint=/api/v1/rates/{ticker};.method=GET;.status_code=200;`.
/// Each tag regex removes its first group from the name and keeps the
/// second as the label value, so /stats/prometheus shows
/// `http_requests_total{endpoint="/api/v1/rates/{ticker}",method="GET",status_code="200"}`.
///
/// The two duration histograms are recorded in MICROSECONDS (wasm
/// histograms take integers): the bucket bounds are 100 µs ... 10 s in µs
/// (the sub-millisecond ones hold answers the gateway gives itself). The
/// ops service's public /metrics divides `le` and `_sum` of every
/// `*_seconds` histogram by 10^6, so Prometheus sees seconds.
pub fn stats_config() -> StatsConfig {
    let tag = |name: &'static str| StatsTag {
        tag_name: name,
        regex: format!(r"(\.{name}=(.*?);)"),
    };
    // Wasm-defined stats are named `wasmcustom.<name>` inside Envoy (the
    // prefix is dropped on export); the regex must match the whole name.
    let histogram = |name: &str, buckets: &[u64]| HistogramBucketSettings {
        match_: StringMatcher::regex(format!(r"(wasmcustom\.)?{name}(\..*)?")),
        buckets: buckets.to_vec(),
    };
    StatsConfig {
        stats_tags: ["endpoint", "method", "status_code", "service", "status"]
            .into_iter()
            .map(tag)
            .collect(),
        histogram_bucket_settings: vec![
            histogram(
                "http_request_duration_seconds",
                &[
                    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000,
                    1000000, 2500000, 5000000, 10000000,
                ],
            ),
            histogram(
                "backend_request_duration_seconds",
                &[
                    500, 1000, 2500, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000,
                    2500000, 5000000, 10000000,
                ],
            ),
        ],
    }
}

// ---------------------------------------------------------------- access log

/// The HTTP connection manager's `access_log`: one JSON object per request
/// on stdout. `client_id` is the identity the auth filter set
/// (x-client-id); `route` is the route name, i.e. the endpoint template;
/// `path` is the path as the client sent it; `trace_id` is the W3C trace id
/// of the request when tracing is on (OTEL_EXPORTER_OTLP_ENDPOINT), the one
/// the backends' log lines and spans carry. No credential header is logged.
pub fn access_log() -> Vec<AccessLog> {
    vec![AccessLog {
        name: "envoy.access_loggers.stdout",
        typed_config: Typed::new(StdoutAccessLog {
            log_format: SubstitutionFormat {
                json_format: Ordered(vec![
                    ("time", "%START_TIME%"),
                    ("msg", "Access"),
                    ("request_id", "%REQ(X-REQUEST-ID)%"),
                    ("trace_id", "%TRACE_ID%"),
                    ("client_id", "%REQ(X-CLIENT-ID)%"),
                    ("method", "%REQ(:METHOD)%"),
                    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
                    ("route", "%ROUTE_NAME%"),
                    ("status", "%RESPONSE_CODE%"),
                    ("details", "%RESPONSE_CODE_DETAILS%"),
                    ("flags", "%RESPONSE_FLAGS%"),
                    ("duration_ms", "%DURATION%"),
                    ("upstream_cluster", "%UPSTREAM_CLUSTER%"),
                    ("upstream_host", "%UPSTREAM_HOST%"),
                    ("upstream_duration_ms", "%RESPONSE_DURATION%"),
                    ("bytes_received", "%BYTES_RECEIVED%"),
                    ("bytes_sent", "%BYTES_SENT%"),
                    ("user_agent", "%REQ(USER-AGENT)%"),
                ]),
                json_format_options: JsonFormatOptions {
                    sort_properties: false,
                },
            },
        }),
    }]
}

// ---------------------------------------------------------------- local replies

/// Status, code and message of each reply Envoy may generate itself
/// (SPEC §6 codes), with the runtime key suffix of its mapper.
const LOCAL_REPLIES: [(u32, &str, &str); 12] = [
    (400, "VALIDATION_ERROR", "Malformed request"),
    (401, "UNAUTHORIZED", "Missing or invalid credentials"),
    (403, "FORBIDDEN", "Forbidden"),
    (404, "NOT_FOUND", "No such endpoint"),
    (
        405,
        "METHOD_NOT_ALLOWED",
        "Method not allowed on this endpoint",
    ),
    (413, "PAYLOAD_TOO_LARGE", "Request body too large"),
    (
        415,
        "UNSUPPORTED_MEDIA_TYPE",
        "Content-Type must be application/json",
    ),
    (429, "RATE_LIMITED", "Rate limit exceeded"),
    (500, "INTERNAL_ERROR", "Internal error"),
    (502, "BACKEND_ERROR", "Backend service error"),
    (503, "SERVICE_UNAVAILABLE", "Service unavailable"),
    (504, "BACKEND_TIMEOUT", "Backend timed out"),
];

/// `x-request-id` of a reply to a request Envoy rejected before it assigned
/// one.
const LOCAL_REQUEST_ID: &str = "local-%CONNECTION_ID%-%START_TIME(%s%6f)%";

fn status(op: &'static str, value: u32, runtime_key: &str) -> AccessLogFilter {
    AccessLogFilter::StatusCodeFilter {
        comparison: Comparison {
            op,
            value: RuntimeUInt32 {
                default_value: value,
                runtime_key: format!("local_reply.{runtime_key}"),
            },
        },
    }
}

/// Only Envoy-generated replies carry response code details; the wasm
/// filters send their own, already complete envelopes with empty details.
fn envoy_generated() -> AccessLogFilter {
    AccessLogFilter::ExtensionFilter {
        name: "envoy.access_loggers.extension_filters.cel",
        typed_config: Typed::new(ExpressionFilter {
            expression: "response.code_details != ''",
        }),
    }
}

fn envelope(code: &'static str, message: &'static str, request_id: &'static str) -> BodyFormat {
    BodyFormat {
        json_format: ErrorEnvelope {
            status: "error",
            error: ErrorBody {
                code,
                message,
                request_id,
            },
        },
        content_type: "application/json",
    }
}

/// The HTTP connection manager's `local_reply_config`.
///
/// Turns every reply Envoy generates itself (no route, a direct_response
/// route, no healthy upstream, upstream connect failure / reset / timeout,
/// circuit-breaker overflow, rate limited, body too large, malformed HTTP)
/// into the SPEC §6 envelope with `request_id` = the request's x-request-id
/// and Content-Type application/json. The HTTP status is kept. Statuses
/// without a code of their own fall back by class (the last two mappers).
pub fn local_reply_config() -> LocalReplyConfig {
    let mut mappers = Vec::new();
    // Requests Envoy rejects before it assigns a request id (headers with
    // underscores, escaped slashes, oversized headers, malformed HTTP): give
    // the reply an id of its own, the same in the header and in the body.
    mappers.push(ResponseMapper {
        filter: AccessLogFilter::AndFilter {
            filters: vec![
                AccessLogFilter::HeaderFilter {
                    header: HeaderMatcher::present("x-request-id", false),
                },
                status("GE", 400, "no_request_id_min"),
                status("LE", 499, "no_request_id_max"),
                envoy_generated(),
            ],
        },
        headers_to_add: vec![HeaderValueOption::overwrite(
            "x-request-id",
            LOCAL_REQUEST_ID,
        )],
        body_format_override: envelope("VALIDATION_ERROR", "Malformed request", LOCAL_REQUEST_ID),
    });
    let key = |code: &str, status: u32| format!("{}_{status}", code.to_ascii_lowercase());
    for (code_status, code, message) in LOCAL_REPLIES {
        mappers.push(ResponseMapper {
            filter: AccessLogFilter::AndFilter {
                filters: vec![
                    status("EQ", code_status, &key(code, code_status)),
                    envoy_generated(),
                ],
            },
            // Envoy's own 429 (rate-limit service over limit or
            // unreachable with failure_mode_deny) gets the Retry-After the
            // service would have sent.
            headers_to_add: if code_status == 429 {
                vec![HeaderValueOption::add_if_absent("retry-after", "60")]
            } else {
                Vec::new()
            },
            body_format_override: envelope(code, message, "%REQ(X-REQUEST-ID)%"),
        });
    }
    for (class, code, message, runtime_key) in [
        (
            500,
            "INTERNAL_ERROR",
            "Internal error",
            "internal_error_500",
        ),
        (
            400,
            "VALIDATION_ERROR",
            "Request rejected by the gateway",
            "validation_error_400",
        ),
    ] {
        mappers.push(ResponseMapper {
            filter: AccessLogFilter::AndFilter {
                filters: vec![status("GE", class, runtime_key), envoy_generated()],
            },
            headers_to_add: Vec::new(),
            body_format_override: envelope(code, message, "%REQ(X-REQUEST-ID)%"),
        });
    }
    LocalReplyConfig { mappers }
}

// ---------------------------------------------------------------- rate limiting

/// Envoy's rate-limit filter (SPEC §7), placed AFTER authentication (which
/// strips client-supplied x-client-id / x-client-rate-limit, sets them for
/// an authenticated caller and applies the per-client local bucket) and
/// BEFORE request validation and the router. Documented in
/// docs/rate-limiting.md.
///
/// `timeout`: longest wait for a decision (RATE_LIMIT_TIMEOUT_MS, default
/// 100 ms); past it the failure mode applies. `failure_mode_deny` false: an
/// unreachable rate-limit service lets requests through (the auth filter's
/// per-client bucket still caps each client per instance); with
/// RATE_LIMIT_FAILURE_MODE=deny an unreachable service means 429
/// (RATE_LIMITED with Retry-After, from the local-reply mapping), not
/// Envoy's default 500. The service answers with X-RateLimit-* and the IETF
/// RateLimit fields itself, so no x-ratelimit header option is enabled
/// here, and the 429 already says "rate limited" (no
/// x-envoy-ratelimited).
pub fn rate_limit_filter(timeout: &str, failure_mode_deny: bool) -> HttpFilter {
    rate_limit_filter_to("rate_limit_service", timeout, failure_mode_deny)
}

/// [`rate_limit_filter`] calling the rate-limit service through
/// `cluster_name` (Istio names the cluster after the Service:
/// `outbound|8090||ratelimit-service.<namespace>.svc.cluster.local`).
pub fn rate_limit_filter_to(
    cluster_name: &str,
    timeout: &str,
    failure_mode_deny: bool,
) -> HttpFilter {
    HttpFilter {
        name: "envoy.filters.http.ratelimit",
        typed_config: HttpFilterConfig::RateLimit(Typed::new(RateLimit {
            domain: "borrow_rate_gateway",
            stage: 0,
            request_type: "external",
            timeout: timeout.to_owned(),
            failure_mode_deny,
            status_on_error: HttpStatus {
                code: "TooManyRequests",
            },
            stat_prefix: "global_rate_limit",
            disable_x_envoy_ratelimited_header: true,
            rate_limit_service: RateLimitServiceConfig {
                transport_api_version: "V3",
                grpc_service: GrpcService {
                    envoy_grpc: EnvoyGrpc {
                        cluster_name: cluster_name.to_owned(),
                    },
                    timeout: Some(timeout.to_owned()),
                },
            },
        })),
    }
}

fn client_id() -> RateLimitAction {
    RateLimitAction::RequestHeaders {
        header_name: "x-client-id",
        descriptor_key: "client_id",
        skip_if_absent: None,
    }
}

/// The descriptors sent to the rate-limit service (domain
/// borrow_rate_gateway), placed on the virtual host (direct responses such
/// as /health are never rate limited):
///
/// * authenticated: `[client_id, client_limit]` (client_limit only when the
///   key has its own limit);
/// * per route: `[route=<rates|calculate-locate|auth-token>, client_id]`,
///   limited only where the limits file has a rule for the route;
/// * per tier: `[tier=<x-client-tier>, client_id]` (keys with a
///   `tier:<name>` scope);
/// * unauthenticated: `[unauthenticated=true, remote_address]` (with
///   use_remote_address, the peer address).
pub fn rate_limit_descriptors() -> Vec<RateLimitPolicy> {
    let mut policies = vec![RateLimitPolicy {
        stage: 0,
        actions: vec![
            client_id(),
            RateLimitAction::RequestHeaders {
                header_name: "x-client-rate-limit",
                descriptor_key: "client_limit",
                skip_if_absent: Some(true),
            },
        ],
    }];
    // The route names are the limits file's; the prefixes the endpoint
    // table's.
    for (route, endpoint) in [
        ("rates", Endpoint::Rates),
        ("calculate-locate", Endpoint::CalculateLocate),
        ("auth-token", Endpoint::AuthToken),
    ] {
        policies.push(RateLimitPolicy {
            stage: 0,
            actions: vec![
                RateLimitAction::HeaderValueMatch {
                    descriptor_key: "route",
                    descriptor_value: route,
                    expect_match: None,
                    headers: vec![HeaderMatcher::string(
                        ":path",
                        StringMatcher::Prefix(endpoint.prefix().to_owned()),
                    )],
                },
                client_id(),
            ],
        });
    }
    policies.push(RateLimitPolicy {
        stage: 0,
        actions: vec![
            RateLimitAction::RequestHeaders {
                header_name: "x-client-tier",
                descriptor_key: "tier",
                skip_if_absent: None,
            },
            client_id(),
        ],
    });
    policies.push(RateLimitPolicy {
        stage: 0,
        actions: vec![
            RateLimitAction::HeaderValueMatch {
                descriptor_key: "unauthenticated",
                descriptor_value: "true",
                expect_match: Some(false),
                headers: vec![HeaderMatcher::present("x-client-id", true)],
            },
            RateLimitAction::RemoteAddress(Empty {}),
        ],
    });
    policies
}

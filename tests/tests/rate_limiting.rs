//! Rate limiting (SPEC §7) through a real Envoy: the gateway's rate-limit
//! filter and descriptors (gateway-config) in front of a counting upstream, talking
//! to the rate-limit service (backends/ratelimit) started in-process.
//!
//! The authentication filter is not part of these configs: the tests set
//! `x-client-id` / `x-client-rate-limit` themselves, as the auth filter does
//! for an authenticated caller. A local_reply_config maps 429 to the SPEC §6
//! envelope, as the gateway's listener does.

use e2e::local::{rate_limit_config, unique};
use e2e::{answer, Answer, CountingUpstream, Envoy};
use ratelimit::{Config, Running};
use serde_json::{json, Value};

/// How long Envoy waits for a decision in these tests. The gateway's
/// default (RATE_LIMIT_TIMEOUT_MS, 100 ms) is a production budget: here
/// several Envoys start at once on a loaded machine, and a decision that
/// took longer would fail open, letting a request through with no
/// `x-ratelimit-*` headers. What
/// these tests count and read must not depend on that race. Failing closed
/// is tested below with a stopped service, whose errors come at once.
const DECISION_TIMEOUT: &str = "5s";

/// The gateway's rate-limit filter and descriptors (gateway-config's
/// `parts`, with [`DECISION_TIMEOUT`]; fail open unless
/// `failure_mode_deny`, as with `RATE_LIMIT_FAILURE_MODE=deny`), and a
/// gRPC cluster for the rate-limit service. The per-instance bucket is the
/// auth filter's, not part of these: tests/tests/client_limits.rs.
fn fragment(failure_mode_deny: bool) -> Value {
    use gateway_config::parts;
    json!({
        "http_filters": [serde_json::to_value(parts::rate_limit_filter(DECISION_TIMEOUT, failure_mode_deny)).unwrap()],
        "rate_limits": serde_json::to_value(parts::rate_limit_descriptors()).unwrap(),
        "clusters": [{
            "name": "rate_limit_service",
            "type": "STATIC",
            "connect_timeout": "0.25s",
            "typed_extension_protocol_options": {
                "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                    "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                    "explicit_http_config": {"http2_protocol_options": {}}
                }
            },
            "load_assignment": {
                "cluster_name": "rate_limit_service",
                "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 8090}}}}]}]
            }
        }]
    })
}

/// A full Envoy config: HCM with the fragment's filters and rate_limits,
/// a 429 → RATE_LIMITED local reply mapper, the upstream and the
/// rate_limit_service cluster pointed at `rls_port`.
fn envoy_config(upstream_port: u16, rls_port: u16) -> String {
    envoy_config_with(upstream_port, rls_port, true, false)
}

/// [`envoy_config`], optionally without the rate-limit filter (the
/// baseline of the latency measurement), or failing closed.
fn envoy_config_with(
    upstream_port: u16,
    rls_port: u16,
    rate_limited: bool,
    failure_mode_deny: bool,
) -> String {
    let frag = fragment(failure_mode_deny);
    let mut rls_cluster = frag["clusters"][0].clone();
    assert_eq!(rls_cluster["name"], "rate_limit_service");
    rls_cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]
        ["socket_address"]["port_value"] = json!(rls_port);

    let mut filters = if rate_limited {
        frag["http_filters"].as_array().unwrap().clone()
    } else {
        Vec::new()
    };
    filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}
    }));
    let envelope = r#"{"status":"error","error":{"code":"RATE_LIMITED","message":"Rate limit exceeded","request_id":"%REQ(X-REQUEST-ID)%"}}"#;
    let config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": "__ADMIN_PORT__"}}},
        "static_resources": {
            "listeners": [{
                "name": "main",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": "__LISTENER_PORT__"}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "ingress",
                        "use_remote_address": true,
                        "generate_request_id": true,
                        "always_set_request_id_in_response": true,
                        "local_reply_config": {"mappers": [{
                            "filter": {"status_code_filter": {"comparison": {
                                "op": "EQ",
                                "value": {"default_value": 429, "runtime_key": "local_reply.rate_limited"}
                            }}},
                            "body_format_override": {
                                "content_type": "application/json",
                                "text_format_source": {"inline_string": envelope}
                            },
                            "headers_to_add": [{
                                "header": {"key": "retry-after", "value": "60"},
                                "append_action": "ADD_IF_ABSENT"
                            }]
                        }]},
                        "route_config": {"virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "rate_limits": frag["rate_limits"].clone(),
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}]
                        }]},
                        "http_filters": filters
                    }
                }]}]
            }],
            "clusters": [
                {
                    "name": "upstream",
                    "type": "STATIC",
                    "connect_timeout": "1s",
                    "load_assignment": {"cluster_name": "upstream", "endpoints": [{"lb_endpoints": [
                        {"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": upstream_port}}}}
                    ]}]}
                },
                rls_cluster
            ]
        }
    });
    // JSON is YAML: the harness fills the port placeholders in the text.
    serde_json::to_string_pretty(&config)
        .unwrap()
        .replace("\"__ADMIN_PORT__\"", "{{ADMIN_PORT}}")
        .replace("\"__LISTENER_PORT__\"", "{{LISTENER_PORT}}")
}

async fn rls(config: Config) -> Running {
    ratelimit::spawn(config).await.unwrap()
}

async fn get(envoy: &Envoy, client: Option<(&str, Option<u64>)>) -> Answer {
    let mut req = reqwest::Client::new().get(envoy.url("/api/v1/rates/AAPL"));
    if let Some((id, limit)) = client {
        req = req.header("x-client-id", id);
        if let Some(l) = limit {
            req = req.header("x-client-rate-limit", l.to_string());
        }
    }
    answer(req).await
}

fn assert_rate_limited_envelope(a: &Answer) {
    assert_eq!(a.status, 429, "{}", a.body);
    assert_eq!(a.header("content-type"), Some("application/json"));
    let body: Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    let request_id = a.header("x-request-id").expect("x-request-id on a 429");
    assert!(!request_id.is_empty());
    assert_eq!(body["error"]["request_id"], request_id);
    let retry = a.number("retry-after");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
}

#[tokio::test]
async fn the_fragment_passes_envoy_validation() {
    let yaml = envoy_config(9, 9);
    e2e::envoy_validate(&yaml).unwrap();
}

#[tokio::test]
async fn a_key_with_limit_n_gets_n_successes_then_429_with_headers_and_the_envelope() {
    let service = rls(rate_limit_config("e2e")).await;
    let upstream = CountingUpstream::start().await;
    let envoy = Envoy::start(&envoy_config(upstream.port, service.grpc_addr.port())).await;
    let client = unique("client");

    for expected_remaining in [2u64, 1, 0] {
        let a = get(&envoy, Some((&client, Some(3)))).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.number("x-ratelimit-limit"), 3);
        assert_eq!(a.number("x-ratelimit-remaining"), expected_remaining);
        let reset = a.number("x-ratelimit-reset");
        assert!((1..=60).contains(&reset), "reset {reset}");
        assert!(a.header("retry-after").is_none());
    }
    let a = get(&envoy, Some((&client, Some(3)))).await;
    assert_rate_limited_envelope(&a);
    assert_eq!(a.number("x-ratelimit-limit"), 3);
    assert_eq!(a.number("x-ratelimit-remaining"), 0);
    assert_eq!(a.number("x-ratelimit-reset"), a.number("retry-after"));
    assert!(a.header("x-envoy-ratelimited").is_none());
    assert_eq!(
        upstream.count(),
        3,
        "the refused request never reached the upstream"
    );
    let seen = upstream.requests();
    assert_eq!(seen[0].header("x-client-id"), Some(client.as_str()));

    // Another client has its own budget; the default applies without an own limit.
    let other = get(&envoy, Some((&unique("other"), None))).await;
    assert_eq!(other.status, 200);
    assert_eq!(other.number("x-ratelimit-limit"), 60);
    assert_eq!(other.number("x-ratelimit-remaining"), 59);
}

#[tokio::test]
async fn unauthenticated_requests_are_limited_per_source_address() {
    let dir = e2e::scratch_dir("rl-e2e");
    let file = dir.join("limits.yaml");
    std::fs::write(&file, "unauthenticated:\n  per_minute: 2\n").unwrap();
    let service = rls(Config {
        limits_file: Some(file),
        ..rate_limit_config("e2e")
    })
    .await;
    let upstream = CountingUpstream::start().await;
    let envoy = Envoy::start(&envoy_config(upstream.port, service.grpc_addr.port())).await;
    for remaining in [1u64, 0] {
        let a = get(&envoy, None).await;
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.number("x-ratelimit-limit"), 2);
        assert_eq!(a.number("x-ratelimit-remaining"), remaining);
    }
    let a = get(&envoy, None).await;
    assert_rate_limited_envelope(&a);
    assert_eq!(upstream.count(), 2);
    // An authenticated caller from the same address is counted by client.
    let a = get(&envoy, Some((&unique("c"), None))).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn two_envoys_sharing_a_redis_backed_rate_limit_service_enforce_one_limit() {
    let Ok(redis_url) = std::env::var("REDIS_URL") else {
        println!("REDIS_URL is not set: skipping the shared Redis test");
        return;
    };
    // Two service replicas on the same Redis (and key prefix), one per Envoy.
    // As with DECISION_TIMEOUT, a Redis call may take longer than the
    // production 100 ms on a loaded machine, and would then fail open.
    let config = Config {
        redis_url: Some(redis_url),
        storage_timeout: std::time::Duration::from_secs(5),
        ..rate_limit_config("e2e")
    };
    let rls_a = rls(config.clone()).await;
    let rls_b = rls(config).await;
    let upstream = CountingUpstream::start().await;
    let envoy_a = Envoy::start(&envoy_config(upstream.port, rls_a.grpc_addr.port())).await;
    let envoy_b = Envoy::start(&envoy_config(upstream.port, rls_b.grpc_addr.port())).await;
    let client = unique("shared");
    let mut statuses = Vec::new();
    for i in 0..8 {
        let envoy = if i % 2 == 0 { &envoy_a } else { &envoy_b };
        let a = get(envoy, Some((&client, Some(4)))).await;
        if a.status == 429 {
            assert_rate_limited_envelope(&a);
        } else {
            assert_eq!(a.number("x-ratelimit-limit"), 4);
        }
        statuses.push(a.status);
    }
    assert_eq!(
        statuses,
        vec![200, 200, 200, 200, 429, 429, 429, 429],
        "4 allowed in total across both instances"
    );
    assert_eq!(upstream.count(), 4);
    assert_eq!(rls_a.shared.metrics().decisions("failure_allowed"), 0);
    assert_eq!(rls_b.shared.metrics().decisions("over_limit"), 2);
}

#[tokio::test]
async fn with_failure_mode_deny_a_stopped_rate_limit_service_means_429_and_nothing_reaches_upstream(
) {
    let service = rls(rate_limit_config("e2e")).await;
    let upstream = CountingUpstream::start().await;
    let envoy = Envoy::start(&envoy_config_with(
        upstream.port,
        service.grpc_addr.port(),
        true,
        true,
    ))
    .await;
    let client = unique("failclosed");

    let a = get(&envoy, Some((&client, Some(100)))).await;
    assert_eq!(a.status, 200, "service up: {}", a.body);
    assert_eq!(upstream.count(), 1);

    service.stop().await;

    for _ in 0..3 {
        let a = get(&envoy, Some((&client, Some(100)))).await;
        assert_rate_limited_envelope(&a);
    }
    assert_eq!(upstream.count(), 1, "a denied request reached the upstream");
    let stats = envoy.admin_get("/stats?filter=ratelimit").await;
    assert!(
        stats
            .lines()
            .filter(|l| l.contains("failure_mode_allowed"))
            .all(|l| l.ends_with(" 0")),
        "failing closed must not count a fail-open decision:\n{stats}"
    );
}

fn percentile_ms(sorted_us: &[u64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted_us.len() as f64 - 1.0)).round() as usize;
    sorted_us[rank.min(sorted_us.len() - 1)] as f64 / 1000.0
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Latency the rate limits add per request: Envoy with and without the two
/// rate-limit filters (service in memory), sequential requests, interleaved
/// rounds, medians of the per-round p50 and p99. Bounded: 5 rounds of 400
/// requests per configuration. Run with
/// `cargo test -p e2e --test rate_limiting -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "benchmark: run explicitly"]
async fn bench_latency_added_by_the_rate_limit_filters() {
    // An optimised service binary may be given (`RLS_BENCH_GRPC_PORT`);
    // otherwise the in-process (test profile) service is used.
    let external: Option<u16> = std::env::var("RLS_BENCH_GRPC_PORT")
        .ok()
        .and_then(|p| p.parse().ok());
    let service = rls(Config {
        default_per_minute: 1_000_000_000,
        ..rate_limit_config("e2e")
    })
    .await;
    let rls_port = external.unwrap_or(service.grpc_addr.port());
    println!(
        "rate-limit service: {}",
        if external.is_some() {
            "external process"
        } else {
            "in-process (test build)"
        }
    );
    let upstream = CountingUpstream::start().await;
    let bare = Envoy::start(&envoy_config_with(upstream.port, rls_port, false, false)).await;
    let limited = Envoy::start(&envoy_config_with(upstream.port, rls_port, true, false)).await;
    let http = reqwest::Client::new();
    let mut rounds: [(Vec<f64>, Vec<f64>); 2] =
        [(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
    for _round in 0..5 {
        for (i, envoy) in [&bare, &limited].into_iter().enumerate() {
            let mut lat = Vec::with_capacity(400);
            for n in 0..400 {
                let t = std::time::Instant::now();
                let r = http
                    .get(envoy.url("/api/v1/rates/AAPL"))
                    .header("x-client-id", format!("bench-{}", n % 50))
                    .header("x-client-rate-limit", "1000000000")
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 200);
                let _ = r.bytes().await.unwrap();
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat.sort_unstable();
            rounds[i].0.push(percentile_ms(&lat, 50.0));
            rounds[i].1.push(percentile_ms(&lat, 99.0));
        }
    }
    let (b50, b99) = (median(rounds[0].0.clone()), median(rounds[0].1.clone()));
    let (l50, l99) = (median(rounds[1].0.clone()), median(rounds[1].1.clone()));
    println!("| Envoy config | p50 ms | p99 ms |");
    println!("|---|---|---|");
    println!("| without rate limits | {b50:.3} | {b99:.3} |");
    println!("| local + global rate limit (RLS in memory) | {l50:.3} | {l99:.3} |");
    println!("| added | {:.3} | {:.3} |", l50 - b50, l99 - b99);
    if external.is_none() {
        assert!(service.shared.metrics().decisions("ok") >= 2000);
    }
}

//! A real Prometheus (Debian package `prometheus`, run directly on a free
//! loopback port with a temporary config) scrapes the gateway's `/metrics`
//! through a real Envoy running the real auth filter, which records the
//! metrics as in the rendered gateway, and the
//! operators' SPEC §8 PromQL queries answer non-empty, plausible values —
//! durations in seconds, not microseconds.
//!
//! Chain: Prometheus → Envoy `/metrics` route → ops service → Envoy admin
//! `/stats/prometheus` (+ the backends' own `/metrics`).
//!
//! Two gateway instances (each an Envoy with its own ops service, as in a
//! pod) scraped on the ops services' internal ports as separate targets,
//! plus the backends: per-instance series in seconds with the
//! sub-millisecond buckets. And what an anonymous caller of the listener
//! gets from `/metrics` and `/health/detailed`: no client id, which the
//! internal port has.

//!
//! * [`operators`]: the SPEC §8 PromQL queries against one gateway;
//! * [`instances`]: two gateway instances, and the anonymous caller;
//! * [`server`]: the Prometheus process.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod instances;
mod operators;
mod server;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use e2e::config::{http_listener, ADMIN, LISTENER_PORT, ROUTER};
use e2e::stand_in::{health_routes, serve};
use e2e::{static_cluster, wasm_filter};
use ops_service::{Backend, OpsConfig};
use serde_json::Value;

/// A key the fake auth service knows (`brl_` + 40 base62 characters) and
/// the lower-case hex SHA-256 the auth filter sends for it.
const GOOD_KEY: &str = "brl_OpsOpsOpsOpsOpsOpsOpsOpsOpsOpsOpsOpsOpsx";
const GOOD_KEY_HASH: &str = "9c3964ee825572d7af2e2157318328bca866984d138d3e56ecaa32047d18b464";
/// Well-formed but unknown.
const UNKNOWN_KEY: &str = "brl_ZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzZzzq";

/// Token bucket of the rates route (refilled one token per 100 ms):
/// back-to-back requests beyond it get 429 all through the run.
const RATES_BUCKET: u32 = 3;
/// Data service stand-in: every answer takes 2–14 ms.
async fn fake_data_service() -> SocketAddr {
    let n = Arc::new(AtomicU64::new(0));
    let router = health_routes(Router::new(), "").fallback(move || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        async move {
            tokio::time::sleep(Duration::from_millis(2 + (i % 5) * 3)).await;
            (
                [("content-type", "application/json")],
                r#"{"status":"success","ticker":"AAPL","current_rate":0.0039105,"borrow_status":"EASY"}"#,
            )
        }
    });
    serve(router).await
}

/// Calculation service stand-in: every fourth request (the first one
/// included) fails with 503.
async fn fake_calculation_service() -> SocketAddr {
    let n = Arc::new(AtomicU64::new(0));
    let router = health_routes(Router::new(), "").fallback(move || {
        let i = n.fetch_add(1, Ordering::Relaxed);
        async move {
            if i.is_multiple_of(4) {
                (StatusCode::SERVICE_UNAVAILABLE, r#"{"status":"error"}"#)
            } else {
                (StatusCode::OK, r#"{"status":"success","total_fee":58.75}"#)
            }
        }
    });
    serve(router).await
}

/// Auth service stand-in: key verification for one known hash, and its own
/// `/metrics` with `jwt_tokens_issued_total`.
async fn fake_auth_service() -> SocketAddr {
    let router = health_routes(
        Router::new(),
        "# HELP jwt_tokens_issued_total JWTs issued.\n# TYPE jwt_tokens_issued_total counter\njwt_tokens_issued_total 3\n",
    )
    .route(
        "/internal/v1/keys/verify",
        post(|body: String| async move {
            let v: Value = serde_json::from_str(&body).unwrap_or_default();
            if v["key_hash"] == GOOD_KEY_HASH {
                (
                    StatusCode::OK,
                    r#"{"client_id":"test123","status":"active","expires_at":null,"rate_limit_per_minute":null,"scopes":[]}"#,
                )
            } else {
                (
                    StatusCode::NOT_FOUND,
                    r#"{"status":"error","error":{"code":"UNAUTHORIZED","message":"Unknown key","request_id":""}}"#,
                )
            }
        }),
    );
    serve(router).await
}

/// The gateway: metrics filter observing everything, auth filter, a local
/// token bucket on the rates route, SPEC §8 stats tags and µs buckets.
fn envoy_config(data: SocketAddr, calc: SocketAddr, auth: SocketAddr, ops: SocketAddr) -> String {
    let stats_config = e2e::gateway_part("stats_config", 0);
    format!(
        r#"
{ADMIN}
stats_flush_interval: 1s
{stats_config}
static_resources:
  listeners:
{listener}
          route_config:
            name: public
            virtual_hosts:
            - name: gateway
              domains: ["*"]
              routes:
              - match: {{ prefix: "/api/v1/rates/" }}
                route: {{ cluster: data_service, prefix_rewrite: "/rates/" }}
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: rates_bucket
                    token_bucket: {{ max_tokens: {RATES_BUCKET}, tokens_per_fill: 1, fill_interval: 0.1s }}
                    filter_enabled: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
                    filter_enforced: {{ default_value: {{ numerator: 100, denominator: HUNDRED }} }}
              - match: {{ path: "/api/v1/calculate-locate" }}
                route: {{ cluster: calculation_service }}
              - match: {{ path: "/metrics" }}
                route: {{ cluster: ops_service }}
              - match: {{ prefix: "/health/" }}
                route: {{ cluster: ops_service }}
          http_filters:{auth_filter}
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: local_rate_limit
{ROUTER}
  clusters:{c1}{c2}{c3}{c4}
"#,
        listener = http_listener("public", LISTENER_PORT, "public"),
        // As the rendered gateway runs it: the auth filter records the
        // metrics too.
        auth_filter = wasm_filter("auth_filter", r#"{"metrics": {"slow_request_ms": 500}}"#),
        c1 = static_cluster("data_service", data.port()),
        c2 = static_cluster("calculation_service", calc.port()),
        c3 = static_cluster("auth_service", auth.port()),
        c4 = static_cluster("ops_service", ops.port()),
    )
}

/// The ops service of a gateway instance listening on `listen_addr`
/// (routed by `envoy`, whose admin API it reads) with these backends
/// (name, address, critical).
fn ops_config(
    listen_addr: SocketAddr,
    envoy: &e2e::Envoy,
    backends: &[(&str, SocketAddr, bool)],
) -> OpsConfig {
    OpsConfig {
        listen_addr,
        envoy_admin_url: format!("http://127.0.0.1:{}", envoy.admin_port),
        backends: backends
            .iter()
            .map(|(name, a, critical)| Backend {
                name: (*name).into(),
                base_url: format!("http://{a}"),
                critical: *critical,
            })
            .collect(),
        database_url: None,
        redis_url: None,
        probe_timeout: Duration::from_millis(800),
    }
}

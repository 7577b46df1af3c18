//! Routes, `/health`, the 404/405 envelope, identity headers, CORS.

use e2e::CountingUpstream;

use super::{data_gateway, raw, Setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_public_route_reaches_its_backend_under_the_upstream_path() {
    let data = CountingUpstream::start().await;
    let calc = CountingUpstream::start().await;
    let auth = CountingUpstream::start().await;
    let ops = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .upstream("calculation_service", &[calc.port])
        .upstream("auth_service", &[auth.port])
        .upstream("ops_service", &[ops.port])
        .start()
        .await;
    let port = envoy.port;

    let r = raw(port, "GET", "/api/v1/rates/AAPL", &[], "");
    assert_eq!(r.status, 200, "{}", r.body);
    let body = r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    let r = raw(
        port,
        "POST",
        "/api/v1/calculate-locate",
        &[("content-type", "application/json")],
        body,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = raw(
        port,
        "POST",
        "/api/v1/auth/token",
        &[("x-api-key", "brl_x")],
        "",
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ops_paths = [
        "/health/detailed",
        "/health/data_service",
        "/metrics",
        "/monitoring/metrics",
        "/discovery/services",
        "/docs",
        "/docs/",
        "/docs/swagger-ui-bundle.js",
        "/openapi.json",
    ];
    for p in ops_paths {
        let r = raw(port, "GET", p, &[], "");
        assert_eq!(r.status, 200, "{p}: {}", r.body);
    }

    let seen = |u: &CountingUpstream| -> Vec<(String, String)> {
        u.api_requests()
            .into_iter()
            .map(|r| (r.method, r.path))
            .collect()
    };
    assert_eq!(seen(&data), [("GET".into(), "/rates/AAPL".into())]);
    assert_eq!(seen(&calc), [("POST".into(), "/calculate-locate".into())]);
    let calc_req = calc
        .requests()
        .into_iter()
        .find(|r| r.path == "/calculate-locate")
        .expect("calc request");
    assert_eq!(calc_req.body, body.as_bytes(), "body forwarded unchanged");
    assert_eq!(seen(&auth), [("POST".into(), "/api/v1/auth/token".into())]);
    let ops_seen: Vec<String> = seen(&ops).into_iter().map(|(_, p)| p).collect();
    assert_eq!(ops_seen, ops_paths);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_is_answered_by_envoy_itself() {
    let (data, envoy) = data_gateway().await;
    let r = raw(envoy.port, "GET", "/health", &[], "");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(
        r.json(),
        serde_json::json!({"status":"healthy","version":"0.1.0"})
    );
    assert!(r.header("x-request-id").is_some_and(|v| !v.is_empty()));
    assert_eq!(data.api_requests().len(), 0, "no backend involved");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_get_a_404_envelope_and_never_reach_a_backend() {
    let up = CountingUpstream::start().await;
    let (envoy, _) = Setup::all_on(up.port).start().await;
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/nope"),
        ("GET", "/api/v1/rates"),
        ("GET", "/api/v1/rates/AAPL/history"),
        ("POST", "/internal/v1/keys/verify"),
        ("GET", "/rates/AAPL"),
        ("GET", "/stats/prometheus"),
        ("GET", "/healthz"),
    ] {
        let r = raw(envoy.port, method, path, &[], "");
        r.assert_envelope(404, "NOT_FOUND");
    }
    assert_eq!(up.api_requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_method_on_a_known_path_gets_a_405_envelope_with_allow() {
    let up = CountingUpstream::start().await;
    let (envoy, _) = Setup::all_on(up.port).start().await;
    for (method, path, allow) in [
        ("POST", "/api/v1/rates/AAPL", "GET"),
        ("DELETE", "/api/v1/rates/AAPL", "GET"),
        ("GET", "/api/v1/calculate-locate", "POST"),
        ("PUT", "/api/v1/calculate-locate", "POST"),
        ("GET", "/api/v1/auth/token", "POST"),
        ("POST", "/health", "GET"),
        ("DELETE", "/health/detailed", "GET"),
        ("POST", "/metrics", "GET"),
        ("PATCH", "/discovery/services", "GET"),
    ] {
        let r = raw(envoy.port, method, path, &[], "");
        r.assert_envelope(405, "METHOD_NOT_ALLOWED");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
    assert_eq!(up.api_requests().len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_supplied_identity_headers_and_request_ids_never_reach_a_backend() {
    let (data, envoy) = data_gateway().await;
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[
            ("x-client-id", "big_fund"),
            ("x-client-scopes", "admin"),
            ("x-auth-method", "api_key"),
            ("x-client-rate-limit", "100000"),
            ("x-client-tier", "platinum"),
            ("x-api-key-id", "key_chosenByClient01"),
            ("x-request-id", "chosen-by-client"),
            ("x-forwarded-for", "10.9.9.9"),
        ],
        "",
    );
    assert_eq!(r.status, 200);
    assert_ne!(r.header("x-request-id"), Some("chosen-by-client"));
    let req = data
        .requests()
        .into_iter()
        .find(|r| r.path == "/rates/AAPL")
        .expect("forwarded");
    for h in e2e::IDENTITY_HEADERS {
        assert_eq!(req.header(h), None, "{h} reached the backend");
    }
    assert_ne!(req.header("x-request-id"), Some("chosen-by-client"));
    assert_eq!(
        req.header("x-request-id"),
        r.header("x-request-id"),
        "same id both ways"
    );
    // The edge trusts no client hop: the external address is the peer's,
    // and a client-supplied X-Forwarded-For only gets Envoy's hop appended.
    assert_eq!(req.header("x-envoy-external-address"), Some("127.0.0.1"));
    let xff = req.header("x-forwarded-for").unwrap_or_default();
    assert!(
        xff.starts_with("10.9.9.9,") && xff.split(',').count() == 2,
        "{xff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflights_are_answered_by_envoy_and_never_reach_a_backend() {
    let ops = CountingUpstream::start().await;
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("ops_service", &[ops.port])
        .upstream("data_service", &[data.port])
        .set("CORS_ORIGINS", "https://app.example.com")
        .start()
        .await;
    let preflight = |origin: &'static str| {
        raw(
            envoy.port,
            "OPTIONS",
            "/api/v1/rates/AAPL",
            &[("origin", origin), ("access-control-request-method", "GET")],
            "",
        )
    };
    let ok = preflight("https://app.example.com");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(
        ok.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let other = preflight("https://evil.example.com");
    assert_eq!(other.header("access-control-allow-origin"), None);
    // A plain OPTIONS is not a preflight: the path does not serve it.
    raw(envoy.port, "OPTIONS", "/api/v1/rates/AAPL", &[], "")
        .assert_envelope(405, "METHOD_NOT_ALLOWED");
    // Actual requests: CORS headers for the allowed origin only.
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("origin", "https://app.example.com")],
        "",
    );
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r
        .header("access-control-expose-headers")
        .is_some_and(|h| h.contains("x-request-id")));
    let r = raw(
        envoy.port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("origin", "https://evil.example.com")],
        "",
    );
    assert_eq!(r.header("access-control-allow-origin"), None);
    let forwarded = |u: &CountingUpstream| {
        u.requests()
            .iter()
            .filter(|r| r.method == "OPTIONS")
            .count()
    };
    assert_eq!(
        forwarded(&ops) + forwarded(&data),
        0,
        "no preflight was forwarded"
    );
}

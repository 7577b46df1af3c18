//! Resilience: health checks, retries, the circuit breaker, timeouts, and
//! the compose admin listener.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::{free_port, render_gateway, CountingUpstream, Envoy};
use gateway_config::envoy::Port;
use gateway_config::Shape;

use super::backend::{start_garbage_upstream, Behaviour, TestBackend};
use super::{get, into_reply, post_calculation, raw, stat, Setup, CLUSTERS};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_gives_503_envelopes_and_traffic_recovers_without_restarting_envoy() {
    let hits = Arc::new(AtomicUsize::new(0));
    let port = free_port();
    let mut backend = TestBackend::start_on(port, Behaviour::Healthy, hits.clone());
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[port])
        .set("HEALTH_CHECK_INTERVAL_MS", "500")
        .start()
        .await;
    let client = reqwest::Client::new();
    let url = envoy.url("/api/v1/rates/AAPL");
    assert_eq!(get(&client, &url).await.status, 200);

    backend.kill();
    let killed_at = Instant::now();
    // Health-check window: 2 failed checks at 500 ms, plus a 1 s timeout.
    let window = Duration::from_secs(3);
    let r = get(&client, &url).await;
    r.assert_envelope(503, "SERVICE_UNAVAILABLE");
    loop {
        if stat(&envoy, "cluster.data_service.membership_healthy").await == 0 {
            break;
        }
        assert!(
            killed_at.elapsed() < window,
            "host still healthy after {window:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Once ejected by the health checker, Envoy answers at once, with no
    // connection attempt.
    let r = get(&client, &url).await;
    r.assert_envelope(503, "SERVICE_UNAVAILABLE");
    assert!(stat(&envoy, "cluster.data_service.health_check.failure").await >= 2);

    let before = hits.load(Ordering::SeqCst);
    let _backend = TestBackend::start_on(port, Behaviour::Healthy, hits.clone());
    let back_at = Instant::now();
    loop {
        let r = get(&client, &url).await;
        if r.status == 200 {
            break;
        }
        assert!(
            back_at.elapsed() < window,
            "no recovery within {window:?}: {} {}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        hits.load(Ordering::SeqCst) > before,
        "the restarted backend served it"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_retries_hide_one_failing_instance_of_two() {
    let good = TestBackend::start(Behaviour::Healthy);
    let bad = TestBackend::start(Behaviour::FailsRequests);
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[good.port, bad.port])
        .start()
        .await;
    let client = reqwest::Client::new();
    for i in 0..30 {
        let r = get(&client, &envoy.url("/api/v1/rates/AAPL")).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert!(bad.hits() >= 1, "the failing instance was tried");
    assert!(
        good.hits() >= 30,
        "every request ended on the good instance"
    );
    assert!(stat(&envoy, "cluster.data_service.upstream_rq_retry").await >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_calculation_that_failed_upstream_is_never_retried() {
    let good = TestBackend::start(Behaviour::Healthy);
    let bad = TestBackend::start(Behaviour::FailsRequests);
    let (envoy, _) = Setup::default()
        .upstream("calculation_service", &[good.port, bad.port])
        .start()
        .await;
    let client = reqwest::Client::new();
    let mut failures = 0;
    for _ in 0..30 {
        let r = post_calculation(&client, &envoy).await;
        match r.status().as_u16() {
            200 => {}
            500 => failures += 1,
            s => panic!("unexpected {s}"),
        }
    }
    assert!(
        bad.hits() >= 1,
        "the failing instance was chosen at least once"
    );
    assert_eq!(
        failures,
        bad.hits(),
        "each failed attempt reached the client, none retried"
    );
    assert_eq!(
        stat(&envoy, "cluster.calculation_service.upstream_rq_retry").await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_circuit_breaker_trips_under_a_flood_to_a_slow_backend_and_counts_the_overflow() {
    let slow = TestBackend::start(Behaviour::Slow(Duration::from_millis(700)));
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[slow.port])
        .set("UPSTREAM_MAX_CONNECTIONS", "2")
        .set("UPSTREAM_MAX_REQUESTS", "2")
        .set("UPSTREAM_MAX_PENDING_REQUESTS", "2")
        .start()
        .await;
    let client = reqwest::Client::new();
    let url = envoy.url("/api/v1/rates/AAPL");
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..24 {
        let (client, url) = (client.clone(), url.clone());
        tasks.push(tokio::spawn(async move { get(&client, &url).await }));
    }
    let mut ok = 0;
    let mut shed = 0;
    for t in tasks {
        let r = t.await.expect("task");
        match r.status {
            200 => ok += 1,
            503 => {
                r.assert_envelope(503, "SERVICE_UNAVAILABLE");
                shed += 1;
            }
            s => panic!("unexpected {s}: {}", r.body),
        }
    }
    assert!(
        ok >= 2,
        "the breaker lets the allowed requests through ({ok})"
    );
    assert!(shed >= 10, "most of the flood is shed ({shed} of 24)");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "shedding is fast"
    );
    let overflow = stat(&envoy, "cluster.data_service.upstream_rq_pending_overflow").await
        + stat(&envoy, "cluster.data_service.upstream_rq_overflow").await;
    assert!(
        overflow >= shed as u64,
        "overflow counted: {overflow} for {shed} shed"
    );
    // A request whose attempt outlived the 1 s per-try timeout on a busy
    // machine is retried, and its retry may be the one shed: that request
    // reached the backend once. Every other shed request never did.
    let retried = stat(&envoy, "cluster.data_service.upstream_rq_retry").await;
    assert!(
        slow.hits() as u64 <= (24 - shed) as u64 + retried,
        "shed requests never reached the backend ({} hits, {shed} shed, {retried} retried)",
        slow.hits()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_never_answers_gets_a_504_envelope_within_the_route_timeout() {
    let slow = TestBackend::start(Behaviour::Slow(Duration::from_secs(10)));
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[slow.port])
        .start()
        .await;
    let started = Instant::now();
    let r = get(&reqwest::Client::new(), &envoy.url("/api/v1/rates/AAPL")).await;
    r.assert_envelope(504, "BACKEND_TIMEOUT");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(900),
        "per-try timeout is 1 s, took {took:?}"
    );
    assert!(
        took < Duration::from_millis(4500),
        "route timeout is 3 s, took {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_answering_garbage_gets_a_502_envelope() {
    let port = start_garbage_upstream();
    let (envoy, _) = Setup::default()
        .upstream("calculation_service", &[port])
        .start()
        .await;
    let r = into_reply(post_calculation(&reqwest::Client::new(), &envoy).await).await;
    r.assert_envelope(502, "BACKEND_ERROR");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_admin_listener_exposes_only_the_read_only_views_the_ops_service_reads() {
    let data = CountingUpstream::start().await;
    let stats_port = free_port();
    let closed = free_port();
    let mut options = e2e::config::gateway_options(Shape::Compose);
    options.no_wasm = true;
    options.tls = false;
    options.listen_address = Some("127.0.0.1".into());
    options.stats_port = Port::Number(stats_port);
    options.upstreams = CLUSTERS
        .iter()
        .map(|c| {
            let port = if *c == "data_service" {
                data.port
            } else {
                closed
            };
            format!("{c}=127.0.0.1:{port}")
        })
        .collect();
    let sets = [
        "ENABLE_AUTHENTICATION=false".to_owned(),
        "ENABLE_RATE_LIMITING=false".to_owned(),
    ];
    let yaml = render_gateway(&options, &sets, false).unwrap_or_else(|e| panic!("render: {e}"));
    let envoy = Envoy::start(&yaml).await;
    assert_eq!(
        raw(envoy.port, "GET", "/api/v1/rates/AAPL", &[], "").status,
        200
    );

    let stats = raw(stats_port, "GET", "/stats/prometheus", &[], "");
    assert_eq!(stats.status, 200);
    assert!(
        stats.body.contains("envoy_cluster_upstream_rq_total"),
        "Prometheus text"
    );
    let clusters = raw(stats_port, "GET", "/clusters?format=json", &[], "");
    assert_eq!(clusters.status, 200);
    assert!(
        clusters.json()["cluster_statuses"].is_array(),
        "{}",
        clusters.body
    );
    let routes = raw(
        stats_port,
        "GET",
        "/config_dump?resource=static_route_configs",
        &[],
        "",
    );
    assert_eq!(routes.status, 200);
    assert!(routes.body.contains("/api/v1/rates/{ticker}"));

    for (method, target) in [
        ("GET", "/config_dump"),
        ("GET", "/config_dump?resource=static_listeners"),
        ("GET", "/clusters"),
        ("GET", "/stats"),
        ("GET", "/runtime"),
        ("POST", "/quitquitquit"),
        ("POST", "/healthcheck/fail"),
        ("POST", "/logging?level=trace"),
        ("POST", "/stats/prometheus"),
    ] {
        let r = raw(stats_port, method, target, &[], "");
        assert_eq!(
            r.status, 404,
            "{method} {target} must not reach the admin API"
        );
    }
    // Envoy is still serving (nothing above reached the admin API).
    assert_eq!(raw(envoy.port, "GET", "/health", &[], "").status, 200);
}

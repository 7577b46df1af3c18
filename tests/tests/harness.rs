//! The harness itself: a real Envoy proxies to a counting upstream.

use e2e::{envoy_validate, plain_proxy_config, CountingUpstream, Envoy};

#[tokio::test]
async fn envoy_proxies_to_a_counting_upstream_that_records_headers() {
    let upstream = CountingUpstream::start().await;
    let envoy = Envoy::start(&plain_proxy_config(upstream.port)).await;
    let client = reqwest::Client::new();
    for _ in 0..3 {
        let r = client
            .get(envoy.url("/anything?x=1"))
            .header("x-test", "yes")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(upstream.count(), 3);
    let last = upstream.requests().pop().unwrap();
    assert_eq!(last.path, "/anything?x=1");
    assert_eq!(last.header("x-test"), Some("yes"));
    assert!(
        last.header("x-request-id").is_some(),
        "envoy adds a request id"
    );
    assert!(envoy
        .admin_get("/stats")
        .await
        .contains("cluster.upstream.upstream_rq_total: 3"));
}

#[test]
fn validate_rejects_a_broken_config() {
    assert!(envoy_validate(&plain_proxy_config(1)).is_ok());
    let broken = plain_proxy_config(1).replace("connect_timeout: 1s", "connect_timeout: soon");
    assert!(envoy_validate(&broken).is_err());
}

#[test]
fn free_port_never_hands_out_the_same_port_twice() {
    // Envoy shares a port it is given twice (SO_REUSEPORT) instead of
    // failing; 2 000 draws from the ~14 000 ports bind(0) picks from would
    // repeat one many times over if earlier ports were not skipped.
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..2000 {
        let port = e2e::free_port();
        assert!(seen.insert(port), "port {port} handed out twice");
    }
}

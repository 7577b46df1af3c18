//! The `ops-service` binary on SIGTERM, as Kubernetes stops a pod:
//! readiness answers 503 at once while liveness stays 200 (during
//! `SHUTDOWN_DELAY_SECONDS`), then new connections are refused and the
//! process exits 0. `/health/live` and `/health/ready` are the service's
//! own probes, not dependency names.

use service_http::test_support::ServiceUnderTest;

#[tokio::test]
async fn on_sigterm_the_ops_service_turns_not_ready_then_refuses_connections_and_exits_0() {
    let mut service = ServiceUnderTest::start(
        "the ops service",
        env!("CARGO_BIN_EXE_ops-service"),
        &[
            ("INTERNAL_LISTEN_ADDR", "127.0.0.1:0".into()),
            ("DATABASE_URL", "sqlite::memory:".into()),
            ("ENVOY_ADMIN_URL", "http://127.0.0.1:9".into()),
        ],
    )
    .await;
    // Dependency names still reach `/health/{service}`.
    let (status, body) = service.get("/health/database").await;
    assert_eq!(body["name"], "database", "{status} {body}");

    service.sigterm_and_check_the_drain().await;
}

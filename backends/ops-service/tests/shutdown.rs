//! The `ops-service` binary on SIGTERM, as Kubernetes stops a pod:
//! readiness answers 503 at once while liveness stays 200 (during
//! `SHUTDOWN_DELAY_SECONDS`), then new connections are refused and the
//! process exits 0. `/health/live` and `/health/ready` are the service's
//! own probes, not dependency names.

use std::process::{Command, Stdio};

use service_http::test_support::{free_port, ServiceUnderTest};

#[tokio::test]
async fn on_sigterm_the_ops_service_turns_not_ready_then_refuses_connections_and_exits_0() {
    let port = free_port();
    let child = Command::new(env!("CARGO_BIN_EXE_ops-service"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("INTERNAL_LISTEN_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("ENVOY_ADMIN_URL", "http://127.0.0.1:9")
        .env("SHUTDOWN_DELAY_SECONDS", "1.5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut service = ServiceUnderTest {
        name: "the ops service",
        port,
        child,
    };
    service.wait_until_healthy().await;
    // Dependency names still reach `/health/{service}`.
    let (status, body) = service.get("/health/database").await;
    assert_eq!(body["name"], "database", "{status} {body}");

    service.sigterm_and_check_the_drain().await;
}

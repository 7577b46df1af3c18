//! The `ratelimit-service` binary on SIGTERM, as Kubernetes stops a pod:
//! readiness answers 503 at once while liveness stays 200 (during
//! `SHUTDOWN_DELAY_SECONDS`), then new connections are refused and the
//! process exits 0: both listeners (gRPC and HTTP) are closed.

use std::process::{Command, Stdio};

use service_http::test_support::{free_port, ServiceUnderTest};

#[tokio::test]
async fn on_sigterm_the_rate_limit_service_turns_not_ready_then_refuses_connections_and_exits_0() {
    let (port, grpc) = (free_port(), free_port());
    let child = Command::new(env!("CARGO_BIN_EXE_ratelimit-service"))
        .env_clear()
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("GRPC_LISTEN_ADDR", format!("127.0.0.1:{grpc}"))
        .env("RATE_LIMITS_FILE", "")
        .env("SHUTDOWN_DELAY_SECONDS", "1.5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut service = ServiceUnderTest {
        name: "the rate-limit service",
        port,
        child,
    };
    service.wait_until_healthy().await;

    service.sigterm_and_check_the_drain().await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err());
}

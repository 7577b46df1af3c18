//! The `ratelimit-service` binary on SIGTERM, as Kubernetes stops a pod:
//! readiness answers 503 at once while liveness stays 200 (during
//! `SHUTDOWN_DELAY_SECONDS`), then new connections are refused and the
//! process exits 0: both listeners (gRPC and HTTP) are closed.

use service_http::test_support::{free_port, ServiceUnderTest};

#[tokio::test]
async fn on_sigterm_the_rate_limit_service_turns_not_ready_then_refuses_connections_and_exits_0() {
    let grpc = free_port();
    let mut service = ServiceUnderTest::start(
        "the rate-limit service",
        env!("CARGO_BIN_EXE_ratelimit-service"),
        &[
            ("GRPC_LISTEN_ADDR", format!("127.0.0.1:{grpc}")),
            ("RATE_LIMITS_FILE", String::new()),
        ],
    )
    .await;

    service.sigterm_and_check_the_drain().await;
    assert!(std::net::TcpStream::connect(("127.0.0.1", grpc)).is_err());
}

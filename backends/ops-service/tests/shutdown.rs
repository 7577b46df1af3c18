//! The `ops-service` binary on SIGTERM, as Kubernetes stops a pod:
//! readiness answers 503 at once while liveness stays 200 (during
//! `SHUTDOWN_DELAY_SECONDS`), then new connections are refused and the
//! process exits 0. `/health/live` and `/health/ready` are the service's
//! own probes, not dependency names.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

async fn get(url: &str) -> Option<(u16, serde_json::Value)> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .ok()?;
    let r = client.get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or_default()))
}

#[tokio::test]
async fn on_sigterm_the_ops_service_turns_not_ready_then_refuses_connections_and_exits_0() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = |path: &str| format!("http://127.0.0.1:{port}{path}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_ops-service"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("INTERNAL_LISTEN_ADDR", "127.0.0.1:0")
        .env("DATABASE_URL", "sqlite::memory:")
        .env("ENVOY_ADMIN_URL", "http://127.0.0.1:9")
        .env("SHUTDOWN_DELAY_SECONDS", "1.5")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while get(&url("/health/live")).await.is_none() {
        assert!(Instant::now() < deadline, "the ops service never answered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for probe in ["/health/live", "/health/ready", "/health"] {
        let (status, body) = get(&url(probe)).await.unwrap();
        assert_eq!(status, 200, "{probe}: {body}");
        assert_eq!(body["status"], "healthy", "{probe}: {body}");
    }
    // Dependency names still reach `/health/{service}`.
    let (status, body) = get(&url("/health/database")).await.unwrap();
    assert_eq!(body["name"], "database", "{status} {body}");

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let (status, body) = get(&url("/health/ready"))
            .await
            .expect("still accepting during the delay");
        if status == 503 {
            assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "readiness still {status} 1 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (status, body) = get(&url("/health/live")).await.unwrap();
    assert_eq!(
        (status, &body["status"]),
        (200, &serde_json::json!("healthy"))
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the ops service did not exit");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(get(&url("/health/live")).await.is_none());
}

//! Probes that match failure domains, and draining on SIGTERM, with real
//! processes over real HTTP.
//!
//! * `/health/live` answers from the process alone: it stays 200 while the
//!   database is down, when `/health` and `/health/ready` answer 503, and
//!   they recover when the database is back. A service started while the
//!   database is down waits for it before it listens.
//! * SIGTERM: readiness answers 503 at once (during
//!   `SHUTDOWN_DELAY_SECONDS`), then the listener closes (new connections
//!   are refused), a request already in flight still gets its answer, and
//!   the process exits 0.
//! * Every HTTP service answers both probes.
//!
//! The process under test is the calculation service's binary
//! (`calculation-service-under-test`: the same `run_main`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use e2e::{free_port, postgres_binaries_or_skip, scratch_dir, PrivatePostgres};

const LOCATE_BODY: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;

/// The service binary as a child process; killed if the test fails.
struct Service {
    child: Child,
    port: u16,
    log: std::path::PathBuf,
}

impl Service {
    fn spawn(dir: &Path, database_url: &str, env: &[(&str, &str)]) -> Service {
        let port = free_port();
        let log = dir.join("service.log");
        let out = std::fs::File::create(&log).unwrap();
        let err = out.try_clone().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_calculation-service-under-test"))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("DATABASE_URL", database_url)
            .env("DB_ACQUIRE_TIMEOUT_MS", "1000")
            .env("LOG_LEVEL", "info")
            .envs(env.iter().copied())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .spawn()
            .unwrap();
        Service { child, port, log }
    }

    fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill -TERM failed");
    }

    fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the service did not exit within {within:?}; log:\n{}",
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- service log ---\n{}", self.log_text());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

/// Status and JSON body of `GET url`; `None` when nothing answers.
async fn get(url: &str) -> Option<(u16, serde_json::Value)> {
    let r = client().get(url).send().await.ok()?;
    let status = r.status().as_u16();
    Some((status, r.json().await.unwrap_or_default()))
}

/// Polls `GET url` until it answers `status` (or panics after `within`).
async fn until_status(url: &str, status: u16, within: Duration) -> serde_json::Value {
    let deadline = Instant::now() + within;
    loop {
        if let Some((s, body)) = get(url).await {
            if s == status {
                return body;
            }
        }
        assert!(
            Instant::now() < deadline,
            "{url} did not answer {status} within {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_healthy(body: &serde_json::Value) {
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
}

fn assert_unavailable(body: &serde_json::Value) {
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE", "{body}");
}

#[tokio::test]
async fn a_request_in_flight_during_sigterm_completes_while_readiness_turns_503_and_new_connections_are_refused(
) {
    let started = Instant::now();
    let dir = scratch_dir("drain");
    let db = format!("sqlite://{}/pricing.db", dir.display());
    let mut service = Service::spawn(
        &dir,
        &db,
        &[
            ("SHUTDOWN_DELAY_SECONDS", "1.5"),
            ("SHUTDOWN_GRACE_SECONDS", "10"),
        ],
    );
    assert_healthy(&until_status(&service.url("/health/live"), 200, Duration::from_secs(30)).await);
    assert_healthy(&until_status(&service.url("/health/ready"), 200, Duration::from_secs(5)).await);

    // A calculation whose headers and half of its body are sent: the
    // handler is waiting for the rest.
    let mut inflight = TcpStream::connect(service.addr()).unwrap();
    inflight
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let (head, tail) = LOCATE_BODY.split_at(LOCATE_BODY.len() / 2);
    write!(
        inflight,
        "POST /calculate-locate HTTP/1.1\r\nHost: calc\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nx-request-id: drain-inflight\r\n\r\n{head}",
        LOCATE_BODY.len()
    )
    .unwrap();
    inflight.flush().unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    service.sigterm();

    // Draining: readiness 503 while the process still accepts (the delay),
    // liveness still 200.
    assert_unavailable(
        &until_status(&service.url("/health/ready"), 503, Duration::from_secs(1)).await,
    );
    let (status, live) = get(&service.url("/health/live"))
        .await
        .expect("still accepting during the delay");
    assert_eq!(status, 200);
    assert_healthy(&live);

    // Then the listener closes: new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match TcpStream::connect_timeout(&service.addr(), Duration::from_millis(500)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => break,
            _ => {}
        }
        assert!(
            Instant::now() < deadline,
            "new connections are still accepted 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        service.exited().is_none(),
        "the process exited with a request still in flight"
    );

    // The rest of the body: the request is answered in full.
    inflight.write_all(tail.as_bytes()).unwrap();
    inflight.flush().unwrap();
    let mut response = String::new();
    inflight.read_to_string(&mut response).unwrap();
    assert!(response.starts_with("HTTP/1.1 200 "), "{response}");
    let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(body["status"], "success", "{body}");
    assert_eq!(body["total_fee"].to_string(), "58.75");
    assert_eq!(body["breakdown"]["borrow_cost"].to_string(), "32.14");

    let status = service.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    assert!(
        TcpStream::connect(service.addr()).is_err(),
        "something still listens after the exit"
    );
    println!("drain test took {:?}", started.elapsed());
    drop(service);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn liveness_stays_200_while_the_database_is_down_when_readiness_and_health_are_503_and_both_recover(
) {
    if !postgres_binaries_or_skip("probes with the database down") {
        return;
    }
    let started = Instant::now();
    let dir = scratch_dir("probes-db");
    let pg = PrivatePostgres::start().expect("PostgreSQL server binaries");

    // Started while the database is down: it waits (retrying) and does not
    // listen, so a startup probe on /health/live fails until it can serve.
    pg.crash();
    let mut service = Service::spawn(&dir, &pg.url(), &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(
        service.exited().is_none(),
        "the service gave up while the database was down"
    );
    assert!(
        get(&service.url("/health/live")).await.is_none(),
        "listening before the migrations ran"
    );
    pg.restart();
    assert_healthy(&until_status(&service.url("/health/live"), 200, Duration::from_secs(40)).await);
    for probe in ["/health", "/health/ready"] {
        let (status, body) = get(&service.url(probe)).await.unwrap();
        assert_eq!(status, 200, "{probe}: {body}");
        assert_healthy(&body);
    }

    // The database goes away: /health and readiness say so, liveness not.
    pg.crash();
    assert_unavailable(&until_status(&service.url("/health"), 503, Duration::from_secs(15)).await);
    let (status, body) = get(&service.url("/health/ready")).await.unwrap();
    assert_eq!(status, 503, "{body}");
    assert_unavailable(&body);
    for _ in 0..3 {
        let asked = Instant::now();
        let (status, body) = get(&service.url("/health/live")).await.unwrap();
        assert_eq!(status, 200, "{body}");
        assert_healthy(&body);
        assert!(
            asked.elapsed() < Duration::from_millis(500),
            "liveness waited {:?}: it must not wait for the database",
            asked.elapsed()
        );
    }

    // Back: both recover without a restart of the service.
    pg.restart();
    assert_healthy(
        &until_status(&service.url("/health/ready"), 200, Duration::from_secs(15)).await,
    );
    assert_healthy(&until_status(&service.url("/health"), 200, Duration::from_secs(5)).await);
    assert_healthy(&until_status(&service.url("/health/live"), 200, Duration::from_secs(1)).await);

    service.sigterm();
    let status = service.wait_exit(Duration::from_secs(15));
    assert_eq!(status.code(), Some(0), "exit status {status:?}");
    println!("database outage test took {:?}", started.elapsed());
    drop(service);
    drop(pg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn every_http_service_answers_liveness_and_readiness_and_ops_keeps_its_dependency_routes() {
    let dir = scratch_dir("probes-all");
    let db = format!("sqlite://{}/pricing.db", dir.display());
    let config = || services::Config::new("127.0.0.1:0".parse().unwrap(), db.clone());
    let (data, _) = services::start_data_service(&config()).await.unwrap();
    let (calc, _) = services::start_calculation_service(&config())
        .await
        .unwrap();
    let (auth, _) =
        e2e::local::start_auth_service(&db, "a-secret-of-at-least-32-characters-long").await;
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let rls = ratelimit::spawn(ratelimit::Config {
        grpc_addr: any,
        http_addr: any,
        ..ratelimit::Config::default()
    })
    .await
    .unwrap();
    let ops = ops_service::build(ops_service::OpsConfig {
        listen_addr: any,
        envoy_admin_url: "http://127.0.0.1:9".into(),
        backends: vec![ops_service::Backend {
            name: "data_service".into(),
            base_url: format!("http://{}", data.addr),
            critical: true,
        }],
        database_url: Some(db.clone()),
        redis_url: None,
        probe_timeout: Duration::from_secs(2),
    })
    .await
    .unwrap();
    let ops_addr = ops.local_addr();
    tokio::spawn(ops.serve(std::future::pending()));

    for (name, addr) in [
        ("data", data.addr),
        ("calculation", calc.addr),
        ("auth", auth.addr),
        ("rate-limit", rls.http_addr),
        ("ops", ops_addr),
    ] {
        for probe in ["/health/live", "/health/ready", "/health"] {
            let (status, body) = get(&format!("http://{addr}{probe}"))
                .await
                .unwrap_or_else(|| panic!("{name} {probe}: no answer"));
            assert_eq!(status, 200, "{name} {probe}: {body}");
            assert_healthy(&body);
        }
    }
    // The ops service's dependency routes are not shadowed, nor the reverse.
    let (status, body) = get(&format!("http://{ops_addr}/health/database"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "database", "{body}");
    let (status, body) = get(&format!("http://{ops_addr}/health/data_service"))
        .await
        .unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kind"], "http", "{body}");
    let (status, body) = get(&format!("http://{ops_addr}/health/mainframe"))
        .await
        .unwrap();
    assert_eq!(status, 404, "{body}");

    data.shutdown().await;
    calc.shutdown().await;
    auth.shutdown().await;
    rls.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

//! Helpers for the backends' own tests (feature `test-support`, for
//! dev-dependencies only): the SIGTERM sequence every service binary goes
//! through as Kubernetes stops a pod, and a throwaway certificate authority
//! for the TLS tests.

use std::process::Child;
use std::time::{Duration, Instant};

/// `GET url` on a fresh connection: status and JSON body (`Null` when the
/// body is not JSON), or `None` when nothing answers.
pub async fn get_json(url: &str) -> Option<(u16, serde_json::Value)> {
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

/// A service binary the test started, serving HTTP on `127.0.0.1:port`.
pub struct ServiceUnderTest {
    /// How failures name it, e.g. "the ops service".
    pub name: &'static str,
    pub port: u16,
    pub child: Child,
}

impl ServiceUnderTest {
    /// Starts `binary` on a free HTTP port (`LISTEN_ADDR`) with the other
    /// variables `env` (after clearing the inherited environment) and a
    /// `SHUTDOWN_DELAY_SECONDS` of 1.5 s, then waits until it is healthy.
    pub async fn start(name: &'static str, binary: &str, env: &[(&str, String)]) -> Self {
        let port = free_port();
        let child = std::process::Command::new(binary)
            .env_clear()
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .env("SHUTDOWN_DELAY_SECONDS", "1.5")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: {binary} does not start: {e}"));
        let service = ServiceUnderTest { name, port, child };
        service.wait_until_healthy().await;
        service
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// `GET path`, which must answer.
    pub async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        get_json(&self.url(path))
            .await
            .unwrap_or_else(|| panic!("{} does not answer {path}", self.name))
    }

    /// Waits (20 s at most) until `/health/live` answers, then checks that
    /// `/health/live`, `/health/ready` and `/health` are 200 `healthy`.
    pub async fn wait_until_healthy(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while get_json(&self.url("/health/live")).await.is_none() {
            assert!(Instant::now() < deadline, "{} never answered", self.name);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        for probe in ["/health/live", "/health/ready", "/health"] {
            let (status, body) = self.get(probe).await;
            assert_eq!(status, 200, "{probe}: {body}");
            assert_eq!(body["status"], "healthy", "{probe}: {body}");
        }
    }

    /// Sends SIGTERM and checks the drain: readiness turns 503 within 1 s
    /// while liveness stays 200, then the process exits 0 (within 10 s)
    /// and the HTTP port refuses connections. The service must run with a
    /// `SHUTDOWN_DELAY_SECONDS` longer than 1 s.
    pub async fn sigterm_and_check_the_drain(&mut self) {
        let killed = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            let (status, body) = get_json(&self.url("/health/ready"))
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
        let (status, body) = self.get("/health/live").await;
        assert_eq!(
            (status, &body["status"]),
            (200, &serde_json::json!("healthy"))
        );

        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.name);
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(status.code(), Some(0), "{status:?}");
        assert!(get_json(&self.url("/health/live")).await.is_none());
    }
}

impl Drop for ServiceUnderTest {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP port free on 127.0.0.1 right now, and never handed out before in
/// this process.
///
/// The port is released before its user binds it, and Envoy binds its
/// listeners with SO_REUSEPORT: two Envoys of tests running at once that
/// were given the same port would both start and silently share each
/// other's requests (no "Address already in use" to retry on). The kernel
/// may return a just-released port again, so ports already given out are
/// skipped.
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<std::collections::BTreeSet<u16>> =
        std::sync::Mutex::new(std::collections::BTreeSet::new());
    let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
    for _ in 0..1000 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or_else(|e| panic!("no free port: {e}"));
        if given.insert(port) {
            return port;
        }
    }
    panic!("no free port not handed out before among 1000 tries");
}

/// A throwaway certificate authority for the TLS tests of PostgreSQL and
/// Redis connections.
pub struct TestCa {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

impl TestCa {
    /// A self-signed CA named `common_name`, allowed to sign certificates.
    pub fn new(common_name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate().expect("a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let cert = params.self_signed(&key).expect("a self-signed CA");
        TestCa { cert, key }
    }

    /// The CA certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate named `common_name` for the subject names `names`,
    /// signed by this CA, limited to `usage` when given: the certificate
    /// and its private key, PEM.
    pub fn issue(
        &self,
        common_name: &str,
        names: &[&str],
        usage: Option<rcgen::ExtendedKeyUsagePurpose>,
    ) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("a leaf key");
        let mut params =
            rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf parameters");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, common_name);
        params.extended_key_usages = usage.into_iter().collect();
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("a certificate signed by the test CA");
        (cert.pem(), key.serialize_pem())
    }
}

//! Dependency health: one probe per dependency, timed, and the overall rule.
//!
//! **Critical** dependencies are the ones without which the public API
//! cannot answer a single priced request: the database, the data service,
//! the calculation service and the auth service (every key is verified
//! there). The rate-limit service and Redis are **not** critical: the
//! gateway fails open when they are down (SPEC §7) and its local token
//! bucket still holds.
//!
//! Overall status: `healthy` when every dependency is healthy, `degraded`
//! when only non-critical ones are unhealthy (HTTP 200), `unhealthy` when
//! any critical one is (HTTP 503).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Health of one dependency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Healthy,
    Unhealthy,
}

/// Health of the whole gateway: `healthy` when every dependency is,
/// `degraded` when only non-critical ones (rate-limit service, Redis) are
/// not, `unhealthy` when a critical one (database, data, calculation or
/// auth service) is not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Overall {
    /// 200 when healthy or degraded, 503 when unhealthy.
    pub fn http_status(self) -> u16 {
        match self {
            Overall::Healthy | Overall::Degraded => 200,
            Overall::Unhealthy => 503,
        }
    }
}

/// What one probe found.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
#[schema(as = Dependency)]
pub struct DependencyReport {
    /// Dependency name (`data_service`, `database`, `redis`, ...).
    pub name: String,
    /// `http`, `database` or `redis`.
    #[schema(schema_with = dependency_kind)]
    pub kind: &'static str,
    pub status: Status,
    /// Whether the gateway is unhealthy without it.
    pub critical: bool,
    /// Wall time of the probe in milliseconds.
    #[schema(minimum = 0)]
    pub latency_ms: f64,
    /// Version reported by an HTTP dependency's `/health`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Why the probe failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The kinds of dependency a probe reports.
pub const DEPENDENCY_KINDS: [&str; 3] = ["http", "database", "redis"];

fn dependency_kind() -> utoipa::openapi::schema::Schema {
    utoipa::openapi::schema::ObjectBuilder::new()
        .schema_type(utoipa::openapi::schema::Type::String)
        .enum_values(Some(DEPENDENCY_KINDS))
        .into()
}

/// `GET /health/detailed`: the overall status and every dependency's
/// report, by name.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DetailedHealth {
    pub status: Overall,
    /// The gateway's version.
    pub version: &'static str,
    pub dependencies: std::collections::BTreeMap<String, DependencyReport>,
}

/// `GET /health`: the process is up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Liveness {
    #[schema(schema_with = healthy)]
    pub status: &'static str,
    pub version: &'static str,
}

fn healthy() -> utoipa::openapi::schema::Schema {
    pricing::openapi::constant("healthy")
}

/// The overall rule (see the module documentation).
pub fn overall(reports: &[DependencyReport]) -> Overall {
    let down = |critical: bool| {
        reports
            .iter()
            .any(|r| r.critical == critical && r.status == Status::Unhealthy)
    };
    if down(true) {
        Overall::Unhealthy
    } else if down(false) {
        Overall::Degraded
    } else {
        Overall::Healthy
    }
}

fn report(
    name: &str,
    kind: &'static str,
    critical: bool,
    started: Instant,
    outcome: Result<Option<String>, String>,
) -> DependencyReport {
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let (status, version, error) = match outcome {
        Ok(version) => (Status::Healthy, version, None),
        Err(e) => (Status::Unhealthy, None, Some(e)),
    };
    DependencyReport {
        name: name.to_owned(),
        kind,
        status,
        critical,
        latency_ms,
        version,
        error,
    }
}

/// `GET {base_url}/health`: healthy on a 2xx answer.
pub async fn probe_http(
    client: &reqwest::Client,
    name: &str,
    base_url: &str,
    critical: bool,
    timeout: Duration,
) -> DependencyReport {
    let started = Instant::now();
    let outcome = async {
        let response = client
            .get(format!("{base_url}/health"))
            .timeout(timeout)
            .send()
            .await
            .map_err(|e| describe_reqwest_error(&e))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        if !status.is_success() {
            return Err(format!("/health answered {}", status.as_u16()));
        }
        Ok(serde_json::from_str::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("version")?.as_str().map(str::to_owned)))
    }
    .await;
    report(name, "http", critical, started, outcome)
}

/// Short reason for a failed HTTP call, without URLs or internals.
pub fn describe_reqwest_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection refused or unreachable".to_owned()
    } else {
        "request failed".to_owned()
    }
}

/// `SELECT 1` on the shared pool.
pub async fn probe_database(pool: &sqlx::AnyPool, timeout: Duration) -> DependencyReport {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, sqlx::query("SELECT 1").execute(pool)).await {
        Ok(Ok(_)) => Ok(None),
        Ok(Err(e)) => Err(format!("query failed: {}", database_error_kind(&e))),
        Err(_) => Err("timed out".to_owned()),
    };
    report("database", "database", true, started, outcome)
}

fn database_error_kind(e: &sqlx::Error) -> &'static str {
    match e {
        sqlx::Error::PoolTimedOut => "no connection within the timeout",
        sqlx::Error::Io(_) => "connection failed",
        sqlx::Error::Database(_) => "database error",
        sqlx::Error::Configuration(_) => "bad DATABASE_URL",
        _ => "unavailable",
    }
}

/// Files for a `rediss://` `REDIS_URL` (`REDIS_CA_FILE`,
/// `REDIS_CLIENT_CERT_FILE`, `REDIS_CLIENT_KEY_FILE`), declared once with
/// the rate-limit service's; `RedisTlsFiles::from_env` reads them.
pub use service_http::config::RedisTls as RedisTlsFiles;

/// `PING` over a fresh connection to `REDIS_URL`
/// (`redis[s]://[user:password@]host[:port][/db]`, TLS files from
/// [`RedisTlsFiles::from_env`]); healthy on `PONG`.
pub async fn probe_redis(url: &str, timeout: Duration) -> DependencyReport {
    probe_redis_with_tls(url, &RedisTlsFiles::from_env(), timeout).await
}

/// [`probe_redis`] with explicit TLS files.
pub async fn probe_redis_with_tls(
    url: &str,
    tls: &RedisTlsFiles,
    timeout: Duration,
) -> DependencyReport {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, redis_ping(url, tls)).await {
        Ok(result) => result.map(|()| None),
        Err(_) => Err("timed out".to_owned()),
    };
    report("redis", "redis", false, started, outcome)
}

/// The client for `url`; errors never quote the URL (it may hold a password).
fn redis_client(url: &str, tls: &RedisTlsFiles) -> Result<redis::Client, String> {
    let tls_set =
        tls.ca_file.is_some() || tls.client_cert_file.is_some() || tls.client_key_file.is_some();
    if !tls_set {
        return redis::Client::open(url).map_err(|_| "bad REDIS_URL".to_owned());
    }
    if !url.starts_with("rediss://") {
        return Err("REDIS_CA_FILE / REDIS_CLIENT_*_FILE need a rediss:// REDIS_URL".to_owned());
    }
    let read = |var: &str, path: &PathBuf| {
        std::fs::read(path).map_err(|e| format!("{var} {}: {}", path.display(), e.kind()))
    };
    let root_cert = match &tls.ca_file {
        Some(p) => Some(read("REDIS_CA_FILE", p)?),
        None => None,
    };
    let client_tls = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("REDIS_CLIENT_CERT_FILE", cert)?,
            client_key: read("REDIS_CLIENT_KEY_FILE", key)?,
        }),
        (None, None) => None,
        _ => return Err("set both REDIS_CLIENT_CERT_FILE and REDIS_CLIENT_KEY_FILE".to_owned()),
    };
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    // redis' own messages ("Unable to parse TLS trust anchors", ...) quote
    // neither the URL nor the files' contents.
    .map_err(|e| format!("bad REDIS_URL or TLS files: {e}"))
}

/// Short reason for a failed Redis call, without URLs or credentials.
fn describe_redis_error(e: &redis::RedisError) -> String {
    // rustls' errors, known by their text (redis 0.27 keeps the I/O
    // error's source out of reach).
    const TLS: [&str; 6] = [
        "invalid peer certificate",
        "received fatal alert",
        "received corrupt message",
        "peer is incompatible",
        "peer misbehaved",
        "invalid certificate",
    ];
    let text = e.to_string();
    if let Some(at) = TLS.iter().filter_map(|m| text.find(m)).min() {
        return format!("TLS handshake failed: {}", &text[at..]);
    }
    if e.kind() == redis::ErrorKind::AuthenticationFailed
        || matches!(e.code(), Some("NOAUTH" | "WRONGPASS" | "NOPERM"))
    {
        return "authentication refused".to_owned();
    }
    if e.is_io_error() {
        return "connection refused or unreachable".to_owned();
    }
    format!(
        "unexpected answer: {}",
        e.code()
            .unwrap_or("error")
            .chars()
            .take(40)
            .collect::<String>()
    )
}

async fn redis_ping(url: &str, tls: &RedisTlsFiles) -> Result<(), String> {
    let client = redis_client(url, tls)?;
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .map_err(|e| describe_redis_error(&e))?;
    let pong: String = redis::cmd("PING")
        .query_async(&mut conn)
        .await
        .map_err(|e| describe_redis_error(&e))?;
    if pong == "PONG" {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer to PING: {}",
            pong.chars().take(40).collect::<String>()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dep(critical: bool, status: Status) -> DependencyReport {
        DependencyReport {
            name: "x".into(),
            kind: "http",
            status,
            critical,
            latency_ms: 1.0,
            version: None,
            error: None,
        }
    }

    #[test]
    fn all_healthy_is_healthy() {
        let r = [dep(true, Status::Healthy), dep(false, Status::Healthy)];
        assert_eq!(overall(&r), Overall::Healthy);
        assert_eq!(overall(&r).http_status(), 200);
    }

    #[test]
    fn a_non_critical_dependency_down_is_degraded_but_still_200() {
        let r = [dep(true, Status::Healthy), dep(false, Status::Unhealthy)];
        assert_eq!(overall(&r), Overall::Degraded);
        assert_eq!(overall(&r).http_status(), 200);
    }

    #[test]
    fn a_critical_dependency_down_is_unhealthy_and_503() {
        let r = [dep(true, Status::Unhealthy), dep(false, Status::Unhealthy)];
        assert_eq!(overall(&r), Overall::Unhealthy);
        assert_eq!(overall(&r).http_status(), 503);
    }

    #[tokio::test]
    async fn redis_probe_errors_never_quote_the_url() {
        let r = probe_redis_with_tls(
            "redis://:s3cret@h:notaport",
            &RedisTlsFiles::default(),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(r.status, Status::Unhealthy);
        assert_eq!(r.error.as_deref(), Some("bad REDIS_URL"));
        let ca = RedisTlsFiles {
            ca_file: Some(PathBuf::from("/nonexistent/ca.pem")),
            ..Default::default()
        };
        let r =
            probe_redis_with_tls("redis://:s3cret@127.0.0.1:1", &ca, Duration::from_secs(1)).await;
        assert!(r.error.as_deref().unwrap().contains("rediss://"), "{r:?}");
        let r =
            probe_redis_with_tls("rediss://:s3cret@127.0.0.1:1", &ca, Duration::from_secs(1)).await;
        let e = r.error.unwrap();
        assert!(e.starts_with("REDIS_CA_FILE /nonexistent/ca.pem"), "{e}");
        assert!(!e.contains("s3cret"));
    }

    /// A throwaway CA and server certificate, a `redis-server` on a TLS
    /// port only with the ACL user `ops` (the default user off): the probe
    /// passes with the CA file and the password, and says why otherwise.
    #[tokio::test]
    async fn redis_probe_speaks_tls_with_a_ca_file_and_acl_credentials() {
        use service_http::test_support::TestCa;
        use std::process::{Command, Stdio};
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            println!("redis-server is not installed: skipping the Redis TLS probe test");
            return;
        }
        let dir = std::env::temp_dir().join(format!("ops-redis-tls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = |n: &str| dir.join(n).display().to_string();
        let ca = TestCa::new("ops test CA");
        let (server, server_key) = ca.issue("ops test redis", &["127.0.0.1"], None);
        std::fs::write(file("ca.pem"), ca.pem()).unwrap();
        std::fs::write(file("other.pem"), TestCa::new("another CA").pem()).unwrap();
        std::fs::write(file("server.pem"), server).unwrap();
        std::fs::write(file("server.key"), server_key).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--bind",
                "127.0.0.1",
                "--tls-port",
                &port.to_string(),
            ])
            .args([
                "--tls-cert-file",
                &file("server.pem"),
                "--tls-key-file",
                &file("server.key"),
            ])
            .args([
                "--tls-ca-cert-file",
                &file("ca.pem"),
                "--tls-auth-clients",
                "no",
            ])
            .args([
                "--user", "default", "off", "--user", "ops", "on", ">pw", "+ping",
            ])
            .args(["--save", "", "--appendonly", "no", "--dir", &file("")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        let tls = |ca: &str| RedisTlsFiles {
            ca_file: Some(PathBuf::from(file(ca))),
            ..Default::default()
        };
        let url = |pw: &str| format!("rediss://ops:{pw}@127.0.0.1:{port}");
        let t = Duration::from_secs(5);
        let ok = probe_redis_with_tls(&url("pw"), &tls("ca.pem"), t).await;
        let untrusted = probe_redis_with_tls(&url("pw"), &tls("other.pem"), t).await;
        let wrong_pw = probe_redis_with_tls(&url("nope"), &tls("ca.pem"), t).await;
        let plain = probe_redis_with_tls(
            &format!("redis://ops:pw@127.0.0.1:{port}"),
            &RedisTlsFiles::default(),
            t,
        )
        .await;
        let _ = child.kill();
        let _ = child.wait();
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(ok.status, Status::Healthy, "{ok:?}");
        assert_eq!(
            untrusted.error.as_deref(),
            Some("TLS handshake failed: invalid peer certificate: UnknownIssuer")
        );
        assert_eq!(wrong_pw.error.as_deref(), Some("authentication refused"));
        assert_eq!(plain.status, Status::Unhealthy, "plain TCP to a TLS port");
    }
}

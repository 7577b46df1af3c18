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

use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

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

/// Where and how to reach Redis, from a `redis://[user[:password]@]host[:port][/db]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisTarget {
    pub host: String,
    pub port: u16,
    pub username: Option<String>,
    pub password: Option<String>,
}

/// Parses a `REDIS_URL`. TLS (`rediss://`) is not supported by the probe.
pub fn parse_redis_url(url: &str) -> Result<RedisTarget, String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or_else(|| "REDIS_URL must start with redis://".to_owned())?;
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    let (userinfo, hostport) = match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    };
    let (username, password) = match userinfo {
        Some(u) => match u.split_once(':') {
            Some((user, pass)) => (
                Some(user.to_owned()).filter(|s| !s.is_empty()),
                Some(pass.to_owned()),
            ),
            None => (Some(u.to_owned()).filter(|s| !s.is_empty()), None),
        },
        None => (None, None),
    };
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (h, after) = v6
            .split_once(']')
            .ok_or_else(|| "REDIS_URL has a bad IPv6 host".to_owned())?;
        (h.to_owned(), after.strip_prefix(':').unwrap_or("6379"))
    } else {
        match hostport.split_once(':') {
            Some((h, p)) => (h.to_owned(), p),
            None => (hostport.to_owned(), "6379"),
        }
    };
    if host.is_empty() {
        return Err("REDIS_URL has no host".to_owned());
    }
    let port = port
        .parse()
        .map_err(|_| "REDIS_URL has a bad port".to_owned())?;
    Ok(RedisTarget {
        host,
        port,
        username,
        password,
    })
}

/// `PING` over a fresh TCP connection (with `AUTH` first when the URL has a
/// password); healthy on `+PONG`.
pub async fn probe_redis(url: &str, timeout: Duration) -> DependencyReport {
    let started = Instant::now();
    let outcome = match tokio::time::timeout(timeout, redis_ping(url)).await {
        Ok(result) => result.map(|()| None),
        Err(_) => Err("timed out".to_owned()),
    };
    report("redis", "redis", false, started, outcome)
}

fn resp_command(parts: &[&str]) -> String {
    let mut out = format!("*{}\r\n", parts.len());
    for p in parts {
        out.push_str(&format!("${}\r\n{}\r\n", p.len(), p));
    }
    out
}

async fn redis_ping(url: &str) -> Result<(), String> {
    let target = parse_redis_url(url)?;
    let stream = TcpStream::connect((target.host.as_str(), target.port))
        .await
        .map_err(|_| "connection refused or unreachable".to_owned())?;
    let mut stream = BufReader::new(stream);
    let mut line = String::new();
    if let Some(password) = &target.password {
        let auth = match &target.username {
            Some(user) => resp_command(&["AUTH", user, password]),
            None => resp_command(&["AUTH", password]),
        };
        stream
            .get_mut()
            .write_all(auth.as_bytes())
            .await
            .map_err(|_| "write failed".to_owned())?;
        stream
            .read_line(&mut line)
            .await
            .map_err(|_| "read failed".to_owned())?;
        if !line.starts_with("+OK") {
            return Err("authentication refused".to_owned());
        }
        line.clear();
    }
    stream
        .get_mut()
        .write_all(resp_command(&["PING"]).as_bytes())
        .await
        .map_err(|_| "write failed".to_owned())?;
    stream
        .read_line(&mut line)
        .await
        .map_err(|_| "read failed".to_owned())?;
    if line.starts_with("+PONG") {
        Ok(())
    } else {
        Err(format!(
            "unexpected answer to PING: {}",
            line.trim().chars().take(40).collect::<String>()
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

    #[test]
    fn redis_urls_parse_with_and_without_credentials() {
        assert_eq!(
            parse_redis_url("redis://127.0.0.1:6379/0").unwrap(),
            RedisTarget {
                host: "127.0.0.1".into(),
                port: 6379,
                username: None,
                password: None
            }
        );
        let t = parse_redis_url("redis://:s3cret@cache").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("cache", 6379));
        assert_eq!(t.password.as_deref(), Some("s3cret"));
        assert_eq!(t.username, None);
        let t = parse_redis_url("redis://ops:pw@[::1]:7000").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 7000));
        assert_eq!(t.username.as_deref(), Some("ops"));
        assert!(parse_redis_url("rediss://x").is_err());
        assert!(parse_redis_url("redis://h:notaport").is_err());
        assert!(parse_redis_url("redis://").is_err());
    }

    #[test]
    fn ping_is_sent_as_a_resp_array() {
        assert_eq!(resp_command(&["PING"]), "*1\r\n$4\r\nPING\r\n");
        assert_eq!(
            resp_command(&["AUTH", "pw"]),
            "*2\r\n$4\r\nAUTH\r\n$2\r\npw\r\n"
        );
    }
}

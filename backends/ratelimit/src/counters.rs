//! Fixed-window counters: `limitador` in memory, or Redis shared by every
//! service replica.
//!
//! Each (domain, matched node of the limits file, limit, window) is its own
//! counter family, named `<prefix>:<domain>:<node path>:<max>/<window>s`
//! (e.g. `brl:borrow_rate_gateway:route=rates/client_id:30/60s`); in memory
//! that is a limitador namespace holding one limit whose only variable is
//! the counted subject (client id, address, …), in Redis it is the key
//! prefix of `<family>:<subject>`. A key whose own limit changes therefore
//! starts a fresh window under the new limit.
//!
//! Redis counters are kept with one Lua script per hit (read, compare,
//! increment, set the window expiry: atomic, one round trip). limitador
//! 0.14's own Redis storage cannot be built without its RocksDB storage,
//! which this project does not build.

use std::collections::{HashMap, HashSet};
use std::sync::RwLock;
use std::time::Duration;

use limitador::limit::{Context, Expression, Limit, Namespace};
use limitador::RateLimiter;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::config::RedisTls;
use crate::limits::Rule;

/// Result of counting one hit against a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// The hit was refused (the window is exhausted).
    pub limited: bool,
    /// Hits left in the current window after this one.
    pub remaining: u64,
    /// Time until the window resets.
    pub reset: Duration,
}

/// Why a hit could not be counted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StorageError {
    /// Redis is configured but no connection is established yet.
    NotConnected,
    /// The storage did not answer within the configured timeout.
    Timeout,
    /// The storage answered with an error.
    Failed(String),
    /// The TLS handshake with Redis failed (untrusted or invalid server
    /// certificate, client certificate refused, not a TLS port).
    Tls(String),
    /// Redis refused the URL's user name and password.
    Auth(String),
}

impl StorageError {
    /// Classifies a Redis connection error: TLS, authentication or other.
    pub fn from_redis(e: &redis::RedisError) -> Self {
        if let Some(tls) = tls_error(e) {
            return Self::Tls(tls);
        }
        if let Some(code @ ("NOAUTH" | "WRONGPASS" | "NOPERM")) = e.code() {
            return Self::Auth(format!("{code} {}", e.detail().unwrap_or_default()));
        }
        if e.kind() == redis::ErrorKind::AuthenticationFailed {
            return Self::Auth("user name or password refused".to_owned());
        }
        Self::Failed(e.to_string())
    }

    /// A configuration problem (TLS or credentials) rather than an outage.
    pub fn is_configuration(&self) -> bool {
        matches!(self, Self::Tls(_) | Self::Auth(_))
    }
}

/// The TLS error behind a Redis connection error, if any. redis 0.27 keeps
/// the I/O error's source out of reach (and the connection manager passes
/// on a copy holding only its text), so rustls' error is known by its text.
fn tls_error(e: &redis::RedisError) -> Option<String> {
    const RUSTLS: [&str; 8] = [
        "invalid peer certificate",
        "received fatal alert",
        "received corrupt message",
        "peer is incompatible",
        "peer misbehaved",
        "peer sent no certificates",
        "no certificates presented",
        "invalid certificate",
    ];
    if e.kind() != redis::ErrorKind::IoError {
        return None;
    }
    let text = e.to_string();
    let at = RUSTLS.iter().filter_map(|m| text.find(m)).min()?;
    Some(text[at..].to_owned())
}

impl std::fmt::Display for StorageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotConnected => f.write_str("redis not connected"),
            Self::Timeout => f.write_str("storage timeout"),
            Self::Failed(e) => write!(f, "storage error: {e}"),
            Self::Tls(e) => write!(f, "Redis TLS handshake failed: {e}"),
            Self::Auth(e) => write!(f, "Redis authentication failed: {e}"),
        }
    }
}

/// Atomic fixed-window hit: KEYS[1] counter; ARGV delta, max, window ms.
/// Returns {limited (0/1), value after the call, ms until reset}.
const HIT_SCRIPT: &str = r"
local delta = tonumber(ARGV[1])
local max = tonumber(ARGV[2])
local window = tonumber(ARGV[3])
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local ttl = redis.call('PTTL', KEYS[1])
if cur + delta > max then
  if ttl < 0 then ttl = window end
  return {1, cur, ttl}
end
cur = redis.call('INCRBY', KEYS[1], delta)
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], window)
  ttl = window
end
return {0, cur, ttl}
";

/// The in-memory limiter plus the namespaces already registered in it.
struct Memory {
    limiter: RateLimiter,
    known: RwLock<HashSet<String>>,
}

struct Redis {
    client: redis::Client,
    conn: RwLock<Option<ConnectionManager>>,
    script: redis::Script,
    /// Why the last connection attempt failed (reported by `probe`).
    last_error: RwLock<Option<StorageError>>,
}

enum Backend {
    Memory(Memory),
    Redis(Box<Redis>),
}

/// The counter store.
pub struct Counters {
    backend: Backend,
    prefix: String,
    timeout: Duration,
}

const SUBJECT_VAR: &str = "subject";

impl Counters {
    /// In-memory counters (one process only).
    pub fn memory(prefix: &str, capacity: u64, timeout: Duration) -> Self {
        Self {
            backend: Backend::Memory(Memory {
                limiter: RateLimiter::new(capacity),
                known: RwLock::new(HashSet::new()),
            }),
            prefix: prefix.to_owned(),
            timeout,
        }
    }

    /// Redis counters; the connection is made by [`Counters::connect`]
    /// (and retried by the caller until it succeeds). Errors name a bad URL.
    pub fn redis(url: &str, prefix: &str, timeout: Duration) -> Result<Self, String> {
        Self::redis_with_tls(url, &RedisTls::default(), prefix, timeout)
    }

    /// [`Counters::redis`] with the CA and client certificate files of a
    /// `rediss://` URL, read now. Errors name the variable at fault.
    pub fn redis_with_tls(
        url: &str,
        tls: &RedisTls,
        prefix: &str,
        timeout: Duration,
    ) -> Result<Self, String> {
        let client = redis_client(url, tls)?;
        Ok(Self {
            backend: Backend::Redis(Box::new(Redis {
                client,
                conn: RwLock::new(None),
                script: redis::Script::new(HIT_SCRIPT),
                last_error: RwLock::new(None),
            })),
            prefix: prefix.to_owned(),
            timeout,
        })
    }

    /// `memory` or `redis`.
    pub fn kind(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// Whether a Redis connection still has to be made.
    pub fn needs_connection(&self) -> bool {
        match &self.backend {
            Backend::Memory(_) => false,
            Backend::Redis(r) => r.conn.read().map(|c| c.is_none()).unwrap_or(true),
        }
    }

    /// Connects to Redis (no-op in memory). Bounded by `deadline`. The
    /// connection reconnects by itself afterwards.
    pub async fn connect(&self, deadline: Duration) -> Result<(), StorageError> {
        let Backend::Redis(r) = &self.backend else {
            return Ok(());
        };
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(deadline)
            .set_response_timeout(self.timeout.max(Duration::from_millis(10)))
            .set_number_of_retries(1)
            .set_max_delay(500);
        let result = tokio::time::timeout(
            deadline,
            ConnectionManager::new_with_config(r.client.clone(), config),
        )
        .await
        .map_err(|_| StorageError::Timeout)
        .and_then(|m| m.map_err(|e| StorageError::from_redis(&e)));
        let manager = match result {
            Ok(m) => m,
            Err(e) => {
                if let Ok(mut last) = r.last_error.write() {
                    *last = Some(e.clone());
                }
                return Err(e);
            }
        };
        if let Ok(mut c) = r.conn.write() {
            *c = Some(manager);
        }
        if let Ok(mut last) = r.last_error.write() {
            *last = None;
        }
        Ok(())
    }

    /// `<prefix>:<domain>:<node path>:<max>/<window>s`: the matched node
    /// and the window are part of the name, so different limits never share
    /// a counter.
    fn family(&self, domain: &str, rule: &Rule) -> String {
        format!(
            "{}:{}:{}:{}/{}s",
            self.prefix, domain, rule.path, rule.max, rule.window_secs
        )
    }

    /// Counts `hits` against `rule` in `domain`.
    pub async fn hit(&self, domain: &str, rule: &Rule, hits: u64) -> Result<Outcome, StorageError> {
        let family = self.family(domain, rule);
        let window = Duration::from_secs(rule.window_secs);
        match &self.backend {
            Backend::Memory(m) => Ok(memory_hit(m, &family, rule, hits, window)),
            Backend::Redis(r) => {
                let mut conn = r
                    .conn
                    .read()
                    .ok()
                    .and_then(|c| c.clone())
                    .ok_or(StorageError::NotConnected)?;
                let key = format!("{family}:{}", rule.subject);
                let window_ms = u64::try_from(window.as_millis()).unwrap_or(u64::MAX);
                let mut call = r.script.key(key);
                call.arg(hits).arg(rule.max).arg(window_ms);
                let (limited, value, ttl_ms): (u8, u64, i64) =
                    tokio::time::timeout(self.timeout, call.invoke_async(&mut conn))
                        .await
                        .map_err(|_| StorageError::Timeout)?
                        .map_err(|e| StorageError::Failed(e.to_string()))?;
                let ttl = Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0));
                Ok(Outcome {
                    limited: limited == 1,
                    remaining: rule.max.saturating_sub(value),
                    reset: if ttl.is_zero() {
                        window
                    } else {
                        ttl.min(window)
                    },
                })
            }
        }
    }

    /// Checks that the storage answers (`PING`). Always `Ok` in memory.
    pub async fn probe(&self) -> Result<(), StorageError> {
        let Backend::Redis(r) = &self.backend else {
            return Ok(());
        };
        let mut conn = r.conn.read().ok().and_then(|c| c.clone()).ok_or_else(|| {
            r.last_error
                .read()
                .ok()
                .and_then(|e| e.clone())
                .unwrap_or(StorageError::NotConnected)
        })?;
        let pong: String = tokio::time::timeout(
            self.timeout.max(Duration::from_millis(500)),
            redis::cmd("PING").query_async(&mut conn),
        )
        .await
        .map_err(|_| StorageError::Timeout)?
        .map_err(|e| StorageError::Failed(e.to_string()))?;
        if pong == "PONG" {
            Ok(())
        } else {
            Err(StorageError::Failed(format!(
                "unexpected PING answer {pong:?}"
            )))
        }
    }
}

/// A Redis client for `url`; a `rediss://` URL verifies the server against
/// `tls.ca_file` (else the system roots) and presents the client
/// certificate when one is set.
fn redis_client(url: &str, tls: &RedisTls) -> Result<redis::Client, String> {
    if !tls.is_set() {
        return redis::Client::open(url).map_err(|e| format!("REDIS_URL: {e}"));
    }
    let read = |var: &str, path: &std::path::Path| {
        std::fs::read(path).map_err(|e| format!("{var} {}: {e}", path.display()))
    };
    let root_cert = match &tls.ca_file {
        Some(p) => {
            let pem = read("REDIS_CA_FILE", p)?;
            if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
                return Err(format!(
                    "REDIS_CA_FILE {}: no PEM certificate in the file",
                    p.display()
                ));
            }
            Some(pem)
        }
        None => None,
    };
    let client_tls = match (&tls.client_cert_file, &tls.client_key_file) {
        (Some(cert), Some(key)) => Some(redis::ClientTlsConfig {
            client_cert: read("REDIS_CLIENT_CERT_FILE", cert)?,
            client_key: read("REDIS_CLIENT_KEY_FILE", key)?,
        }),
        _ => None,
    };
    redis::Client::build_with_tls(
        url,
        redis::TlsCertificates {
            client_tls,
            root_cert,
        },
    )
    .map_err(|e| format!("REDIS_URL / REDIS_CA_FILE / REDIS_CLIENT_*_FILE: {e}"))
}

fn memory_hit(m: &Memory, family: &str, rule: &Rule, hits: u64, window: Duration) -> Outcome {
    let seen = m.known.read().map(|k| k.contains(family)).unwrap_or(false);
    if !seen {
        if let Ok(mut known) = m.known.write() {
            if known.insert(family.to_owned()) {
                m.limiter.add_limit(Limit::new(
                    family,
                    rule.max,
                    rule.window_secs,
                    Vec::new(),
                    Expression::parse(SUBJECT_VAR)
                        .into_iter()
                        .collect::<Vec<_>>(),
                ));
            }
        }
    }
    let ctx: Context = HashMap::from([(SUBJECT_VAR.to_owned(), rule.subject.clone())]).into();
    // The in-memory storage cannot fail; an error would mean a bug in the
    // limit definition above, and is answered as "not limited".
    match m
        .limiter
        .check_rate_limited_and_update(&Namespace::from(family), &ctx, hits)
    {
        Ok(result) => {
            let (remaining, reset) = result
                .counters
                .first()
                .map(|c| {
                    (
                        c.remaining().unwrap_or(0),
                        c.expires_in().unwrap_or(window).min(window),
                    )
                })
                .unwrap_or((rule.max, window));
            Outcome {
                limited: result.limited,
                remaining,
                reset,
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "In-memory counter error");
            Outcome {
                limited: false,
                remaining: rule.max,
                reset: window,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::{RuleKind, Unit};

    fn rule(subject: &str, max: u64) -> Rule {
        Rule {
            kind: RuleKind::Client,
            policy: "client".to_owned(),
            path: "client_id".to_owned(),
            subject: subject.to_owned(),
            max,
            unit: Unit::Minute,
            window_secs: 60,
            shadow: false,
            unlimited: false,
            detailed: None,
            name: None,
            replaces: Vec::new(),
        }
    }

    #[tokio::test]
    async fn memory_counters_admit_max_hits_then_refuse() {
        let c = Counters::memory("t", 1000, Duration::from_millis(100));
        for left in (0..3).rev() {
            let o = c.hit("d", &rule("a", 3), 1).await.unwrap();
            assert!(!o.limited);
            assert_eq!(o.remaining, left);
            assert!(o.reset <= Duration::from_secs(60) && o.reset > Duration::from_secs(50));
        }
        let o = c.hit("d", &rule("a", 3), 1).await.unwrap();
        assert!(o.limited);
        assert_eq!(o.remaining, 0);
    }

    #[tokio::test]
    async fn different_domains_do_not_share_counters() {
        let c = Counters::memory("t", 1000, Duration::from_millis(100));
        assert!(!c.hit("d1", &rule("a", 1), 1).await.unwrap().limited);
        assert!(!c.hit("d2", &rule("a", 1), 1).await.unwrap().limited);
        assert!(c.hit("d1", &rule("a", 1), 1).await.unwrap().limited);
    }

    #[tokio::test]
    async fn an_unconnected_redis_store_reports_not_connected() {
        let c = Counters::redis("redis://127.0.0.1:1", "t", Duration::from_millis(50)).unwrap();
        assert_eq!(
            c.hit("d", &rule("a", 1), 1).await.unwrap_err(),
            StorageError::NotConnected
        );
        assert!(c.connect(Duration::from_millis(500)).await.is_err());
        assert!(c.needs_connection());
    }
}

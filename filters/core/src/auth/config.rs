//! Plugin configuration of the auth filter (the JSON in Envoy's
//! `configuration` / Istio's `pluginConfig`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::cache::CachePolicy;
use super::jwt::{is_valid_client_id, JwtVerifier};
use super::local_limit::LocalLimitPolicy;
use super::lockout::LockoutPolicy;
use crate::metrics::MetricsConfig;

/// The plugin configuration as written by the operator. Every field has a
/// default except the JWT secret/JWKS, so `{}` is a valid configuration
/// (API keys only, JWTs rejected).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// `false` turns authentication off (SPEC `ENABLE_AUTHENTICATION`): the
    /// filter then only removes client-supplied internal headers.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Envoy cluster of the auth service, target of the key verification call.
    #[serde(default = "default_cluster")]
    pub auth_service_cluster: String,
    /// `:authority` sent with the key verification call.
    #[serde(default = "default_authority")]
    pub auth_service_authority: String,
    /// Path of the key verification endpoint on the auth service.
    #[serde(default = "default_verify_path")]
    pub verify_path: String,
    /// Timeout of one key verification call, in milliseconds (1..=10000).
    #[serde(default = "default_verify_timeout_ms")]
    pub verify_timeout_ms: u64,
    /// Remove the credential header (`X-API-Key` or `Authorization`) before
    /// the request goes upstream.
    #[serde(default = "default_true")]
    pub strip_credential_header: bool,
    /// Paths that need no credential. An entry ending in `/*` matches exactly
    /// one further path segment made of `[A-Za-z0-9_-]`.
    #[serde(default = "default_public_paths")]
    pub public_paths: Vec<String>,
    /// Cache of API key verification answers and verified tokens.
    #[serde(default)]
    pub cache: CacheConfig,
    /// JWT verification; absent means bearer tokens are rejected.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwt: Option<JwtConfig>,
    /// Throttling of failed authentications per source address.
    #[serde(default)]
    pub brute_force: BruteForceConfig,
    /// Record the SPEC §8 request metrics and the `Slow request` log line in
    /// this filter, with the same configuration as the metrics filter
    /// (`{"slow_request_ms": 500}`). Absent: this filter records none, and a
    /// separate metrics filter does. One filter doing both saves the
    /// per-request cost of a second wasm filter.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics: Option<MetricsConfig>,
    /// Per-client token bucket of each Envoy instance, sized from the
    /// client's own per-minute limit: the backstop that holds a client near
    /// its limit while the rate-limit service is down. Absent: no bucket in
    /// this filter.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_rate_limit: Option<LocalRateLimitConfig>,
}

/// The per-client token bucket (`local_rate_limit`). A client's limit is,
/// as in the rate-limit service, its credential's own limit
/// (`rate_limit_per_minute`), else its entry in `clients`, else
/// `default_per_minute`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocalRateLimitConfig {
    /// Per-minute limit of a client whose credential carries none of its
    /// own (`RATE_LIMIT_PER_MINUTE`; 1..=1000000, default 60).
    #[serde(default = "default_per_minute")]
    pub default_per_minute: u32,
    /// Per-minute limits by client id for clients whose credentials carry
    /// none of their own (`{"big_fund": {"per_minute": 600}}`); a
    /// filter-only setting, not read from the rate-limit service's limits
    /// file. Default empty.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub clients: BTreeMap<String, ClientLimitConfig>,
}

/// One client's entry in `local_rate_limit.clients`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientLimitConfig {
    /// The client's per-minute limit (1..=1000000).
    pub per_minute: u32,
}

/// Largest per-minute limit the configuration accepts.
const MAX_PER_MINUTE: u32 = 1_000_000;

fn default_per_minute() -> u32 {
    60
}

/// Brute-force throttling knobs: an address that fails authentication
/// `max_failures` times within `window_seconds` gets 429 `RATE_LIMITED` for
/// every credential not already known good until its window ends.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BruteForceConfig {
    /// Failed authentications (bad, revoked or expired keys and tokens; not
    /// missing credentials) one source address may make per window
    /// (0..=100000; 0 turns the throttling off).
    #[serde(default = "default_max_failures")]
    pub max_failures: u32,
    /// Length of the counting window, in seconds (1..=3600).
    #[serde(default = "default_failure_window")]
    pub window_seconds: u64,
}

impl Default for BruteForceConfig {
    fn default() -> Self {
        Self {
            max_failures: default_max_failures(),
            window_seconds: default_failure_window(),
        }
    }
}

fn default_max_failures() -> u32 {
    20
}

fn default_failure_window() -> u64 {
    60
}

/// Cache policy knobs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long a verified key is trusted without asking the auth service
    /// again, in seconds (1..=60, so a revocation applies within a minute).
    #[serde(default = "default_positive_ttl")]
    pub positive_ttl_seconds: u64,
    /// How long an unknown / revoked / expired answer is remembered, in
    /// seconds (1..=60).
    #[serde(default = "default_negative_ttl")]
    pub negative_ttl_seconds: u64,
    /// How long past its TTL a cached answer may still be used while the auth
    /// service is unreachable, in seconds (0..=3600; 0 disables).
    #[serde(default = "default_stale_on_error")]
    pub stale_on_error_seconds: u64,
    /// Number of shared-data slots per cache (keys and tokens each); bounds
    /// the memory used (16..=65536).
    #[serde(default = "default_slots")]
    pub slots: u32,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            positive_ttl_seconds: default_positive_ttl(),
            negative_ttl_seconds: default_negative_ttl(),
            stale_on_error_seconds: default_stale_on_error(),
            slots: default_slots(),
        }
    }
}

/// Signature algorithm accepted for bearer tokens (exactly one: pinned).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum JwtAlgorithm {
    /// HMAC SHA-256 with the shared `secret`.
    HS256,
    /// ECDSA P-256 SHA-256 with the public keys of `jwks`.
    ES256,
}

/// JWT verification settings.
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtConfig {
    /// The only accepted `alg`.
    #[serde(default = "default_algorithm")]
    pub algorithm: JwtAlgorithm,
    /// HS256 shared secret (`JWT_SECRET_KEY`, at least 32 bytes); required
    /// for HS256, forbidden for ES256.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// ES256 public keys as a JWKS document (`{"keys":[...]}`, EC P-256 keys
    /// with a `kid`); required for ES256, forbidden for HS256.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// Required `iss` claim.
    #[serde(default = "default_issuer")]
    pub issuer: String,
    /// Required `aud` claim (a token may list several audiences).
    #[serde(default = "default_audience")]
    pub audience: String,
    /// Clock skew tolerated on `exp` and `nbf`, in seconds (0..=300).
    #[serde(default = "default_leeway")]
    pub leeway_seconds: u64,
}

impl fmt::Debug for JwtConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtConfig")
            .field("algorithm", &self.algorithm)
            .field("secret", &self.secret.as_ref().map(|_| "<redacted>"))
            .field("jwks", &self.jwks.is_some())
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish()
    }
}

fn default_true() -> bool {
    true
}
fn default_cluster() -> String {
    "auth_service".to_owned()
}
fn default_authority() -> String {
    "auth-service".to_owned()
}
fn default_verify_path() -> String {
    "/internal/v1/keys/verify".to_owned()
}
fn default_verify_timeout_ms() -> u64 {
    1000
}
fn default_public_paths() -> Vec<String> {
    [
        "/health",
        "/health/*",
        "/metrics",
        "/monitoring/metrics",
        "/docs",
        "/openapi.json",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect()
}
fn default_positive_ttl() -> u64 {
    30
}
fn default_negative_ttl() -> u64 {
    5
}
fn default_stale_on_error() -> u64 {
    300
}
fn default_slots() -> u32 {
    4096
}
fn default_algorithm() -> JwtAlgorithm {
    JwtAlgorithm::HS256
}
fn default_issuer() -> String {
    "borrow-rate-gateway".to_owned()
}
fn default_audience() -> String {
    "borrow-rate-api".to_owned()
}
fn default_leeway() -> u64 {
    30
}

/// An invalid plugin configuration, naming the field at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Dotted path of the bad field (`cache.positive_ttl_seconds`), or
    /// `configuration` when the document itself is unreadable.
    pub field: String,
    /// What is wrong with it.
    pub problem: String,
}

impl ConfigError {
    fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid auth filter configuration: field `{}`: {}",
            self.field, self.problem
        )
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration, ready to serve requests.
#[derive(Debug, Clone)]
pub struct Settings {
    /// See [`AuthConfig::enabled`].
    pub enabled: bool,
    /// See [`AuthConfig::auth_service_cluster`].
    pub auth_service_cluster: String,
    /// See [`AuthConfig::auth_service_authority`].
    pub auth_service_authority: String,
    /// See [`AuthConfig::verify_path`].
    pub verify_path: String,
    /// See [`AuthConfig::verify_timeout_ms`].
    pub verify_timeout_ms: u64,
    /// See [`AuthConfig::strip_credential_header`].
    pub strip_credential_header: bool,
    /// See [`AuthConfig::public_paths`].
    pub public_paths: Vec<String>,
    /// The cache policy derived from [`AuthConfig::cache`].
    pub cache: CachePolicy,
    /// The JWT verifier, when bearer tokens are accepted.
    pub jwt: Option<JwtVerifier>,
    /// Brute-force throttling, unless turned off.
    pub lockout: Option<LockoutPolicy>,
    /// See [`AuthConfig::metrics`].
    pub metrics: Option<MetricsConfig>,
    /// The per-client bucket from [`AuthConfig::local_rate_limit`], when
    /// configured.
    pub local_rate_limit: Option<LocalLimitPolicy>,
}

impl Settings {
    /// Parses and validates the plugin configuration. An empty document
    /// means all defaults.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ConfigError> {
        let trimmed = bytes
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|start| &bytes[start..])
            .unwrap_or(&[]);
        let config: AuthConfig = if trimmed.is_empty() {
            parse_json(b"{}")?
        } else {
            parse_json(trimmed)?
        };
        Self::from_config(config)
    }

    /// Validates an already parsed configuration.
    pub fn from_config(config: AuthConfig) -> Result<Self, ConfigError> {
        if config.auth_service_cluster.trim().is_empty() {
            return Err(ConfigError::new(
                "auth_service_cluster",
                "must not be empty",
            ));
        }
        if config.auth_service_authority.trim().is_empty() {
            return Err(ConfigError::new(
                "auth_service_authority",
                "must not be empty",
            ));
        }
        if !config.verify_path.starts_with('/') {
            return Err(ConfigError::new("verify_path", "must start with `/`"));
        }
        if !(1..=10_000).contains(&config.verify_timeout_ms) {
            return Err(ConfigError::new(
                "verify_timeout_ms",
                "must be between 1 and 10000",
            ));
        }
        for (i, path) in config.public_paths.iter().enumerate() {
            let field = format!("public_paths[{i}]");
            if !path.starts_with('/') {
                return Err(ConfigError::new(field, "must start with `/`"));
            }
            if path.contains('?') || path.contains('#') {
                return Err(ConfigError::new(field, "must not contain `?` or `#`"));
            }
            if path.contains('*') && !(path.ends_with("/*") && path.matches('*').count() == 1) {
                return Err(ConfigError::new(
                    field,
                    "a wildcard is only allowed as a final `/*` segment",
                ));
            }
        }
        let cache = &config.cache;
        if !(1..=60).contains(&cache.positive_ttl_seconds) {
            return Err(ConfigError::new(
                "cache.positive_ttl_seconds",
                "must be between 1 and 60 (revocations must apply within a minute)",
            ));
        }
        if !(1..=60).contains(&cache.negative_ttl_seconds) {
            return Err(ConfigError::new(
                "cache.negative_ttl_seconds",
                "must be between 1 and 60",
            ));
        }
        if cache.stale_on_error_seconds > 3600 {
            return Err(ConfigError::new(
                "cache.stale_on_error_seconds",
                "must be between 0 and 3600",
            ));
        }
        if !(16..=65_536).contains(&cache.slots) {
            return Err(ConfigError::new(
                "cache.slots",
                "must be between 16 and 65536",
            ));
        }
        let policy = CachePolicy {
            positive_ttl_ms: cache.positive_ttl_seconds * 1000,
            negative_ttl_ms: cache.negative_ttl_seconds * 1000,
            stale_on_error_ms: cache.stale_on_error_seconds * 1000,
            slots: cache.slots,
        };
        let brute_force = &config.brute_force;
        if brute_force.max_failures > 100_000 {
            return Err(ConfigError::new(
                "brute_force.max_failures",
                "must be between 0 and 100000",
            ));
        }
        if !(1..=3600).contains(&brute_force.window_seconds) {
            return Err(ConfigError::new(
                "brute_force.window_seconds",
                "must be between 1 and 3600",
            ));
        }
        let lockout = (brute_force.max_failures > 0).then_some(LockoutPolicy {
            max_failures: brute_force.max_failures,
            window_ms: brute_force.window_seconds * 1000,
            slots: cache.slots,
        });
        let jwt = match config.jwt {
            Some(jwt) => Some(JwtVerifier::from_config(&jwt)?),
            None => None,
        };
        if let Some((field, problem)) = config.metrics.as_ref().and_then(|m| m.invalid_field()) {
            return Err(ConfigError::new(format!("metrics.{field}"), problem));
        }
        let local_rate_limit = match &config.local_rate_limit {
            Some(local) => Some(local_limit_policy(local)?),
            None => None,
        };
        Ok(Self {
            enabled: config.enabled,
            auth_service_cluster: config.auth_service_cluster,
            auth_service_authority: config.auth_service_authority,
            verify_path: config.verify_path,
            verify_timeout_ms: config.verify_timeout_ms,
            strip_credential_header: config.strip_credential_header,
            public_paths: config.public_paths,
            cache: policy,
            jwt,
            lockout,
            metrics: config.metrics,
            local_rate_limit,
        })
    }

    /// Whether `path` (query string allowed) needs no credential.
    pub fn is_public_path(&self, path: &str) -> bool {
        let path = path.split(['?', '#']).next().unwrap_or("");
        self.public_paths
            .iter()
            .any(|pattern| match pattern.strip_suffix('*') {
                Some(prefix) => path.strip_prefix(prefix).is_some_and(|segment| {
                    !segment.is_empty()
                        && segment
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                }),
                None => path == pattern,
            })
    }
}

fn local_limit_policy(config: &LocalRateLimitConfig) -> Result<LocalLimitPolicy, ConfigError> {
    let in_range = |limit: u32| (1..=MAX_PER_MINUTE).contains(&limit);
    if !in_range(config.default_per_minute) {
        return Err(ConfigError::new(
            "local_rate_limit.default_per_minute",
            "must be between 1 and 1000000",
        ));
    }
    let mut clients = std::collections::HashMap::with_capacity(config.clients.len());
    for (client_id, entry) in &config.clients {
        if !is_valid_client_id(client_id) {
            return Err(ConfigError::new(
                "local_rate_limit.clients",
                "every key must be a client id (1 to 64 characters of [A-Za-z0-9_-])",
            ));
        }
        if !in_range(entry.per_minute) {
            return Err(ConfigError::new(
                format!("local_rate_limit.clients.{client_id}.per_minute"),
                "must be between 1 and 1000000",
            ));
        }
        clients.insert(client_id.clone(), entry.per_minute);
    }
    Ok(LocalLimitPolicy {
        default_per_minute: config.default_per_minute,
        clients,
    })
}

fn parse_json(bytes: &[u8]) -> Result<AuthConfig, ConfigError> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let parsed: Result<AuthConfig, _> = serde_path_to_error::deserialize(&mut de);
    match parsed {
        Ok(config) => match de.end() {
            Ok(()) => Ok(config),
            Err(err) => Err(ConfigError::new("configuration", err.to_string())),
        },
        Err(err) => {
            let path = err.path().to_string();
            let inner = err.into_inner();
            let message = inner.to_string();
            // `unknown field` and `missing field` errors carry the field in
            // the message; the path names its parent.
            let field = if path == "." || path.is_empty() {
                "configuration".to_owned()
            } else {
                path
            };
            Err(ConfigError::new(field, message))
        }
    }
}

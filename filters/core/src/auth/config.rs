//! Plugin configuration of the auth filter (the JSON in Envoy's
//! `configuration` / Istio's `pluginConfig`).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

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
    /// one further path segment made of `[A-Za-z0-9_-]`. Default: the
    /// endpoint table's public routes ([`crate::endpoint::public_paths`]).
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
pub(crate) const MAX_PER_MINUTE: u32 = 1_000_000;

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
    crate::endpoint::public_paths()
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
    pub(crate) fn new(field: impl Into<String>, problem: impl Into<String>) -> Self {
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

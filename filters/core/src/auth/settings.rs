//! The validated auth configuration ([`Settings`]): the operator's
//! [`AuthConfig`] checked field by field and turned into the policies the
//! request path uses (cache, JWT verifier, throttling, per-client bucket).

use pricing::ClientId;

use super::cache::CachePolicy;
use super::config::{AuthConfig, ConfigError, LocalRateLimitConfig, MAX_PER_MINUTE};
use super::jwt::JwtVerifier;
use super::local_limit::LocalLimitPolicy;
use super::lockout::LockoutPolicy;
use crate::metrics::MetricsConfig;

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
            .any(|pattern| crate::endpoint::path_matches(pattern, path))
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
        if !ClientId::is_valid(client_id) {
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

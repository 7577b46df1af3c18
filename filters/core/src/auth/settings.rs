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
        in_range("verify_timeout_ms", config.verify_timeout_ms, 1..=10_000)?;
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
        in_range(
            "cache.negative_ttl_seconds",
            cache.negative_ttl_seconds,
            1..=60,
        )?;
        in_range(
            "cache.stale_on_error_seconds",
            cache.stale_on_error_seconds,
            0..=3600,
        )?;
        in_range("cache.slots", cache.slots, 16..=65_536)?;
        let policy = CachePolicy {
            positive_ttl_ms: cache.positive_ttl_seconds * 1000,
            negative_ttl_ms: cache.negative_ttl_seconds * 1000,
            stale_on_error_ms: cache.stale_on_error_seconds * 1000,
            slots: cache.slots,
        };
        let brute_force = &config.brute_force;
        in_range(
            "brute_force.max_failures",
            brute_force.max_failures,
            0..=100_000,
        )?;
        in_range(
            "brute_force.window_seconds",
            brute_force.window_seconds,
            1..=3600,
        )?;
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
    let per_minute = 1..=MAX_PER_MINUTE;
    in_range(
        "local_rate_limit.default_per_minute",
        config.default_per_minute,
        per_minute.clone(),
    )?;
    let mut clients = std::collections::HashMap::with_capacity(config.clients.len());
    for (client_id, entry) in &config.clients {
        if !ClientId::is_valid(client_id) {
            return Err(ConfigError::new(
                "local_rate_limit.clients",
                "every key must be a client id (1 to 64 characters of [A-Za-z0-9_-])",
            ));
        }
        in_range(
            format!("local_rate_limit.clients.{client_id}.per_minute"),
            entry.per_minute,
            per_minute.clone(),
        )?;
        clients.insert(client_id.clone(), entry.per_minute);
    }
    Ok(LocalLimitPolicy {
        default_per_minute: config.default_per_minute,
        clients,
    })
}

/// `value` of `field` within `range`, else the error "must be between
/// {start} and {end}".
fn in_range<T: PartialOrd + std::fmt::Display>(
    field: impl Into<String>,
    value: T,
    range: std::ops::RangeInclusive<T>,
) -> Result<(), ConfigError> {
    if range.contains(&value) {
        Ok(())
    } else {
        Err(ConfigError::new(
            field,
            format!("must be between {} and {}", range.start(), range.end()),
        ))
    }
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

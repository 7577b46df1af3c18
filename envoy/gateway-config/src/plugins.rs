//! The wasm filters' plugin configurations, as the filters' own config
//! types (filters/core): what Envoy hands to `on_configure` here is what
//! the filters deserialise, field for field, in every shape and in Istio.

use filter_core::auth::{
    AuthConfig, BruteForceConfig, CacheConfig, JwtAlgorithm, JwtConfig, LocalRateLimitConfig,
    Settings as AuthSettings,
};
use filter_core::metrics::MetricsConfig;
use filter_core::validation::ValidationConfig;
use serde::Serialize;

use crate::settings::{Error, Settings};

/// The docs page's own files (Swagger UI), public like the page itself:
/// backends/ops-service/src/docs_page.rs (ASSETS). Exact paths, because a
/// `/*` public path only matches a segment without dots.
pub const DOCS_PAGE_PATHS: [&str; 8] = [
    "/docs/",
    "/docs/swagger-ui.css",
    "/docs/index.css",
    "/docs/swagger-ui-bundle.js",
    "/docs/swagger-ui-standalone-preset.js",
    "/docs/swagger-initializer.js",
    "/docs/favicon-32x32.png",
    "/docs/favicon-16x16.png",
];

/// Path of the key verification endpoint on the auth service.
pub const VERIFY_PATH: &str = "/internal/v1/keys/verify";
/// Timeout of one key verification call.
pub const VERIFY_TIMEOUT_MS: u64 = 500;

/// Where the auth filter finds the auth service, and how it verifies
/// bearer tokens: what differs between Envoy shapes and Istio.
pub struct AuthTarget {
    pub cluster: String,
    pub authority: String,
    pub jwt: JwtConfig,
    /// The request metrics recorded by the auth filter itself (no separate
    /// metrics filter), or `None` when a metrics filter does it.
    pub metrics: Option<MetricsConfig>,
    /// `RATE_LIMIT_PER_MINUTE` of the per-instance bucket, or `None` for no
    /// bucket.
    pub local_rate_limit_per_minute: Option<u32>,
}

/// The auth filter's configuration. Cache TTLs keep their defaults (30 s
/// positive, so a revocation applies within a minute).
pub fn auth(target: AuthTarget) -> AuthConfig {
    AuthConfig {
        enabled: true,
        auth_service_cluster: target.cluster,
        auth_service_authority: target.authority,
        verify_path: VERIFY_PATH.to_owned(),
        verify_timeout_ms: VERIFY_TIMEOUT_MS,
        strip_credential_header: true,
        // The endpoint table's public routes, and the docs page's files.
        public_paths: filter_core::endpoint::public_paths()
            .into_iter()
            .chain(DOCS_PAGE_PATHS.iter().map(|p| (*p).to_owned()))
            .collect(),
        cache: CacheConfig::default(),
        jwt: Some(target.jwt),
        brute_force: BruteForceConfig::default(),
        metrics: target.metrics,
        // The per-instance backstop of the global limit: a token bucket per
        // client sized from the key's own limit (docs/rate-limiting.md).
        local_rate_limit: target
            .local_rate_limit_per_minute
            .map(|default_per_minute| LocalRateLimitConfig {
                default_per_minute,
                clients: Default::default(),
            }),
    }
}

/// The auth filter of the local and compose shapes: the `auth_service`
/// cluster, HS256 with JWT_SECRET_KEY, and the request metrics recorded by
/// the auth filter itself (one wasm filter fewer per request).
pub fn gateway_auth(s: &Settings) -> AuthConfig {
    auth(AuthTarget {
        cluster: "auth_service".to_owned(),
        authority: "auth-service".to_owned(),
        jwt: JwtConfig {
            algorithm: JwtAlgorithm::HS256,
            secret: Some(s.jwt_secret.clone()),
            jwks: None,
            issuer: s.jwt_issuer.clone(),
            audience: s.jwt_audience.clone(),
            leeway_seconds: 30,
        },
        metrics: Some(metrics(s)),
        local_rate_limit_per_minute: s.rate_limiting.then_some(s.rate_limit_per_minute),
    })
}

/// The validation filter's configuration (SPEC §4 body bound).
pub fn validation() -> ValidationConfig {
    ValidationConfig::default()
}

/// The metrics filter's configuration (SLOW_REQUEST_MS).
pub fn metrics(s: &Settings) -> MetricsConfig {
    MetricsConfig {
        slow_request_ms: s.slow_request_ms,
    }
}

/// A plugin configuration as the JSON text Envoy passes to the filter.
pub fn to_json<T: Serialize>(config: &T) -> Result<String, Error> {
    serde_json::to_string(config).map_err(|e| Error(format!("plugin configuration: {e}")))
}

/// Checks an auth configuration the way the filter will on start.
pub fn check_auth(config: &AuthConfig) -> Result<(), Error> {
    AuthSettings::from_config(config.clone())
        .map(|_| ())
        .map_err(|e| Error(e.to_string()))
}

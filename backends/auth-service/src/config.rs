//! Auth service configuration from the environment (SPEC §9 plus the JWT
//! signing options).

use std::time::Duration;

/// Default listen address (docs/architecture.md).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8083";

/// Shortest accepted HS256 secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// How tokens are signed.
#[derive(Clone)]
pub enum Signing {
    /// HS256 with the shared `JWT_SECRET_KEY` (the gateway filter holds the
    /// same secret).
    Hs256 {
        /// The shared secret.
        secret: String,
    },
    /// ES256 with a private key; the public half is served at
    /// `/.well-known/jwks.json`.
    Es256 {
        /// PKCS#8 PEM of the P-256 private key.
        private_key_pem: String,
        /// `kid` to put in token headers and the JWKS; the RFC 7638
        /// thumbprint of the key when `None`.
        key_id: Option<String>,
    },
}

impl std::fmt::Debug for Signing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Hs256 { .. } => f.write_str("Hs256 { secret: <redacted> }"),
            Self::Es256 { key_id, .. } => write!(f, "Es256 {{ key_id: {key_id:?} }}"),
        }
    }
}

/// Everything the auth service needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`LISTEN_ADDR`, default 127.0.0.1:8083) and database
    /// settings (`DATABASE_URL`, ...), shared with the other backends.
    pub service: services::Config,
    /// Token signing (`JWT_ALGORITHM` = `HS256` with `JWT_SECRET_KEY`, or
    /// `ES256` with `JWT_ES256_PRIVATE_KEY_FILE` and optional
    /// `JWT_ES256_KEY_ID`).
    pub signing: Signing,
    /// `iss` of issued tokens (`JWT_ISSUER`, default `borrow-rate-gateway`).
    pub issuer: String,
    /// `aud` of issued tokens (`JWT_AUDIENCE`, default `borrow-rate-api`).
    pub audience: String,
    /// Token lifetime (`JWT_TTL_SECONDS`, 60..=3600, default 900).
    pub token_ttl: Duration,
    /// Shortest time between two writes of a key's `last_used_at` (60 s;
    /// tests shorten it).
    pub key_use_interval: Duration,
}

impl Config {
    /// HS256 defaults around a service config and a secret.
    pub fn hs256(service: services::Config, secret: impl Into<String>) -> Self {
        Self {
            service,
            signing: Signing::Hs256 {
                secret: secret.into(),
            },
            issuer: "borrow-rate-gateway".to_owned(),
            audience: "borrow-rate-api".to_owned(),
            token_ttl: Duration::from_secs(900),
            key_use_interval: crate::usage::DEFAULT_KEY_USE_INTERVAL,
        }
    }

    /// Reads the environment. The error names the offending variable.
    pub fn from_env() -> Result<Self, String> {
        let service = services::Config::from_env(DEFAULT_LISTEN)?;
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let algorithm = var("JWT_ALGORITHM").unwrap_or_else(|| "HS256".to_owned());
        let signing = match algorithm.to_ascii_uppercase().as_str() {
            "HS256" => Signing::Hs256 {
                secret: var("JWT_SECRET_KEY").ok_or("JWT_SECRET_KEY: must be set for HS256")?,
            },
            "ES256" => {
                let path = var("JWT_ES256_PRIVATE_KEY_FILE")
                    .ok_or("JWT_ES256_PRIVATE_KEY_FILE: must be set for ES256")?;
                let private_key_pem = std::fs::read_to_string(&path)
                    .map_err(|e| format!("JWT_ES256_PRIVATE_KEY_FILE: cannot read {path}: {e}"))?;
                Signing::Es256 {
                    private_key_pem,
                    key_id: var("JWT_ES256_KEY_ID"),
                }
            }
            other => return Err(format!("JWT_ALGORITHM: {other:?} is not HS256 or ES256")),
        };
        let ttl = match var("JWT_TTL_SECONDS") {
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|s| (60..=3600).contains(s))
                .ok_or_else(|| format!("JWT_TTL_SECONDS: {v:?} is not between 60 and 3600"))?,
            None => 900,
        };
        let mut config = Self::hs256(service, String::new());
        config.signing = signing;
        if let Some(iss) = var("JWT_ISSUER") {
            config.issuer = iss;
        }
        if let Some(aud) = var("JWT_AUDIENCE") {
            config.audience = aud;
        }
        config.token_ttl = Duration::from_secs(ttl);
        Ok(config)
    }
}

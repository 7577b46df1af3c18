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

/// The auth service's variables: the pricing services' ones (listen
/// address, database, logging, shutdown) and the JWT signing options.
#[derive(Debug, Clone, clap::Parser)]
#[command(version, about = "The borrow-rate gateway's auth service")]
pub struct Args {
    #[command(flatten)]
    pub service: services::config::Args,
    /// `HS256` (shared secret) or `ES256` (private key, public JWKS).
    #[arg(long, env = "JWT_ALGORITHM", value_name = "ALG",
          default_value = "HS256", value_parser = algorithm)]
    pub jwt_algorithm: String,
    /// The HS256 secret (at least 32 bytes), shared with the gateway.
    #[arg(
        long,
        env = "JWT_SECRET_KEY",
        value_name = "SECRET",
        hide_env_values = true
    )]
    pub jwt_secret_key: Option<String>,
    /// PKCS#8 PEM file of the ES256 private key.
    #[arg(long, env = "JWT_ES256_PRIVATE_KEY_FILE", value_name = "FILE")]
    pub jwt_es256_private_key_file: Option<String>,
    /// `kid` of ES256 tokens; the key's RFC 7638 thumbprint when unset.
    #[arg(long, env = "JWT_ES256_KEY_ID", value_name = "KID")]
    pub jwt_es256_key_id: Option<String>,
    /// `iss` of issued tokens.
    #[arg(
        long,
        env = "JWT_ISSUER",
        value_name = "ISS",
        default_value = "borrow-rate-gateway"
    )]
    pub jwt_issuer: String,
    /// `aud` of issued tokens.
    #[arg(
        long,
        env = "JWT_AUDIENCE",
        value_name = "AUD",
        default_value = "borrow-rate-api"
    )]
    pub jwt_audience: String,
    /// Token lifetime in seconds.
    #[arg(long, env = "JWT_TTL_SECONDS", value_name = "SECONDS",
          default_value = "900", value_parser = service_http::config::between(60, 3600))]
    pub jwt_ttl_seconds: u64,
}

fn algorithm(v: &str) -> Result<String, String> {
    match v.to_ascii_uppercase().as_str() {
        a @ ("HS256" | "ES256") => Ok(a.to_owned()),
        _ => Err("is not HS256 or ES256".to_owned()),
    }
}

/// `Args::config_from_env()` reads the configuration from the environment;
/// the error names the offending variable.
impl service_http::config::ServiceArgs for Args {
    type Config = Config;

    /// The [`Config`] these values mean: the ES256 key file is read here.
    fn into_config(self) -> Result<Config, String> {
        let service = self.service.into_config(DEFAULT_LISTEN)?;
        let signing = if self.jwt_algorithm == "ES256" {
            let path = self
                .jwt_es256_private_key_file
                .ok_or("JWT_ES256_PRIVATE_KEY_FILE: must be set for ES256")?;
            let private_key_pem = std::fs::read_to_string(&path)
                .map_err(|e| format!("JWT_ES256_PRIVATE_KEY_FILE: cannot read {path}: {e}"))?;
            Signing::Es256 {
                private_key_pem,
                key_id: self.jwt_es256_key_id,
            }
        } else {
            Signing::Hs256 {
                secret: self
                    .jwt_secret_key
                    .ok_or("JWT_SECRET_KEY: must be set for HS256")?,
            }
        };
        let mut config = Config::hs256(service, String::new());
        config.signing = signing;
        config.issuer = self.jwt_issuer;
        config.audience = self.jwt_audience;
        config.token_ttl = Duration::from_secs(self.jwt_ttl_seconds);
        Ok(config)
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
}

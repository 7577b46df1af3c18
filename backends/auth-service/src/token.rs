//! JWT issuing (SPEC §3 claims) and the public JWKS.

use std::time::{SystemTime, UNIX_EPOCH};

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde::Serialize;

use crate::config::{Config, Signing, MIN_SECRET_BYTES};

/// Claims of an issued token.
#[derive(Debug, Clone, Serialize)]
pub struct Claims {
    /// Client id.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience.
    pub aud: String,
    /// Issued at (unix seconds).
    pub iat: u64,
    /// Expiry (unix seconds).
    pub exp: u64,
    /// Space-separated scopes.
    pub scope: String,
    /// The key's own per-minute limit, carried so the gateway can apply it
    /// to token requests too.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit_per_minute: Option<u32>,
    /// Public id of the API key the token was exchanged for: the gateway
    /// accepts the token only while that key is active.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

/// Signs tokens with the configured key.
pub struct TokenIssuer {
    key: EncodingKey,
    header: Header,
    jwks: Option<serde_json::Value>,
    issuer: String,
    audience: String,
    ttl_seconds: u64,
}

impl std::fmt::Debug for TokenIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenIssuer")
            .field("alg", &self.header.alg)
            .field("kid", &self.header.kid)
            .finish()
    }
}

impl TokenIssuer {
    /// Builds the issuer; the error names the bad setting.
    pub fn new(config: &Config) -> Result<Self, String> {
        let (key, header, jwks) = match &config.signing {
            Signing::Hs256 { secret } => {
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(format!(
                        "JWT_SECRET_KEY: must be at least {MIN_SECRET_BYTES} bytes long"
                    ));
                }
                (
                    EncodingKey::from_secret(secret.as_bytes()),
                    Header::new(Algorithm::HS256),
                    None,
                )
            }
            Signing::Es256 {
                private_key_pem,
                key_id,
            } => {
                let key = EncodingKey::from_ec_pem(private_key_pem.as_bytes()).map_err(|e| {
                    format!("JWT_ES256_PRIVATE_KEY_FILE: not a PKCS#8 P-256 private key: {e}")
                })?;
                // The kid is the key's thumbprint unless configured: the
                // rule `gatewayctl jwks` follows too (es256-jwk).
                let mut jwk = es256_jwk::public_jwk(private_key_pem)
                    .map_err(|e| format!("JWT_ES256_PRIVATE_KEY_FILE: {e}"))?;
                if let Some(kid) = key_id {
                    jwk.common.key_id = Some(kid.clone());
                }
                let kid = jwk.common.key_id.clone();
                let mut header = Header::new(Algorithm::ES256);
                header.kid = kid;
                let jwks = serde_json::json!({ "keys": [jwk] });
                (key, header, Some(jwks))
            }
        };
        Ok(Self {
            key,
            header,
            jwks,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
            ttl_seconds: config.token_ttl.as_secs(),
        })
    }

    /// Token lifetime in seconds (`expires_in`).
    pub fn ttl_seconds(&self) -> u64 {
        self.ttl_seconds
    }

    /// The JWKS to publish (ES256 only; a shared secret is never published).
    pub fn jwks(&self) -> Option<&serde_json::Value> {
        self.jwks.as_ref()
    }

    /// Signs a token for `client_id`, naming the key it was exchanged for
    /// (`key_id`) when known.
    pub fn issue(
        &self,
        client_id: &str,
        scopes: &[String],
        rate_limit_per_minute: Option<u32>,
        key_id: Option<&str>,
    ) -> Result<String, String> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|e| e.to_string())?
            .as_secs();
        let claims = Claims {
            sub: client_id.to_owned(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            iat: now,
            exp: now + self.ttl_seconds,
            scope: scopes.join(" "),
            rate_limit_per_minute,
            key_id: key_id.map(str::to_owned),
        };
        encode(&self.header, &claims, &self.key).map_err(|e| e.to_string())
    }
}

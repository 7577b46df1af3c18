//! Bearer token verification with `jsonwebtoken`.
//!
//! The algorithm is pinned by configuration, `exp`, `iss`, `aud` and `sub`
//! are required, and time checks use the host clock passed in (never the
//! system clock, which the wasm sandbox may not have).

use std::collections::HashSet;
use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm};
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use pricing::ClientId;
use serde::Deserialize;

use super::config::{ConfigError, JwtAlgorithm, JwtConfig};
use super::credential::{hex_sha256, is_valid_key_id, is_valid_scope};
use super::decision::AttemptStatus;

/// Minimum HS256 secret length in bytes (RFC 7518 §3.2: key ≥ hash size).
const MIN_SECRET_BYTES: usize = 32;

#[derive(Clone)]
enum Keys {
    Hs256(DecodingKey),
    Es256(Vec<(String, DecodingKey)>),
}

/// Verifies bearer tokens against the configured algorithm and keys.
#[derive(Clone)]
pub struct JwtVerifier {
    algorithm: Algorithm,
    keys: Keys,
    validation: Validation,
    leeway_seconds: u64,
    fingerprint: String,
}

impl fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kids: Vec<&str> = match &self.keys {
            Keys::Hs256(_) => Vec::new(),
            Keys::Es256(keys) => keys.iter().map(|(kid, _)| kid.as_str()).collect(),
        };
        f.debug_struct("JwtVerifier")
            .field("algorithm", &self.algorithm)
            .field("kids", &kids)
            .field("leeway_seconds", &self.leeway_seconds)
            .finish()
    }
}

/// A token that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// `sub`.
    pub client_id: String,
    /// `scope`, split on spaces.
    pub scopes: Vec<String>,
    /// Optional `rate_limit_per_minute` claim (the key's own limit).
    pub rate_limit_per_minute: Option<u32>,
    /// `exp`, unix seconds.
    pub expires_at: u64,
    /// Optional `key_id` claim: the public id of the API key the token was
    /// issued for. A token carrying it is accepted only while that key is
    /// active (checked against the auth service like a key, and cached).
    pub key_id: Option<String>,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwtError {
    /// Not three base64url JSON parts, or an unknown `alg` (including `none`).
    Malformed,
    /// `alg` is not the pinned algorithm.
    AlgorithmNotAllowed,
    /// ES256 token without a `kid`.
    MissingKid,
    /// `kid` not in the configured JWKS.
    UnknownKid,
    /// Signature does not verify.
    BadSignature,
    /// A required claim is missing or not of the right type (`exp` as a
    /// string, ...).
    InvalidClaims,
    /// `iss` differs from the configured issuer.
    WrongIssuer,
    /// `aud` does not contain the configured audience.
    WrongAudience,
    /// `nbf` is in the future.
    NotYetValid,
    /// `exp` is in the past (beyond the leeway). The subject is known since
    /// the signature verified.
    Expired {
        /// `sub` of the expired token.
        client_id: String,
    },
}

impl JwtError {
    /// The metric status of the refusal.
    pub fn status(&self) -> AttemptStatus {
        match self {
            JwtError::Expired { .. } => AttemptStatus::ExpiredToken,
            _ => AttemptStatus::InvalidToken,
        }
    }

    /// Short machine reason for the log line.
    pub fn detail(&self) -> &'static str {
        match self {
            JwtError::Malformed => "malformed_token",
            JwtError::AlgorithmNotAllowed => "algorithm_not_allowed",
            JwtError::MissingKid => "missing_kid",
            JwtError::UnknownKid => "unknown_kid",
            JwtError::BadSignature => "bad_signature",
            JwtError::InvalidClaims => "invalid_claims",
            JwtError::WrongIssuer => "wrong_issuer",
            JwtError::WrongAudience => "wrong_audience",
            JwtError::NotYetValid => "not_yet_valid",
            JwtError::Expired { .. } => "expired",
        }
    }
}

#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    nbf: Option<u64>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    key_id: Option<String>,
}

impl JwtVerifier {
    /// Builds the verifier, validating secret / JWKS.
    pub fn from_config(config: &JwtConfig) -> Result<Self, ConfigError> {
        let err = |field: &str, problem: &str| ConfigError {
            field: format!("jwt.{field}"),
            problem: problem.to_owned(),
        };
        if config.issuer.is_empty() {
            return Err(err("issuer", "must not be empty"));
        }
        if config.audience.is_empty() {
            return Err(err("audience", "must not be empty"));
        }
        if config.leeway_seconds > 300 {
            return Err(err("leeway_seconds", "must be between 0 and 300"));
        }
        let (algorithm, keys) = match config.algorithm {
            JwtAlgorithm::HS256 => {
                if config.jwks.is_some() {
                    return Err(err("jwks", "must not be set when algorithm is HS256"));
                }
                let Some(secret) = &config.secret else {
                    return Err(err("secret", "is required when algorithm is HS256"));
                };
                if secret.len() < MIN_SECRET_BYTES {
                    return Err(err("secret", "must be at least 32 bytes long"));
                }
                (
                    Algorithm::HS256,
                    Keys::Hs256(DecodingKey::from_secret(secret.as_bytes())),
                )
            }
            JwtAlgorithm::ES256 => {
                if config.secret.is_some() {
                    return Err(err("secret", "must not be set when algorithm is ES256"));
                }
                let Some(jwks) = &config.jwks else {
                    return Err(err("jwks", "is required when algorithm is ES256"));
                };
                (Algorithm::ES256, Keys::Es256(parse_jwks(jwks)?))
            }
        };
        let mut validation = Validation::new(algorithm);
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = true;
        validation.leeway = 0;
        validation.required_spec_claims = ["exp", "iss", "aud", "sub"]
            .iter()
            .map(|c| (*c).to_owned())
            .collect::<HashSet<_>>();
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[config.audience.as_str()]);
        let material = format!(
            "{:?}|{}|{}|{}|{}|{}",
            algorithm,
            config.secret.as_deref().unwrap_or(""),
            config
                .jwks
                .as_ref()
                .map(|j| j.to_string())
                .unwrap_or_default(),
            config.issuer,
            config.audience,
            config.leeway_seconds
        );
        let mut fingerprint = hex_sha256(material.as_bytes());
        fingerprint.truncate(12);
        Ok(Self {
            algorithm,
            keys,
            validation,
            leeway_seconds: config.leeway_seconds,
            fingerprint,
        })
    }

    /// Short digest of the verification settings: cached verdicts are kept
    /// under it so a changed secret or key set never reuses them.
    pub fn fingerprint(&self) -> &str {
        &self.fingerprint
    }

    /// Clock skew tolerated on `exp` / `nbf`, seconds.
    pub fn leeway_seconds(&self) -> u64 {
        self.leeway_seconds
    }

    /// Verifies `token` at `now` (unix seconds).
    pub fn verify(&self, token: &str, now: u64) -> Result<VerifiedToken, JwtError> {
        let header = decode_header(token).map_err(|_| JwtError::Malformed)?;
        if header.alg != self.algorithm {
            return Err(JwtError::AlgorithmNotAllowed);
        }
        let key = match &self.keys {
            // One shared secret has no key ids: any `kid` is unknown.
            Keys::Hs256(key) => match header.kid {
                Some(_) => return Err(JwtError::UnknownKid),
                None => key,
            },
            Keys::Es256(keys) => {
                let kid = header.kid.as_deref().ok_or(JwtError::MissingKid)?;
                keys.iter()
                    .find(|(k, _)| k == kid)
                    .map(|(_, key)| key)
                    .ok_or(JwtError::UnknownKid)?
            }
        };
        let data = decode::<Claims>(token, key, &self.validation).map_err(|e| match e.kind() {
            ErrorKind::InvalidSignature => JwtError::BadSignature,
            ErrorKind::InvalidAlgorithm | ErrorKind::InvalidKeyFormat => {
                JwtError::AlgorithmNotAllowed
            }
            ErrorKind::InvalidIssuer => JwtError::WrongIssuer,
            ErrorKind::InvalidAudience => JwtError::WrongAudience,
            ErrorKind::MissingRequiredClaim(_)
            | ErrorKind::InvalidClaimFormat(_)
            | ErrorKind::InvalidSubject => JwtError::InvalidClaims,
            // A payload that does not fit the claims (e.g. `exp` as a
            // string) surfaces as a JSON error after the signature verified.
            ErrorKind::Json(_) => JwtError::InvalidClaims,
            _ => JwtError::Malformed,
        })?;
        let claims = data.claims;
        if !ClientId::is_valid(&claims.sub) {
            return Err(JwtError::InvalidClaims);
        }
        let scopes: Vec<String> = claims
            .scope
            .as_deref()
            .unwrap_or("")
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if !scopes.iter().all(|s| is_valid_scope(s)) {
            return Err(JwtError::InvalidClaims);
        }
        if claims
            .key_id
            .as_deref()
            .is_some_and(|id| !is_valid_key_id(id))
        {
            return Err(JwtError::InvalidClaims);
        }
        if let Some(nbf) = claims.nbf {
            if nbf > now.saturating_add(self.leeway_seconds) {
                return Err(JwtError::NotYetValid);
            }
        }
        if claims.exp.saturating_add(self.leeway_seconds) < now {
            return Err(JwtError::Expired {
                client_id: claims.sub,
            });
        }
        Ok(VerifiedToken {
            client_id: claims.sub,
            scopes,
            rate_limit_per_minute: claims.rate_limit_per_minute,
            expires_at: claims.exp,
            key_id: claims.key_id,
        })
    }
}

fn parse_jwks(jwks: &serde_json::Value) -> Result<Vec<(String, DecodingKey)>, ConfigError> {
    let err = |field: String, problem: &str| ConfigError {
        field,
        problem: problem.to_owned(),
    };
    let Some(keys) = jwks.get("keys").and_then(serde_json::Value::as_array) else {
        return Err(err("jwt.jwks.keys".into(), "must be an array of JWKs"));
    };
    if keys.is_empty() {
        return Err(err("jwt.jwks.keys".into(), "must hold at least one key"));
    }
    let mut out: Vec<(String, DecodingKey)> = Vec::with_capacity(keys.len());
    for (i, raw) in keys.iter().enumerate() {
        let field = |name: &str| format!("jwt.jwks.keys[{i}]{name}");
        let jwk: Jwk = serde_json::from_value(raw.clone())
            .map_err(|e| err(field(""), &format!("is not a valid JWK: {e}")))?;
        let Some(kid) = jwk.common.key_id.clone().filter(|k| !k.is_empty()) else {
            return Err(err(field(".kid"), "is required"));
        };
        if out.iter().any(|(k, _)| *k == kid) {
            return Err(err(field(".kid"), "is not unique"));
        }
        if let Some(alg) = jwk.common.key_algorithm {
            if alg != KeyAlgorithm::ES256 {
                return Err(err(field(".alg"), "must be ES256"));
            }
        }
        let AlgorithmParameters::EllipticCurve(params) = &jwk.algorithm else {
            return Err(err(field(".kty"), "must be EC"));
        };
        if params.curve != EllipticCurve::P256 {
            return Err(err(field(".crv"), "must be P-256"));
        }
        for (name, coord) in [(".x", &params.x), (".y", &params.y)] {
            let ok = URL_SAFE_NO_PAD
                .decode(coord.as_bytes())
                .is_ok_and(|bytes| bytes.len() == 32);
            if !ok {
                return Err(err(field(name), "must be 32 bytes in base64url"));
            }
        }
        let key = DecodingKey::from_jwk(&jwk)
            .map_err(|e| err(field(""), &format!("is not a usable key: {e}")))?;
        out.push((kid, key));
    }
    Ok(out)
}

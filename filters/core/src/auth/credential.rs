//! Credential extraction and API key hashing.

use pricing::ClientId;
use sha2::{Digest, Sha256};

/// Header carrying an API key.
pub const API_KEY_HEADER: &str = "x-api-key";
/// Header carrying a bearer token.
pub const AUTHORIZATION_HEADER: &str = "authorization";

/// Prefix of every API key (secret scanners match `brl_[A-Za-z0-9]{40}`).
const KEY_PREFIX: &str = "brl_";
/// Number of base62 characters after the prefix.
const KEY_BODY_LEN: usize = 40;

/// The credential a request presents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Credential<'a> {
    /// `X-API-Key: <key>` (takes precedence over a bearer token).
    ApiKey(&'a str),
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// Neither header carries a usable credential.
    Missing,
}

impl Credential<'_> {
    /// The header the credential came from.
    pub fn header(&self) -> Option<&'static str> {
        match self {
            Credential::ApiKey(_) => Some(API_KEY_HEADER),
            Credential::Bearer(_) => Some(AUTHORIZATION_HEADER),
            Credential::Missing => None,
        }
    }
}

/// Picks the credential from the `X-API-Key` and `Authorization` header
/// values. An `Authorization` header with another scheme, or an empty
/// value, counts as missing.
pub fn extract_credential<'a>(
    api_key: Option<&'a str>,
    authorization: Option<&'a str>,
) -> Credential<'a> {
    if let Some(key) = api_key.map(str::trim).filter(|k| !k.is_empty()) {
        return Credential::ApiKey(key);
    }
    if let Some(value) = authorization.map(str::trim) {
        if let Some((scheme, token)) = value.split_once(' ') {
            let token = token.trim();
            if scheme.eq_ignore_ascii_case("bearer") && !token.is_empty() {
                return Credential::Bearer(token);
            }
        }
    }
    Credential::Missing
}

/// Whether `key` has the API key shape: `brl_` and 40 base62 characters.
pub fn is_well_formed_api_key(key: &str) -> bool {
    key.strip_prefix(KEY_PREFIX).is_some_and(|body| {
        body.len() == KEY_BODY_LEN && body.bytes().all(|b| b.is_ascii_alphanumeric())
    })
}

/// Lower-case hex SHA-256 of the whole key string: what the database stores
/// and the only form that leaves the gateway.
pub fn hash_api_key(key: &str) -> String {
    hex_sha256(key.as_bytes())
}

/// Lower-case hex SHA-256 of `bytes`.
pub(crate) fn hex_sha256(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for byte in digest {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0x0f)]));
    }
    out
}

/// An API key id safe to put in a header and a JSON string:
/// `[A-Za-z0-9_-]{1,64}` (the store makes `key_` + 16 base62 characters).
pub(crate) fn is_valid_key_id(id: &str) -> bool {
    ClientId::is_valid(id)
}

/// A scope safe to put in a header: `[A-Za-z0-9_.:-]{1,64}`.
pub(crate) fn is_valid_scope(scope: &str) -> bool {
    (1..=64).contains(&scope.len())
        && scope
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
}

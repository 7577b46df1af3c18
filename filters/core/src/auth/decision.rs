//! Outcomes of authentication and the proxy actions they translate to.

use pricing::error::{ErrorCode, ErrorEnvelope};
use serde::{Deserialize, Serialize};

use super::local_limit::ClientLimited;
use super::lockout::Throttled;

/// Headers the gateway sets for upstreams; client-supplied copies are always
/// removed.
pub const INTERNAL_HEADERS: [&str; 6] = [
    "x-client-id",
    "x-client-scopes",
    "x-auth-method",
    "x-client-rate-limit",
    "x-client-tier",
    API_KEY_ID_HEADER,
];

/// Header naming the public id of the API key behind the request (the key
/// itself, or the key a bearer token was issued for); the auth service puts
/// it in the tokens it issues, so a token stops with its key.
pub const API_KEY_ID_HEADER: &str = "x-api-key-id";

/// Scope prefix naming the client's rate-limit tier (`tier:gold`): the
/// tier reaches the rate-limit service as `x-client-tier`, so the limits
/// file can give every client of a tier its limit (docs/rate-limiting.md).
pub const TIER_SCOPE_PREFIX: &str = "tier:";

/// The tier named by the first `tier:<name>` scope, when `<name>` is 1–32
/// of `a-z`, `0-9`, `_`, `-`, `.`.
pub fn tier_of(scopes: &[String]) -> Option<&str> {
    scopes.iter().find_map(|s| {
        let name = s.strip_prefix(TIER_SCOPE_PREFIX)?;
        let ok = (1..=32).contains(&name.len())
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-.".contains(&b));
        ok.then_some(name)
    })
}

/// The `status` label of `authentication_attempts_total` (SPEC §8).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptStatus {
    /// Credential accepted.
    Success,
    /// Unknown or malformed API key.
    InvalidKey,
    /// API key past its expiry.
    ExpiredKey,
    /// API key revoked.
    RevokedKey,
    /// No credential presented.
    MissingCredentials,
    /// Bearer token rejected (signature, algorithm, claims, key id).
    InvalidToken,
    /// Bearer token past its `exp`.
    ExpiredToken,
}

impl AttemptStatus {
    /// Every status, for defining the metrics up front.
    pub const ALL: [AttemptStatus; 7] = [
        Self::Success,
        Self::InvalidKey,
        Self::ExpiredKey,
        Self::RevokedKey,
        Self::MissingCredentials,
        Self::InvalidToken,
        Self::ExpiredToken,
    ];

    /// The label value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::InvalidKey => "invalid_key",
            Self::ExpiredKey => "expired_key",
            Self::RevokedKey => "revoked_key",
            Self::MissingCredentials => "missing_credentials",
            Self::InvalidToken => "invalid_token",
            Self::ExpiredToken => "expired_token",
        }
    }

    /// Position in [`AttemptStatus::ALL`] (for metric id tables).
    pub const fn index(self) -> usize {
        match self {
            Self::Success => 0,
            Self::InvalidKey => 1,
            Self::ExpiredKey => 2,
            Self::RevokedKey => 3,
            Self::MissingCredentials => 4,
            Self::InvalidToken => 5,
            Self::ExpiredToken => 6,
        }
    }

    /// The metric name with its label encoded for Envoy's `stats_tags`.
    pub fn metric_name(self) -> String {
        format!("authentication_attempts_total.status={};", self.as_str())
    }

    /// The sentence in the 401 envelope.
    pub const fn message(self) -> &'static str {
        match self {
            Self::Success => "Authenticated",
            Self::InvalidKey => "Invalid API key",
            Self::ExpiredKey => "API key has expired",
            Self::RevokedKey => "API key has been revoked",
            Self::MissingCredentials => {
                "Authentication required: send an X-API-Key header or an Authorization: Bearer token"
            }
            Self::InvalidToken => "Invalid bearer token",
            Self::ExpiredToken => "Bearer token has expired",
        }
    }
}

/// How the caller authenticated (`x-auth-method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// `X-API-Key`.
    ApiKey,
    /// `Authorization: Bearer`.
    Jwt,
}

impl AuthMethod {
    /// The header value.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Jwt => "jwt",
        }
    }
}

/// The authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// `x-client-id`.
    pub client_id: String,
    /// `x-client-scopes`, space-separated.
    pub scopes: Vec<String>,
    /// `x-auth-method`.
    pub method: AuthMethod,
    /// `x-client-rate-limit`, when the credential carries its own limit.
    pub rate_limit_per_minute: Option<u32>,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denial {
    /// The credential is missing or bad: 401.
    Rejected(AttemptStatus),
    /// The auth service could not answer and nothing usable is cached: 503.
    Unavailable,
    /// Too many failed authentications from the caller's address: 429.
    Throttled(Throttled),
    /// The authenticated client's bucket in this instance is empty: 429.
    ClientLimited(ClientLimited),
}

impl Denial {
    /// HTTP status and envelope of the local reply.
    pub fn envelope(self, request_id: &str) -> (u16, ErrorEnvelope) {
        let (code, message) = match self {
            Denial::Rejected(status) => (ErrorCode::Unauthorized, status.message()),
            Denial::Unavailable => (
                ErrorCode::ServiceUnavailable,
                "Authentication service unavailable, try again shortly",
            ),
            Denial::Throttled(_) => (
                ErrorCode::RateLimited,
                "Too many failed authentication attempts from this address, retry later",
            ),
            // The wording of every other rate-limit 429 (the listener's
            // local_reply_config).
            Denial::ClientLimited(_) => (ErrorCode::RateLimited, "Rate limit exceeded"),
        };
        (
            code.http_status(),
            ErrorEnvelope::new(code, message, request_id),
        )
    }

    /// The `reason` of the `Authentication error` log line.
    pub const fn reason(self) -> &'static str {
        match self {
            Denial::Rejected(status) => status.as_str(),
            Denial::Unavailable => "auth_service_unavailable",
            Denial::Throttled(_) => "failed_authentications",
            Denial::ClientLimited(_) => "rate_limited",
        }
    }
}

/// A response produced by the filter itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalReply {
    /// HTTP status.
    pub status: u16,
    /// Response headers.
    pub headers: Vec<(&'static str, String)>,
    /// JSON body (SPEC §6 envelope).
    pub body: String,
}

/// What the proxy does with the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    /// Request headers to remove first.
    pub remove_headers: Vec<&'static str>,
    /// Request headers to set afterwards.
    pub set_headers: Vec<(&'static str, String)>,
    /// When set, answer with this instead of forwarding.
    pub reply: Option<LocalReply>,
}

impl Actions {
    /// Forward the request after removing the internal headers (and the
    /// credential header, when given) and setting the identity headers.
    pub fn forward(identity: Option<&Identity>, credential_header: Option<&'static str>) -> Self {
        match identity {
            Some(identity) => Self::allow(
                &identity.client_id,
                &identity.scopes,
                identity.method,
                identity.rate_limit_per_minute,
                credential_header,
            ),
            None => Self {
                remove_headers: Self::removals(credential_header),
                set_headers: Vec::new(),
                reply: None,
            },
        }
    }

    /// [`Actions::forward`] for an authenticated caller given by parts (no
    /// [`Identity`] to build on the hot path).
    pub fn allow(
        client_id: &str,
        scopes: &[String],
        method: AuthMethod,
        rate_limit_per_minute: Option<u32>,
        credential_header: Option<&'static str>,
    ) -> Self {
        let mut set_headers = Vec::with_capacity(4);
        set_headers.push(("x-client-id", client_id.to_owned()));
        set_headers.push(("x-client-scopes", scopes.join(" ")));
        set_headers.push(("x-auth-method", method.as_str().to_owned()));
        if let Some(limit) = rate_limit_per_minute {
            set_headers.push(("x-client-rate-limit", limit.to_string()));
        }
        if let Some(tier) = tier_of(scopes) {
            set_headers.push(("x-client-tier", tier.to_owned()));
        }
        Self {
            remove_headers: Self::removals(credential_header),
            set_headers,
            reply: None,
        }
    }

    fn removals(credential_header: Option<&'static str>) -> Vec<&'static str> {
        let mut remove_headers = Vec::with_capacity(INTERNAL_HEADERS.len() + 1);
        remove_headers.extend_from_slice(&INTERNAL_HEADERS);
        remove_headers.extend(credential_header);
        remove_headers
    }

    /// [`Actions::allow`] with the request answered locally by the 429 of
    /// `limited` instead of forwarded. The identity headers are still set
    /// on the request, so what reads them at the end of the request (the
    /// metrics recording's `Rate limit exceeded` line) names the client.
    pub fn client_limited(allowed: Actions, limited: ClientLimited, request_id: &str) -> Self {
        Self {
            reply: Self::deny(Denial::ClientLimited(limited), request_id).reply,
            ..allowed
        }
    }

    /// Answer locally with the envelope of `denial`.
    pub fn deny(denial: Denial, request_id: &str) -> Self {
        let (status, envelope) = denial.envelope(request_id);
        let mut headers = vec![("content-type", "application/json".to_owned())];
        // Only a well-formed id is echoed as a header (1-128 visible ASCII).
        if (1..=128).contains(&request_id.len()) && request_id.bytes().all(|b| b.is_ascii_graphic())
        {
            headers.push(("x-request-id", request_id.to_owned()));
        }
        match denial {
            Denial::Rejected(_) => headers.push((
                "www-authenticate",
                r#"Bearer realm="borrow-rate-api", ApiKey header="X-API-Key""#.to_owned(),
            )),
            Denial::Unavailable => headers.push(("retry-after", "1".to_owned())),
            Denial::Throttled(throttled) => {
                let wait = throttled.retry_after_seconds.to_string();
                headers.push(("retry-after", wait.clone()));
                headers.push(("x-ratelimit-limit", throttled.limit.to_string()));
                headers.push(("x-ratelimit-remaining", "0".to_owned()));
                headers.push(("x-ratelimit-reset", wait));
            }
            Denial::ClientLimited(limited) => {
                let wait = limited.retry_after_seconds.to_string();
                let limit = limited.limit;
                headers.push(("retry-after", wait.clone()));
                headers.push(("x-ratelimit-limit", limit.to_string()));
                headers.push(("x-ratelimit-remaining", "0".to_owned()));
                headers.push(("x-ratelimit-reset", wait.clone()));
                // IETF draft fields, as the rate-limit service sends them.
                headers.push(("ratelimit-policy", format!("\"client\";q={limit};w=60")));
                headers.push(("ratelimit", format!("\"client\";r=0;t={wait}")));
            }
        }
        Self {
            remove_headers: Vec::new(),
            set_headers: Vec::new(),
            reply: Some(LocalReply {
                status,
                headers,
                body: envelope.to_json(),
            }),
        }
    }
}

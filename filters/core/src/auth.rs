//! Authentication filter core: API keys verified by the auth service and
//! cached in shared data, JWTs verified in place.
//!
//! The flow for one request:
//!
//! 1. [`Authenticator::on_request`] inspects the path and the credential
//!    headers. It answers [`Step::Done`] with the [`Actions`] to apply (set
//!    identity headers and continue, or send a local reply), or
//!    [`Step::VerifyKey`] when an API key is not in the cache (or its entry
//!    has aged out).
//! 2. For [`Step::VerifyKey`] the host asks the auth service
//!    (`POST /internal/v1/keys/verify` with the key hash) and hands the answer
//!    to [`Authenticator::on_verify_response`], which caches it and returns
//!    the final [`Actions`].
//! 3. A bearer token is verified in place (and cached). A token carrying a
//!    `key_id` claim (the API key it was exchanged for) is accepted only
//!    while that key is active: its status is cached by key id like a key
//!    verification (same TTLs, stale-on-error), and on a miss the host
//!    makes the same call ([`Step::VerifyKey`], body `{"key_id":"…"}`), so
//!    a revoked key's tokens stop as soon as the key does.
//!
//! An authenticated request then takes a token from its client's bucket
//! when the configuration has a `local_rate_limit` section (`local_limit`):
//! an empty bucket turns the decision into a 429.
//!
//! Every host effect (time, shared data, metrics, logs) goes through the
//! [`Host`] trait so the logic is tested without a proxy.

mod cache;
mod config;
mod credential;
mod decision;
mod engine;
mod jwt;
mod local_limit;
mod lockout;
mod log_line;
mod settings;
mod time;

pub use crate::host::{Host, RecordingHost, SharedWrite};
pub use cache::{CacheEntry, CachePolicy, EntryKind, Freshness, SlotCache};
pub use config::{
    AuthConfig, BruteForceConfig, CacheConfig, ClientLimitConfig, ConfigError, JwtAlgorithm,
    JwtConfig, LocalRateLimitConfig,
};
pub use credential::{
    extract_credential, hash_api_key, is_well_formed_api_key, Credential, API_KEY_HEADER,
    AUTHORIZATION_HEADER,
};
pub use decision::{
    Actions, AttemptStatus, AuthMethod, Denial, Identity, LocalReply, API_KEY_ID_HEADER,
    INTERNAL_HEADERS,
};
pub use engine::{Authenticator, IncomingRequest, PendingVerification, Step, VerifyAnswer};
pub use jwt::{JwtError, JwtVerifier, VerifiedToken};
pub use local_limit::{
    headroom, refill_per_minute, Bucket, ClientLimited, LocalLimitPolicy, CAS_RETRIES,
    UNITS_PER_TOKEN,
};
pub use lockout::{address_without_port, FailureCounter, LockoutPolicy, Throttled};
pub use settings::Settings;
pub use time::parse_rfc3339_to_unix;

#[cfg(test)]
mod local_limit_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod token_key_tests;

/// The attempts counted so far through `host` ([`Host::count`] with
/// [`AttemptStatus::index`] as the slot), in order.
#[cfg(test)]
fn counted_attempts(host: &RecordingHost) -> Vec<AttemptStatus> {
    host.counted
        .borrow()
        .iter()
        .filter_map(|&slot| AttemptStatus::ALL.get(slot).copied())
        .collect()
}

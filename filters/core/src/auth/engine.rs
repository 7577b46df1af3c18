//! The authentication decision for one request.

use std::fmt;
use std::rc::Rc;

use pricing::ClientId;
use serde::Deserialize;

use super::cache::{CacheEntry, EntryKind, Freshness, SlotCache};
use super::credential::{
    extract_credential, hash_api_key, hex_sha256, is_valid_key_id, is_valid_scope,
    is_well_formed_api_key,
};
use super::credential::{Credential, API_KEY_HEADER, AUTHORIZATION_HEADER};
use super::decision::{Actions, AttemptStatus, AuthMethod, Denial, API_KEY_ID_HEADER};
use super::lockout::{address_without_port, FailureCounter};
use super::log_line::{stale_served_line, AuthErrorLine};
use super::settings::Settings;
use super::time::parse_rfc3339_to_unix;
use crate::host::{Host, LogLevel};

/// What the filter sees of a request.
#[derive(Debug, Clone, Copy)]
pub struct IncomingRequest<'a> {
    /// `:path` (with query string).
    pub path: &'a str,
    /// `x-api-key` header value.
    pub api_key: Option<&'a str>,
    /// `authorization` header value.
    pub authorization: Option<&'a str>,
    /// `x-request-id` header value (empty when absent).
    pub request_id: &'a str,
}

/// The next thing the host does.
#[derive(Debug)]
pub enum Step {
    /// Apply these actions; the decision is final.
    Done(Actions),
    /// Ask the auth service about a key (by its hash, or by its id for a
    /// bearer token issued for it), then call
    /// [`Authenticator::on_verify_response`].
    VerifyKey(PendingVerification),
}

/// A key verification in flight.
#[derive(Clone)]
pub struct PendingVerification {
    lookup: Lookup,
    stale: Option<Rc<CacheEntry>>,
    path: String,
    request_id: String,
}

/// What a verification asks about.
#[derive(Clone)]
enum Lookup {
    /// An API key presented in `X-API-Key`.
    Key {
        /// Hex SHA-256 of the key (the only form sent to the auth service).
        key_hash: String,
        /// The key itself, to index this VM's local cache (never sent,
        /// logged or shared).
        key: Box<str>,
    },
    /// The key a verified bearer token was issued for (its `key_id` claim).
    TokenKey {
        /// Public id of the key.
        key_id: String,
        /// The token's verified (cached) claims.
        token: Rc<CacheEntry>,
    },
}

impl fmt::Debug for PendingVerification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PendingVerification")
            .field("key_hash", &self.key_hash())
            .field("key_id", &self.key_id())
            .field("stale", &self.stale)
            .field("path", &self.path)
            .field("request_id", &self.request_id)
            .finish_non_exhaustive()
    }
}

impl PendingVerification {
    /// Hex SHA-256 of the API key asked about; `None` when the call asks
    /// about the key of a bearer token (by its id).
    pub fn key_hash(&self) -> Option<&str> {
        match &self.lookup {
            Lookup::Key { key_hash, .. } => Some(key_hash),
            Lookup::TokenKey { .. } => None,
        }
    }

    /// Public id of the key asked about, when the call is for a bearer
    /// token's key.
    pub fn key_id(&self) -> Option<&str> {
        match &self.lookup {
            Lookup::Key { .. } => None,
            Lookup::TokenKey { key_id, .. } => Some(key_id),
        }
    }

    /// JSON body of the verification call: `{"key_hash":"…"}` or
    /// `{"key_id":"…"}` (both hex / `[A-Za-z0-9_-]`: nothing to escape).
    pub fn request_body(&self) -> Vec<u8> {
        match &self.lookup {
            Lookup::Key { key_hash, .. } => format!(r#"{{"key_hash":"{key_hash}"}}"#),
            Lookup::TokenKey { key_id, .. } => format!(r#"{{"key_id":"{key_id}"}}"#),
        }
        .into_bytes()
    }
}

/// What came back from the auth service.
#[derive(Debug, Clone, Copy)]
pub enum VerifyAnswer<'a> {
    /// An HTTP response.
    Response {
        /// `:status`.
        status: u16,
        /// Body bytes.
        body: &'a [u8],
    },
    /// No response: dispatch refused, reset or timed out.
    Failed,
}

#[derive(Deserialize)]
struct VerifyResponse {
    client_id: String,
    status: String,
    #[serde(default)]
    expires_at: Option<String>,
    #[serde(default)]
    rate_limit_per_minute: Option<u32>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    key_id: Option<String>,
}

#[derive(Deserialize)]
struct EnvelopeCode {
    error: EnvelopeError,
}

#[derive(Deserialize)]
struct EnvelopeError {
    code: String,
}

/// Who an accepted request comes from, as the identity headers tell it.
struct Caller<'a> {
    client_id: &'a str,
    scopes: &'a [String],
    method: AuthMethod,
    /// The key's own per-minute limit (`x-client-rate-limit`).
    rate_limit_per_minute: Option<u32>,
    /// The key's public id (`x-api-key-id`), when known.
    key_id: Option<&'a str>,
}

/// The auth filter's logic, shared by every request of one plugin instance.
#[derive(Debug, Clone)]
pub struct Authenticator {
    settings: Settings,
    keys: SlotCache,
    tokens: SlotCache,
    /// Status of the keys bearer tokens were issued for, by key id.
    key_ids: SlotCache,
    failures: Option<FailureCounter>,
}

impl Authenticator {
    /// A new authenticator for validated settings.
    pub fn new(settings: Settings) -> Self {
        let slots = settings.cache.slots;
        let token_prefix = match &settings.jwt {
            Some(jwt) => format!("brl.auth.jwt.{}", jwt.fingerprint()),
            None => "brl.auth.jwt".to_owned(),
        };
        Self {
            keys: SlotCache::new("brl.auth.key", slots),
            tokens: SlotCache::new(token_prefix, slots),
            key_ids: SlotCache::new("brl.auth.kid", slots),
            failures: settings.lockout.map(FailureCounter::new),
            settings,
        }
    }

    /// The settings in force.
    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Decides what to do with a request's headers.
    pub fn on_request(&self, host: &dyn Host, req: &IncomingRequest<'_>) -> Step {
        if !self.settings.enabled || self.settings.is_public_path(req.path) {
            return Step::Done(Actions::forward(None, None));
        }
        match extract_credential(req.api_key, req.authorization) {
            Credential::Missing => {
                Step::Done(self.reject(host, AttemptStatus::MissingCredentials, None, None, req))
            }
            Credential::ApiKey(key) => self.on_api_key(host, key, req),
            Credential::Bearer(token) => self.on_bearer(host, token, req),
        }
    }

    fn on_api_key(&self, host: &dyn Host, key: &str, req: &IncomingRequest<'_>) -> Step {
        let now = host.now_ms();
        // Ages are judged against the latest time the clock may stand for,
        // so a coarse host clock never stretches a TTL.
        let judged = judged_ms(host, now);
        let policy = &self.settings.cache;
        let local = self
            .keys
            .get_local(key)
            .filter(|entry| entry.key_freshness(policy, judged) == Freshness::Fresh);
        // The hot path: a key this VM knows to be good costs no host call.
        if let Some(entry) = local.as_ref().filter(|entry| entry.is_valid()) {
            return Step::Done(self.apply_key_entry(host, entry, Some("cached"), req, now));
        }
        // Anything else from an address that keeps failing is not looked at.
        if let Some(throttled) = self.throttled(host, req, now) {
            return Step::Done(throttled);
        }
        if !is_well_formed_api_key(key) {
            return Step::Done(self.reject(
                host,
                AttemptStatus::InvalidKey,
                Some("malformed_key"),
                None,
                req,
            ));
        }
        if let Some(entry) = local {
            return Step::Done(self.apply_key_entry(host, &entry, Some("cached"), req, now));
        }
        let key_hash = hash_api_key(key);
        let stale = match self.keys.get(host, &key_hash).map(Rc::new) {
            Some(entry) => match entry.key_freshness(policy, judged) {
                Freshness::Fresh => {
                    self.keys.remember(key, Rc::clone(&entry));
                    return Step::Done(self.apply_key_entry(
                        host,
                        &entry,
                        Some("cached"),
                        req,
                        now,
                    ));
                }
                Freshness::Stale => Some(entry),
                Freshness::Dead => None,
            },
            None => None,
        };
        Step::VerifyKey(PendingVerification {
            lookup: Lookup::Key {
                key_hash,
                key: key.into(),
            },
            stale,
            path: req.path.to_owned(),
            request_id: req.request_id.to_owned(),
        })
    }

    /// The 429 for a request whose source address has used up its failed
    /// authentications, if it has.
    fn throttled(
        &self,
        host: &dyn Host,
        req: &IncomingRequest<'_>,
        now_ms: u64,
    ) -> Option<Actions> {
        let counter = self.failures.as_ref()?;
        let source = host.source_address()?;
        let throttled = counter.throttled(host, address_without_port(&source), now_ms)?;
        Some(Actions::deny(Denial::Throttled(throttled), req.request_id))
    }

    /// Completes a key verification with the auth service's answer.
    pub fn on_verify_response(
        &self,
        host: &dyn Host,
        pending: &PendingVerification,
        answer: VerifyAnswer<'_>,
    ) -> Actions {
        let req = IncomingRequest {
            path: &pending.path,
            api_key: None,
            authorization: None,
            request_id: &pending.request_id,
        };
        let now = host.now_ms();
        let judged = judged_ms(host, now);
        match interpret_answer(answer, judged / 1000, pending.key_id()) {
            Some((kind, key_id)) => match &pending.lookup {
                Lookup::Key { key_hash, key } => {
                    let entry = Rc::new(CacheEntry {
                        digest: key_hash.clone(),
                        stored_at_ms: now,
                        kind,
                    });
                    self.keys.put(host, &entry);
                    self.keys.remember(key, Rc::clone(&entry));
                    // The same answer is the status of the key by its id:
                    // a token exchanged for this key is checked without a
                    // call of its own.
                    if let Some(key_id) = key_id {
                        self.remember_key_status(host, key_id, entry.kind.clone(), now);
                    }
                    self.apply_key_entry(host, &entry, None, &req, now)
                }
                Lookup::TokenKey { key_id, token } => {
                    let entry = self.remember_key_status(host, key_id.clone(), kind, now);
                    self.apply_token_key(host, token, &entry, "token_key", &req, now)
                }
            },
            None => {
                let usable = pending.stale.as_ref().filter(|entry| {
                    entry.key_freshness(&self.settings.cache, judged) != Freshness::Dead
                });
                match usable {
                    Some(entry) => {
                        if let EntryKind::Valid { client_id, .. } = &entry.kind {
                            host.log(
                                LogLevel::Warn,
                                &stale_served_line(client_id, &pending.path, &pending.request_id),
                            );
                        }
                        match &pending.lookup {
                            Lookup::Key { .. } => {
                                self.apply_key_entry(host, entry, Some("stale_cache"), &req, now)
                            }
                            Lookup::TokenKey { token, .. } => self.apply_token_key(
                                host,
                                token,
                                entry,
                                "token_key_stale_cache",
                                &req,
                                now,
                            ),
                        }
                    }
                    None => {
                        host.log(
                            LogLevel::Warn,
                            &AuthErrorLine {
                                reason: Denial::Unavailable.reason(),
                                detail: None,
                                client_id: None,
                                path: &pending.path,
                                request_id: &pending.request_id,
                            }
                            .render(),
                        );
                        Actions::deny(Denial::Unavailable, &pending.request_id)
                    }
                }
            }
        }
    }

    /// Caches a key's status under its id (shared and local).
    fn remember_key_status(
        &self,
        host: &dyn Host,
        key_id: String,
        kind: EntryKind,
        now_ms: u64,
    ) -> Rc<CacheEntry> {
        let entry = Rc::new(CacheEntry {
            digest: key_id,
            stored_at_ms: now_ms,
            kind,
        });
        self.key_ids.put(host, &entry);
        self.key_ids.remember(&entry.digest, Rc::clone(&entry));
        entry
    }

    fn apply_key_entry(
        &self,
        host: &dyn Host,
        entry: &CacheEntry,
        detail: Option<&str>,
        req: &IncomingRequest<'_>,
        now_ms: u64,
    ) -> Actions {
        match &entry.kind {
            EntryKind::Valid {
                client_id,
                scopes,
                rate_limit_per_minute,
                expires_at,
                key_id,
            } => {
                if let Some(expired) =
                    self.reject_if_expired(host, *expires_at, detail, client_id, req, now_ms)
                {
                    return expired;
                }
                self.allow(
                    host,
                    Caller {
                        client_id,
                        scopes,
                        method: AuthMethod::ApiKey,
                        rate_limit_per_minute: *rate_limit_per_minute,
                        key_id: key_id.as_deref(),
                    },
                    req,
                )
            }
            EntryKind::Denied { status, client_id } => {
                self.reject(host, *status, detail, client_id.as_deref(), req)
            }
        }
    }

    /// A bearer token: verified here (or found in the token cache); a token
    /// naming its API key (`key_id` claim) then needs that key's status.
    fn on_bearer(&self, host: &dyn Host, token: &str, req: &IncomingRequest<'_>) -> Step {
        let Some(verifier) = &self.settings.jwt else {
            return Step::Done(self.reject(
                host,
                AttemptStatus::InvalidToken,
                Some("jwt_disabled"),
                None,
                req,
            ));
        };
        // The clock may lag real time by the slack: judge expiry at the
        // latest time it may stand for.
        let now_ms = host.now_ms();
        let judged = judged_ms(host, now_ms);
        let now = judged / 1000;
        let usable = |entry: &CacheEntry| match &entry.kind {
            EntryKind::Valid {
                expires_at: Some(exp),
                ..
            } => {
                entry.stored_at_ms <= judged && now <= exp.saturating_add(verifier.leeway_seconds())
            }
            _ => false,
        };
        let local = self.tokens.get_local(token).filter(|e| usable(e));
        let cached = match local {
            Some(entry) => Some(entry),
            None => {
                let digest = hex_sha256(token.as_bytes());
                let shared = self.tokens.get(host, &digest).filter(usable).map(Rc::new);
                if let Some(entry) = &shared {
                    self.tokens.remember(token, Rc::clone(entry));
                }
                shared
            }
        };
        if let Some(entry) = cached {
            return self.on_token(host, &entry, req, now_ms);
        }
        if let Some(throttled) = self.throttled(host, req, now_ms) {
            return Step::Done(throttled);
        }
        match verifier.verify(token, now) {
            Ok(verified) => {
                let entry = Rc::new(CacheEntry {
                    digest: hex_sha256(token.as_bytes()),
                    stored_at_ms: now_ms,
                    kind: EntryKind::Valid {
                        client_id: verified.client_id,
                        scopes: verified.scopes,
                        rate_limit_per_minute: verified.rate_limit_per_minute,
                        expires_at: Some(verified.expires_at),
                        key_id: verified.key_id,
                    },
                });
                self.tokens.put(host, &entry);
                self.tokens.remember(token, Rc::clone(&entry));
                self.on_token(host, &entry, req, now_ms)
            }
            Err(err) => {
                let client_id = match &err {
                    super::jwt::JwtError::Expired { client_id } => Some(client_id.as_str()),
                    _ => None,
                };
                Step::Done(self.reject(host, err.status(), Some(err.detail()), client_id, req))
            }
        }
    }

    /// A verified token (`token`, always a valid entry): allowed at once
    /// without a `key_id` claim (tokens issued before keys were named in
    /// them); otherwise only while its key is active, from the key-status
    /// cache when that is fresh (no host call when this VM holds it), else
    /// after asking the auth service by key id.
    fn on_token(
        &self,
        host: &dyn Host,
        token: &Rc<CacheEntry>,
        req: &IncomingRequest<'_>,
        now_ms: u64,
    ) -> Step {
        let EntryKind::Valid {
            client_id,
            scopes,
            rate_limit_per_minute,
            key_id,
            ..
        } = &token.kind
        else {
            return Step::Done(self.reject(host, AttemptStatus::InvalidToken, None, None, req));
        };
        let Some(key_id) = key_id else {
            return Step::Done(self.allow(
                host,
                Caller {
                    client_id,
                    scopes,
                    method: AuthMethod::Jwt,
                    rate_limit_per_minute: *rate_limit_per_minute,
                    key_id: None,
                },
                req,
            ));
        };
        let judged = judged_ms(host, now_ms);
        let policy = &self.settings.cache;
        let fresh = |entry: &CacheEntry| entry.key_freshness(policy, judged) == Freshness::Fresh;
        if let Some(status) = self.key_ids.get_local(key_id).filter(|e| fresh(e)) {
            return Step::Done(self.apply_token_key(
                host,
                token,
                &status,
                "token_key_cached",
                req,
                now_ms,
            ));
        }
        let stale = match self.key_ids.get(host, key_id).map(Rc::new) {
            Some(entry) => match entry.key_freshness(policy, judged) {
                Freshness::Fresh => {
                    self.key_ids.remember(key_id, Rc::clone(&entry));
                    return Step::Done(self.apply_token_key(
                        host,
                        token,
                        &entry,
                        "token_key_cached",
                        req,
                        now_ms,
                    ));
                }
                Freshness::Stale => Some(entry),
                Freshness::Dead => None,
            },
            None => None,
        };
        Step::VerifyKey(PendingVerification {
            lookup: Lookup::TokenKey {
                key_id: key_id.clone(),
                token: Rc::clone(token),
            },
            stale,
            path: req.path.to_owned(),
            request_id: req.request_id.to_owned(),
        })
    }

    /// The decision for a token given its key's status (`key`): client id
    /// and scopes from the token, the rate limit from the key as it stands
    /// now (so a changed limit reaches token holders too). A revoked or
    /// expired key refuses the token with `revoked_key` / `expired_key`; an
    /// unknown key (or one of another client) with `invalid_token`.
    fn apply_token_key(
        &self,
        host: &dyn Host,
        token: &CacheEntry,
        key: &CacheEntry,
        detail: &str,
        req: &IncomingRequest<'_>,
        now_ms: u64,
    ) -> Actions {
        let EntryKind::Valid {
            client_id,
            scopes,
            key_id,
            ..
        } = &token.kind
        else {
            return self.reject(host, AttemptStatus::InvalidToken, Some(detail), None, req);
        };
        match &key.kind {
            EntryKind::Valid {
                client_id: owner,
                rate_limit_per_minute,
                expires_at,
                ..
            } => {
                if let Some(expired) =
                    self.reject_if_expired(host, *expires_at, Some(detail), client_id, req, now_ms)
                {
                    return expired;
                }
                if owner != client_id {
                    return self.reject(
                        host,
                        AttemptStatus::InvalidToken,
                        Some("token_key_mismatch"),
                        Some(client_id),
                        req,
                    );
                }
                self.allow(
                    host,
                    Caller {
                        client_id,
                        scopes,
                        method: AuthMethod::Jwt,
                        rate_limit_per_minute: *rate_limit_per_minute,
                        key_id: key_id.as_deref(),
                    },
                    req,
                )
            }
            EntryKind::Denied { status, .. } => {
                let status = match status {
                    AttemptStatus::RevokedKey | AttemptStatus::ExpiredKey => *status,
                    _ => AttemptStatus::InvalidToken,
                };
                self.reject(host, status, Some(detail), Some(client_id), req)
            }
        }
    }

    /// The authenticated request goes on, unless its client's bucket
    /// (`local_rate_limit`) is empty.
    fn allow(&self, host: &dyn Host, caller: Caller<'_>, req: &IncomingRequest<'_>) -> Actions {
        let Caller {
            client_id,
            scopes,
            method,
            rate_limit_per_minute,
            key_id,
        } = caller;
        host.count(AttemptStatus::Success.index());
        let header = match method {
            AuthMethod::ApiKey => API_KEY_HEADER,
            AuthMethod::Jwt => AUTHORIZATION_HEADER,
        };
        let strip = self.settings.strip_credential_header.then_some(header);
        let mut allowed = Actions::allow(client_id, scopes, method, rate_limit_per_minute, strip);
        if let Some(key_id) = key_id {
            allowed
                .set_headers
                .push((API_KEY_ID_HEADER, key_id.to_owned()));
        }
        let limited = self
            .settings
            .local_rate_limit
            .as_ref()
            .and_then(|policy| policy.take(host, client_id, rate_limit_per_minute));
        match limited {
            Some(limited) => Actions::client_limited(allowed, limited, req.request_id),
            None => allowed,
        }
    }

    /// The refusal of a key that has expired by the time the clock may stand
    /// for (`judged_ms`); `None` while it is still valid.
    fn reject_if_expired(
        &self,
        host: &dyn Host,
        expires_at: Option<u64>,
        detail: Option<&str>,
        client_id: &str,
        req: &IncomingRequest<'_>,
        now_ms: u64,
    ) -> Option<Actions> {
        let expired = expires_at.is_some_and(|exp| judged_ms(host, now_ms) / 1000 >= exp);
        expired.then(|| {
            self.reject(
                host,
                AttemptStatus::ExpiredKey,
                detail,
                Some(client_id),
                req,
            )
        })
    }

    fn reject(
        &self,
        host: &dyn Host,
        status: AttemptStatus,
        detail: Option<&str>,
        client_id: Option<&str>,
        req: &IncomingRequest<'_>,
    ) -> Actions {
        host.count(status.index());
        if status != AttemptStatus::MissingCredentials {
            if let (Some(counter), Some(source)) = (&self.failures, host.source_address()) {
                counter.record_failure(host, address_without_port(&source), host.now_ms());
            }
        }
        host.log(
            LogLevel::Warn,
            &AuthErrorLine {
                reason: status.as_str(),
                detail,
                client_id,
                path: req.path,
                request_id: req.request_id,
            }
            .render(),
        );
        Actions::deny(Denial::Rejected(status), req.request_id)
    }
}

/// The latest time (ms) the host clock, read as `now_ms`, may stand for:
/// ages and expiries are judged against it, so a coarse clock never
/// stretches a TTL or a key's life.
fn judged_ms(host: &dyn Host, now_ms: u64) -> u64 {
    now_ms.saturating_add(host.clock_slack_ms())
}

/// Turns the auth service's answer into a cacheable verdict and the key's
/// id (when the answer names it); `None` when the service failed (no
/// answer, unexpected status, unreadable body, or an answer about another
/// key than `asked_key_id`).
fn interpret_answer(
    answer: VerifyAnswer<'_>,
    now: u64,
    asked_key_id: Option<&str>,
) -> Option<(EntryKind, Option<String>)> {
    let VerifyAnswer::Response { status, body } = answer else {
        return None;
    };
    match status {
        200 => {
            let resp: VerifyResponse = serde_json::from_slice(body).ok()?;
            if !ClientId::is_valid(&resp.client_id)
                || !resp.scopes.iter().all(|s| is_valid_scope(s))
                || resp
                    .key_id
                    .as_deref()
                    .is_some_and(|id| !is_valid_key_id(id))
            {
                return None;
            }
            if asked_key_id.is_some_and(|asked| resp.key_id.as_deref() != Some(asked)) {
                return None;
            }
            let expires_at = match resp.expires_at.as_deref() {
                Some(text) => Some(parse_rfc3339_to_unix(text)?),
                None => None,
            };
            let kind = match resp.status.as_str() {
                "active" if expires_at.is_some_and(|exp| now >= exp) => EntryKind::Denied {
                    status: AttemptStatus::ExpiredKey,
                    client_id: Some(resp.client_id),
                },
                "active" => EntryKind::Valid {
                    client_id: resp.client_id,
                    scopes: resp.scopes,
                    rate_limit_per_minute: resp.rate_limit_per_minute,
                    expires_at,
                    key_id: resp.key_id.clone(),
                },
                "revoked" => EntryKind::Denied {
                    status: AttemptStatus::RevokedKey,
                    client_id: Some(resp.client_id),
                },
                "expired" => EntryKind::Denied {
                    status: AttemptStatus::ExpiredKey,
                    client_id: Some(resp.client_id),
                },
                _ => return None,
            };
            Some((kind, resp.key_id))
        }
        404 => {
            // Only our own envelope means "unknown key"; any other 404 is a
            // misrouted call and must not turn into a cached denial.
            let envelope: EnvelopeCode = serde_json::from_slice(body).ok()?;
            (envelope.error.code == "UNAUTHORIZED").then_some((
                EntryKind::Denied {
                    status: AttemptStatus::InvalidKey,
                    client_id: None,
                },
                asked_key_id.map(str::to_owned),
            ))
        }
        _ => None,
    }
}

//! Tests of the auth core. Each runs natively (`cargo test`) and inside
//! wasm (`wasm-bindgen-test` on wasm32-unknown-unknown), so clock
//! arithmetic, hashing and JWT crypto are checked in both worlds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

use super::*;

const SECRET: &str = "an-hs256-test-secret-of-32-bytes!!";
const KEY: &str = "brl_0123456789abcdefghijABCDEFGHIJklmnopqrst";
const KEY_HASH: &str = "e2d9a35c85e65d1798b5c98333da53109747413bd5c1cf8f3ebae3c471572139";
/// Signed outside Rust (Python hmac) with `SECRET`: sub test123, exp 1700000900.
const PY_HS256_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJ0ZXN0MTIzIiwiaXNzIjoiYm9ycm93LXJhdGUtZ2F0ZXdheSIsImF1ZCI6ImJvcnJvdy1yYXRlLWFwaSIsImlhdCI6MTcwMDAwMDAwMCwiZXhwIjoxNzAwMDAwOTAwLCJzY29wZSI6ImFkbWluIn0.Bn7wuqdisZlu_A8doBLnKzwG0Aib5weL38mza234MKQ";
/// Signed outside Rust (OpenSSL) with `EC_KEY_DER`, kid k1: sub big_fund, exp 1700000900.
const OPENSSL_ES256_TOKEN: &str = "eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCIsImtpZCI6ImsxIn0.eyJzdWIiOiJiaWdfZnVuZCIsImlzcyI6ImJvcnJvdy1yYXRlLWdhdGV3YXkiLCJhdWQiOiJib3Jyb3ctcmF0ZS1hcGkiLCJpYXQiOjE3MDAwMDAwMDAsImV4cCI6MTcwMDAwMDkwMCwic2NvcGUiOiIifQ.wbuAkM7x9uoacchNB_fdZ2SVyPJO6E8ZQKpba0p5KibWpgQ2jFE727X2KwiKfWzFbc-byGyXFKF470JHSlzjeA";
const EC_KEY_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPVzhHez0N6sGqXzGIZ6WfZITSOVS7FEWd7EbM7AfX2qhRANCAARw04d8U/fRM1nyBHJ2fIjA37mUPlYjBEcAwQYDnteOaB1UnklBxFJ+GAXY9hP1iAKSkrfsEbnLzdMNLsKGY1FX";
const EC_X: &str = "cNOHfFP30TNZ8gRydnyIwN-5lD5WIwRHAMEGA57Xjmg";
const EC_Y: &str = "HVSeSUHEUn4YBdj2E_WIApKSt-wRucvN0w0uwoZjUVc";
const OTHER_EC_KEY_DER: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgZhO1a31HscNepTlDUtYDEBUukLasq3GuH3FbK54+xGGhRANCAAS3a3/nvf9jABhyZNYM5I4ztS+qHoBVYyAVewuuR76j4bNa//b3iQKmZUgqlN6eGXQeONzgFulo1kB9EbskQC8w";

/// 2026-11-23T10:00:00Z.
const NOW_S: u64 = 1_795_428_000;

fn settings(config: Value) -> Settings {
    Settings::from_json(config.to_string().as_bytes()).unwrap()
}

fn config_error(config: Value) -> ConfigError {
    Settings::from_json(config.to_string().as_bytes()).unwrap_err()
}

fn hs_config() -> Value {
    json!({"jwt": {"secret": SECRET, "leeway_seconds": 30}})
}

fn es_config() -> Value {
    json!({"jwt": {"algorithm": "ES256", "jwks": {"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": EC_X, "y": EC_Y}
    ]}}})
}

fn hs_token(claims: Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn es_token(kid: Option<&str>, der_b64: &str, claims: Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.kid = kid.map(str::to_owned);
    let der = STANDARD.decode(der_b64).unwrap();
    encode(&header, &claims, &EncodingKey::from_ec_der(&der)).unwrap()
}

fn claims(sub: &str, exp: u64) -> Value {
    json!({"sub": sub, "iss": "borrow-rate-gateway", "aud": "borrow-rate-api",
           "iat": exp - 900, "exp": exp, "scope": "admin"})
}

fn request<'a>(
    path: &'a str,
    api_key: Option<&'a str>,
    auth: Option<&'a str>,
) -> IncomingRequest<'a> {
    IncomingRequest {
        path,
        api_key,
        authorization: auth,
        request_id: "rid-1",
    }
}

fn done(step: Step) -> Actions {
    match step {
        Step::Done(actions) => actions,
        Step::VerifyKey(p) => panic!(
            "expected a final decision, got a verification of {}",
            p.key_hash().or(p.key_id()).unwrap_or_default()
        ),
    }
}

fn pending(step: Step) -> PendingVerification {
    match step {
        Step::VerifyKey(p) => p,
        Step::Done(actions) => panic!("expected a verification, got {actions:?}"),
    }
}

fn reply_of(actions: &Actions) -> (u16, Value) {
    let reply = actions.reply.as_ref().expect("a local reply");
    (reply.status, serde_json::from_str(&reply.body).unwrap())
}

fn header<'a>(actions: &'a Actions, name: &str) -> Option<&'a str> {
    actions
        .set_headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn active_body(expires_at: Option<&str>) -> Vec<u8> {
    json!({"client_id": "test123", "status": "active", "expires_at": expires_at,
           "rate_limit_per_minute": 120, "scopes": ["admin"]})
    .to_string()
    .into_bytes()
}

fn unknown_key_body() -> Vec<u8> {
    json!({"status": "error", "error": {"code": "UNAUTHORIZED", "message": "Unknown API key", "request_id": ""}})
        .to_string()
        .into_bytes()
}

fn quick_cache() -> Value {
    json!({"cache": {"positive_ttl_seconds": 10, "negative_ttl_seconds": 2, "stale_on_error_seconds": 30, "slots": 16}})
}

// ---------------------------------------------------------------- config

#[wasm_bindgen_test(unsupported = test)]
fn empty_config_takes_the_defaults() {
    let s = Settings::from_json(b"").unwrap();
    assert!(s.enabled);
    assert_eq!(s.auth_service_cluster, "auth_service");
    assert_eq!(s.verify_path, "/internal/v1/keys/verify");
    assert_eq!(s.cache.positive_ttl_ms, 30_000);
    assert!(s.cache.positive_ttl_ms <= 60_000);
    assert!(s.jwt.is_none());
    assert!(s.strip_credential_header);
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_field_is_rejected_naming_it() {
    let err = config_error(json!({"cache": {"ttl": 5}}));
    assert!(err.to_string().contains("ttl"), "{err}");
    let err = config_error(json!({"enable": true}));
    assert!(err.to_string().contains("enable"), "{err}");
}

#[wasm_bindgen_test(unsupported = test)]
fn wrongly_typed_field_is_named() {
    let err = config_error(json!({"cache": {"slots": "many"}}));
    assert_eq!(err.field, "cache.slots");
    let err = config_error(json!({"verify_timeout_ms": -1}));
    assert_eq!(err.field, "verify_timeout_ms");
}

#[wasm_bindgen_test(unsupported = test)]
fn positive_ttl_over_a_minute_is_rejected() {
    let err = config_error(json!({"cache": {"positive_ttl_seconds": 61}}));
    assert_eq!(err.field, "cache.positive_ttl_seconds");
    let err = config_error(json!({"cache": {"slots": 100000}}));
    assert_eq!(err.field, "cache.slots");
}

#[wasm_bindgen_test(unsupported = test)]
fn metrics_are_off_unless_configured_and_their_settings_are_checked() {
    assert!(settings(json!({})).metrics.is_none());
    let on = settings(json!({"metrics": {"slow_request_ms": 250}}));
    assert_eq!(on.metrics.map(|m| m.slow_request_ms), Some(250));
    let defaults = settings(json!({"metrics": {}}));
    assert_eq!(defaults.metrics.map(|m| m.slow_request_ms), Some(500));
    let err = config_error(json!({"metrics": {"slow_request_ms": 0}}));
    assert_eq!(err.field, "metrics.slow_request_ms");
    let err = config_error(json!({"metrics": {"slow": 5}}));
    assert!(err.to_string().contains("slow"), "{err}");
    assert_eq!(
        config_error(json!({"metrics": {"slow_request_ms": "x"}})).field,
        "metrics.slow_request_ms"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn hs256_needs_a_long_enough_secret() {
    assert_eq!(config_error(json!({"jwt": {}})).field, "jwt.secret");
    assert_eq!(
        config_error(json!({"jwt": {"secret": "short"}})).field,
        "jwt.secret"
    );
    let err = config_error(json!({"jwt": {"secret": SECRET, "jwks": {"keys": []}}}));
    assert_eq!(err.field, "jwt.jwks");
}

#[wasm_bindgen_test(unsupported = test)]
fn es256_accepts_only_ec_p256_keys_with_a_kid() {
    assert_eq!(
        config_error(json!({"jwt": {"algorithm": "ES256"}})).field,
        "jwt.jwks"
    );
    let oct = json!({"jwt": {"algorithm": "ES256", "jwks": {"keys": [{"kty": "oct", "kid": "a", "k": "c2VjcmV0"}]}}});
    assert_eq!(config_error(oct).field, "jwt.jwks.keys[0].kty");
    let no_kid = json!({"jwt": {"algorithm": "ES256", "jwks": {"keys": [{"kty": "EC", "crv": "P-256", "x": EC_X, "y": EC_Y}]}}});
    assert_eq!(config_error(no_kid).field, "jwt.jwks.keys[0].kid");
    let with_secret =
        json!({"jwt": {"algorithm": "ES256", "secret": SECRET, "jwks": {"keys": []}}});
    assert_eq!(config_error(with_secret).field, "jwt.secret");
    let bad_alg = json!({"jwt": {"algorithm": "none", "secret": SECRET}});
    assert_eq!(config_error(bad_alg).field, "jwt.algorithm");
}

#[wasm_bindgen_test(unsupported = test)]
fn debug_output_never_shows_the_secret() {
    let cfg: AuthConfig = serde_json::from_value(hs_config()).unwrap();
    assert!(!format!("{cfg:?}").contains(SECRET));
    let s = settings(hs_config());
    assert!(!format!("{s:?}").contains(SECRET));
}

#[wasm_bindgen_test(unsupported = test)]
fn public_paths_bypass_only_exact_matches_and_one_safe_segment() {
    let s = settings(json!({}));
    for p in [
        "/health",
        "/health/detailed",
        "/health/data_service",
        "/metrics",
        "/monitoring/metrics",
        "/docs",
        "/openapi.json",
        "/metrics?x=1",
    ] {
        assert!(s.is_public_path(p), "{p} should be public");
    }
    for p in [
        "/healthz",
        "/health/",
        "/health/a/b",
        "/health/../api/v1/rates/AAPL",
        "/api/v1/rates/AAPL",
        "/docs/x",
        "/metrics/",
    ] {
        assert!(!s.is_public_path(p), "{p} should need a credential");
    }
}

// ------------------------------------------------------------ credentials

#[wasm_bindgen_test(unsupported = test)]
fn api_key_header_wins_and_other_schemes_count_as_missing() {
    assert_eq!(
        extract_credential(Some(KEY), Some("Bearer t")),
        Credential::ApiKey(KEY)
    );
    assert_eq!(
        extract_credential(None, Some("bearer abc")),
        Credential::Bearer("abc")
    );
    assert_eq!(
        extract_credential(None, Some("Basic dXNlcjpwYXNz")),
        Credential::Missing
    );
    assert_eq!(
        extract_credential(None, Some("Bearer ")),
        Credential::Missing
    );
    assert_eq!(extract_credential(Some("  "), None), Credential::Missing);
}

#[wasm_bindgen_test(unsupported = test)]
fn api_key_shape_is_prefix_and_forty_base62() {
    assert!(is_well_formed_api_key(KEY));
    assert!(!is_well_formed_api_key(&KEY[..43]));
    assert!(!is_well_formed_api_key(&format!("{KEY}x")));
    assert!(!is_well_formed_api_key(&KEY.replace("brl_", "sk__")));
    assert!(!is_well_formed_api_key(&KEY.replace('A', "-")));
}

#[wasm_bindgen_test(unsupported = test)]
fn key_hash_is_lowercase_hex_sha256_of_the_whole_key() {
    // Vector computed with Python's hashlib.
    assert_eq!(hash_api_key(KEY), KEY_HASH);
}

// ------------------------------------------------------------------ time

#[wasm_bindgen_test(unsupported = test)]
fn rfc3339_timestamps_convert_to_unix_seconds() {
    assert_eq!(parse_rfc3339_to_unix("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339_to_unix("2026-11-23T10:00:00Z"), Some(NOW_S));
    assert_eq!(
        parse_rfc3339_to_unix("2026-11-23T10:00:00.123456Z"),
        Some(NOW_S)
    );
    assert_eq!(
        parse_rfc3339_to_unix("2026-11-23T12:00:00+02:00"),
        Some(NOW_S)
    );
    assert_eq!(
        parse_rfc3339_to_unix("2026-11-23T05:30:00-04:30"),
        Some(NOW_S)
    );
    assert_eq!(
        parse_rfc3339_to_unix("2024-02-29T00:00:00Z"),
        Some(1_709_164_800)
    );
    for bad in [
        "2023-02-29T00:00:00Z",
        "2026-11-23",
        "2026-11-23T10:00:00",
        "1969-12-31T23:59:59Z",
        "2026-13-01T00:00:00Z",
        "2026-11-23T10:00:00.Z",
    ] {
        assert_eq!(parse_rfc3339_to_unix(bad), None, "{bad}");
    }
}

// ----------------------------------------------------------------- cache

#[wasm_bindgen_test(unsupported = test)]
fn cache_entries_age_from_fresh_to_stale_to_dead() {
    let policy = settings(quick_cache()).cache;
    let entry = CacheEntry {
        digest: KEY_HASH.into(),
        stored_at_ms: 1_000_000,
        kind: EntryKind::Valid {
            client_id: "c".into(),
            scopes: vec![],
            rate_limit_per_minute: None,
            expires_at: None,
            key_id: None,
        },
    };
    assert_eq!(
        entry.key_freshness(&policy, 1_000_000 + 9_999),
        Freshness::Fresh
    );
    assert_eq!(
        entry.key_freshness(&policy, 1_000_000 + 10_000),
        Freshness::Stale
    );
    assert_eq!(
        entry.key_freshness(&policy, 1_000_000 + 39_999),
        Freshness::Stale
    );
    assert_eq!(
        entry.key_freshness(&policy, 1_000_000 + 40_000),
        Freshness::Dead
    );
    assert_eq!(
        entry.key_freshness(&policy, 999_999),
        Freshness::Dead,
        "an entry from the future is not trusted"
    );
    let denied = CacheEntry {
        kind: EntryKind::Denied {
            status: AttemptStatus::InvalidKey,
            client_id: None,
        },
        ..entry
    };
    assert_eq!(
        denied.key_freshness(&policy, 1_000_000 + 2_000),
        Freshness::Stale
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn cache_never_uses_more_slots_than_configured() {
    let host = RecordingHost::at(0);
    let cache = SlotCache::new("t", 16);
    for i in 0..500 {
        let digest = hash_api_key(&format!("key-{i}"));
        cache.put(
            &host,
            &CacheEntry {
                digest: digest.clone(),
                stored_at_ms: 0,
                kind: EntryKind::Denied {
                    status: AttemptStatus::InvalidKey,
                    client_id: None,
                },
            },
        );
        assert_eq!(cache.get(&host, &digest).map(|e| e.digest), Some(digest));
    }
    assert!(host.shared_len() <= 16, "{} slots used", host.shared_len());
    // The first key was evicted by a later one in its slot.
    assert!(cache.get(&host, &hash_api_key("key-0")).is_none());
}

// ------------------------------------------------------------ API keys

#[wasm_bindgen_test(unsupported = test)]
fn public_path_passes_without_credential_and_strips_internal_headers() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({})));
    let actions = done(auth.on_request(&host, &request("/health/detailed", None, None)));
    assert!(actions.reply.is_none());
    assert!(actions.remove_headers.contains(&"x-client-id"));
    assert!(actions.set_headers.is_empty());
    assert!(counted_attempts(&host).is_empty());
}

#[wasm_bindgen_test(unsupported = test)]
fn missing_credentials_get_401_envelope_metric_and_log() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({})));
    let actions = done(auth.on_request(&host, &request("/api/v1/rates/AAPL", None, None)));
    let (status, body) = reply_of(&actions);
    assert_eq!(status, 401);
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    assert_eq!(body["error"]["request_id"], "rid-1");
    assert_eq!(
        counted_attempts(&host),
        vec![AttemptStatus::MissingCredentials]
    );
    let log = host.logs.borrow()[0].clone();
    assert!(
        log.starts_with("level=ERROR msg=\"Authentication error\" reason=missing_credentials"),
        "{log}"
    );
    assert!(log.contains("endpoint=\"/api/v1/rates/{ticker}\""), "{log}");
    assert!(log.contains("request_id=\"rid-1\""), "{log}");
}

#[wasm_bindgen_test(unsupported = test)]
fn malformed_key_is_refused_without_asking_the_service() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({})));
    let actions = done(auth.on_request(
        &host,
        &request("/api/v1/rates/AAPL", Some("brl_short"), None),
    ));
    assert_eq!(reply_of(&actions).0, 401);
    assert_eq!(counted_attempts(&host), vec![AttemptStatus::InvalidKey]);
    assert!(!host.logs.borrow()[0].contains("brl_short"));
}

#[wasm_bindgen_test(unsupported = test)]
fn valid_key_sets_identity_headers_strips_the_key_and_is_cached() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(quick_cache()));
    let req = request("/api/v1/rates/AAPL", Some(KEY), None);
    let p = pending(auth.on_request(&host, &req));
    assert_eq!(p.key_hash(), Some(KEY_HASH));
    let body = String::from_utf8(p.request_body()).unwrap();
    assert_eq!(body, format!(r#"{{"key_hash":"{KEY_HASH}"}}"#));
    assert!(!body.contains(KEY));
    let body = active_body(Some("2027-01-01T00:00:00Z"));
    let actions = auth.on_verify_response(
        &host,
        &p,
        VerifyAnswer::Response {
            status: 200,
            body: &body,
        },
    );
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-client-id"), Some("test123"));
    assert_eq!(header(&actions, "x-client-scopes"), Some("admin"));
    assert_eq!(header(&actions, "x-auth-method"), Some("api_key"));
    assert_eq!(header(&actions, "x-client-rate-limit"), Some("120"));
    assert!(actions.remove_headers.contains(&"x-api-key"));
    assert!(actions.remove_headers.contains(&"x-client-id"));

    host.advance_ms(9_000);
    let cached = done(auth.on_request(&host, &req));
    assert_eq!(header(&cached, "x-client-id"), Some("test123"));
    host.advance_ms(1_000);
    pending(auth.on_request(&host, &req));
    assert_eq!(
        counted_attempts(&host),
        vec![AttemptStatus::Success, AttemptStatus::Success]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn credential_header_is_kept_when_stripping_is_off() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({"strip_credential_header": false})));
    let p = pending(auth.on_request(&host, &request("/x", Some(KEY), None)));
    let body = active_body(None);
    let actions = auth.on_verify_response(
        &host,
        &p,
        VerifyAnswer::Response {
            status: 200,
            body: &body,
        },
    );
    assert!(!actions.remove_headers.contains(&"x-api-key"));
    assert!(header(&actions, "x-client-rate-limit").is_some());
}

#[wasm_bindgen_test(unsupported = test)]
fn unknown_key_is_refused_and_remembered_briefly() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(quick_cache()));
    let req = request("/api/v1/calculate-locate", Some(KEY), None);
    let p = pending(auth.on_request(&host, &req));
    let body = unknown_key_body();
    let actions = auth.on_verify_response(
        &host,
        &p,
        VerifyAnswer::Response {
            status: 404,
            body: &body,
        },
    );
    let (status, envelope) = reply_of(&actions);
    assert_eq!(status, 401);
    assert_eq!(envelope["error"]["message"], "Invalid API key");
    let again = done(auth.on_request(&host, &req));
    assert_eq!(reply_of(&again).0, 401);
    host.advance_ms(2_000);
    pending(auth.on_request(&host, &req));
    assert_eq!(
        counted_attempts(&host),
        vec![AttemptStatus::InvalidKey, AttemptStatus::InvalidKey]
    );
    assert!(host.logs.borrow().iter().all(|l| !l.contains(KEY)));
}

#[wasm_bindgen_test(unsupported = test)]
fn revoked_and_expired_keys_get_their_own_status() {
    let host = RecordingHost::at(NOW_S * 1000);
    let req = request("/api/v1/rates/AAPL", Some(KEY), None);
    let cases: [(Vec<u8>, AttemptStatus, &str); 3] = [
        (json!({"client_id": "c1", "status": "revoked", "expires_at": null, "rate_limit_per_minute": null, "scopes": []}).to_string().into_bytes(), AttemptStatus::RevokedKey, "API key has been revoked"),
        (json!({"client_id": "c1", "status": "expired", "expires_at": "2026-01-01T00:00:00Z", "rate_limit_per_minute": null, "scopes": []}).to_string().into_bytes(), AttemptStatus::ExpiredKey, "API key has expired"),
        (active_body(Some("2026-11-23T09:59:59Z")), AttemptStatus::ExpiredKey, "API key has expired"),
    ];
    for (body, expected, message) in cases {
        host.shared.borrow_mut().clear();
        let auth = Authenticator::new(settings(json!({})));
        let p = pending(auth.on_request(&host, &req));
        let actions = auth.on_verify_response(
            &host,
            &p,
            VerifyAnswer::Response {
                status: 200,
                body: &body,
            },
        );
        let (status, envelope) = reply_of(&actions);
        assert_eq!(status, 401);
        assert_eq!(envelope["error"]["message"], message);
        assert_eq!(counted_attempts(&host).last(), Some(&expected));
        let log = host.logs.borrow().last().cloned().unwrap();
        assert!(
            log.contains(&format!("reason={}", expected.as_str())),
            "{log}"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn cached_key_stops_working_when_its_expiry_passes() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({})));
    let req = request("/api/v1/rates/AAPL", Some(KEY), None);
    let p = pending(auth.on_request(&host, &req));
    let body = active_body(Some("2026-11-23T10:00:05Z"));
    let ok = auth.on_verify_response(
        &host,
        &p,
        VerifyAnswer::Response {
            status: 200,
            body: &body,
        },
    );
    assert!(ok.reply.is_none());
    host.advance_ms(5_000);
    let actions = done(auth.on_request(&host, &req));
    assert_eq!(reply_of(&actions).0, 401);
    assert_eq!(
        counted_attempts(&host).last(),
        Some(&AttemptStatus::ExpiredKey)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn unreachable_service_fails_closed_with_503_for_unknown_keys() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({})));
    let p = pending(auth.on_request(&host, &request("/api/v1/rates/AAPL", Some(KEY), None)));
    let failures = [
        VerifyAnswer::Failed,
        VerifyAnswer::Response {
            status: 503,
            body: b"upstream connect error",
        },
        VerifyAnswer::Response {
            status: 404,
            body: b"not found",
        },
        VerifyAnswer::Response {
            status: 200,
            body: b"{\"client_id\":\"a b\",\"status\":\"active\"}",
        },
        VerifyAnswer::Response {
            status: 200,
            body: b"{\"client_id\":\"a\",\"status\":\"frozen\"}",
        },
    ];
    for answer in failures {
        let actions = auth.on_verify_response(&host, &p, answer);
        let (status, body) = reply_of(&actions);
        assert_eq!(status, 503, "{answer:?}");
        assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
        let reply = actions.reply.unwrap();
        assert!(reply
            .headers
            .contains(&("content-type", "application/json".into())));
        assert!(reply.headers.contains(&("x-request-id", "rid-1".into())));
    }
    assert!(
        counted_attempts(&host).is_empty(),
        "an outage is not an authentication attempt"
    );
    assert_eq!(host.shared_len(), 0, "failures are not cached");
    assert!(host.logs.borrow()[0].contains("reason=auth_service_unavailable"));
}

#[wasm_bindgen_test(unsupported = test)]
fn known_key_keeps_working_for_the_stale_window_while_the_service_is_down() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(quick_cache()));
    let req = request("/api/v1/rates/AAPL", Some(KEY), None);
    let p = pending(auth.on_request(&host, &req));
    let body = active_body(None);
    auth.on_verify_response(
        &host,
        &p,
        VerifyAnswer::Response {
            status: 200,
            body: &body,
        },
    );

    host.advance_ms(15_000); // past the 10 s TTL, inside the 30 s stale window
    let p = pending(auth.on_request(&host, &req));
    let actions = auth.on_verify_response(&host, &p, VerifyAnswer::Failed);
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-client-id"), Some("test123"));
    assert!(host
        .logs
        .borrow()
        .last()
        .unwrap()
        .contains("serving cached key"));

    host.advance_ms(25_000); // 40 s old: beyond TTL + stale window
    let p = pending(auth.on_request(&host, &req));
    let actions = auth.on_verify_response(&host, &p, VerifyAnswer::Failed);
    assert_eq!(reply_of(&actions).0, 503);
}

#[wasm_bindgen_test(unsupported = test)]
fn disabled_filter_only_strips_internal_headers() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({"enabled": false})));
    let actions = done(auth.on_request(&host, &request("/api/v1/rates/AAPL", None, None)));
    assert!(actions.reply.is_none());
    assert!(actions.remove_headers.contains(&"x-client-id"));
    assert!(actions.set_headers.is_empty());
}

// ------------------------------------------------------------------ JWT

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn jwt_outcome(config: Value, token: &str, now_s: u64) -> (Actions, RecordingHost) {
    let host = RecordingHost::at(now_s * 1000);
    let auth = Authenticator::new(settings(config));
    let auth_header = bearer(token);
    let actions = done(auth.on_request(
        &host,
        &request("/api/v1/rates/AAPL", None, Some(&auth_header)),
    ));
    (actions, host)
}

fn assert_refused(config: Value, token: &str, status: AttemptStatus, detail: &str) {
    let (actions, host) = jwt_outcome(config, token, NOW_S);
    assert_eq!(reply_of(&actions).0, 401, "{detail}");
    assert_eq!(counted_attempts(&host), vec![status], "{detail}");
    let log = host.logs.borrow()[0].clone();
    assert!(log.contains(&format!("detail={detail}")), "{log}");
    assert!(!log.contains(token), "the token must not be logged");
}

#[wasm_bindgen_test(unsupported = test)]
fn valid_hs256_token_authenticates_as_its_subject() {
    let token = hs_token(claims("client123", NOW_S + 600));
    let (actions, host) = jwt_outcome(hs_config(), &token, NOW_S);
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-client-id"), Some("client123"));
    assert_eq!(header(&actions, "x-auth-method"), Some("jwt"));
    assert_eq!(header(&actions, "x-client-scopes"), Some("admin"));
    assert!(actions.remove_headers.contains(&"authorization"));
    assert_eq!(counted_attempts(&host), vec![AttemptStatus::Success]);
}

#[wasm_bindgen_test(unsupported = test)]
fn verified_token_is_served_from_the_cache_until_exp() {
    let host = RecordingHost::at(NOW_S * 1000);
    let worker_a = Authenticator::new(settings(hs_config()));
    let worker_b = Authenticator::new(settings(hs_config()));
    let token = hs_token(claims("client123", NOW_S + 60));
    let h = bearer(&token);
    let req = request("/api/v1/rates/AAPL", None, Some(&h));
    assert!(done(worker_a.on_request(&host, &req)).reply.is_none());
    // Rewrite the shared verdict: another worker's cache hit must serve it
    // as stored (proof that it did not verify again).
    let (slot, bytes) = host
        .shared
        .borrow()
        .iter()
        .next()
        .map(|(k, v)| (k.clone(), v.clone()))
        .unwrap();
    let text = String::from_utf8(bytes)
        .unwrap()
        .replace("client123", "client999");
    host.shared.borrow_mut().insert(slot, text.into_bytes());
    assert_eq!(
        header(&done(worker_b.on_request(&host, &req)), "x-client-id"),
        Some("client999")
    );
    // The first worker answers from its own local copy.
    host.shared.borrow_mut().clear();
    assert_eq!(
        header(&done(worker_a.on_request(&host, &req)), "x-client-id"),
        Some("client123")
    );
    host.advance_ms(91_000); // past exp + 30 s leeway
    for worker in [&worker_a, &worker_b] {
        assert_eq!(reply_of(&done(worker.on_request(&host, &req))).0, 401);
        assert_eq!(
            counted_attempts(&host).last(),
            Some(&AttemptStatus::ExpiredToken)
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn key_verified_by_one_worker_is_used_by_another_without_asking_again() {
    let host = RecordingHost::at(NOW_S * 1000);
    let worker_a = Authenticator::new(settings(quick_cache()));
    let worker_b = Authenticator::new(settings(quick_cache()));
    let req = request("/api/v1/rates/AAPL", Some(KEY), None);
    let p = pending(worker_a.on_request(&host, &req));
    let body = active_body(None);
    worker_a.on_verify_response(
        &host,
        &p,
        VerifyAnswer::Response {
            status: 200,
            body: &body,
        },
    );
    let actions = done(worker_b.on_request(&host, &req));
    assert_eq!(header(&actions, "x-client-id"), Some("test123"));
    // Local copies age like the shared entry: after the TTL both ask again.
    host.advance_ms(10_000);
    pending(worker_a.on_request(&host, &req));
    pending(worker_b.on_request(&host, &req));
}

#[wasm_bindgen_test(unsupported = test)]
fn token_signed_outside_rust_verifies_identically() {
    // HS256 vector signed with Python's hmac; ES256 vector signed with OpenSSL.
    let (actions, _) = jwt_outcome(hs_config(), PY_HS256_TOKEN, 1_700_000_100);
    assert_eq!(header(&actions, "x-client-id"), Some("test123"));
    let (actions, _) = jwt_outcome(es_config(), OPENSSL_ES256_TOKEN, 1_700_000_100);
    assert_eq!(header(&actions, "x-client-id"), Some("big_fund"));
    assert_eq!(header(&actions, "x-client-scopes"), Some(""));
    let (actions, host) = jwt_outcome(hs_config(), PY_HS256_TOKEN, 1_700_000_900 + 31);
    assert_eq!(reply_of(&actions).0, 401);
    assert_eq!(counted_attempts(&host), vec![AttemptStatus::ExpiredToken]);
    let (actions, _) = jwt_outcome(hs_config(), PY_HS256_TOKEN, 1_700_000_900 + 30);
    assert!(actions.reply.is_none(), "inside the leeway");
}

#[wasm_bindgen_test(unsupported = test)]
fn expired_token_is_refused_naming_the_client() {
    let token = hs_token(claims("client123", NOW_S - 31));
    let (actions, host) = jwt_outcome(hs_config(), &token, NOW_S);
    let (status, body) = reply_of(&actions);
    assert_eq!(status, 401);
    assert_eq!(body["error"]["message"], "Bearer token has expired");
    assert_eq!(counted_attempts(&host), vec![AttemptStatus::ExpiredToken]);
    assert!(host.logs.borrow()[0].contains("client_id=\"client123\""));
}

#[wasm_bindgen_test(unsupported = test)]
fn tampered_signature_is_refused() {
    let token = hs_token(claims("client123", NOW_S + 600));
    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[0] ^= 1;
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_refused(
        hs_config(),
        &tampered,
        AttemptStatus::InvalidToken,
        "bad_signature",
    );
    // Changing the payload under the original signature fails too.
    let parts: Vec<&str> = token.split('.').collect();
    let forged = URL_SAFE_NO_PAD.encode(claims("big_fund", NOW_S + 600).to_string());
    assert_refused(
        hs_config(),
        &format!("{}.{forged}.{}", parts[0], parts[2]),
        AttemptStatus::InvalidToken,
        "bad_signature",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn alg_none_is_refused() {
    let head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims("client123", NOW_S + 600).to_string());
    assert_refused(
        hs_config(),
        &format!("{head}.{body}."),
        AttemptStatus::InvalidToken,
        "malformed_token",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn hs256_token_keyed_with_the_es256_public_key_is_refused() {
    // Algorithm confusion: HMAC over the token using the published EC key.
    let der = STANDARD.decode(EC_KEY_DER).unwrap();
    let public_point = &der[der.len() - 65..];
    let token = encode(
        &Header::new(Algorithm::HS256),
        &claims("client123", NOW_S + 600),
        &EncodingKey::from_secret(public_point),
    )
    .unwrap();
    assert_refused(
        es_config(),
        &token,
        AttemptStatus::InvalidToken,
        "algorithm_not_allowed",
    );
    // And an ES256 token is refused by an HS256 gateway.
    let es = es_token(Some("k1"), EC_KEY_DER, claims("client123", NOW_S + 600));
    assert_refused(
        hs_config(),
        &es,
        AttemptStatus::InvalidToken,
        "algorithm_not_allowed",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn es256_tokens_need_a_known_kid_and_the_matching_key() {
    let good = es_token(Some("k1"), EC_KEY_DER, claims("big_fund", NOW_S + 600));
    let (actions, _) = jwt_outcome(es_config(), &good, NOW_S);
    assert_eq!(header(&actions, "x-client-id"), Some("big_fund"));
    let unknown = es_token(Some("k9"), EC_KEY_DER, claims("big_fund", NOW_S + 600));
    assert_refused(
        es_config(),
        &unknown,
        AttemptStatus::InvalidToken,
        "unknown_kid",
    );
    let none = es_token(None, EC_KEY_DER, claims("big_fund", NOW_S + 600));
    assert_refused(
        es_config(),
        &none,
        AttemptStatus::InvalidToken,
        "missing_kid",
    );
    let other = es_token(
        Some("k1"),
        OTHER_EC_KEY_DER,
        claims("big_fund", NOW_S + 600),
    );
    assert_refused(
        es_config(),
        &other,
        AttemptStatus::InvalidToken,
        "bad_signature",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn wrong_issuer_or_audience_is_refused() {
    let mut c = claims("client123", NOW_S + 600);
    c["iss"] = json!("someone-else");
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        "wrong_issuer",
    );
    let mut c = claims("client123", NOW_S + 600);
    c["aud"] = json!("another-api");
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        "wrong_audience",
    );
    let mut c = claims("client123", NOW_S + 600);
    c["aud"] = json!(["another-api", "borrow-rate-api"]);
    let (actions, _) = jwt_outcome(hs_config(), &hs_token(c), NOW_S);
    assert!(
        actions.reply.is_none(),
        "a list containing our audience is accepted"
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn required_claims_must_be_present_and_numeric() {
    let mut c = claims("client123", NOW_S + 600);
    c["exp"] = json!((NOW_S + 600).to_string());
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        "invalid_claims",
    );
    let mut c = claims("client123", NOW_S + 600);
    c["nbf"] = json!("0");
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        "invalid_claims",
    );
    for missing in ["exp", "iss", "aud", "sub"] {
        let mut c = claims("client123", NOW_S + 600);
        c.as_object_mut().unwrap().remove(missing);
        assert_refused(
            hs_config(),
            &hs_token(c),
            AttemptStatus::InvalidToken,
            "invalid_claims",
        );
    }
    let mut c = claims("client123", NOW_S + 600);
    c["nbf"] = json!(NOW_S + 120);
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        "not_yet_valid",
    );
    let mut c = claims("client123", NOW_S + 600);
    c["sub"] = json!("bad\r\nx-client-id: admin");
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        "invalid_claims",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn bearer_tokens_are_refused_when_jwt_is_not_configured() {
    let token = hs_token(claims("client123", NOW_S + 600));
    assert_refused(
        json!({}),
        &token,
        AttemptStatus::InvalidToken,
        "jwt_disabled",
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn metric_names_carry_the_status_label_for_stats_tags() {
    let names: Vec<String> = AttemptStatus::ALL.iter().map(|s| s.metric_name()).collect();
    assert!(names.contains(&"authentication_attempts_total.status=revoked_key;".to_owned()));
    for (i, s) in AttemptStatus::ALL.iter().enumerate() {
        assert_eq!(s.index(), i);
    }
}

// ------------------------------------------------------- brute force

/// A well-formed key that is not `KEY` (index `i` makes each one different).
fn wrong_key(i: usize) -> String {
    format!("brl_{:0>40}", i)
}

/// One request with `key` from the host's current address, the auth
/// service answering "unknown key" when asked.
fn try_key(auth: &Authenticator, host: &RecordingHost, key: &str) -> u16 {
    let req = request("/api/v1/rates/AAPL", Some(key), None);
    let actions = match auth.on_request(host, &req) {
        Step::Done(actions) => actions,
        Step::VerifyKey(p) => {
            let body = if key == KEY {
                active_body(None)
            } else {
                unknown_key_body()
            };
            auth.on_verify_response(
                host,
                &p,
                VerifyAnswer::Response {
                    status: if key == KEY { 200 } else { 404 },
                    body: &body,
                },
            )
        }
    };
    actions.reply.as_ref().map_or(200, |r| r.status)
}

#[wasm_bindgen_test(unsupported = test)]
fn brute_force_defaults_to_twenty_failures_a_minute_and_zero_turns_it_off() {
    let defaults = settings(json!({})).lockout.unwrap();
    assert_eq!((defaults.max_failures, defaults.window_ms), (20, 60_000));
    assert!(settings(json!({"brute_force": {"max_failures": 0}}))
        .lockout
        .is_none());
    let err = config_error(json!({"brute_force": {"window_seconds": 0}}));
    assert_eq!(err.field, "brute_force.window_seconds");
    let err = config_error(json!({"brute_force": {"max_failures": 100_001}}));
    assert_eq!(err.field, "brute_force.max_failures");
    let err = config_error(json!({"brute_force": {"max_tries": 3}}));
    assert!(err.to_string().contains("max_tries"), "{err}");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_address_that_keeps_failing_is_throttled_with_rate_limit_headers() {
    let auth = Authenticator::new(settings(
        json!({"brute_force": {"max_failures": 5, "window_seconds": 60}}),
    ));
    let host = RecordingHost::at(NOW_S * 1000);
    host.set_source("203.0.113.7:41000");
    for i in 0..5 {
        assert_eq!(try_key(&auth, &host, &wrong_key(i)), 401, "failure {i}");
    }
    // Malformed keys and bad tokens count as failures too, but now every
    // credential not already known good from this address gets 429.
    let key99 = wrong_key(99);
    let req = request("/api/v1/rates/AAPL", Some(&key99), None);
    let actions = done(auth.on_request(&host, &req));
    let (status, body) = reply_of(&actions);
    assert_eq!(status, 429);
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(body["error"]["request_id"], "rid-1");
    let reply = actions.reply.as_ref().unwrap();
    let reply_header = |name: &str| {
        reply
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(reply_header("retry-after").as_deref(), Some("60"));
    assert_eq!(reply_header("x-ratelimit-limit").as_deref(), Some("5"));
    assert_eq!(reply_header("x-ratelimit-remaining").as_deref(), Some("0"));
    assert_eq!(reply_header("x-ratelimit-reset").as_deref(), Some("60"));
    assert_eq!(try_key(&auth, &host, "not-a-key"), 429);
    assert_eq!(
        try_key(&auth, &host, KEY),
        429,
        "an unverified key waits too"
    );
    let token = hs_token(claims("test123", NOW_S + 600));
    let jwt_auth = Authenticator::new(settings(hs_config()));
    let jwt_host = RecordingHost::at(NOW_S * 1000);
    jwt_host.set_source("203.0.113.8");
    for _ in 0..20 {
        let bad = request("/api/v1/rates/AAPL", None, Some("Bearer x.y.z"));
        assert_eq!(reply_of(&done(jwt_auth.on_request(&jwt_host, &bad))).0, 401);
    }
    let good = format!("Bearer {token}");
    let req = request("/api/v1/rates/AAPL", None, Some(&good));
    assert_eq!(reply_of(&done(jwt_auth.on_request(&jwt_host, &req))).0, 429);
}

#[wasm_bindgen_test(unsupported = test)]
fn throttling_one_address_never_blocks_another_or_a_key_already_verified() {
    let auth = Authenticator::new(settings(json!({"brute_force": {"max_failures": 3}})));
    let host = RecordingHost::at(NOW_S * 1000);
    host.set_source("198.51.100.1:5000");
    assert_eq!(try_key(&auth, &host, KEY), 200);
    for i in 0..10 {
        try_key(&auth, &host, &wrong_key(i));
    }
    assert_eq!(try_key(&auth, &host, &wrong_key(50)), 429);
    // The key this VM already holds as valid still passes, from any address.
    assert_eq!(try_key(&auth, &host, KEY), 200);
    // Another address (IPv4 or IPv6) is not affected at all.
    host.set_source("198.51.100.2:5000");
    assert_eq!(try_key(&auth, &host, &wrong_key(60)), 401);
    host.set_source("[2001:db8::1]:443");
    assert_eq!(try_key(&auth, &host, &wrong_key(61)), 401);
}

#[wasm_bindgen_test(unsupported = test)]
fn the_throttle_lifts_when_the_window_ends_and_missing_credentials_never_count() {
    let auth = Authenticator::new(settings(
        json!({"brute_force": {"max_failures": 2, "window_seconds": 10}}),
    ));
    let host = RecordingHost::at(NOW_S * 1000);
    host.set_source("192.0.2.10:1");
    for _ in 0..50 {
        let req = request("/api/v1/rates/AAPL", None, None);
        assert_eq!(reply_of(&done(auth.on_request(&host, &req))).0, 401);
    }
    assert_eq!(try_key(&auth, &host, &wrong_key(1)), 401);
    assert_eq!(try_key(&auth, &host, &wrong_key(2)), 401);
    assert_eq!(try_key(&auth, &host, &wrong_key(3)), 429);
    host.advance_ms(10_000);
    assert_eq!(try_key(&auth, &host, &wrong_key(4)), 401);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cached_valid_key_never_reads_the_source_address_and_counters_stay_bounded() {
    let auth = Authenticator::new(settings(json!({"cache": {"slots": 16}})));
    let host = RecordingHost::at(NOW_S * 1000);
    host.set_source("192.0.2.1:1");
    assert_eq!(try_key(&auth, &host, KEY), 200);
    let reads = host.source_reads.get();
    for _ in 0..100 {
        assert_eq!(try_key(&auth, &host, KEY), 200);
    }
    assert_eq!(
        host.source_reads.get(),
        reads,
        "the hot path stays host-call free"
    );
    for i in 0..500 {
        host.set_source(&format!("10.0.{}.{}:80", i / 256, i % 256));
        try_key(&auth, &host, &wrong_key(i));
    }
    let counters = host
        .shared
        .borrow()
        .keys()
        .filter(|k| k.starts_with("brl.auth.fail."))
        .count();
    assert!(counters <= 16, "{counters} counter keys for 16 slots");
}

#[wasm_bindgen_test(unsupported = test)]
fn the_address_is_taken_without_its_port() {
    assert_eq!(address_without_port("127.0.0.1:8000"), "127.0.0.1");
    assert_eq!(address_without_port("[::1]:8000"), "::1");
    assert_eq!(address_without_port("::1"), "::1");
    assert_eq!(address_without_port("10.1.2.3"), "10.1.2.3");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_hs256_token_with_any_kid_is_refused_as_an_unknown_key_id() {
    let auth = Authenticator::new(settings(hs_config()));
    let host = RecordingHost::at(NOW_S * 1000);
    for kid in ["k1", "../../etc/passwd", "' OR '1'='1"] {
        let mut header = Header::new(Algorithm::HS256);
        header.kid = Some(kid.to_owned());
        let token = encode(
            &header,
            &claims("test123", NOW_S + 600),
            &EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .unwrap();
        let bearer = format!("Bearer {token}");
        let req = request("/api/v1/rates/AAPL", None, Some(&bearer));
        let (status, _) = reply_of(&done(auth.on_request(&host, &req)));
        assert_eq!(status, 401, "kid {kid}");
        assert!(
            host.logs
                .borrow()
                .last()
                .unwrap()
                .contains("detail=unknown_kid"),
            "{:?}",
            host.logs.borrow().last()
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_tier_scope_names_the_clients_tier_and_a_client_supplied_tier_is_removed() {
    use crate::auth::decision::{tier_of, Actions, INTERNAL_HEADERS};
    let scopes = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
    assert_eq!(tier_of(&scopes(&["admin", "tier:gold"])), Some("gold"));
    assert_eq!(
        tier_of(&scopes(&["tier:gold", "tier:silver"])),
        Some("gold")
    );
    for bad in ["tier:", "tier:Gold", "tier:a b", "gold"] {
        assert_eq!(tier_of(&scopes(&[bad])), None, "{bad}");
    }
    let long = format!("tier:{}", "a".repeat(33));
    assert_eq!(tier_of(&[long]), None);

    let actions = Actions::allow(
        "fund7",
        &scopes(&["tier:gold"]),
        AuthMethod::ApiKey,
        None,
        None,
    );
    assert_eq!(header(&actions, "x-client-tier"), Some("gold"));
    let without = Actions::allow("fund8", &scopes(&["admin"]), AuthMethod::ApiKey, None, None);
    assert_eq!(header(&without, "x-client-tier"), None);
    assert!(INTERNAL_HEADERS.contains(&"x-client-tier"));
    assert!(without.remove_headers.contains(&"x-client-tier"));
}

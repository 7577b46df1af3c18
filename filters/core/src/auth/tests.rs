//! Tests of the auth core, by topic (`config`, `api_keys`, `jwt`,
//! `brute_force`), sharing the fixtures and helpers below. Each runs
//! natively (`cargo test`) and inside wasm (`wasm-bindgen-test` on
//! wasm32-unknown-unknown), so clock arithmetic, hashing and JWT crypto are
//! checked in both worlds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

use super::*;

mod api_keys;
mod brute_force;
mod config;
mod jwt;

const SECRET: &str = "an-hs256-test-secret-of-32-bytes!!";
pub(super) const KEY: &str = "brl_0123456789abcdefghijABCDEFGHIJklmnopqrst";
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
pub(super) const NOW_S: u64 = 1_795_428_000;

pub(super) fn settings(config: Value) -> Settings {
    Settings::from_json(config.to_string().as_bytes()).unwrap()
}

fn config_error(config: Value) -> ConfigError {
    Settings::from_json(config.to_string().as_bytes()).unwrap_err()
}

pub(super) fn hs_config() -> Value {
    json!({"jwt": {"secret": SECRET, "leeway_seconds": 30}})
}

fn es_config() -> Value {
    json!({"jwt": {"algorithm": "ES256", "jwks": {"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig", "x": EC_X, "y": EC_Y}
    ]}}})
}

pub(super) fn hs_token(claims: Value) -> String {
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

pub(super) fn done(step: Step) -> Actions {
    match step {
        Step::Done(actions) => actions,
        Step::VerifyKey(p) => panic!(
            "expected a final decision, got a verification of {}",
            p.key_hash().or(p.key_id()).unwrap_or_default()
        ),
    }
}

pub(super) fn pending(step: Step) -> PendingVerification {
    match step {
        Step::VerifyKey(p) => p,
        Step::Done(actions) => panic!("expected a verification, got {actions:?}"),
    }
}

/// The auth service's answer to a key verification: `status` and `body`.
pub(super) fn answered(status: u16, body: &[u8]) -> VerifyAnswer<'_> {
    VerifyAnswer::Response { status, body }
}

pub(super) fn reply_of(actions: &Actions) -> (u16, Value) {
    let reply = actions.reply.as_ref().expect("a local reply");
    (reply.status, serde_json::from_str(&reply.body).unwrap())
}

/// `actions` refuse the request with a 401, and the last attempt `host`
/// counted is `status`.
pub(super) fn assert_refused_as(actions: &Actions, host: &RecordingHost, status: AttemptStatus) {
    assert_eq!(reply_of(actions).0, 401, "{actions:?}");
    assert_eq!(counted_attempts(host).last(), Some(&status));
}

pub(super) fn header<'a>(actions: &'a Actions, name: &str) -> Option<&'a str> {
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

pub(super) fn unknown_key_body() -> Vec<u8> {
    json!({"status": "error", "error": {"code": "UNAUTHORIZED", "message": "Unknown API key", "request_id": ""}})
        .to_string()
        .into_bytes()
}

pub(super) fn quick_cache() -> Value {
    json!({"cache": {"positive_ttl_seconds": 10, "negative_ttl_seconds": 2, "stale_on_error_seconds": 30, "slots": 16}})
}

// ------------------------------------------------------------------ JWT

pub(super) fn bearer(token: &str) -> String {
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
                answered(if key == KEY { 200 } else { 404 }, &body),
            )
        }
    };
    actions.reply.as_ref().map_or(200, |r| r.status)
}

//! The auth service over real HTTP on a free port, with its own SQLite file.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use auth_service::{Config, Signing};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use serde_json::{json, Value};
use services::common::Server;
use store::NewApiKey;

const SECRET: &str = "auth-service-test-secret-0123456789abcdef";
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPVzhHez0N6sGqXzG
IZ6WfZITSOVS7FEWd7EbM7AfX2qhRANCAARw04d8U/fRM1nyBHJ2fIjA37mUPlYj
BEcAwQYDnteOaB1UnklBxFJ+GAXY9hP1iAKSkrfsEbnLzdMNLsKGY1FX
-----END PRIVATE KEY-----
";

fn db_url(name: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "auth-service-test-{}-{name}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    format!("sqlite://{}/auth.db", dir.display())
}

fn config(name: &str) -> Config {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    Config::hs256(services::Config::new(addr, db_url(name)), SECRET)
}

async fn spawn(config: Config) -> (Server, auth_service::AppState) {
    auth_service::start(&config).await.unwrap()
}

async fn create_key(state: &auth_service::AppState, key: NewApiKey) -> store::CreatedApiKey {
    state.store.create_api_key(&key).await.unwrap()
}

async fn revoke(state: &auth_service::AppState, key_id: &str) {
    state.store.revoke_api_key(key_id).await.unwrap();
}

async fn get_text(server: &Server, path: &str) -> String {
    reqwest::get(server.url(path))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn get_json<T: serde::de::DeserializeOwned>(server: &Server, path: &str) -> T {
    serde_json::from_str(&get_text(server, path).await).unwrap()
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn verify(server: &Server, key_hash: &str) -> (u16, Value) {
    verify_body(server, &json!({ "key_hash": key_hash }).to_string()).await
}

/// `POST /api/v1/auth/token` as the gateway forwards it for an API key of
/// `client_id` (the headers the auth filter sets), plus `extra` headers.
async fn exchange_for_key(
    server: &Server,
    client_id: &str,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    let mut headers = vec![("x-auth-method", "api_key"), ("x-client-id", client_id)];
    headers.extend_from_slice(extra);
    exchange(server, &headers).await
}

async fn exchange(server: &Server, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut req = reqwest::Client::new().post(server.url("/api/v1/auth/token"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

#[tokio::test]
async fn verify_reports_an_active_key_with_its_limits_and_scopes() {
    let (server, state) = spawn(config("active")).await;
    let created = create_key(
        &state,
        NewApiKey {
            client_id: "test123".into(),
            scopes: vec!["admin".into()],
            rate_limit_per_minute: Some(120),
            expires_at: Some("2099-01-01T00:00:00Z".into()),
        },
    )
    .await;
    let (status, body) = verify(&server, &store::keys::hash_key(&created.key)).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"key_id": created.record.key_id, "client_id": "test123", "status": "active",
               "expires_at": "2099-01-01T00:00:00Z", "rate_limit_per_minute": 120,
               "scopes": ["admin"]})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn verify_reports_revoked_and_expired_keys() {
    let (server, state) = spawn(config("revoked")).await;
    let revoked = new_key(&state, "client123").await;
    revoke(&state, &revoked.record.key_id).await;
    let expired = create_key(
        &state,
        NewApiKey {
            client_id: "big_fund".into(),
            expires_at: Some("2020-01-01T00:00:00Z".into()),
            ..NewApiKey::default()
        },
    )
    .await;
    let (status, body) = verify(&server, &revoked.record.key_hash).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("revoked")));
    let (status, body) = verify(&server, &expired.record.key_hash).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("expired")));
    assert_eq!(body["client_id"], "big_fund");
    let metrics = get_text(&server, "/metrics").await;
    assert!(metrics.contains("auth_key_verifications_total{result=\"revoked\"} 1"));
    // Every verification call is timed, in the shared 50 µs to 10 s buckets.
    assert!(
        metrics.contains("auth_key_verification_duration_seconds_bucket{le=\"10\"} 2\n"),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "auth_build_info{{version=\"{}\"}} 1\n",
        env!("CARGO_PKG_VERSION")
    )));
    assert!(metrics.contains("\nprocess_open_fds "), "{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn unknown_hash_is_404_with_the_unauthorized_envelope() {
    let (server, _state) = spawn(config("unknown")).await;
    let (status, body) = verify(&server, &"0".repeat(64)).await;
    assert_eq!(status, 404);
    assert_eq!(body["status"], "error");
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    server.shutdown().await;
}

#[tokio::test]
async fn malformed_hash_or_body_is_a_validation_error() {
    let (server, _state) = spawn(config("malformed")).await;
    let (status, body) = verify(&server, "brl_notahash").await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["field"], "key_hash");
    let (status, _) = verify_body(&server, r#"{"key_hash":"00","key":"brl_x"}"#).await;
    assert_eq!(status, 400);
    server.shutdown().await;
}

#[tokio::test]
async fn token_is_issued_for_a_gateway_authenticated_api_key() {
    let (server, state) = spawn(config("token")).await;
    let (status, body) = exchange_for_key(
        &server,
        "test123",
        &[("x-client-scopes", "admin"), ("x-client-rate-limit", "120")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    let claims = hs256_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], "test123");
    assert_eq!(claims["scope"], "admin");
    assert_eq!(claims["rate_limit_per_minute"], 120);
    let exp = claims["exp"].as_u64().unwrap();
    let iat = claims["iat"].as_u64().unwrap();
    assert_eq!(exp - iat, 900);
    assert!(iat.abs_diff(now()) <= 5);
    assert_eq!(state.metrics.tokens_issued(), 1);
    let metrics = get_text(&server, "/metrics").await;
    assert!(metrics.contains("jwt_tokens_issued_total 1\n"), "{metrics}");
    server.shutdown().await;
}

#[tokio::test]
async fn token_is_refused_without_gateway_api_key_authentication() {
    let (server, state) = spawn(config("refused")).await;
    for headers in [
        vec![("x-client-id", "test123")],
        vec![("x-auth-method", "jwt"), ("x-client-id", "test123")],
        vec![("x-auth-method", "api_key")],
        vec![("x-auth-method", "api_key"), ("x-client-id", "bad id")],
    ] {
        let (status, body) = exchange(&server, &headers).await;
        assert_eq!(status, 401, "{headers:?}");
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
    assert_eq!(state.metrics.tokens_issued(), 0);
    server.shutdown().await;
}

#[tokio::test]
async fn es256_tokens_verify_against_the_published_jwks() {
    let mut cfg = config("es256");
    cfg.signing = Signing::Es256 {
        private_key_pem: EC_PEM.into(),
        key_id: Some("k1".into()),
    };
    let (server, _state) = spawn(cfg).await;
    let jwks: JwkSet = get_json(&server, "/.well-known/jwks.json").await;
    let (status, body) = exchange_for_key(&server, "big_fund", &[]).await;
    assert_eq!(status, 200);
    let token = body["access_token"].as_str().unwrap();
    let header = decode_header(token).unwrap();
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(header.kid.as_deref(), Some("k1"));
    let jwk = jwks.find("k1").expect("the kid is published");
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_audience(&["borrow-rate-api"]);
    let data = decode::<Value>(token, &DecodingKey::from_jwk(jwk).unwrap(), &validation).unwrap();
    assert_eq!(data.claims["sub"], "big_fund");
    assert_eq!(data.claims["scope"], "");
    server.shutdown().await;
}

#[tokio::test]
async fn hs256_never_publishes_a_jwks() {
    let (server, _state) = spawn(config("nojwks")).await;
    let resp = reqwest::get(server.url("/.well-known/jwks.json"))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    let text = resp.text().await.unwrap();
    assert!(!text.contains(SECRET));
    server.shutdown().await;
}

#[tokio::test]
async fn health_reports_the_version() {
    let (server, _state) = spawn(config("health")).await;
    let body: Value = get_json(&server, "/health").await;
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    server.shutdown().await;
}

#[tokio::test]
async fn short_secret_or_bad_key_refuses_to_start() {
    let mut cfg = config("short");
    cfg.signing = Signing::Hs256 {
        secret: "too-short".into(),
    };
    let err = auth_service::build(&cfg).await.unwrap_err();
    assert!(err.to_string().contains("JWT_SECRET_KEY"), "{err}");
    cfg.signing = Signing::Es256 {
        private_key_pem: "not a pem".into(),
        key_id: None,
    };
    let err = auth_service::build(&cfg).await.unwrap_err();
    assert!(
        err.to_string().contains("JWT_ES256_PRIVATE_KEY_FILE"),
        "{err}"
    );
}

async fn last_used(state: &auth_service::AppState, key_id: &str) -> Option<String> {
    state
        .store
        .api_key(key_id)
        .await
        .unwrap()
        .unwrap()
        .last_used_at
}

/// Waits (up to 5 s) for the background writer to set `last_used_at` to a
/// value `ok` accepts, and returns it.
async fn wait_last_used(
    state: &auth_service::AppState,
    key_id: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        if let Some(at) = last_used(state, key_id).await.filter(|at| ok(at)) {
            return at;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "last_used_at of {key_id} not written: {:?}",
            last_used(state, key_id).await
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

async fn new_key(state: &auth_service::AppState, client_id: &str) -> store::CreatedApiKey {
    create_key(
        state,
        NewApiKey {
            client_id: client_id.into(),
            ..NewApiKey::default()
        },
    )
    .await
}

#[tokio::test]
async fn a_verified_key_records_its_last_use_at_most_once_a_minute() {
    let (server, state) = spawn(config("last-used")).await;
    let used = new_key(&state, "test123").await;
    let barrier = new_key(&state, "test123").await;
    let revoked = new_key(&state, "test123").await;
    revoke(&state, &revoked.record.key_id).await;
    assert_eq!(last_used(&state, &used.record.key_id).await, None);

    let before = now();
    let (status, _) = verify(&server, &used.record.key_hash).await;
    assert_eq!(status, 200);
    let first = wait_last_used(&state, &used.record.key_id, |_| true).await;
    let t = store::time::parse_rfc3339(&first).unwrap();
    assert!(
        (before as i64..=now() as i64).contains(&t),
        "last use {first}"
    );

    // A second later, still inside the minute: no write (a write would
    // carry a later second).
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(verify(&server, &used.record.key_hash).await.0, 200);
    // A refused key is not "used".
    assert_eq!(verify(&server, &revoked.record.key_hash).await.0, 200);
    // The writer handles records in order: once the barrier key's use is
    // written, any record queued before it has been written too.
    assert_eq!(verify(&server, &barrier.record.key_hash).await.0, 200);
    let barrier_at = wait_last_used(&state, &barrier.record.key_id, |_| true).await;
    assert!(barrier_at > first, "{barrier_at} vs {first}");
    assert_eq!(
        last_used(&state, &used.record.key_id).await.as_deref(),
        Some(first.as_str())
    );
    assert_eq!(last_used(&state, &revoked.record.key_id).await, None);
    server.shutdown().await;
}

#[tokio::test]
async fn each_use_is_recorded_once_the_interval_has_passed() {
    let mut cfg = config("last-used-interval");
    cfg.key_use_interval = std::time::Duration::from_millis(500);
    let (server, state) = spawn(cfg).await;
    let key = new_key(&state, "client123").await;
    assert_eq!(verify(&server, &key.record.key_hash).await.0, 200);
    let first = wait_last_used(&state, &key.record.key_id, |_| true).await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    assert_eq!(verify(&server, &key.record.key_hash).await.0, 200);
    let second = wait_last_used(&state, &key.record.key_id, |at| at > first.as_str()).await;
    assert!(second > first);
    server.shutdown().await;
}

#[tokio::test]
async fn a_rotated_key_verifies_inside_its_grace_and_is_refused_after_it() {
    let (server, state) = spawn(config("grace")).await;
    // Grace 0: refused at once; the new key works.
    let old = new_key(&state, "test123").await;
    let new = state
        .store
        .rotate_api_key(&old.record.key_id, std::time::Duration::ZERO)
        .await
        .unwrap();
    let (_, body) = verify(&server, &old.record.key_hash).await;
    assert_eq!(body["status"], "revoked");
    let (_, body) = verify(&server, &new.record.key_hash).await;
    assert_eq!(body["status"], "active");

    // A 2 s grace: valid now, refused once it has passed (no manipulation:
    // the stored expiry is simply reached).
    let old = new_key(&state, "client123").await;
    state
        .store
        .rotate_api_key(&old.record.key_id, std::time::Duration::from_secs(2))
        .await
        .unwrap();
    let (_, body) = verify(&server, &old.record.key_hash).await;
    assert_eq!(body["status"], "active", "{body}");
    let expires = body["expires_at"].as_str().unwrap().to_owned();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let (_, body) = verify(&server, &old.record.key_hash).await;
        if body["status"] == "expired" {
            assert!(store::time::now_rfc3339() >= expires);
            break;
        }
        assert_eq!(body["status"], "active");
        assert!(
            std::time::Instant::now() < deadline,
            "still valid after its grace"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.shutdown().await;
}

async fn verify_body(server: &Server, body: &str) -> (u16, Value) {
    let resp = reqwest::Client::new()
        .post(server.url("/internal/v1/keys/verify"))
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

/// The claims of an HS256 token the service issued: signature, issuer,
/// audience and the required claims checked.
fn hs256_claims(token: &str) -> Value {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_issuer(&["borrow-rate-gateway"]);
    validation.set_audience(&["borrow-rate-api"]);
    validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    decode::<Value>(
        token,
        &DecodingKey::from_secret(SECRET.as_bytes()),
        &validation,
    )
    .unwrap()
    .claims
}

#[tokio::test]
async fn verify_by_key_id_answers_like_verify_by_hash() {
    let (server, state) = spawn(config("by-id")).await;
    let created = create_key(
        &state,
        NewApiKey {
            client_id: "big_fund".into(),
            scopes: vec!["admin".into()],
            rate_limit_per_minute: Some(600),
            expires_at: None,
        },
    )
    .await;
    let key_id = created.record.key_id.clone();
    let by_id = json!({ "key_id": key_id }).to_string();
    let (status, body) = verify_body(&server, &by_id).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"key_id": key_id, "client_id": "big_fund", "status": "active",
               "expires_at": null, "rate_limit_per_minute": 600, "scopes": ["admin"]})
    );
    assert_eq!(
        verify(&server, &created.record.key_hash).await,
        (status, body)
    );

    revoke(&state, &key_id).await;
    let (status, body) = verify_body(&server, &by_id).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("revoked")));
    assert_eq!(body["key_id"], key_id.as_str());

    let (status, body) = verify_body(&server, r#"{"key_id":"key_0000000000000000"}"#).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    let (status, body) = verify_body(&server, r#"{"key_id":"key with spaces"}"#).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["details"][0]["field"], "key_id");
    server.shutdown().await;
}

#[tokio::test]
async fn verify_needs_exactly_one_of_key_hash_and_key_id() {
    let (server, _state) = spawn(config("one-of")).await;
    let hash = "0".repeat(64);
    for body in [
        json!({ "key_hash": hash, "key_id": "key_0000000000000000" }).to_string(),
        "{}".to_owned(),
        json!({ "key_hash": null, "key_id": null }).to_string(),
    ] {
        let (status, envelope) = verify_body(&server, &body).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(envelope["status"], "error");
        assert_eq!(envelope["error"]["code"], "VALIDATION_ERROR", "{envelope}");
        assert_eq!(
            envelope["error"]["message"],
            "Exactly one of key_hash and key_id is required"
        );
        let fields: Vec<&str> = envelope["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap())
            .collect();
        assert_eq!(fields, ["key_hash", "key_id"], "{envelope}");
        assert!(envelope["error"]["request_id"].as_str().is_some());
    }
    server.shutdown().await;
}

#[tokio::test]
async fn token_carries_the_key_id_the_gateway_names() {
    let (server, _state) = spawn(config("token-key-id")).await;
    let (status, body) = exchange_for_key(
        &server,
        "test123",
        &[("x-api-key-id", "key_AbCdEfGh01234567")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let claims = hs256_claims(body["access_token"].as_str().unwrap());
    assert_eq!(claims["key_id"], "key_AbCdEfGh01234567");
    assert_eq!(claims["sub"], "test123");

    // Without the header (or with one that is not a key id) the token has
    // no key_id claim.
    for extra in [&[][..], &[("x-api-key-id", "key id\"x")]] {
        let (status, body) = exchange_for_key(&server, "test123", extra).await;
        assert_eq!(status, 200, "{body}");
        let claims = hs256_claims(body["access_token"].as_str().unwrap());
        assert!(claims.get("key_id").is_none(), "{claims}");
    }
    server.shutdown().await;
}

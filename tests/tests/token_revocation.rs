//! A JWT stops with the API key it was exchanged for, through the real
//! gateway: the `local` configuration as `make run` renders it, the real
//! auth service and rate-limit service, `gatewayctl` on the same database,
//! and a counting upstream behind every route. The key is created and
//! revoked with gatewayctl; the token obtained with it is refused (401)
//! within the revocation window (60 s; in practice the 30 s positive TTL of
//! the filter's key-status cache), and the key too.

use std::time::{Duration, Instant};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use e2e::local::{gatewayctl_json, sqlite_database, unique, LocalServices};
use e2e::{answer, Answer, Envoy};
use serde_json::Value;

const SECRET: &str = "token-revocation-test-secret-0123456789abcdef";
/// gatewayctl's `--actor` in the audit log.
const ACTOR: &str = "revocation-test";

fn http() -> reqwest::Client {
    e2e::stand_in::client()
}

/// `POST /api/v1/calculate-locate` as `client_id`, with the credential
/// header given.
async fn locate(envoy: &Envoy, client_id: &str, credential: (&str, &str)) -> Answer {
    let body = format!(
        r#"{{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"{client_id}"}}"#
    );
    answer(
        http()
            .post(envoy.url("/api/v1/calculate-locate"))
            .header("content-type", "application/json")
            .header(credential.0, credential.1)
            .body(body),
    )
    .await
}

fn claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

#[tokio::test]
async fn a_token_stops_within_the_revocation_window_once_its_key_is_revoked() {
    let (dir, database_url) = sqlite_database("token-revocation");
    let services = LocalServices::start(&database_url, SECRET, "revocation").await;
    let yaml = services.gateway(None, &[]);
    let LocalServices {
        auth: auth_server,
        upstream,
        rls: _rls,
        ..
    } = services;
    let envoy = Envoy::start(&yaml).await;

    // A key made with gatewayctl, with a limit well above this test's pace.
    let client_id = unique("revoked_token_client");
    let created = gatewayctl_json(
        &database_url,
        ACTOR,
        &[
            "keys",
            "create",
            "--client-id",
            &client_id,
            "--rate-limit-per-minute",
            "1000",
        ],
    );
    let key = created["key"].as_str().unwrap().to_owned();
    let key_id = created["key_id"].as_str().unwrap().to_owned();

    // Ready once the key answers through the gateway (health checks passed).
    envoy
        .until_answer(
            Duration::from_secs(30),
            || locate(&envoy, &client_id, ("x-api-key", &key)),
            |a| a.status == 200,
        )
        .await;

    // Exchange the key for a token: it names the key (the gateway's id,
    // never one the client sends).
    let exchanged = answer(
        http()
            .post(envoy.url("/api/v1/auth/token"))
            .header("x-api-key", &key)
            .header("x-api-key-id", "key_chosenByClient01"),
    )
    .await;
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let token = exchanged.json()["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let token_claims = claims(&token);
    assert_eq!(token_claims["key_id"], key_id.as_str(), "{token_claims}");
    assert_eq!(token_claims["sub"], client_id.as_str(), "{token_claims}");
    let bearer = format!("Bearer {token}");

    let ok = locate(&envoy, &client_id, ("authorization", &bearer)).await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    let seen = upstream
        .requests()
        .into_iter()
        .rev()
        .find(|r| r.path == "/calculate-locate")
        .expect("the token's request reached the upstream");
    assert_eq!(seen.header("x-auth-method"), Some("jwt"));
    assert_eq!(seen.header("x-client-id"), Some(client_id.as_str()));
    assert_eq!(seen.header("x-api-key-id"), Some(key_id.as_str()));
    assert_eq!(seen.header("authorization"), None, "credential stripped");

    // Revoke; poll once a second until both the token and the key are
    // refused.
    let revoked = gatewayctl_json(&database_url, ACTOR, &["keys", "revoke", &key_id]);
    assert_eq!(revoked["status"], "revoked", "{revoked}");
    let at = Instant::now();
    let window = Duration::from_secs(60);
    let mut token_refused: Option<(Duration, Answer)> = None;
    let mut key_refused: Option<Duration> = None;
    while token_refused.is_none() || key_refused.is_none() {
        assert!(
            at.elapsed() < window,
            "not refused within 60 s of the revocation: token {:?}, key {:?}",
            token_refused.as_ref().map(|(t, _)| t),
            key_refused
        );
        if token_refused.is_none() {
            let a = locate(&envoy, &client_id, ("authorization", &bearer)).await;
            match a.status {
                200 => {}
                401 => token_refused = Some((at.elapsed(), a)),
                other => panic!("token answered {other}: {}", a.body),
            }
        }
        if key_refused.is_none() {
            let a = locate(&envoy, &client_id, ("x-api-key", &key)).await;
            match a.status {
                200 => {}
                401 => key_refused = Some(at.elapsed()),
                other => panic!("key answered {other}: {}", a.body),
            }
        }
        if token_refused.is_none() || key_refused.is_none() {
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
    let (token_after, refusal) = token_refused.unwrap();
    println!(
        "token refused {token_after:?} after the revocation, key {:?}",
        key_refused.unwrap()
    );
    assert!(token_after < window);
    let envelope = refusal.json();
    assert_eq!(envelope["status"], "error", "{}", refusal.body);
    assert_eq!(
        envelope["error"]["code"], "UNAUTHORIZED",
        "{}",
        refusal.body
    );
    assert_eq!(
        envelope["error"]["message"], "API key has been revoked",
        "{}",
        refusal.body
    );
    // And it stays refused.
    let again = locate(&envoy, &client_id, ("authorization", &bearer)).await;
    assert_eq!(again.status, 401, "{}", again.body);

    drop(envoy);
    auth_server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

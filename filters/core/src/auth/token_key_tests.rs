//! Tests of bearer tokens that name their API key (`key_id` claim): such a
//! token is accepted only while its key is active, the key's status cached
//! by key id like a key verification. Like the other auth core tests, each
//! runs natively and inside wasm (`wasm-bindgen-test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use wasm_bindgen_test::wasm_bindgen_test;

use super::tests::{
    answered, assert_refused_as, bearer, done, header, hs_config, hs_token, pending, quick_cache,
    reply_of, settings, unknown_key_body, KEY, NOW_S,
};
use super::*;

const KEY_ID: &str = "key_AbCdEfGh01234567";

/// TTLs 10 s (positive), 2 s (negative), 30 s stale-on-error; HS256.
fn auth() -> Authenticator {
    let mut config = quick_cache();
    config["jwt"] = hs_config()["jwt"].take();
    Authenticator::new(settings(config))
}

/// A host at `NOW_S` and a fresh [`auth`].
fn at_now() -> (RecordingHost, Authenticator) {
    (RecordingHost::at(NOW_S * 1000), auth())
}

/// A token for `sub` (scope admin, own limit 5 a minute) naming `key_id`.
fn token(sub: &str, key_id: Option<&str>) -> String {
    let mut claims = json!({"sub": sub, "iss": "borrow-rate-gateway", "aud": "borrow-rate-api",
        "iat": NOW_S, "exp": NOW_S + 900, "scope": "admin", "rate_limit_per_minute": 5});
    if let Some(id) = key_id {
        claims["key_id"] = json!(id);
    }
    hs_token(claims)
}

fn key_body(status: &str, client_id: &str, limit: Option<u32>) -> Vec<u8> {
    json!({"key_id": KEY_ID, "client_id": client_id, "status": status, "expires_at": null,
           "rate_limit_per_minute": limit, "scopes": ["admin"]})
    .to_string()
    .into_bytes()
}

fn on_request(auth: &Authenticator, host: &RecordingHost, bearer: &str) -> Step {
    let req = IncomingRequest {
        path: "/api/v1/calculate-locate",
        api_key: None,
        authorization: Some(bearer),
        request_id: "rid-9",
    };
    auth.on_request(host, &req)
}

/// Accepts `bearer` once with an active key (one call by key id).
fn accept_once(auth: &Authenticator, host: &RecordingHost, bearer: &str) -> Actions {
    let p = pending(on_request(auth, host, bearer));
    let body = key_body("active", "test123", Some(120));
    let actions = auth.on_verify_response(host, &p, answered(200, &body));
    assert!(actions.reply.is_none(), "{actions:?}");
    actions
}

#[wasm_bindgen_test(unsupported = test)]
fn a_token_naming_its_key_is_checked_by_key_id_then_served_from_the_cache_without_host_calls() {
    let (host, auth) = at_now();
    let bearer = bearer(&token("test123", Some(KEY_ID)));
    let p = pending(on_request(&auth, &host, &bearer));
    assert_eq!(p.key_id(), Some(KEY_ID));
    assert_eq!(p.key_hash(), None);
    let body = String::from_utf8(p.request_body()).unwrap();
    assert_eq!(body, format!(r#"{{"key_id":"{KEY_ID}"}}"#));
    let answer = key_body("active", "test123", Some(120));
    let actions = auth.on_verify_response(&host, &p, answered(200, &answer));
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-client-id"), Some("test123"));
    assert_eq!(header(&actions, "x-client-scopes"), Some("admin"));
    assert_eq!(header(&actions, "x-auth-method"), Some("jwt"));
    assert_eq!(header(&actions, "x-api-key-id"), Some(KEY_ID));
    // The key's limit as it stands now, not the one frozen in the token.
    assert_eq!(header(&actions, "x-client-rate-limit"), Some("120"));
    assert!(actions.remove_headers.contains(&"authorization"));

    // Token and key status both held by this VM: no host call at all.
    host.advance_ms(9_000);
    let calls = host.shared_calls();
    let again = done(on_request(&auth, &host, &bearer));
    assert!(again.reply.is_none());
    assert_eq!(header(&again, "x-client-rate-limit"), Some("120"));
    assert_eq!(
        host.shared_calls(),
        calls,
        "a fresh cached status costs no host call"
    );
    assert_eq!(
        counted_attempts(&host),
        vec![AttemptStatus::Success, AttemptStatus::Success]
    );

    // Another worker finds both in shared data: still no call to the service.
    let other = self::auth();
    assert!(done(on_request(&other, &host, &bearer)).reply.is_none());
}

#[wasm_bindgen_test(unsupported = test)]
fn a_revoked_key_refuses_a_token_never_seen_before() {
    let (host, auth) = at_now();
    let t = token("test123", Some(KEY_ID));
    let bearer = bearer(&t);
    let p = pending(on_request(&auth, &host, &bearer));
    let body = key_body("revoked", "test123", None);
    let actions = auth.on_verify_response(&host, &p, answered(200, &body));
    let (status, envelope) = reply_of(&actions);
    assert_eq!(status, 401);
    assert_eq!(envelope["status"], "error");
    assert_eq!(envelope["error"]["code"], "UNAUTHORIZED");
    assert_eq!(envelope["error"]["message"], "API key has been revoked");
    assert_eq!(envelope["error"]["request_id"], "rid-9");
    assert_eq!(counted_attempts(&host), vec![AttemptStatus::RevokedKey]);
    let log = host.logs.borrow().last().cloned().unwrap();
    assert!(
        log.starts_with("level=ERROR msg=\"Authentication error\" reason=revoked_key"),
        "{log}"
    );
    assert!(log.contains("detail=token_key"), "{log}");
    assert!(log.contains("client_id=\"test123\""), "{log}");
    assert!(!log.contains(&t), "the token must not be logged");

    // The denial is cached (negative TTL): the next try asks nobody.
    host.advance_ms(1_000);
    let again = done(on_request(&auth, &host, &bearer));
    assert_refused_as(&again, &host, AttemptStatus::RevokedKey);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_cached_token_stops_once_its_key_is_revoked_and_the_status_ages_out() {
    let (host, auth) = at_now();
    let bearer = bearer(&token("test123", Some(KEY_ID)));
    accept_once(&auth, &host, &bearer);
    // The key is revoked now; the cached status answers until its TTL ends.
    host.advance_ms(5_000);
    assert!(done(on_request(&auth, &host, &bearer)).reply.is_none());
    host.advance_ms(5_000);
    let p = pending(on_request(&auth, &host, &bearer));
    assert_eq!(p.key_id(), Some(KEY_ID));
    let body = key_body("revoked", "test123", None);
    let actions = auth.on_verify_response(&host, &p, answered(200, &body));
    assert_refused_as(&actions, &host, AttemptStatus::RevokedKey);
    // Every worker sees the revocation from shared data.
    let other = self::auth();
    let refused = done(on_request(&other, &host, &bearer));
    assert_refused_as(&refused, &host, AttemptStatus::RevokedKey);
}

#[wasm_bindgen_test(unsupported = test)]
fn an_expired_unknown_or_foreign_key_refuses_the_token() {
    let bearer = bearer(&token("test123", Some(KEY_ID)));
    let expired = key_body("expired", "test123", None);
    let past = json!({"key_id": KEY_ID, "client_id": "test123", "status": "active",
        "expires_at": "2026-11-23T09:00:00Z", "rate_limit_per_minute": null, "scopes": []})
    .to_string()
    .into_bytes();
    let foreign = key_body("active", "big_fund", None);
    let unknown = unknown_key_body();
    let cases: [(u16, &[u8], AttemptStatus, &str); 4] = [
        (
            200,
            &expired,
            AttemptStatus::ExpiredKey,
            "API key has expired",
        ),
        (200, &past, AttemptStatus::ExpiredKey, "API key has expired"),
        (
            200,
            &foreign,
            AttemptStatus::InvalidToken,
            "Invalid bearer token",
        ),
        (
            404,
            &unknown,
            AttemptStatus::InvalidToken,
            "Invalid bearer token",
        ),
    ];
    for (code, body, expected, message) in cases {
        let (host, auth) = at_now();
        let p = pending(on_request(&auth, &host, &bearer));
        let actions =
            auth.on_verify_response(&host, &p, VerifyAnswer::Response { status: code, body });
        let (status, envelope) = reply_of(&actions);
        assert_eq!(status, 401, "{expected:?}");
        assert_eq!(envelope["error"]["message"], message);
        assert_eq!(counted_attempts(&host), vec![expected]);
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn a_known_token_key_serves_stale_while_the_service_is_down_then_fails_closed() {
    let (host, auth) = at_now();
    let bearer = bearer(&token("test123", Some(KEY_ID)));
    accept_once(&auth, &host, &bearer);

    host.advance_ms(15_000); // past the 10 s TTL, inside the 30 s stale window
    let p = pending(on_request(&auth, &host, &bearer));
    let actions = auth.on_verify_response(&host, &p, VerifyAnswer::Failed);
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-client-id"), Some("test123"));
    assert_eq!(header(&actions, "x-client-rate-limit"), Some("120"));
    let log = host.logs.borrow().last().cloned().unwrap();
    assert!(
        log.starts_with("level=WARN msg=\"Auth service unavailable, serving cached key\""),
        "{log}"
    );

    host.advance_ms(25_000); // 40 s old: beyond TTL + stale window
    let p = pending(on_request(&auth, &host, &bearer));
    let actions = auth.on_verify_response(&host, &p, VerifyAnswer::Failed);
    let (status, envelope) = reply_of(&actions);
    assert_eq!(status, 503);
    assert_eq!(envelope["error"]["code"], "SERVICE_UNAVAILABLE");
    assert!(host
        .logs
        .borrow()
        .last()
        .unwrap()
        .contains("reason=auth_service_unavailable"));

    // A key already revoked stays refused from its stale entry.
    let (host, auth) = at_now();
    let p = pending(on_request(&auth, &host, &bearer));
    let body = key_body("revoked", "test123", None);
    auth.on_verify_response(&host, &p, answered(200, &body));
    host.advance_ms(3_000); // past the 2 s negative TTL
    let p = pending(on_request(&auth, &host, &bearer));
    let actions = auth.on_verify_response(&host, &p, VerifyAnswer::Failed);
    assert_refused_as(&actions, &host, AttemptStatus::RevokedKey);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_token_without_key_id_keeps_working_until_it_expires_without_asking() {
    let (host, auth) = at_now();
    let bearer = bearer(&token("client123", None));
    let actions = done(on_request(&auth, &host, &bearer));
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-client-id"), Some("client123"));
    // Its own claim is the only limit it has.
    assert_eq!(header(&actions, "x-client-rate-limit"), Some("5"));
    assert_eq!(header(&actions, "x-api-key-id"), None);
    host.advance_ms(600_000);
    assert!(done(on_request(&auth, &host, &bearer)).reply.is_none());
    host.advance_ms(331_000); // past exp + 30 s leeway
    let refused = done(on_request(&auth, &host, &bearer));
    assert_refused_as(&refused, &host, AttemptStatus::ExpiredToken);
}

#[wasm_bindgen_test(unsupported = test)]
fn verifying_a_key_forwards_its_id_and_answers_for_its_tokens_too() {
    let (host, auth) = at_now();
    let req = IncomingRequest {
        path: "/api/v1/auth/token",
        api_key: Some(KEY),
        authorization: None,
        request_id: "rid-8",
    };
    let p = pending(auth.on_request(&host, &req));
    assert!(p.key_hash().is_some());
    assert_eq!(p.key_id(), None);
    let body = key_body("active", "test123", Some(120));
    let actions = auth.on_verify_response(&host, &p, answered(200, &body));
    assert_eq!(header(&actions, "x-api-key-id"), Some(KEY_ID));
    assert_eq!(header(&actions, "x-auth-method"), Some("api_key"));
    // A token exchanged for that key needs no call of its own.
    let bearer = bearer(&token("test123", Some(KEY_ID)));
    let actions = done(on_request(&auth, &host, &bearer));
    assert!(actions.reply.is_none());
    assert_eq!(header(&actions, "x-api-key-id"), Some(KEY_ID));
    // A cached key keeps forwarding its id.
    let cached = done(auth.on_request(&host, &req));
    assert_eq!(header(&cached, "x-api-key-id"), Some(KEY_ID));
}

#[wasm_bindgen_test(unsupported = test)]
fn a_client_supplied_key_id_is_removed_and_a_bad_key_id_claim_is_refused() {
    assert!(INTERNAL_HEADERS.contains(&"x-api-key-id"));
    assert_eq!(API_KEY_ID_HEADER, "x-api-key-id");
    let (host, auth) = at_now();
    let public = done(auth.on_request(
        &host,
        &IncomingRequest {
            path: "/health",
            api_key: None,
            authorization: None,
            request_id: "r",
        },
    ));
    assert!(public.remove_headers.contains(&"x-api-key-id"));

    let bad_claim = bearer(&token("test123", Some("key\"x")));
    let refused = done(on_request(&auth, &host, &bad_claim));
    assert_eq!(reply_of(&refused).0, 401);
    assert_eq!(counted_attempts(&host), vec![AttemptStatus::InvalidToken]);

    // An answer about another key than the one asked for is not believed.
    let bearer = bearer(&token("test123", Some("key_Other")));
    let p = pending(on_request(&auth, &host, &bearer));
    let body = key_body("active", "test123", None);
    let actions = auth.on_verify_response(&host, &p, answered(200, &body));
    assert_eq!(reply_of(&actions).0, 503);
}

#[wasm_bindgen_test(unsupported = test)]
fn cache_entries_written_before_key_ids_still_parse() {
    let old = r#"{"h":"abc","t":5,"k":{"v":{"c":"test123","s":["admin"],"r":60,"e":99}}}"#;
    let entry: CacheEntry = serde_json::from_str(old).unwrap();
    assert_eq!(
        entry.kind,
        EntryKind::Valid {
            client_id: "test123".into(),
            scopes: vec!["admin".into()],
            rate_limit_per_minute: Some(60),
            expires_at: Some(99),
            key_id: None,
        }
    );
    let new = serde_json::to_string(&CacheEntry {
        kind: EntryKind::Valid {
            client_id: "test123".into(),
            scopes: vec![],
            rate_limit_per_minute: None,
            expires_at: None,
            key_id: Some(KEY_ID.into()),
        },
        ..entry
    })
    .unwrap();
    assert!(new.contains(&format!(r#""i":"{KEY_ID}""#)), "{new}");
}

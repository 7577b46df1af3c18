//! API keys: verification by the auth service, caching, refusals, the
//! stale window, and the identity headers (tier included).

use super::*;

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
    let actions = auth.on_verify_response(&host, &p, answered(200, &body));
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
    let actions = auth.on_verify_response(&host, &p, answered(200, &body));
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
    let actions = auth.on_verify_response(&host, &p, answered(404, &body));
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
        let actions = auth.on_verify_response(&host, &p, answered(200, &body));
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
    let ok = auth.on_verify_response(&host, &p, answered(200, &body));
    assert!(ok.reply.is_none());
    host.advance_ms(5_000);
    let actions = done(auth.on_request(&host, &req));
    assert_refused_as(&actions, &host, AttemptStatus::ExpiredKey);
}

#[wasm_bindgen_test(unsupported = test)]
fn unreachable_service_fails_closed_with_503_for_unknown_keys() {
    let host = RecordingHost::at(NOW_S * 1000);
    let auth = Authenticator::new(settings(json!({})));
    let p = pending(auth.on_request(&host, &request("/api/v1/rates/AAPL", Some(KEY), None)));
    let failures = [
        VerifyAnswer::Failed,
        answered(503, b"upstream connect error"),
        answered(404, b"not found"),
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
    auth.on_verify_response(&host, &p, answered(200, &body));

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

//! Bearer tokens: HS256 and ES256 verification, caching, and every way a
//! token is refused.

use super::*;

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
        assert_refused_as(
            &done(worker.on_request(&host, &req)),
            &host,
            AttemptStatus::ExpiredToken,
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
    worker_a.on_verify_response(&host, &p, answered(200, &body));
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

/// An HS256 token of `client123` (valid for ten minutes) whose claims
/// `change` alters: refused as an invalid token with `detail`.
fn assert_changed_claims_refused(change: impl FnOnce(&mut Value), detail: &str) {
    let mut c = claims("client123", NOW_S + 600);
    change(&mut c);
    assert_refused(
        hs_config(),
        &hs_token(c),
        AttemptStatus::InvalidToken,
        detail,
    );
}

/// `claim` set to `value`: refused with `detail`.
fn assert_claim_refused(claim: &str, value: Value, detail: &str) {
    assert_changed_claims_refused(|c| c[claim] = value, detail);
}

#[wasm_bindgen_test(unsupported = test)]
fn wrong_issuer_or_audience_is_refused() {
    assert_claim_refused("iss", json!("someone-else"), "wrong_issuer");
    assert_claim_refused("aud", json!("another-api"), "wrong_audience");
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
    for (claim, value, detail) in [
        ("exp", json!((NOW_S + 600).to_string()), "invalid_claims"),
        ("nbf", json!("0"), "invalid_claims"),
        ("nbf", json!(NOW_S + 120), "not_yet_valid"),
        ("sub", json!("bad\r\nx-client-id: admin"), "invalid_claims"),
    ] {
        assert_claim_refused(claim, value, detail);
    }
    for missing in ["exp", "iss", "aud", "sub"] {
        assert_changed_claims_refused(
            |c| {
                c.as_object_mut().unwrap().remove(missing);
            },
            "invalid_claims",
        );
    }
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

//! The plugin configuration, credential shapes, timestamps and the
//! verification cache.

use super::*;

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
    // 999_999: an entry from the future is not trusted.
    for (now_ms, expected) in [
        (1_000_000 + 9_999, Freshness::Fresh),
        (1_000_000 + 10_000, Freshness::Stale),
        (1_000_000 + 39_999, Freshness::Stale),
        (1_000_000 + 40_000, Freshness::Dead),
        (999_999, Freshness::Dead),
    ] {
        assert_eq!(
            entry.key_freshness(&policy, now_ms),
            expected,
            "at {now_ms}"
        );
    }
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

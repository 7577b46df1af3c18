//! Throttling of failed authentications per source address.

use super::*;

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

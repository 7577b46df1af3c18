//! Tests of the per-client token bucket (`local_rate_limit`). Like the
//! other auth core tests, each runs natively and inside wasm
//! (`wasm-bindgen-test`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::host::LogLevel;
use std::collections::HashMap;

use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use wasm_bindgen_test::wasm_bindgen_test;

use super::*;
use crate::metrics::{
    record_request, Endpoint, FinishedRequest, MetricCache, MetricsConfig, Origin,
};

const SECRET: &str = "an-hs256-test-secret-of-32-bytes!!";
/// 2026-11-23T10:00:00Z, in milliseconds.
const NOW_MS: u64 = 1_795_428_000_000;
const MINUTE_MS: u64 = 60_000;

fn settings(config: Value) -> Settings {
    Settings::from_json(config.to_string().as_bytes()).unwrap()
}

fn config_error(config: Value) -> ConfigError {
    Settings::from_json(config.to_string().as_bytes()).unwrap_err()
}

fn limited_auth(default_per_minute: u32) -> Authenticator {
    Authenticator::new(settings(json!({
        "local_rate_limit": {"default_per_minute": default_per_minute},
        "jwt": {"secret": SECRET},
    })))
}

/// A well-formed API key of its own for every `n`.
fn key_no(n: u32) -> String {
    format!("brl_clientkey{n:031}")
}

/// One request with `key`; when the filter asks the auth service, it
/// answers that the key belongs to `client_id` with the limit `limit`.
fn send(
    auth: &Authenticator,
    host: &RecordingHost,
    key: &str,
    client_id: &str,
    limit: Option<u32>,
) -> Actions {
    let req = IncomingRequest {
        path: "/api/v1/rates/AAPL",
        api_key: Some(key),
        authorization: None,
        request_id: "rid-7",
    };
    match auth.on_request(host, &req) {
        Step::Done(actions) => actions,
        Step::VerifyKey(pending) => {
            let body = json!({"client_id": client_id, "status": "active",
                              "rate_limit_per_minute": limit, "scopes": []})
            .to_string();
            auth.on_verify_response(
                host,
                &pending,
                VerifyAnswer::Response {
                    status: 200,
                    body: body.as_bytes(),
                },
            )
        }
    }
}

fn status(actions: &Actions) -> u16 {
    actions.reply.as_ref().map_or(200, |reply| reply.status)
}

/// How many of `n` requests at the current time pass.
fn passes(n: u32, mut send_one: impl FnMut() -> Actions) -> u32 {
    (0..n).filter(|_| status(&send_one()) == 200).count() as u32
}

fn reply_header<'a>(actions: &'a Actions, name: &str) -> Option<&'a str> {
    actions
        .reply
        .as_ref()?
        .headers
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.as_str())
}

fn policy(default_per_minute: u32) -> LocalLimitPolicy {
    LocalLimitPolicy {
        default_per_minute,
        clients: HashMap::new(),
    }
}

fn bucket_of(host: &RecordingHost, client_id: &str) -> Bucket {
    let stored = host
        .shared
        .borrow()
        .get(&format!("lrl:{client_id}"))
        .cloned();
    Bucket::decode(&stored.expect("a bucket in shared data")).expect("a readable bucket")
}

// ---------------------------------------------------------------- config

#[wasm_bindgen_test(unsupported = test)]
fn without_the_section_there_is_no_bucket_and_an_empty_section_takes_sixty_a_minute() {
    assert!(settings(json!({})).local_rate_limit.is_none());
    let local = settings(json!({"local_rate_limit": {}}))
        .local_rate_limit
        .unwrap();
    assert_eq!(local.default_per_minute, 60);
    assert!(local.clients.is_empty());
    let local = settings(json!({"local_rate_limit": {
        "default_per_minute": 120, "clients": {"big_fund": {"per_minute": 600}}}}))
    .local_rate_limit
    .unwrap();
    assert_eq!(local.default_per_minute, 120);
    assert_eq!(local.clients.get("big_fund"), Some(&600));
}

#[wasm_bindgen_test(unsupported = test)]
fn invalid_local_rate_limit_settings_are_refused_naming_the_field() {
    let cases = [
        (
            json!({"local_rate_limit": {"default_per_minute": 0}}),
            "local_rate_limit.default_per_minute",
        ),
        (
            json!({"local_rate_limit": {"default_per_minute": 1_000_001}}),
            "local_rate_limit.default_per_minute",
        ),
        (
            json!({"local_rate_limit": {"default_per_minute": "60"}}),
            "local_rate_limit.default_per_minute",
        ),
        (
            json!({"local_rate_limit": {"default_per_minute": -1}}),
            "local_rate_limit.default_per_minute",
        ),
        (
            json!({"local_rate_limit": {"clients": {"big_fund": {"per_minute": 0}}}}),
            "local_rate_limit.clients.big_fund.per_minute",
        ),
        (
            json!({"local_rate_limit": {"clients": {"big_fund": {}}}}),
            "local_rate_limit.clients.big_fund",
        ),
        (
            json!({"local_rate_limit": {"clients": {"not a client": {"per_minute": 5}}}}),
            "local_rate_limit.clients",
        ),
        (json!({"local_rate_limit": 60}), "local_rate_limit"),
    ];
    for (config, field) in cases {
        let err = config_error(config.clone());
        assert_eq!(err.field, field, "{config}: {err}");
        assert!(err.to_string().contains(field), "{err}");
    }
    let unknown = config_error(json!({"local_rate_limit": {"burst": 600}}));
    assert_eq!(unknown.field, "local_rate_limit.burst");
    assert!(unknown.problem.contains("burst"), "{unknown}");
}

// ---------------------------------------------------------------- the 429

#[wasm_bindgen_test(unsupported = test)]
fn a_client_at_five_a_minute_gets_five_requests_then_a_429_with_the_exact_headers() {
    let auth = limited_auth(60);
    let host = RecordingHost::at(NOW_MS);
    let key = key_no(1);
    for i in 0..5 {
        let actions = send(&auth, &host, &key, "small_fund", Some(5));
        assert_eq!(status(&actions), 200, "request {i}");
    }
    let actions = send(&auth, &host, &key, "small_fund", Some(5));
    let reply = actions.reply.as_ref().expect("a local reply");
    assert_eq!(reply.status, 429);
    let body: Value = serde_json::from_str(&reply.body).unwrap();
    assert_eq!(
        body,
        json!({"status": "error", "error": {"code": "RATE_LIMITED",
               "message": "Rate limit exceeded", "request_id": "rid-7"}})
    );
    // One token every 10 s (5 + 1 headroom per minute).
    let expected: Vec<(&str, String)> = vec![
        ("content-type", "application/json".into()),
        ("x-request-id", "rid-7".into()),
        ("retry-after", "10".into()),
        ("x-ratelimit-limit", "5".into()),
        ("x-ratelimit-remaining", "0".into()),
        ("x-ratelimit-reset", "10".into()),
        ("ratelimit-policy", "\"client\";q=5;w=60".into()),
        ("ratelimit", "\"client\";r=0;t=10".into()),
    ];
    assert_eq!(reply.headers, expected);
    // The request carries its identity (for the end-of-request recording),
    // but it is answered here: nothing goes upstream.
    assert!(actions
        .set_headers
        .contains(&("x-client-id", "small_fund".to_owned())));
    assert!(actions.remove_headers.contains(&"x-api-key"));
    // Authentication itself succeeded every time.
    assert_eq!(
        counted_attempts(&host).as_slice(),
        &[AttemptStatus::Success; 6]
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn a_jwt_client_is_limited_like_a_key_client() {
    let auth = limited_auth(60);
    let host = RecordingHost::at(NOW_MS);
    let exp = NOW_MS / 1000 + 600;
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "jwt_fund", "iss": "borrow-rate-gateway", "aud": "borrow-rate-api",
                "iat": exp - 900, "exp": exp, "scope": "", "rate_limit_per_minute": 3}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let req = IncomingRequest {
        path: "/api/v1/rates/AAPL",
        api_key: None,
        authorization: Some(&bearer),
        request_id: "rid-9",
    };
    let mut send_one = || match auth.on_request(&host, &req) {
        Step::Done(actions) => actions,
        Step::VerifyKey(_) => panic!("a token needs no verification call"),
    };
    // The first request verifies the token, the others use the cache.
    assert_eq!(passes(3, &mut send_one), 3);
    let refused = send_one();
    assert_eq!(status(&refused), 429);
    assert_eq!(reply_header(&refused, "x-ratelimit-limit"), Some("3"));
    // 3 + 1 per minute: one token every 15 s.
    assert_eq!(reply_header(&refused, "retry-after"), Some("15"));
}

#[wasm_bindgen_test(unsupported = test)]
fn the_429_is_counted_and_logged_once_by_the_request_recording_naming_the_client() {
    // The filter's metrics recording counts every 429 in
    // rate_limit_exceeded_total and writes its `Rate limit exceeded` line,
    // reading the client from the request headers the refused request
    // still carries.
    let auth = limited_auth(1);
    let host = RecordingHost::at(NOW_MS);
    let key = key_no(2);
    assert_eq!(status(&send(&auth, &host, &key, "tiny_fund", None)), 200);
    let refused = send(&auth, &host, &key, "tiny_fund", None);
    assert_eq!(status(&refused), 429);

    let recording = RecordingHost::default();
    *recording.headers.borrow_mut() = refused
        .set_headers
        .iter()
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .chain([("x-request-id".to_owned(), "rid-7".to_owned())])
        .collect();
    let mut cache = MetricCache::new();
    let finished = FinishedRequest {
        endpoint: Endpoint::Rates,
        method: "GET",
        status: 429,
        duration_us: 300,
        origin: Origin::Local,
        cluster: None,
        backend_latency_us: None,
    };
    record_request(&mut cache, &recording, &MetricsConfig::default(), &finished);
    cache.flush(&recording);
    assert_eq!(recording.counter("rate_limit_exceeded_total"), 1);
    assert_eq!(
        recording.logs_at(LogLevel::Warn),
        vec![
            "level=WARN msg=\"Rate limit exceeded\" client_id=\"tiny_fund\" \
             endpoint=\"/api/v1/rates/{ticker}\" request_id=\"rid-7\""
                .to_owned()
        ]
    );
    assert!(
        !recording.logs.borrow()[0].contains(&key),
        "no secret in the log"
    );
}

// ---------------------------------------------------------------- the bucket

#[wasm_bindgen_test(unsupported = test)]
fn the_bucket_refills_at_the_limit_plus_headroom_per_minute() {
    assert_eq!((headroom(5), refill_per_minute(5)), (1, 6));
    assert_eq!((headroom(100), refill_per_minute(100)), (1, 101));
    assert_eq!((headroom(101), refill_per_minute(101)), (2, 103));
    assert_eq!((headroom(1000), refill_per_minute(1000)), (10, 1010));

    // 5 a minute: a token every 10 s.
    let auth = limited_auth(60);
    let host = RecordingHost::at(NOW_MS);
    let key = key_no(3);
    let mut send_one = || send(&auth, &host, &key, "small_fund", Some(5));
    assert_eq!(passes(6, &mut send_one), 5);
    host.advance_ms(9_999);
    let refused = send(&auth, &host, &key, "small_fund", Some(5));
    assert_eq!(reply_header(&refused, "retry-after"), Some("1"));
    host.advance_ms(1);
    assert_eq!(
        passes(2, || send(&auth, &host, &key, "small_fund", Some(5))),
        1
    );
    // Half a minute: 3 tokens; a long pause: never more than the limit.
    host.advance_ms(30_000);
    assert_eq!(
        passes(4, || send(&auth, &host, &key, "small_fund", Some(5))),
        3
    );
    host.advance_ms(3_600_000);
    assert_eq!(
        passes(7, || send(&auth, &host, &key, "small_fund", Some(5))),
        5
    );

    // 200 a minute (+2): 101 tokens in 30 s.
    let host = RecordingHost::at(NOW_MS);
    let key = key_no(4);
    assert_eq!(
        passes(201, || send(&auth, &host, &key, "mid_fund", Some(200))),
        200
    );
    host.advance_ms(30_000);
    assert_eq!(
        passes(102, || send(&auth, &host, &key, "mid_fund", Some(200))),
        101
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn two_clients_draw_from_buckets_of_their_own() {
    let auth = limited_auth(60);
    let host = RecordingHost::at(NOW_MS);
    let (first, second) = (key_no(5), key_no(6));
    assert_eq!(
        passes(3, || send(&auth, &host, &first, "fund_a", Some(2))),
        2
    );
    assert_eq!(
        passes(4, || send(&auth, &host, &second, "fund_b", Some(3))),
        3
    );
    assert_eq!(status(&send(&auth, &host, &first, "fund_a", Some(2))), 429);
    assert_eq!(bucket_of(&host, "fund_a").limit, 2);
    assert_eq!(bucket_of(&host, "fund_b").limit, 3);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_new_limit_resizes_the_bucket_at_once() {
    let limits = policy(60);
    let host = RecordingHost::at(NOW_MS);
    let take = |limit: u32| limits.take(&host, "fund", Some(limit));
    // 10 a minute, two used: 8 left.
    assert!(take(10).is_none() && take(10).is_none());
    assert_eq!(bucket_of(&host, "fund").tokens(), 8);
    // Down to 3: clamped to 3 tokens, refilled at 4 a minute.
    let passed = (0..4).filter(|_| take(3).is_none()).count();
    assert_eq!(passed, 3);
    assert_eq!(
        take(3),
        Some(ClientLimited {
            limit: 3,
            retry_after_seconds: 15
        })
    );
    // Up to 600: the empty bucket now refills at 606 a minute, up to 600.
    assert_eq!(take(600).map(|l| l.retry_after_seconds), Some(1));
    host.advance_ms(MINUTE_MS);
    let passed = (0..700).filter(|_| take(600).is_none()).count();
    assert_eq!(passed, 600);
    // The time before the change refills at the old rate and never beyond
    // the old capacity: an hour idle at 2 a minute is 2 tokens at 600.
    let host = RecordingHost::at(NOW_MS);
    let take = |limit: u32| limits.take(&host, "other", Some(limit));
    assert!(take(2).is_none() && take(2).is_none() && take(2).is_some());
    host.advance_ms(60 * MINUTE_MS);
    assert_eq!((0..10).filter(|_| take(600).is_none()).count(), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn without_a_limit_of_its_own_a_client_gets_its_configured_entry_or_the_default() {
    let auth = Authenticator::new(settings(json!({"local_rate_limit": {
        "default_per_minute": 4, "clients": {"big_fund": {"per_minute": 7}}}})));
    let host = RecordingHost::at(NOW_MS);
    let (a, b, c, d) = (key_no(7), key_no(8), key_no(9), key_no(10));
    assert_eq!(passes(10, || send(&auth, &host, &a, "plain_fund", None)), 4);
    assert_eq!(passes(10, || send(&auth, &host, &b, "big_fund", None)), 7);
    // A limit of the key's own wins over both; 0 means none.
    assert_eq!(
        passes(10, || send(&auth, &host, &c, "keyed_fund", Some(2))),
        2
    );
    assert_eq!(
        passes(10, || send(&auth, &host, &d, "zero_fund", Some(0))),
        4
    );
    let refused = send(&auth, &host, &a, "plain_fund", None);
    assert_eq!(reply_header(&refused, "x-ratelimit-limit"), Some("4"));
    assert_eq!(
        reply_header(&refused, "ratelimit-policy"),
        Some("\"client\";q=4;w=60")
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn unauthenticated_and_refused_requests_take_no_token() {
    let auth = limited_auth(1);
    let host = RecordingHost::at(NOW_MS);
    for path in ["/health", "/metrics"] {
        let req = IncomingRequest {
            path,
            api_key: None,
            authorization: None,
            request_id: "",
        };
        for _ in 0..3 {
            let Step::Done(actions) = auth.on_request(&host, &req) else {
                panic!("public path");
            };
            assert_eq!(status(&actions), 200);
        }
    }
    let wrong = IncomingRequest {
        path: "/api/v1/rates/AAPL",
        api_key: Some("not-a-key"),
        authorization: None,
        request_id: "",
    };
    let Step::Done(actions) = auth.on_request(&host, &wrong) else {
        panic!("a malformed key is refused at once");
    };
    assert_eq!(status(&actions), 401);
    assert_eq!(host.shared_len(), 0, "no bucket was created");
}

#[wasm_bindgen_test(unsupported = test)]
fn an_authenticated_request_costs_one_shared_data_read_and_one_write() {
    let auth = limited_auth(2);
    let host = RecordingHost::at(NOW_MS);
    let key = key_no(11);
    assert_eq!(status(&send(&auth, &host, &key, "fund", None)), 200);
    // From now on the key is in this VM's cache: only the bucket is asked.
    let before = (host.shared_reads.get(), host.shared_writes.get());
    assert_eq!(status(&send(&auth, &host, &key, "fund", None)), 200);
    assert_eq!(
        (host.shared_reads.get(), host.shared_writes.get()),
        (before.0 + 1, before.1 + 1)
    );
    // A refused request only reads.
    assert_eq!(status(&send(&auth, &host, &key, "fund", None)), 429);
    assert_eq!(
        (host.shared_reads.get(), host.shared_writes.get()),
        (before.0 + 2, before.1 + 1)
    );
}

#[wasm_bindgen_test(unsupported = test)]
fn compare_and_swap_conflicts_are_retried_then_the_request_is_allowed() {
    let limits = policy(3);
    let host = RecordingHost::at(NOW_MS);
    assert!(limits.take(&host, "fund", None).is_none());
    assert_eq!(bucket_of(&host, "fund").tokens(), 2);

    // Two lost races: read again, the third write lands.
    host.cas_conflicts.set(2);
    let calls = host.shared_calls();
    assert!(limits.take(&host, "fund", None).is_none());
    assert_eq!(host.shared_calls() - calls, 6);
    assert_eq!(bucket_of(&host, "fund").tokens(), 1);

    // Every write lost: bounded retries, then allowed without a token.
    host.cas_conflicts.set(CAS_RETRIES + 1);
    let calls = host.shared_calls();
    assert!(limits.take(&host, "fund", None).is_none());
    assert_eq!(host.shared_calls() - calls, 2 * (CAS_RETRIES + 1));
    assert_eq!(bucket_of(&host, "fund").tokens(), 1);
    assert_eq!(host.cas_conflicts.get(), 0);

    // A write made by another worker between our read and write is seen:
    // the stale version conflicts, the fresh read finds its result.
    let (_, version) = host.shared_get_versioned("lrl:fund");
    host.shared_set("lrl:fund", &Bucket::full(3, NOW_MS).encode());
    assert_eq!(
        host.shared_set_if_unchanged("lrl:fund", b"x", version),
        SharedWrite::Conflict
    );
    assert!(limits.take(&host, "fund", None).is_none());
    assert_eq!(bucket_of(&host, "fund").tokens(), 2);
}

#[wasm_bindgen_test(unsupported = test)]
fn a_bucket_written_by_a_worker_whose_clock_runs_ahead_is_never_refilled_twice() {
    let stored = Bucket {
        limit: 60,
        units: 0,
        updated_ms: NOW_MS + 200,
    };
    let behind = stored.at(60, NOW_MS);
    assert_eq!(behind.units, 0);
    assert_eq!(behind.updated_ms, NOW_MS + 200);
    let later = behind.at(60, NOW_MS + 1_200);
    assert_eq!(later.units, 1_000 * refill_per_minute(60));
    assert_eq!(Bucket::decode(&later.encode()), Some(later));
    assert_eq!(Bucket::decode(b"garbage"), None);
    // Anything unreadable in the slot is replaced by a full bucket.
    let host = RecordingHost::at(NOW_MS);
    host.shared_set("lrl:fund", b"{\"old\":1}");
    assert!(policy(2).take(&host, "fund", None).is_none());
    assert_eq!(bucket_of(&host, "fund").tokens(), 1);
}

/// Drives one client at twice `limit` for `minutes` minutes (evenly spaced
/// requests, millisecond clock); returns the times of the requests that
/// passed and of the first refusal.
fn drive_at_twice(limit: u32, minutes: u64) -> (Vec<u64>, Option<u64>) {
    let limits = policy(limit);
    let host = RecordingHost::at(NOW_MS);
    let requests = 2 * u64::from(limit) * minutes;
    let mut passed = Vec::new();
    let mut first_refusal = None;
    for i in 0..requests {
        let at = i * MINUTE_MS / (2 * u64::from(limit));
        host.now_ms.set(NOW_MS + at);
        match limits.take(&host, "driven", None) {
            None => passed.push(at),
            Some(_) => {
                first_refusal.get_or_insert(at);
            }
        }
    }
    (passed, first_refusal)
}

/// Passed requests in `[from, from + 60 s)` (`passed` is sorted).
fn in_window(passed: &[u64], from: u64) -> u64 {
    let first = passed.partition_point(|t| *t < from);
    let end = passed.partition_point(|t| *t < from + MINUTE_MS);
    (end - first) as u64
}

/// Start of every 60-second window inside `minutes` minutes that holds a
/// distinct set of requests (at a request, or just after one).
fn window_starts(passed: &[u64], minutes: u64) -> impl Iterator<Item = u64> + '_ {
    let last_start = (minutes - 1) * MINUTE_MS;
    std::iter::once(0)
        .chain(passed.iter().flat_map(|t| [*t, t + 1]))
        .chain((0..=last_start).step_by(250))
        .filter(move |start| *start <= last_start)
}

#[wasm_bindgen_test(unsupported = test)]
fn a_client_at_twice_its_limit_passes_at_least_its_limit_every_minute_and_at_most_limit_plus_headroom_in_the_second(
) {
    for limit in [1, 2, 5, 60, 100] {
        let (passed, _) = drive_at_twice(limit, 2);
        let l = u64::from(limit);
        for start in window_starts(&passed, 2) {
            let n = in_window(&passed, start);
            assert!(
                n >= l,
                "limit {limit}: only {n} passed in the window from {start} ms"
            );
        }
        let second = in_window(&passed, MINUTE_MS);
        assert!(
            second <= l + headroom(limit),
            "limit {limit}: {second} passed in the second minute"
        );
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn at_larger_limits_a_client_at_twice_its_limit_passes_at_most_limit_plus_headroom_once_its_bucket_ran_dry(
) {
    for limit in [101, 250, 1000, 5000] {
        let (passed, first_refusal) = drive_at_twice(limit, 3);
        let (l, h) = (u64::from(limit), headroom(limit));
        let dry = first_refusal.expect("the bucket runs dry");
        assert!(dry > MINUTE_MS, "limit {limit}: dry at {dry} ms");
        for start in window_starts(&passed, 3) {
            let n = in_window(&passed, start);
            assert!(n >= l, "limit {limit}: only {n} from {start} ms");
            if start >= dry {
                assert!(n <= l + h, "limit {limit}: {n} from {start} ms");
            }
        }
        // The second minute starts with the headroom of the first still in
        // the bucket (it runs dry just after the minute).
        let second = in_window(&passed, MINUTE_MS);
        assert!(second <= l + 2 * h, "limit {limit}: {second}");
    }
}

#[wasm_bindgen_test(unsupported = test)]
fn the_largest_limit_gatewayctl_accepts_is_held_exactly_without_overflow() {
    // 1 000 000 a minute: the top of gatewayctl's range.
    let limit = 1_000_000;
    let mut bucket = Bucket::full(limit, NOW_MS);
    assert_eq!(bucket.tokens(), 1_000_000);
    for _ in 0..1_000_000 {
        bucket = bucket.take().unwrap();
    }
    assert!(bucket.take().is_none(), "a full bucket holds exactly L");
    // One minute later: L + headroom (1% = 10 000) tokens, capped at L.
    let later = bucket.at(limit, NOW_MS + MINUTE_MS);
    assert_eq!(later.tokens(), 1_000_000);
    // Six milliseconds refill (1 010 000 / 60 000) × 6 = 101 tokens.
    let soon = bucket.at(limit, NOW_MS + 6);
    assert_eq!(soon.tokens(), 101);
    let encoded = Bucket::decode(&soon.encode()).unwrap();
    assert_eq!(encoded.tokens(), 101);
}

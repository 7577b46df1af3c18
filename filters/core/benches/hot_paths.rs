//! The filters' own code on their per-request paths, natively, with test
//! doubles for the host: what the Rust logic costs once the host boundary
//! (VM entries and host calls) is taken away.
//!
//!     cargo bench -p filter-core --bench hot_paths [-- CASE [ITERATIONS]]
//!
//! prints nanoseconds per request for each case (or one case). Under
//! callgrind (`cargo xtask bench callgrind`) it gives instruction
//! counts, which do not depend on what else the machine is doing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::Instant;

use filter_core::auth::{
    Authenticator, IncomingRequest, RecordingHost, Settings, Step, VerifyAnswer,
};
use filter_core::metrics::{
    record_request, Endpoint, FinishedRequest, MetricCache, MetricsConfig, Origin,
};
use filter_core::validation::{Flow, RequestValidation, ValidationConfig};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};

const SECRET: &str = "hot-paths-bench-hs256-secret-0123456789";
const KEY: &str = "brl_0123456789abcdefghijABCDEFGHIJklmnopqrst";
/// 2026-11-23T10:00:00Z.
const NOW_MS: u64 = 1_795_428_000_000;
const CASES: [&str; 4] = [
    "auth-cached-key",
    "auth-cached-jwt",
    "validation-200b",
    "metrics",
];

fn authenticator() -> Authenticator {
    let config = format!(r#"{{"jwt": {{"algorithm": "HS256", "secret": "{SECRET}"}}}}"#);
    Authenticator::new(Settings::from_json(config.as_bytes()).unwrap())
}

fn request<'a>(api_key: Option<&'a str>, authorization: Option<&'a str>) -> IncomingRequest<'a> {
    IncomingRequest {
        path: "/api/v1/calculate-locate",
        api_key,
        authorization,
        request_id: "0f9b6c9e-3d1c-4a55-9b5e-1c2d3e4f5a6b",
    }
}

/// A closure running one request of `case`, after its warm-up (the key or
/// token already cached, the metric ids already defined).
fn case(name: &str) -> Box<dyn FnMut()> {
    match name {
        "auth-cached-key" => {
            let auth = authenticator();
            let host = RecordingHost::at(NOW_MS);
            let Step::VerifyKey(pending) = auth.on_request(&host, &request(Some(KEY), None)) else {
                panic!("an unknown key must be verified first");
            };
            let answer = br#"{"client_id":"test123","status":"active","scopes":[],"rate_limit_per_minute":600}"#;
            let actions = auth.on_verify_response(
                &host,
                &pending,
                VerifyAnswer::Response {
                    status: 200,
                    body: answer,
                },
            );
            assert!(actions.reply.is_none(), "the verified key is allowed");
            Box::new(move || {
                let step = auth.on_request(&host, &request(Some(black_box(KEY)), None));
                assert!(matches!(step, Step::Done(ref a) if a.reply.is_none()));
                host.counted.borrow_mut().clear();
                black_box(step);
            })
        }
        "auth-cached-jwt" => {
            let auth = authenticator();
            let host = RecordingHost::at(NOW_MS);
            let claims = serde_json::json!({
                "sub": "test123", "iss": "borrow-rate-gateway", "aud": "borrow-rate-api",
                "iat": NOW_MS / 1000, "exp": NOW_MS / 1000 + 900, "scope": ""
            });
            let token = encode(
                &Header::new(Algorithm::HS256),
                &claims,
                &EncodingKey::from_secret(SECRET.as_bytes()),
            )
            .unwrap();
            let bearer = format!("Bearer {token}");
            let first = auth.on_request(&host, &request(None, Some(&bearer)));
            assert!(
                matches!(first, Step::Done(ref a) if a.reply.is_none()),
                "{first:?}"
            );
            Box::new(move || {
                let step = auth.on_request(&host, &request(None, Some(black_box(&bearer))));
                assert!(matches!(step, Step::Done(ref a) if a.reply.is_none()));
                host.counted.borrow_mut().clear();
                black_box(step);
            })
        }
        "validation-200b" => {
            let body = br#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
            let mut padded = body.to_vec();
            padded.resize(200, b' ');
            let host = RecordingHost::with_headers(&[
                (":path", "/api/v1/calculate-locate"),
                (":method", "POST"),
                ("content-type", "application/json"),
                ("content-length", "200"),
                ("x-client-id", "test123"),
                ("x-client-scopes", ""),
                ("x-request-id", "0f9b6c9e-3d1c-4a55-9b5e-1c2d3e4f5a6b"),
            ]);
            *host.body.borrow_mut() = padded;
            let config = ValidationConfig::parse(br#"{"max_body_bytes": 8192}"#).unwrap();
            Box::new(move || {
                let mut filter = RequestValidation::new(config.clone());
                assert_eq!(filter.on_request_headers(&host, false), Flow::Continue);
                assert_eq!(filter.on_request_body(&host, 200, true), Flow::Continue);
                assert!(host.replies.borrow().is_empty() && host.logs.borrow().is_empty());
                black_box(filter);
            })
        }
        "metrics" => {
            let mut cache = MetricCache::new();
            let host = RecordingHost::default();
            let config = MetricsConfig::parse(b"{}").unwrap();
            let finished = FinishedRequest {
                endpoint: Endpoint::CalculateLocate,
                method: "POST",
                status: 200,
                duration_us: 3_250,
                origin: Origin::Upstream,
                cluster: Some("calculation_service".into()),
                backend_latency_us: Some(2_900),
            };
            record_request(&mut cache, &host, &config, &finished);
            Box::new(move || {
                record_request(&mut cache, &host, &config, black_box(&finished));
            })
        }
        other => panic!("unknown case {other}; cases: {CASES:?}"),
    }
}

fn main() {
    // `cargo bench` passes `--bench`; anything else is CASE [ITERATIONS].
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let iterations: u64 = args
        .get(1)
        .map_or(200_000, |n| n.parse().expect("ITERATIONS"));
    let names: Vec<&str> = match args.first() {
        Some(one) => vec![one.as_str()],
        None => CASES.to_vec(),
    };
    for name in names {
        let mut run = case(name);
        let start = Instant::now();
        for _ in 0..iterations {
            run();
        }
        let elapsed = start.elapsed();
        if iterations > 0 {
            let ns = elapsed.as_nanos() as f64 / iterations as f64;
            println!("{name:<18} {ns:>9.1} ns/request  ({iterations} requests)");
        }
    }
}

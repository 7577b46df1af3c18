//! Fuzzes the auth filter's input paths: the three plugin configurations
//! (auth, validation, metrics) as Envoy hands them over, and the credential
//! headers of a request (`X-API-Key`, `Authorization`) through the same
//! `Authenticator` the filter runs, followed by an arbitrary auth-service
//! answer. No input may panic, a configuration error always names a field,
//! and no fuzzed credential is ever let through without a verification.
#![no_main]

use filter_core::auth::{Authenticator, IncomingRequest, RecordingHost, Settings, Step, VerifyAnswer};
use filter_core::metrics::MetricsConfig;
use filter_core::validation::ValidationConfig;
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = r#"{"jwt": {"algorithm": "HS256", "secret": "fuzzing-hs256-secret-0123456789abcdef"},
                         "brute_force": {"max_failures": 5, "window_seconds": 60}}"#;

thread_local! {
    static AUTH: Authenticator = Authenticator::new(
        Settings::from_json(CONFIG.as_bytes()).unwrap_or_else(|e| panic!("{e}")),
    );
}

fuzz_target!(|data: &[u8]| {
    // Plugin configurations: accepted or refused naming a field.
    if let Err(err) = Settings::from_json(data) {
        assert!(!err.field.is_empty());
    }
    if let Err(err) = ValidationConfig::parse(data) {
        assert!(err.starts_with("invalid validation filter configuration"));
    }
    if let Err(err) = MetricsConfig::parse(data) {
        assert!(err.starts_with("invalid metrics filter configuration"));
    }

    // Credentials: the first line is the API key, the rest the
    // Authorization value; the whole input is the auth service's answer.
    let text = String::from_utf8_lossy(data);
    let (key, authorization) = text.split_once('\n').unwrap_or((&text, ""));
    let host = RecordingHost::at(1_795_428_000_000);
    host.set_source("192.0.2.1:4000");
    AUTH.with(|auth| {
        for (api_key, authorization) in [
            (Some(key), None),
            (None, Some(authorization)),
            (Some(key), Some(authorization)),
        ] {
            let req = IncomingRequest {
                path: "/api/v1/rates/AAPL",
                api_key,
                authorization,
                request_id: "fuzz",
            };
            match auth.on_request(&host, &req) {
                // Without the secret or the auth service, only a refusal.
                Step::Done(actions) => assert!(actions.reply.is_some(), "{actions:?}"),
                Step::VerifyKey(pending) => {
                    assert_eq!(pending.key_hash().map(str::len), Some(64));
                    for status in [200, 404, 500] {
                        let _ = auth.on_verify_response(
                            &host,
                            &pending,
                            VerifyAnswer::Response { status, body: data },
                        );
                    }
                    let refused = auth.on_verify_response(&host, &pending, VerifyAnswer::Failed);
                    assert!(refused.reply.is_some());
                }
            }
        }
    });
});

//! Fuzzes the rate-limit service's own inputs: the limits file (YAML, as
//! reloaded at run time) and the mapping of an Envoy descriptor (arbitrary
//! entries) to the limit that applies. No input may panic; an accepted file
//! never holds a zero limit; a descriptor maps to a client rule exactly when
//! it carries a non-empty `client_id`, with a limit of at least 1.
#![no_main]

#[path = "../../backends/ratelimit/src/limits.rs"]
#[allow(dead_code)]
mod limits;

use libfuzzer_sys::fuzz_target;
use limits::{Limits, LimitsFile, RuleKind, CLIENT_ID_KEY};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(file) = LimitsFile::parse(&text, "fuzz.yaml") {
        assert!(file.unauthenticated.per_minute >= 1);
        assert!(file.clients.values().all(|l| l.per_minute >= 1));
    }

    // Entries: one `key=value` per line.
    let entries: Vec<(&str, &str)> = text
        .lines()
        .map(|l| l.split_once('=').unwrap_or((l, "")))
        .collect();
    let limits = match Limits::new(60, None) {
        Ok(limits) => limits,
        Err(e) => panic!("{e}"),
    };
    let rule = limits.rule_for(entries.iter().copied());
    let has_client = entries.iter().any(|(k, v)| *k == CLIENT_ID_KEY && !v.is_empty());
    match &rule {
        Some(rule) => {
            assert!(rule.max >= 1);
            assert_eq!(rule.window_secs, 60);
            assert_eq!(rule.kind == RuleKind::Client, has_client);
        }
        None => assert!(!has_client),
    }
});

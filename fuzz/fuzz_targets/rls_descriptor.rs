//! Fuzzes the rate-limit service's own inputs: the limits file (YAML, as
//! reloaded at run time, envoyproxy/ratelimit's format or the old one) and
//! the mapping of an Envoy descriptor (arbitrary entries) to the limit that
//! applies. No input may panic; an accepted file is for the service's domain
//! and never holds a zero limit; with the built-in limits a descriptor maps
//! to a client rule exactly when, besides `client_limit`, it is one
//! non-empty `client_id`; every rule has a limit of at least 1 and the
//! window of its unit.
#![no_main]

#[path = "../../backends/ratelimit/src/limits.rs"]
#[allow(dead_code)]
mod limits;

use libfuzzer_sys::fuzz_target;
use limits::{
    DescriptorConfig, Limits, LimitsFile, Rule, RuleKind, CLIENT_ID_KEY, CLIENT_LIMIT_KEY,
};

fn check_nodes(nodes: &[DescriptorConfig]) {
    for n in nodes {
        if let Some(limit) = &n.rate_limit {
            assert!(limit.unlimited || limit.requests_per_unit >= 1);
        }
        check_nodes(&n.descriptors.0);
    }
}

fn check_rule(rule: &Rule) {
    assert!(rule.unlimited || rule.max >= 1);
    assert_eq!(rule.window_secs, rule.unit.seconds());
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
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
    let walk: Vec<&(&str, &str)> = entries
        .iter()
        .filter(|(k, _)| *k != CLIENT_LIMIT_KEY)
        .collect();
    let per_client = walk.len() == 1 && walk[0].0 == CLIENT_ID_KEY && !walk[0].1.is_empty();
    match &rule {
        Some(rule) => {
            check_rule(rule);
            assert_eq!(rule.kind == RuleKind::Client, per_client);
        }
        None => assert!(!per_client),
    }

    if let Ok(file) = LimitsFile::parse(&text, "fuzz.yaml") {
        assert_eq!(file.domain, limits::DOMAIN);
        check_nodes(&file.descriptors.0);
        limits.set(file);
        if let Some(rule) = limits.rule_for(entries.iter().copied()) {
            check_rule(&rule);
        }
    }
});

//! The limits file: parsing, conversion of the old format, the tree and
//! its matching.

use super::*;

fn limits(file: &str) -> Limits {
    let l = Limits::new(60, None).unwrap();
    l.set(LimitsFile::parse(file, "test").unwrap());
    l
}

const FILE: &str = "\
domain: borrow_rate_gateway
descriptors:
  - key: client_id
    rate_limit: { unit: minute, requests_per_unit: 100 }
  - key: client_id
    value: big_fund
    rate_limit: { unit: minute, requests_per_unit: 600 }
  - key: unauthenticated
    value: true
    descriptors:
      - key: remote_address
        rate_limit: { unit: minute, requests_per_unit: 5 }
  - key: route
    value: calculate-locate
    descriptors:
      - key: client_id
        rate_limit: { unit: second, requests_per_unit: 2 }
";

#[test]
fn a_client_descriptor_uses_the_default_limit_without_a_file() {
    let r = Limits::new(60, None)
        .unwrap()
        .rule_for([("client_id", "test123")])
        .unwrap();
    assert_eq!(r.kind, RuleKind::Client);
    assert_eq!(r.policy, "client");
    assert_eq!(r.subject, "test123");
    assert_eq!(r.max, 60);
    assert_eq!(r.window_secs, 60);
}

#[test]
fn the_keys_own_limit_beats_the_file_and_the_default() {
    let l = limits(FILE);
    let own = l
        .rule_for([("client_id", "big_fund"), ("client_limit", "7")])
        .unwrap();
    assert_eq!(own.max, 7);
    assert_eq!(l.rule_for([("client_id", "big_fund")]).unwrap().max, 600);
    assert_eq!(l.rule_for([("client_id", "other")]).unwrap().max, 100);
}

#[test]
fn an_unusable_client_limit_falls_back_to_the_file() {
    let l = limits(FILE);
    for bad in ["", "0", "-3", "ten"] {
        let r = l
            .rule_for([("client_id", "c"), ("client_limit", bad)])
            .unwrap();
        assert_eq!(r.max, 100, "{bad:?}");
    }
}

#[test]
fn unauthenticated_traffic_is_limited_per_address() {
    let r = limits(FILE)
        .rule_for([("unauthenticated", "true"), ("remote_address", "10.0.0.1")])
        .unwrap();
    assert_eq!(r.kind, RuleKind::Address);
    assert_eq!(r.policy, "address");
    assert_eq!(r.path, "unauthenticated=true/remote_address");
    assert_eq!(r.subject, "10.0.0.1");
    assert_eq!(r.max, 5);
}

#[test]
fn a_route_descriptor_walks_to_the_nested_client_node() {
    let l = limits(FILE);
    let r = l
        .rule_for([("route", "calculate-locate"), ("client_id", "c1")])
        .unwrap();
    assert_eq!(r.kind, RuleKind::Route);
    assert_eq!(r.policy, "route-calculate-locate");
    assert_eq!(r.path, "route=calculate-locate/client_id");
    assert_eq!(r.subject, "c1");
    assert_eq!((r.max, r.window_secs), (2, 1));
    assert!(l
        .rule_for([("route", "rates"), ("client_id", "c1")])
        .is_none());
    assert!(l.rule_for([("route", "calculate-locate")]).is_none());
}

#[test]
fn a_descriptor_with_no_known_key_matches_no_rule() {
    assert!(limits(FILE).rule_for([("path", "/x")]).is_none());
    assert!(limits(FILE).rule_for([("client_id", "")]).is_none());
    assert!(limits(FILE)
        .rule_for([("remote_address", "1.2.3.4")])
        .is_none());
}

#[test]
fn separators_in_values_are_escaped_in_counter_subjects() {
    let r = limits(FILE).rule_for([("client_id", "a/b:c")]).unwrap();
    assert_eq!(r.subject, "a%2Fb%3Ac");
}

#[test]
fn the_old_format_is_converted() {
    let l =
        limits("unauthenticated:\n  per_minute: 4\nclients:\n  big_fund:\n    per_minute: 600\n");
    assert!(l.current().converted_from_old_format);
    let r = l
        .rule_for([("unauthenticated", "true"), ("remote_address", "a")])
        .unwrap();
    assert_eq!(r.max, 4);
    assert_eq!(l.rule_for([("client_id", "big_fund")]).unwrap().max, 600);
    assert_eq!(l.rule_for([("client_id", "x")]).unwrap().max, 60);
}

#[test]
fn a_bad_limits_file_is_rejected_naming_line_and_field() {
    let e = LimitsFile::parse("unauthenticated:\n  per_minute: 0\n", "f.yaml").unwrap_err();
    assert!(e.contains("unauthenticated.per_minute"), "{e}");
    assert!(e.contains(MIGRATION_SECTION), "{e}");
    let e = LimitsFile::parse("clients:\n  x:\n    per_mnute: 3\n", "f.yaml").unwrap_err();
    assert!(e.contains("per_mnute"), "{e}");
    let bad_unit = FILE.replace("unit: second", "unit: seconds");
    let e = LimitsFile::parse(&bad_unit, "f.yaml").unwrap_err();
    assert!(
        e.starts_with("f.yaml line 17: descriptors[3].descriptors[0].rate_limit.unit: unknown variant \"seconds\", expected one of second, minute, hour, day"),
        "{e}"
    );
    let e = LimitsFile::parse(&FILE.replace("600", "0"), "f.yaml").unwrap_err();
    assert!(
        e.starts_with(
            "f.yaml line 7: descriptors[1].rate_limit.requests_per_unit: must be at least 1"
        ),
        "{e}"
    );
    let e = LimitsFile::parse("domain: other\n", "f.yaml").unwrap_err();
    assert!(
        e.starts_with("f.yaml line 1: domain: \"other\" is not this service's domain"),
        "{e}"
    );
    let dup = "domain: borrow_rate_gateway\ndescriptors:\n  - key: a\n  - key: a\n";
    let e = LimitsFile::parse(dup, "f.yaml").unwrap_err();
    assert!(e.contains("duplicate descriptor"), "{e}");
    let e = LimitsFile::parse("descriptors: []\n", "f.yaml").unwrap_err();
    assert!(e.contains("domain"), "{e}");
    let e =
        LimitsFile::parse("domain: borrow_rate_gateway\nquota_mode: true\n", "f.yaml").unwrap_err();
    assert!(e.contains("quota_mode"), "{e}");
}

#[test]
fn units_are_read_in_any_case() {
    for (unit, secs) in [
        ("second", 1),
        ("MINUTE", 60),
        ("hour", 3600),
        ("Day", 86400),
    ] {
        let text = format!(
            "domain: borrow_rate_gateway\ndescriptors:\n  - key: k\n    rate_limit: {{unit: {unit}, requests_per_unit: 3}}\n"
        );
        let r = limits(&text).rule_for([("k", "v")]).unwrap();
        assert_eq!(r.window_secs, secs, "{unit}");
        assert_eq!(r.policy, "k");
    }
}

#[test]
fn unlimited_takes_no_unit() {
    let ok = "domain: borrow_rate_gateway\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true}\n";
    assert!(limits(ok).rule_for([("k", "v")]).unwrap().unlimited);
    let bad = "domain: borrow_rate_gateway\ndescriptors:\n  - key: k\n    rate_limit: {unlimited: true, unit: minute}\n";
    let e = LimitsFile::parse(bad, "f.yaml").unwrap_err();
    assert!(e.contains("unlimited"), "{e}");
}

#[test]
fn an_empty_file_means_the_built_in_limits() {
    assert_eq!(LimitsFile::parse("", "f").unwrap(), LimitsFile::default());
    assert_eq!(
        LimitsFile::parse("# nothing\n", "f").unwrap(),
        LimitsFile::default()
    );
}

#[test]
fn the_shipped_limits_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("limits.yaml");
    let file = LimitsFile::load(&path).unwrap();
    assert!(!file.converted_from_old_format);
}

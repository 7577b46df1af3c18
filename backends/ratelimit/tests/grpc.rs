//! The rate-limit service spoken to over real gRPC, as Envoy does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use ratelimit::{Config, FailureMode, Running};
use tonic::transport::Channel;

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn config() -> Config {
    Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        key_prefix: unique("test"),
        reload_interval: Duration::from_millis(50),
        ..Config::default()
    }
}

async fn client(r: &Running) -> RateLimitServiceClient<Channel> {
    RateLimitServiceClient::connect(format!("http://{}", r.grpc_addr))
        .await
        .unwrap()
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        ..Default::default()
    }
}

async fn ask(
    c: &mut RateLimitServiceClient<Channel>,
    entries: &[(&str, &str)],
) -> RateLimitResponse {
    c.should_rate_limit(RateLimitRequest {
        domain: "borrow_rate_gateway".to_owned(),
        descriptors: vec![descriptor(entries)],
        hits_addend: 1,
    })
    .await
    .unwrap()
    .into_inner()
}

fn header<'a>(r: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    r.response_headers_to_add
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn is_ok(r: &RateLimitResponse) -> bool {
    r.overall_code == Code::Ok as i32
}

fn is_over(r: &RateLimitResponse) -> bool {
    r.overall_code == Code::OverLimit as i32
}

#[tokio::test]
async fn a_key_with_limit_n_gets_n_ok_answers_then_over_limit() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let id = unique("client");
    for expected_remaining in (0..3).rev() {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "3")]).await;
        assert!(is_ok(&r), "{r:?}");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert!(header(&r, "retry-after").is_none());
        let st = &r.statuses[0];
        assert_eq!(st.current_limit.as_ref().unwrap().requests_per_unit, 3);
        assert_eq!(st.limit_remaining, expected_remaining);
        assert!(st.duration_until_reset.as_ref().unwrap().seconds >= 1);
    }
    let r = ask(&mut c, &[("client_id", &id), ("client_limit", "3")]).await;
    assert!(is_over(&r), "{r:?}");
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&r, "x-ratelimit-reset"),
        header(&r, "retry-after"),
        "Retry-After and X-RateLimit-Reset agree"
    );
    assert_eq!(rls.shared.metrics().decisions("ok"), 3);
    assert_eq!(rls.shared.metrics().decisions("over_limit"), 1);
}

#[tokio::test]
async fn clients_are_counted_separately() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let (a, b) = (unique("a"), unique("b"));
    assert!(is_ok(
        &ask(&mut c, &[("client_id", &a), ("client_limit", "1")]).await
    ));
    assert!(is_over(
        &ask(&mut c, &[("client_id", &a), ("client_limit", "1")]).await
    ));
    assert!(is_ok(
        &ask(&mut c, &[("client_id", &b), ("client_limit", "1")]).await
    ));
}

#[tokio::test]
async fn the_default_limit_applies_when_the_key_has_none_and_its_own_limit_overrides_it() {
    let rls = ratelimit::spawn(Config {
        default_per_minute: 2,
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let plain = unique("plain");
    for _ in 0..2 {
        let r = ask(&mut c, &[("client_id", &plain)]).await;
        assert!(is_ok(&r));
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    }
    assert!(is_over(&ask(&mut c, &[("client_id", &plain)]).await));

    let generous = unique("generous");
    for _ in 0..4 {
        let r = ask(&mut c, &[("client_id", &generous), ("client_limit", "4")]).await;
        assert!(is_ok(&r), "own limit 4 beats default 2");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("4"));
    }
    assert!(is_over(
        &ask(&mut c, &[("client_id", &generous), ("client_limit", "4")]).await
    ));
}

/// A limits file in envoyproxy/ratelimit's format with these descriptors.
fn new_format(descriptors: &str) -> String {
    format!("domain: borrow_rate_gateway\ndescriptors:\n{descriptors}")
}

/// `remote_address` under `unauthenticated: true`, 2 per minute.
const ADDRESS_2: &str = concat!(
    "  - key: unauthenticated\n",
    "    value: \"true\"\n",
    "    descriptors:\n",
    "      - key: remote_address\n",
    "        rate_limit: { unit: minute, requests_per_unit: 2 }\n",
);

fn limits_file(body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("rls-limits"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("limits.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

#[tokio::test]
async fn unauthenticated_traffic_is_limited_per_source_address() {
    let file = limits_file(&new_format(ADDRESS_2));
    let rls = ratelimit::spawn(Config {
        limits_file: Some(file),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let a = [("unauthenticated", "true"), ("remote_address", "192.0.2.1")];
    assert!(is_ok(&ask(&mut c, &a).await));
    assert!(is_ok(&ask(&mut c, &a).await));
    let r = ask(&mut c, &a).await;
    assert!(is_over(&r));
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    assert!(header(&r, "retry-after").is_some());
    let b = [("unauthenticated", "true"), ("remote_address", "192.0.2.2")];
    assert!(
        is_ok(&ask(&mut c, &b).await),
        "another address has its own budget"
    );
}

#[tokio::test]
async fn a_changed_limits_file_applies_without_restart() {
    let file = limits_file(&new_format(&ADDRESS_2.replace(": 2 }", ": 1 }")));
    let rls = ratelimit::spawn(Config {
        limits_file: Some(file.clone()),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let addr = [
        ("unauthenticated", "true"),
        ("remote_address", "198.51.100.7"),
    ];
    assert!(is_ok(&ask(&mut c, &addr).await));
    assert!(is_over(&ask(&mut c, &addr).await));

    // Rewrite with a later modification time and a higher limit.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&file, new_format(&ADDRESS_2.replace(": 2 }", ": 3 }"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rls.shared.metrics().reloads.get() == 0 {
        assert!(Instant::now() < deadline, "limits file was not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = ask(&mut c, &addr).await;
    assert!(is_ok(&r), "{r:?}");
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));

    // A broken file is rejected and the limits in force stay.
    std::fs::write(&file, new_format(&ADDRESS_2.replace(": 2 }", ": -1 }"))).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rls.shared.metrics().reload_errors.get() == 0 {
        assert!(Instant::now() < deadline, "broken file was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = ask(&mut c, &addr).await;
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
}

#[tokio::test]
async fn a_bad_limits_file_stops_the_service_from_starting() {
    let file = limits_file(&new_format(&ADDRESS_2.replace(": 2 }", ": 0 }")));
    let err = ratelimit::build(Config {
        limits_file: Some(file.clone()),
        ..config()
    })
    .await
    .err()
    .unwrap();
    assert_eq!(
        err,
        format!(
            "{} line 7: descriptors[0].descriptors[0].rate_limit.requests_per_unit: \
             must be at least 1 (a limit of 0 would refuse every request)",
            file.display()
        )
    );
}

async fn ask_all(
    c: &mut RateLimitServiceClient<Channel>,
    descriptors: &[&[(&str, &str)]],
) -> RateLimitResponse {
    c.should_rate_limit(RateLimitRequest {
        domain: "borrow_rate_gateway".to_owned(),
        descriptors: descriptors.iter().map(|d| descriptor(d)).collect(),
        hits_addend: 1,
    })
    .await
    .unwrap()
    .into_inner()
}

async fn with_file(body: &str) -> (Running, RateLimitServiceClient<Channel>) {
    let rls = ratelimit::spawn(Config {
        limits_file: Some(limits_file(&new_format(body))),
        ..config()
    })
    .await
    .unwrap();
    let c = client(&rls).await;
    (rls, c)
}

/// `RateLimit: "<policy>";r=<remaining>;t=<reset>` split into its parts.
fn ietf_ratelimit(r: &RateLimitResponse) -> (String, u64, u64) {
    let v = header(r, "ratelimit").expect("RateLimit header");
    let mut parts = v.split(';');
    let policy = parts.next().unwrap().to_owned();
    let mut remaining = None;
    let mut reset = None;
    for p in parts {
        match p.split_once('=') {
            Some(("r", n)) => remaining = Some(n.parse().unwrap()),
            Some(("t", n)) => reset = Some(n.parse().unwrap()),
            _ => panic!("unexpected parameter {p:?} in {v:?}"),
        }
    }
    (policy, remaining.unwrap(), reset.unwrap())
}

async fn metrics_text(rls: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", rls.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_unit_of_the_new_format_sets_the_window_length() {
    let mut body = String::new();
    for unit in ["second", "minute", "hour", "day"] {
        body.push_str(&format!(
            "  - key: k\n    value: {unit}\n    rate_limit: {{ unit: {unit}, requests_per_unit: 1 }}\n"
        ));
    }
    let (_rls, mut c) = with_file(&body).await;
    for (unit, secs, proto) in [
        ("second", 1, Unit::Second),
        ("minute", 60, Unit::Minute),
        ("hour", 3_600, Unit::Hour),
        ("day", 86_400, Unit::Day),
    ] {
        let r = ask(&mut c, &[("k", unit)]).await;
        assert!(is_ok(&r), "{unit}: {r:?}");
        assert_eq!(
            header(&r, "ratelimit-policy"),
            Some(format!("\"k\";q=1;w={secs}").as_str())
        );
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!(reset <= secs && reset > secs * 9 / 10, "{unit}: {reset}");
        assert_eq!(
            r.statuses[0].current_limit.as_ref().unwrap().unit,
            proto as i32
        );
        assert!(is_over(&ask(&mut c, &[("k", unit)]).await), "{unit}");
    }
    // A one-second window is over after a second.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(is_ok(&ask(&mut c, &[("k", "second")]).await));
    assert!(is_over(&ask(&mut c, &[("k", "minute")]).await));
}

#[tokio::test]
async fn a_value_entry_wins_over_the_key_only_entry_which_counts_each_value_separately() {
    let (_rls, mut c) = with_file(
        "  - key: client_id\n    rate_limit: { unit: minute, requests_per_unit: 2 }\n\
         \x20 - key: client_id\n    value: vip\n    rate_limit: { unit: minute, requests_per_unit: 3 }\n",
    )
    .await;
    let vip = [("client_id", "vip")];
    for _ in 0..3 {
        let r = ask(&mut c, &vip).await;
        assert!(is_ok(&r));
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
    }
    assert!(is_over(&ask(&mut c, &vip).await));
    let (a, b) = (unique("a"), unique("b"));
    for id in [&a, &b] {
        for _ in 0..2 {
            let r = ask(&mut c, &[("client_id", id)]).await;
            assert!(is_ok(&r), "each value has its own budget");
            assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
        }
        assert!(is_over(&ask(&mut c, &[("client_id", id)]).await));
    }
}

#[tokio::test]
async fn the_keys_own_limit_beats_the_file_entry_for_its_client() {
    let id = unique("own");
    let (_rls, mut c) = with_file(&format!(
        "  - key: client_id\n    rate_limit: {{ unit: minute, requests_per_unit: 50 }}\n\
         \x20 - key: client_id\n    value: {id}\n    rate_limit: {{ unit: minute, requests_per_unit: 40 }}\n"
    ))
    .await;
    for _ in 0..2 {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "2")]).await;
        assert!(is_ok(&r));
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
        assert_eq!(header(&r, "ratelimit-policy"), Some("\"client\";q=2;w=60"));
    }
    assert!(is_over(
        &ask(&mut c, &[("client_id", &id), ("client_limit", "2")]).await
    ));
    // Without its own limit the client's file entry applies, on its own counter.
    let r = ask(&mut c, &[("client_id", &id)]).await;
    assert!(is_ok(&r));
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("40"));
}

const ROUTE_LOCATE_2: &str = concat!(
    "  - key: route\n",
    "    value: calculate-locate\n",
    "    descriptors:\n",
    "      - key: client_id\n",
    "        rate_limit: { unit: minute, requests_per_unit: 2 }\n",
);

#[tokio::test]
async fn a_route_descriptor_is_limited_by_its_nested_client_node_and_every_policy_is_listed() {
    let rls = ratelimit::spawn(Config {
        default_per_minute: 5,
        limits_file: Some(limits_file(&new_format(ROUTE_LOCATE_2))),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("route");
    let client = [("client_id", id.as_str())];
    let locate = [("route", "calculate-locate"), ("client_id", id.as_str())];
    let rates = [("route", "rates"), ("client_id", id.as_str())];
    for left in [1, 0] {
        let r = ask_all(&mut c, &[&client, &locate]).await;
        assert!(is_ok(&r), "{r:?}");
        assert_eq!(
            header(&r, "ratelimit-policy"),
            Some("\"client\";q=5;w=60, \"route-calculate-locate\";q=2;w=60")
        );
        let (policy, remaining, _) = ietf_ratelimit(&r);
        assert_eq!(policy, "\"route-calculate-locate\"", "the most restrictive");
        assert_eq!(remaining, left);
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    }
    let r = ask_all(&mut c, &[&client, &locate]).await;
    assert!(is_over(&r));
    assert_eq!(r.statuses[0].code, Code::Ok as i32);
    assert_eq!(r.statuses[1].code, Code::OverLimit as i32);
    // Rates has no per-route limit: only the per-client one (3 of 5 used).
    let r = ask_all(&mut c, &[&client, &rates]).await;
    assert!(is_ok(&r), "{r:?}");
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"client\";q=5;w=60"));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("1"));
    assert_eq!(rls.shared.metrics().unmatched.get(), 1);
}

#[tokio::test]
async fn shadow_mode_counts_and_reports_but_never_refuses() {
    let rls = ratelimit::spawn(Config {
        default_per_minute: 10,
        limits_file: Some(limits_file(&new_format(
            "  - key: route\n    value: rates\n    descriptors:\n      - key: client_id\n        shadow_mode: true\n        rate_limit: { unit: minute, requests_per_unit: 1 }\n",
        ))),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("shadow");
    let client = [("client_id", id.as_str())];
    let rates = [("route", "rates"), ("client_id", id.as_str())];
    for i in 0..3 {
        let r = ask_all(&mut c, &[&client, &rates]).await;
        assert!(is_ok(&r), "shadow mode never refuses: {r:?}");
        assert_eq!(r.statuses[1].code, Code::Ok as i32);
        assert_eq!(r.statuses[1].limit_remaining, 0);
        assert_eq!(header(&r, "ratelimit-policy"), Some("\"client\";q=10;w=60"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some((9 - i).to_string().as_str())
        );
    }
    let text = metrics_text(&rls).await;
    assert!(
        text.contains("ratelimit_shadow_mode_over_limit_total{node=\"route=rates/client_id\"} 2\n"),
        "{text}"
    );
    assert_eq!(rls.shared.metrics().decisions("ok"), 3);
}

#[tokio::test]
async fn detailed_metric_adds_a_series_per_descriptor_value() {
    let (rls, mut c) = with_file(
        "  - key: tenant\n    detailed_metric: true\n    rate_limit: { unit: minute, requests_per_unit: 1 }\n",
    )
    .await;
    ask(&mut c, &[("tenant", "a")]).await;
    ask(&mut c, &[("tenant", "a")]).await;
    ask(&mut c, &[("tenant", "b")]).await;
    let text = metrics_text(&rls).await;
    for line in [
        "ratelimit_detailed_hits_total{descriptor=\"tenant=a\",node=\"tenant\",result=\"within_limit\"} 1\n",
        "ratelimit_detailed_hits_total{descriptor=\"tenant=a\",node=\"tenant\",result=\"over_limit\"} 1\n",
        "ratelimit_detailed_hits_total{descriptor=\"tenant=b\",node=\"tenant\",result=\"within_limit\"} 1\n",
    ] {
        assert!(text.contains(line), "{line}{text}");
    }
}

#[tokio::test]
async fn a_limit_named_in_replaces_does_not_apply_and_an_unlimited_node_is_not_counted() {
    let (_rls, mut c) = with_file(
        "  - key: client_id\n    rate_limit: { name: per-client, unit: minute, requests_per_unit: 1 }\n\
         \x20 - key: route\n    value: calculate-locate\n    descriptors:\n      - key: client_id\n        rate_limit:\n          unit: minute\n          requests_per_unit: 3\n          replaces: [{ name: per-client }]\n\
         \x20 - key: route\n    value: rates\n    descriptors:\n      - key: client_id\n        rate_limit: { unlimited: true }\n",
    )
    .await;
    let id = unique("replaced");
    let client = [("client_id", id.as_str())];
    let locate = [("route", "calculate-locate"), ("client_id", id.as_str())];
    for _ in 0..3 {
        let r = ask_all(&mut c, &[&client, &locate]).await;
        assert!(is_ok(&r), "per-client (1) replaced by the route's 3: {r:?}");
        assert_eq!(
            header(&r, "ratelimit-policy"),
            Some("\"route-calculate-locate\";q=3;w=60")
        );
    }
    assert!(is_over(&ask_all(&mut c, &[&client, &locate]).await));
    let other = unique("unlimited");
    let rates = [("route", "rates"), ("client_id", other.as_str())];
    for _ in 0..3 {
        let r = ask(&mut c, &rates).await;
        assert!(is_ok(&r));
        assert!(header(&r, "ratelimit").is_none());
    }
}

#[tokio::test]
async fn ietf_headers_on_ok_and_over_limit_match_the_x_ratelimit_headers() {
    let (_rls, mut c) = with_file(ADDRESS_2).await;
    let id = unique("ietf");
    for expected in [2, 1] {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "2")]).await;
        assert!(is_ok(&r));
        assert_eq!(header(&r, "ratelimit-policy"), Some("\"client\";q=2;w=60"));
        let (policy, remaining, reset) = ietf_ratelimit(&r);
        assert_eq!(policy, "\"client\"");
        assert_eq!(remaining, expected - 1);
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(remaining.to_string().as_str())
        );
        assert_eq!(
            header(&r, "x-ratelimit-reset"),
            Some(reset.to_string().as_str())
        );
    }
    let r = ask(&mut c, &[("client_id", &id), ("client_limit", "2")]).await;
    assert!(is_over(&r));
    let (policy, remaining, reset) = ietf_ratelimit(&r);
    assert_eq!((policy.as_str(), remaining), ("\"client\"", 0));
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"client\";q=2;w=60"));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    assert_eq!(header(&r, "retry-after"), Some(reset.to_string().as_str()));
    assert_eq!(
        header(&r, "x-ratelimit-reset"),
        Some(reset.to_string().as_str())
    );

    let addr = [
        ("unauthenticated", "true"),
        ("remote_address", "203.0.113.9"),
    ];
    let r = ask(&mut c, &addr).await;
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"address\";q=2;w=60"));
    assert_eq!(ietf_ratelimit(&r).1, 1);
}

#[tokio::test]
async fn a_malformed_file_names_line_and_field_and_the_previous_limits_stay_while_reloading() {
    let file = limits_file(&new_format(ADDRESS_2));
    let rls = ratelimit::spawn(Config {
        limits_file: Some(file.clone()),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let addr = [
        ("unauthenticated", "true"),
        ("remote_address", "192.0.2.77"),
    ];
    assert!(is_ok(&ask(&mut c, &addr).await));

    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(
        &file,
        new_format(&ADDRESS_2.replace("unit: minute", "unit: minutes")),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rls.shared.metrics().reload_errors.get() == 0 {
        assert!(Instant::now() < deadline, "broken file was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let err = ratelimit::limits::LimitsFile::load(&file).unwrap_err();
    assert_eq!(
        err,
        format!(
            "{} line 7: descriptors[0].descriptors[0].rate_limit.unit: unknown variant \
             \"minutes\", expected one of second, minute, hour, day",
            file.display()
        )
    );
    let r = ask(&mut c, &addr).await;
    assert!(is_ok(&r));
    assert_eq!(
        header(&r, "x-ratelimit-limit"),
        Some("2"),
        "old limits in force"
    );
    assert!(is_over(&ask(&mut c, &addr).await));
    assert!(metrics_text(&rls)
        .await
        .contains("ratelimit_limits_reload_errors_total 1\n"));
}

#[tokio::test]
async fn a_file_for_another_domain_is_refused() {
    let file = limits_file(&new_format(ADDRESS_2).replace("borrow_rate_gateway", "other"));
    let err = ratelimit::build(Config {
        limits_file: Some(file.clone()),
        ..config()
    })
    .await
    .err()
    .unwrap();
    assert_eq!(
        err,
        format!(
            "{} line 1: domain: \"other\" is not this service's domain (expected borrow_rate_gateway)",
            file.display()
        )
    );
}

#[tokio::test]
async fn a_request_for_another_domain_is_not_limited() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let r = c
        .should_rate_limit(RateLimitRequest {
            domain: "other".to_owned(),
            descriptors: vec![descriptor(&[("client_id", "x"), ("client_limit", "1")])],
            hits_addend: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(is_ok(&r));
    assert!(r.response_headers_to_add.is_empty());
    assert_eq!(rls.shared.metrics().unmatched.get(), 1);
}

#[tokio::test]
async fn an_old_format_file_is_converted() {
    let id = unique("old");
    let file = limits_file(&format!(
        "unauthenticated:\n  per_minute: 1\nclients:\n  {id}:\n    per_minute: 2\n"
    ));
    let rls = ratelimit::spawn(Config {
        limits_file: Some(file),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let addr = [
        ("unauthenticated", "true"),
        ("remote_address", "192.0.2.99"),
    ];
    assert!(is_ok(&ask(&mut c, &addr).await));
    assert!(is_over(&ask(&mut c, &addr).await));
    let r = ask(&mut c, &[("client_id", &id)]).await;
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
}

#[tokio::test]
async fn route_and_client_limits_keep_separate_redis_counters_named_by_node_and_window() {
    let Some(url) = redis_url() else { return };
    let prefix = unique("nodes");
    let rls = ratelimit::spawn(Config {
        redis_url: Some(url.clone()),
        key_prefix: prefix.clone(),
        default_per_minute: 5,
        limits_file: Some(limits_file(&new_format(ROUTE_LOCATE_2))),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("rc");
    let client = [("client_id", id.as_str())];
    let locate = [("route", "calculate-locate"), ("client_id", id.as_str())];
    for _ in 0..2 {
        assert!(is_ok(&ask_all(&mut c, &[&client, &locate]).await));
    }
    let r = ask_all(&mut c, &[&client, &locate]).await;
    assert!(is_over(&r));
    assert_eq!(ietf_ratelimit(&r).0, "\"route-calculate-locate\"");
    let redis = redis::Client::open(url).unwrap();
    let mut conn = redis.get_multiplexed_async_connection().await.unwrap();
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    keys.sort();
    assert_eq!(
        keys,
        vec![
            format!("{prefix}:borrow_rate_gateway:client_id:5/60s:{id}"),
            format!("{prefix}:borrow_rate_gateway:route=calculate-locate/client_id:2/60s:{id}"),
        ]
    );
    let client_hits: u64 = redis::cmd("GET")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(client_hits, 3, "the client limit counted every request");
}

#[tokio::test]
async fn a_descriptor_matching_no_rule_is_allowed_without_headers() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let r = ask(&mut c, &[("path", "/health")]).await;
    assert!(is_ok(&r));
    assert!(header(&r, "x-ratelimit-limit").is_none());
    assert_eq!(rls.shared.metrics().unmatched.get(), 1);
}

#[tokio::test]
async fn an_empty_domain_is_an_invalid_argument() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let err = c
        .should_rate_limit(RateLimitRequest {
            domain: String::new(),
            descriptors: vec![descriptor(&[("client_id", "x")])],
            hits_addend: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn health_and_metrics_answer_over_http() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let id = unique("m");
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], ratelimit::VERSION);
    let metrics = reqwest::get(format!("http://{}/metrics", rls.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ratelimit_decisions_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ratelimit_decisions_total{result=\"over_limit\"} 1"));
    assert!(metrics.contains("ratelimit_storage_info{storage=\"memory\"} 1"));
    assert!(
        metrics.contains(&format!(
            "rate_limit_client_utilization_ratio{{client_id=\"{id}\"}} 1\n"
        )),
        "{metrics}"
    );
    let missing = reqwest::get(format!("http://{}/nope", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

/// A Redis URL that nothing listens on.
fn dead_redis() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn redis_down_allows_requests_by_default_and_health_reports_503() {
    let rls = ratelimit::spawn(Config {
        redis_url: Some(dead_redis()),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("down");
    for _ in 0..3 {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
        assert!(is_ok(&r), "fail-open: {r:?}");
    }
    assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 3);
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn redis_down_denies_requests_when_configured_to() {
    let rls = ratelimit::spawn(Config {
        redis_url: Some(dead_redis()),
        failure_mode: FailureMode::Deny,
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let r = ask(&mut c, &[("client_id", &unique("deny"))]).await;
    assert!(is_over(&r));
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(rls.shared.metrics().decisions("failure_denied"), 1);
}

fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            println!("REDIS_URL is not set: skipping the Redis-backed test");
            None
        }
    }
}

#[tokio::test]
async fn two_service_replicas_sharing_redis_enforce_one_limit() {
    let Some(url) = redis_url() else { return };
    let shared_cfg = Config {
        redis_url: Some(url),
        ..config()
    };
    let one = ratelimit::spawn(shared_cfg.clone()).await.unwrap();
    let two = ratelimit::spawn(shared_cfg).await.unwrap();
    let (mut c1, mut c2) = (client(&one).await, client(&two).await);
    let id = unique("shared");
    let d = [("client_id", id.as_str()), ("client_limit", "4")];
    let mut ok = 0;
    for i in 0..8 {
        let c = if i % 2 == 0 { &mut c1 } else { &mut c2 };
        let r = ask(c, &d).await;
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("4"));
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        if is_ok(&r) {
            ok += 1;
            assert_eq!(
                header(&r, "x-ratelimit-remaining"),
                Some((4 - ok).to_string().as_str())
            );
        } else {
            assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
            assert_eq!(header(&r, "retry-after"), Some(reset.to_string().as_str()));
        }
    }
    assert_eq!(ok, 4, "4 allowed in total across both replicas");
    assert_eq!(one.shared.metrics().decisions("failure_allowed"), 0);
    let health = reqwest::get(format!("http://{}/health", one.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("http://{}/metrics", one.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ratelimit_storage_info{storage=\"redis\"} 1"));
}

/// A TCP forwarder to Redis that can be cut and restored on the same port.
struct RedisProxy {
    port: u16,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl RedisProxy {
    async fn start(target: &str, port: u16) -> RedisProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let conns = std::sync::Arc::clone(&tasks);
        let to = target.to_owned();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = to.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        RedisProxy {
            port,
            target: target.to_owned(),
            tasks,
        }
    }

    /// Closes the listener and every forwarded connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

#[tokio::test]
async fn losing_redis_fails_open_and_counting_resumes_when_it_returns() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = RedisProxy::start(&target, 0).await;
    let rls = ratelimit::spawn(Config {
        redis_url: Some(format!("redis://127.0.0.1:{}", proxy.port)),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("flaky");
    let d = [("client_id", id.as_str()), ("client_limit", "2")];
    let r = ask(&mut c, &d).await;
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("1"));

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = ask(&mut c, &d).await;
    assert!(is_ok(&r), "fail-open while Redis is away: {r:?}");
    assert!(header(&r, "x-ratelimit-remaining").is_none());
    assert!(rls.shared.metrics().decisions("failure_allowed") >= 1);
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);

    let _back = RedisProxy::start(&proxy.target, proxy.port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = reqwest::get(format!("http://{}/health", rls.http_addr))
            .await
            .unwrap();
        if h.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not reconnect to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The counter kept in Redis survived: one hit before the cut, one now.
    let r = ask(&mut c, &d).await;
    assert!(is_ok(&r));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert!(is_over(&ask(&mut c, &d).await));
}

/// Redis as operators run it: `rediss://` with a CA file, an ACL user,
/// refusals that say why, and a Redis lost mid-window. Each test starts its
/// own `redis-server` (TLS port only, a throwaway CA made here, nothing
/// kept on disk) and skips with a printed reason when there is none.
mod redis_tls {
    use super::*;
    use std::process::{Child, Command, Stdio};

    const USER: &str = "ratelimit";
    const PASSWORD: &str = "tls-acl-s3cret";

    /// A CA, a server certificate for 127.0.0.1 and localhost, and a client
    /// certificate, all signed by that CA, as PEM files in a scratch dir.
    struct Pki {
        dir: PathBuf,
    }

    impl Pki {
        fn new() -> Pki {
            use rcgen::{
                BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
                KeyPair, KeyUsagePurpose,
            };
            let dir = std::env::temp_dir().join(unique("rls-redis-tls"));
            std::fs::create_dir_all(&dir).unwrap();
            let write = |name: &str, body: String| std::fs::write(dir.join(name), body).unwrap();
            let ca_key = KeyPair::generate().unwrap();
            let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
            ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            ca.distinguished_name
                .push(DnType::CommonName, unique("ratelimit test CA"));
            ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            let ca = ca.self_signed(&ca_key).unwrap();
            write("ca.pem", ca.pem());
            let leaf = |names: Vec<String>, purpose: ExtendedKeyUsagePurpose, file: &str| {
                let key = KeyPair::generate().unwrap();
                let mut p = CertificateParams::new(names).unwrap();
                p.distinguished_name.push(DnType::CommonName, file);
                p.extended_key_usages = vec![purpose];
                let cert = p.signed_by(&key, &ca, &ca_key).unwrap();
                write(&format!("{file}.pem"), cert.pem());
                write(&format!("{file}.key"), key.serialize_pem());
            };
            leaf(
                vec!["127.0.0.1".into(), "localhost".into()],
                ExtendedKeyUsagePurpose::ServerAuth,
                "server",
            );
            leaf(
                vec!["ratelimit".into()],
                ExtendedKeyUsagePurpose::ClientAuth,
                "client",
            );
            Pki { dir }
        }

        fn path(&self, name: &str) -> PathBuf {
            self.dir.join(name)
        }

        /// The CA file as `REDIS_CA_FILE` takes it.
        fn tls(&self) -> ratelimit::config::RedisTls {
            ratelimit::config::RedisTls {
                ca_file: Some(self.path("ca.pem")),
                ..Default::default()
            }
        }
    }

    impl Drop for Pki {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// `redis-server` on a TLS port only (`--port 0`), with the ACL user
    /// [`USER`] and the `default` user switched off, persisting nothing.
    struct TlsRedis {
        port: u16,
        pki: Pki,
        auth_clients: &'static str,
        child: Child,
    }

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port()
    }

    impl TlsRedis {
        /// `None` (after saying why) when `redis-server` is not installed.
        /// `auth_clients`: `no` or `yes` (client certificates required).
        fn start(auth_clients: &'static str) -> Option<TlsRedis> {
            if Command::new("redis-server")
                .arg("--version")
                .output()
                .is_err()
            {
                println!("redis-server is not installed: skipping the Redis TLS test");
                return None;
            }
            let pki = Pki::new();
            let port = free_port();
            let child = Self::spawn(&pki, port, auth_clients);
            Some(TlsRedis {
                port,
                pki,
                auth_clients,
                child,
            })
        }

        fn spawn(pki: &Pki, port: u16, auth_clients: &str) -> Child {
            let p = |n: &str| pki.path(n).display().to_string();
            let mut child = Command::new("redis-server")
                .args(["--port", "0", "--bind", "127.0.0.1"])
                .args(["--tls-port", &port.to_string()])
                .args(["--tls-cert-file", &p("server.pem")])
                .args(["--tls-key-file", &p("server.key")])
                .args(["--tls-ca-cert-file", &p("ca.pem")])
                .args(["--tls-auth-clients", auth_clients])
                .args(["--user", "default", "off"])
                .args([
                    "--user",
                    USER,
                    "on",
                    &format!(">{PASSWORD}"),
                    "~*",
                    "&*",
                    "+@all",
                ])
                .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
                .args(["--dir", &pki.dir.display().to_string()])
                .args(["--logfile", &p("redis.log")])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("redis-server");
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                if let Ok(Some(status)) = child.try_wait() {
                    let log = std::fs::read_to_string(pki.path("redis.log")).unwrap_or_default();
                    panic!("redis-server --tls-port exited: {status}\n{log}");
                }
                assert!(Instant::now() < deadline, "redis-server did not listen");
                std::thread::sleep(Duration::from_millis(20));
            }
            child
        }

        fn url(&self, user: &str, password: &str) -> String {
            format!("rediss://{user}:{password}@127.0.0.1:{}/0", self.port)
        }

        /// SIGKILL: every connection dies, and with it every counter.
        fn kill(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }

        /// A new, empty server on the same port, certificates and users.
        fn restart(&mut self) {
            self.child = Self::spawn(&self.pki, self.port, self.auth_clients);
        }

        /// A connection of the test's own (TLS, the ACL user).
        async fn connect(&self) -> redis::aio::MultiplexedConnection {
            let ca = std::fs::read(self.pki.path("ca.pem")).unwrap();
            let client = redis::Client::build_with_tls(
                self.url(USER, PASSWORD),
                redis::TlsCertificates {
                    client_tls: (self.auth_clients == "yes").then(|| redis::ClientTlsConfig {
                        client_cert: std::fs::read(self.pki.path("client.pem")).unwrap(),
                        client_key: std::fs::read(self.pki.path("client.key")).unwrap(),
                    }),
                    root_cert: Some(ca),
                },
            )
            .unwrap();
            client.get_multiplexed_async_connection().await.unwrap()
        }
    }

    impl Drop for TlsRedis {
        fn drop(&mut self) {
            self.kill();
        }
    }

    async fn health(r: &Running) -> (u16, serde_json::Value) {
        let h = reqwest::get(format!("http://{}/health", r.http_addr))
            .await
            .unwrap();
        let status = h.status().as_u16();
        (status, h.json().await.unwrap())
    }

    async fn wait_healthy(r: &Running, secs: u64) {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let (status, body) = health(r).await;
            if status == 200 {
                return;
            }
            assert!(Instant::now() < deadline, "never healthy: {body}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The `ratelimit-service` binary started with `env`: its log (stderr)
    /// until it says it listens, plus a little more.
    fn service_log(env: &[(&str, String)]) -> String {
        use std::io::BufRead;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ratelimit-service"));
        cmd.env_clear()
            .env("GRPC_LISTEN_ADDR", "127.0.0.1:0")
            .env("LISTEN_ADDR", "127.0.0.1:0")
            .env("RATE_LIMITS_FILE", "")
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr)
                .lines()
                .map_while(Result::ok)
            {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut log = String::new();
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut listening_at: Option<Instant> = None;
        while Instant::now() < deadline
            && listening_at.is_none_or(|t| t.elapsed() < Duration::from_millis(300))
        {
            if let Ok(line) = rx.recv_timeout(Duration::from_millis(50)) {
                if line.contains("Rate-limit service listening") {
                    listening_at = Some(Instant::now());
                }
                log.push_str(&line);
                log.push('\n');
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        log
    }

    #[tokio::test]
    async fn counters_live_in_a_tls_redis_reached_with_an_acl_user() {
        let Some(redis) = TlsRedis::start("no") else {
            return;
        };
        let config = Config {
            redis_url: Some(redis.url(USER, PASSWORD)),
            redis_tls: redis.pki.tls(),
            ..config()
        };
        let prefix = config.key_prefix.clone();
        let rls = ratelimit::spawn(config).await.unwrap();
        let mut c = client(&rls).await;
        let id = unique("tls");
        let d = [("client_id", id.as_str()), ("client_limit", "3")];
        for left in (0..3).rev() {
            let r = ask(&mut c, &d).await;
            assert!(is_ok(&r), "{r:?}");
            assert_eq!(
                header(&r, "x-ratelimit-remaining"),
                Some(left.to_string().as_str())
            );
        }
        let r = ask(&mut c, &d).await;
        assert!(is_over(&r), "{r:?}");
        assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 0);
        assert_eq!(health(&rls).await.0, 200);

        // The counter is in that Redis: one key for this client, at 3 (the
        // refused hit is not counted), expiring with its window.
        let mut own = redis.connect().await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut own)
            .await
            .unwrap();
        assert_eq!(keys.len(), 1, "{keys:?}");
        assert!(keys[0].ends_with(&format!(":{id}")), "{keys:?}");
        let value: u64 = redis::cmd("GET")
            .arg(&keys[0])
            .query_async(&mut own)
            .await
            .unwrap();
        assert_eq!(value, 3);
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&keys[0])
            .query_async(&mut own)
            .await
            .unwrap();
        assert!((1..=60_000).contains(&ttl), "{ttl}");
    }

    #[tokio::test]
    async fn mutual_tls_presents_the_client_certificate_redis_requires() {
        let Some(redis) = TlsRedis::start("yes") else {
            return;
        };
        let with_cert = ratelimit::config::RedisTls {
            client_cert_file: Some(redis.pki.path("client.pem")),
            client_key_file: Some(redis.pki.path("client.key")),
            ..redis.pki.tls()
        };
        let rls = ratelimit::spawn(Config {
            redis_url: Some(redis.url(USER, PASSWORD)),
            redis_tls: with_cert,
            ..config()
        })
        .await
        .unwrap();
        let mut c = client(&rls).await;
        let d = [("client_id", "mtls"), ("client_limit", "1")];
        assert!(is_ok(&ask(&mut c, &d).await));
        assert!(is_over(&ask(&mut c, &d).await));
        assert_eq!(health(&rls).await.0, 200);

        let without = ratelimit::spawn(Config {
            redis_url: Some(redis.url(USER, PASSWORD)),
            redis_tls: redis.pki.tls(),
            ..config()
        })
        .await
        .unwrap();
        // Without the certificate the server drops the connection: under
        // TLS 1.3 its refusal comes after the client's side of the handshake,
        // so the client sees the connection closed, not an alert.
        let (status, body) = health(&without).await;
        assert_eq!(status, 503, "{body}");
        let d = [("client_id", "no-cert"), ("client_limit", "1")];
        let mut c = client(&without).await;
        assert!(is_ok(&ask(&mut c, &d).await));
        assert!(is_ok(&ask(&mut c, &d).await), "nothing counted: fail open");
    }

    #[tokio::test]
    async fn an_untrusted_redis_certificate_is_refused_and_the_failure_mode_applies() {
        let Some(redis) = TlsRedis::start("no") else {
            return;
        };
        // A CA file from another throwaway CA, and the system roots: neither
        // vouches for this server.
        let other = Pki::new();
        for tls in [other.tls(), ratelimit::config::RedisTls::default()] {
            let rls = ratelimit::spawn(Config {
                redis_url: Some(redis.url(USER, PASSWORD)),
                redis_tls: tls.clone(),
                ..config()
            })
            .await
            .unwrap();
            let (status, body) = health(&rls).await;
            assert_eq!(status, 503, "{body}");
            let msg = body["error"]["message"].as_str().unwrap();
            assert!(
                msg.contains("Redis TLS handshake failed: invalid peer certificate: UnknownIssuer"),
                "{tls:?}: {msg}"
            );
            assert!(!msg.contains(PASSWORD));
            let mut c = client(&rls).await;
            let d = [("client_id", "untrusted"), ("client_limit", "1")];
            assert!(is_ok(&ask(&mut c, &d).await), "allow: fail open");
            assert!(is_ok(&ask(&mut c, &d).await), "allow: nothing counted");
            assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 2);
        }
        let deny = ratelimit::spawn(Config {
            redis_url: Some(redis.url(USER, PASSWORD)),
            redis_tls: other.tls(),
            failure_mode: FailureMode::Deny,
            ..config()
        })
        .await
        .unwrap();
        let r = ask(&mut client(&deny).await, &[("client_id", "untrusted")]).await;
        assert!(is_over(&r), "deny: {r:?}");
        assert_eq!(header(&r, "retry-after"), Some("1"));

        // The binary says so in its log, with the URL's password hidden.
        let log = service_log(&[
            ("REDIS_URL", redis.url(USER, PASSWORD)),
            ("REDIS_CA_FILE", other.path("ca.pem").display().to_string()),
        ]);
        assert!(
            log.contains("Redis TLS handshake failed: invalid peer certificate: UnknownIssuer"),
            "{log}"
        );
        assert!(log.contains(&format!("{USER}:***@")), "{log}");
        assert!(!log.contains(PASSWORD), "{log}");
    }

    #[tokio::test]
    async fn a_wrong_redis_password_is_refused_clearly() {
        let Some(redis) = TlsRedis::start("no") else {
            return;
        };
        let wrong = "not-the-password";
        let rls = ratelimit::spawn(Config {
            redis_url: Some(redis.url(USER, wrong)),
            redis_tls: redis.pki.tls(),
            ..config()
        })
        .await
        .unwrap();
        let (status, body) = health(&rls).await;
        assert_eq!(status, 503);
        let msg = body["error"]["message"].as_str().unwrap();
        assert!(
            msg.contains("Redis authentication failed: user name or password refused"),
            "{msg}"
        );
        assert!(!msg.contains(wrong), "{msg}");
        let r = ask(&mut client(&rls).await, &[("client_id", "wrongpw")]).await;
        assert!(is_ok(&r), "allow: fail open");

        let log = service_log(&[
            ("REDIS_URL", redis.url(USER, wrong)),
            (
                "REDIS_CA_FILE",
                redis.pki.path("ca.pem").display().to_string(),
            ),
        ]);
        assert!(log.contains("Redis authentication failed"), "{log}");
        assert!(!log.contains(wrong), "{log}");
    }

    #[tokio::test]
    async fn redis_lost_mid_window_follows_the_failure_mode_and_counting_resumes_afresh() {
        let Some(mut redis) = TlsRedis::start("no") else {
            return;
        };
        let on_redis = |failure_mode| Config {
            redis_url: Some(redis.url(USER, PASSWORD)),
            redis_tls: redis.pki.tls(),
            failure_mode,
            ..config()
        };
        let allow = ratelimit::spawn(on_redis(FailureMode::Allow))
            .await
            .unwrap();
        let deny = ratelimit::spawn(on_redis(FailureMode::Deny)).await.unwrap();
        let (mut ca, mut cd) = (client(&allow).await, client(&deny).await);
        let id = unique("lost");
        let d = [("client_id", id.as_str()), ("client_limit", "3")];
        for c in [&mut ca, &mut cd] {
            let r = ask(c, &d).await;
            assert_eq!(header(&r, "x-ratelimit-remaining"), Some("2"), "{r:?}");
        }

        redis.kill();
        for _ in 0..3 {
            let r = ask(&mut ca, &d).await;
            assert!(is_ok(&r), "allow while Redis is down: {r:?}");
            assert!(header(&r, "x-ratelimit-remaining").is_none());
            let r = ask(&mut cd, &d).await;
            assert!(is_over(&r), "deny while Redis is down: {r:?}");
            assert_eq!(header(&r, "retry-after"), Some("1"));
        }
        assert_eq!(allow.shared.metrics().decisions("failure_allowed"), 3);
        assert_eq!(deny.shared.metrics().decisions("failure_denied"), 3);
        assert_eq!(health(&allow).await.0, 503);
        assert_eq!(health(&deny).await.0, 503);

        // Back on the same port: both services reconnect by themselves. This
        // Redis kept nothing on disk, so the window starts again at 0: the
        // hit counted before the outage is gone (a Redis with persistence or
        // a replica keeps it).
        redis.restart();
        wait_healthy(&allow, 15).await;
        wait_healthy(&deny, 15).await;
        for c in [&mut ca, &mut cd] {
            for left in (0..3).rev() {
                let r = ask(c, &d).await;
                assert!(is_ok(&r), "{r:?}");
                assert_eq!(
                    header(&r, "x-ratelimit-remaining"),
                    Some(left.to_string().as_str())
                );
            }
            assert!(is_over(&ask(c, &d).await));
        }
    }
}

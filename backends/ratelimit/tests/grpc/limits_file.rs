//! The limits file: units, value entries, routes, shadow mode, replaces, IETF headers, reloads and refusals.

use super::*;

#[tokio::test]
async fn unauthenticated_traffic_is_limited_per_source_address() {
    let file = limits_file(&new_format(ADDRESS_2));
    let (_rls, mut c) = with_limits_file(file).await;
    let a = address("192.0.2.1");
    assert!(is_ok(&ask(&mut c, &a).await));
    assert!(is_ok(&ask(&mut c, &a).await));
    let r = ask(&mut c, &a).await;
    assert!(is_over(&r));
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    assert!(header(&r, "retry-after").is_some());
    let b = address("192.0.2.2");
    assert!(
        is_ok(&ask(&mut c, &b).await),
        "another address has its own budget"
    );
}

#[tokio::test]
async fn a_changed_limits_file_applies_without_restart() {
    let file = limits_file(&new_format(&ADDRESS_2.replace(": 2 }", ": 1 }")));
    let (rls, mut c) = with_limits_file(file.clone()).await;
    let addr = address("198.51.100.7");
    assert!(is_ok(&ask(&mut c, &addr).await));
    assert!(is_over(&ask(&mut c, &addr).await));

    // Rewrite with a later modification time and a higher limit.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&file, new_format(&ADDRESS_2.replace(": 2 }", ": 3 }"))).unwrap();
    wait_until_counted("limits file was not reloaded", || {
        rls.shared.metrics().reloads.get()
    })
    .await;
    let r = ask(&mut c, &addr).await;
    assert!(is_ok(&r), "{r:?}");
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));

    // A broken file is rejected and the limits in force stay.
    std::fs::write(&file, new_format(&ADDRESS_2.replace(": 2 }", ": -1 }"))).unwrap();
    wait_until_counted("broken file was not noticed", || {
        rls.shared.metrics().reload_errors.get()
    })
    .await;
    let r = ask(&mut c, &addr).await;
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
}

/// The service does not start on a limits file holding `body`; its error
/// is the file's path, a space and `error`.
async fn assert_refused_at_start(body: &str, error: &str) {
    let file = limits_file(body);
    let err = ratelimit::build(Config {
        limits_file: Some(file.clone()),
        ..config()
    })
    .await
    .err()
    .unwrap();
    assert_eq!(err, format!("{} {error}", file.display()));
}

#[tokio::test]
async fn a_bad_limits_file_stops_the_service_from_starting() {
    assert_refused_at_start(
        &new_format(&ADDRESS_2.replace(": 2 }", ": 0 }")),
        "line 7: descriptors[0].descriptors[0].rate_limit.requests_per_unit: \
         must be at least 1 (a limit of 0 would refuse every request)",
    )
    .await;
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

#[tokio::test]
async fn a_route_descriptor_is_limited_by_its_nested_client_node_and_every_policy_is_listed() {
    let (rls, mut c) = start(Config {
        default_per_minute: 5,
        limits_file: Some(limits_file(&new_format(ROUTE_LOCATE_2))),
        ..config()
    })
    .await;
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
    let (rls, mut c) = start(Config {
        default_per_minute: 10,
        limits_file: Some(limits_file(&new_format(
            "  - key: route\n    value: rates\n    descriptors:\n      - key: client_id\n        shadow_mode: true\n        rate_limit: { unit: minute, requests_per_unit: 1 }\n",
        ))),
        ..config()
    }).await;
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

    let addr = address("203.0.113.9");
    let r = ask(&mut c, &addr).await;
    assert_eq!(header(&r, "ratelimit-policy"), Some("\"address\";q=2;w=60"));
    assert_eq!(ietf_ratelimit(&r).1, 1);
}

#[tokio::test]
async fn a_malformed_file_names_line_and_field_and_the_previous_limits_stay_while_reloading() {
    let file = limits_file(&new_format(ADDRESS_2));
    let (rls, mut c) = with_limits_file(file.clone()).await;
    let addr = address("192.0.2.77");
    assert!(is_ok(&ask(&mut c, &addr).await));

    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(
        &file,
        new_format(&ADDRESS_2.replace("unit: minute", "unit: minutes")),
    )
    .unwrap();
    wait_until_counted("broken file was not noticed", || {
        rls.shared.metrics().reload_errors.get()
    })
    .await;
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
    assert_refused_at_start(
        &new_format(ADDRESS_2).replace("borrow_rate_gateway", "other"),
        "line 1: domain: \"other\" is not this service's domain (expected borrow_rate_gateway)",
    )
    .await;
}

#[tokio::test]
async fn a_request_for_another_domain_is_not_limited() {
    let (rls, mut c) = start(config()).await;
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
    let (_rls, mut c) = with_limits_file(file).await;
    let addr = address("192.0.2.99");
    assert!(is_ok(&ask(&mut c, &addr).await));
    assert!(is_over(&ask(&mut c, &addr).await));
    let r = ask(&mut c, &[("client_id", &id)]).await;
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
}

#[tokio::test]
async fn route_and_client_limits_keep_separate_redis_counters_named_by_node_and_window() {
    let Some(url) = redis_url() else { return };
    let prefix = unique("nodes");
    let (_rls, mut c) = start(Config {
        redis_url: Some(url.clone()),
        key_prefix: prefix.clone(),
        default_per_minute: 5,
        limits_file: Some(limits_file(&new_format(ROUTE_LOCATE_2))),
        ..config()
    })
    .await;
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
    let (rls, mut c) = start(config()).await;
    let r = ask(&mut c, &[("path", "/health")]).await;
    assert!(is_ok(&r));
    assert!(header(&r, "x-ratelimit-limit").is_none());
    assert_eq!(rls.shared.metrics().unmatched.get(), 1);
}

#[tokio::test]
async fn an_empty_domain_is_an_invalid_argument() {
    let (_rls, mut c) = start(config()).await;
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

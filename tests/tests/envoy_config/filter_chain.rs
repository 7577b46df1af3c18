//! The filter chain: its order, and the filters each switch drops or keeps.

use super::*;

#[test]
fn the_filter_chain_runs_cors_auth_with_metrics_rate_limits_validation_buffer_router() {
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("CORS_ORIGINS", "https://app.example.com"),
        ],
    ));
    assert_eq!(
        http_filter_names(&v),
        [
            "envoy.filters.http.cors",
            "auth_filter",
            "envoy.filters.http.ratelimit",
            "validation_filter",
            "envoy.filters.http.buffer",
            "envoy.filters.http.router",
        ],
        "filter order"
    );
    // No separate metrics filter: the auth filter records the metrics.
    let auth = plugin_config(&v, "auth_filter").expect("auth filter rendered");
    assert_eq!(
        auth["metrics"],
        serde_json::json!({"slow_request_ms": 500}),
        "the auth filter's configuration has the metrics section"
    );
}

#[test]
fn authentication_off_keeps_the_metrics_filter_first() {
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[("ENABLE_AUTHENTICATION", "false")],
    ));
    let names = http_filter_names(&v);
    assert_eq!(
        names.first().map(String::as_str),
        Some("metrics_filter"),
        "{names:?}"
    );
    assert_eq!(
        plugin_config(&v, "metrics_filter"),
        Some(serde_json::json!({"slow_request_ms": 500}))
    );
    assert!(plugin_config(&v, "auth_filter").is_none());
}

#[test]
fn authentication_off_drops_the_auth_filter_but_still_strips_internal_headers() {
    let yaml = render_ok(&["--shape", "local"], &[("ENABLE_AUTHENTICATION", "false")]);
    let v = parsed(&yaml);
    let names = http_filter_names(&v);
    assert!(!names.iter().any(|n| n == "auth_filter"), "{names:?}");
    let mutation = public_hcms(&v)[0]["http_filters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|f| f["name"] == "envoy.filters.http.header_mutation")
        .cloned()
        .unwrap_or_else(|| panic!("{names:?}"));
    let removed: Vec<&str> = mutation["typed_config"]["mutations"]["request_mutations"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["remove"].as_str())
        .collect();
    assert_eq!(removed, e2e::IDENTITY_HEADERS);
    // No secret is needed (or rendered) when authentication is off.
    assert!(
        !yaml.contains("secret"),
        "jwt secret rendered with auth off"
    );
}

#[test]
fn rate_limiting_off_drops_both_rate_limit_filters_and_the_rls_cluster() {
    let on = rendered(&["--shape", "local"]);
    let off = parsed(&render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            ("ENABLE_RATE_LIMITING", "false"),
        ],
    ));
    let cluster_names = |v: &Value| -> Vec<String> {
        v["static_resources"]["clusters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["name"].as_str().map(str::to_owned))
            .collect()
    };
    assert!(cluster_names(&on).iter().any(|n| n == "rate_limit_service"));
    assert!(!cluster_names(&off)
        .iter()
        .any(|n| n == "rate_limit_service"));
    let names = http_filter_names(&off);
    assert!(!names.iter().any(|n| n.contains("ratelimit")), "{names:?}");
    assert!(plugin_config(&off, "auth_filter").is_some_and(|c| c.get("local_rate_limit").is_none()));
}

#[test]
fn cors_is_absent_unless_origins_are_configured_and_then_exact() {
    let none = render_ok(&["--shape", "local"], &[("JWT_SECRET_KEY", SECRET)]);
    assert!(!none.contains("envoy.filters.http.cors"));
    let some = parsed(&render_ok(
        &["--shape", "local"],
        &[
            ("JWT_SECRET_KEY", SECRET),
            (
                "CORS_ORIGINS",
                "https://a.example.com, http://localhost:3000",
            ),
        ],
    ));
    let policy = &public_hcms(&some)[0]["route_config"]["virtual_hosts"][0]
        ["typed_per_filter_config"]["envoy.filters.http.cors"];
    assert_eq!(
        policy["allow_origin_string_match"],
        serde_json::json!([{"exact": "https://a.example.com"}, {"exact": "http://localhost:3000"}]),
        "exact origins, no wildcard unless asked for"
    );
}

#[test]
fn the_renderer_refuses_unsafe_or_malformed_settings() {
    for (setting, sets) in [
        ("JWT_SECRET_KEY", [("JWT_SECRET_KEY", "short")].as_slice()),
        (
            "CORS_ORIGINS",
            &[
                ("JWT_SECRET_KEY", SECRET),
                ("CORS_ORIGINS", "javascript:alert(1)"),
            ],
        ),
        (
            "ENABLE_RATE_LIMITING",
            &[
                ("JWT_SECRET_KEY", SECRET),
                ("ENABLE_RATE_LIMITING", "maybe"),
            ],
        ),
        (
            "SLOW_REQUEST_MS",
            &[("JWT_SECRET_KEY", SECRET), ("SLOW_REQUEST_MS", "-5")],
        ),
    ] {
        let refused = render(&["--shape", "local"], sets);
        assert!(
            refused.as_ref().is_err_and(|e| e.contains(setting)),
            "{setting}: {refused:?}"
        );
    }
}

//! Plugin configurations, routes, rate-limit descriptors and the backend
//! addresses, as the environment sets them.

use super::*;

#[test]
fn plugin_configurations_follow_the_environment() {
    let v = parsed(&render_ok(
        &["--shape", "local"],
        &[("JWT_SECRET_KEY", SECRET), ("SLOW_REQUEST_MS", "750")],
    ));
    let auth = plugin_config(&v, "auth_filter").expect("auth filter");
    assert_eq!(
        auth["metrics"]["slow_request_ms"], 750,
        "SLOW_REQUEST_MS reaches the metrics recording (in the auth filter)"
    );
    assert_eq!(
        auth["jwt"]["secret"], SECRET,
        "JWT_SECRET_KEY reaches the auth filter"
    );
}

#[test]
fn the_docs_page_files_are_routed_to_the_ops_service_and_exactly_they_are_public() {
    let v = rendered(&["--shape", "local", "--tls", "off"]);
    let docs = route(&v, "/docs/{file}", "ops_service");
    assert_eq!(docs["match"]["prefix"], "/docs/");
    let public: Vec<String> = plugin_config(&v, "auth_filter").expect("auth filter")
        ["public_paths"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p.as_str().map(str::to_owned))
        .filter(|p| p.starts_with("/docs/"))
        .collect();
    let mut want = vec!["/docs/".to_owned()];
    want.extend(
        ops_service::docs_page::ASSETS
            .iter()
            .map(|f| format!("/docs/{f}")),
    );
    assert_eq!(
        public, want,
        "public: /docs/ and the page's files, nothing else under /docs/"
    );
}

#[test]
fn the_per_instance_bucket_is_the_auth_filters_own_sized_from_each_keys_limit() {
    let yaml = render_ok(
        &["--shape", "local", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET), ("RATE_LIMIT_PER_MINUTE", "120")],
    );
    assert!(
        !yaml.contains("envoy.filters.http.local_ratelimit"),
        "no fixed-size Envoy bucket: it would cap every key above its size"
    );
    assert_eq!(
        plugin_config(&parsed(&yaml), "auth_filter").expect("auth filter")["local_rate_limit"],
        serde_json::json!({"default_per_minute": 120}),
        "keys without their own limit get RATE_LIMIT_PER_MINUTE in the auth filter's bucket"
    );
    envoy_validate(&yaml).unwrap_or_else(|e| panic!("rejected: {e}"));
    // The variables of the fixed bucket are ignored with a warning, never
    // half-applied.
    let mut env: std::collections::BTreeMap<String, String> = [
        ("JWT_SECRET_KEY", SECRET),
        ("LOCAL_RATE_LIMIT_BURST", "600"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let mut options = Options::new(Shape::Local);
    options.tls = false;
    let (with, warnings) = gateway_config::render(&options, &env).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("LOCAL_RATE_LIMIT_BURST is ignored")),
        "{warnings:?}"
    );
    env.remove("LOCAL_RATE_LIMIT_BURST");
    let (plain, _) = gateway_config::render(&options, &env).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(with, plain);
}

#[test]
fn per_route_descriptors_name_each_api_route_with_the_client() {
    let v = rendered(&["--shape", "local", "--tls", "off"]);
    let limits = public_hcms(&v)[0]["route_config"]["virtual_hosts"][0]["rate_limits"].clone();
    let actions: Vec<Value> = limits
        .as_array()
        .into_iter()
        .flatten()
        .map(|l| l["actions"].clone())
        .collect();
    for (route, prefix) in [
        ("rates", "/api/v1/rates/"),
        ("calculate-locate", "/api/v1/calculate-locate"),
        ("auth-token", "/api/v1/auth/token"),
    ] {
        assert!(
            actions.iter().any(|a| {
                let m = &a[0]["header_value_match"];
                m["descriptor_value"] == route
                    && m["headers"][0]["string_match"]["prefix"] == prefix
                    && a[1]["request_headers"]["descriptor_key"] == "client_id"
            }),
            "no route descriptor for {route}: {limits}"
        );
    }
    assert!(
        actions.iter().any(|a| {
            a[0]["request_headers"]
                == serde_json::json!({"header_name": "x-client-tier", "descriptor_key": "tier"})
        }),
        "per-tier descriptor"
    );
}

#[test]
fn service_url_variables_move_the_data_and_calculation_clusters_in_the_local_shape() {
    let args = ["--shape", "local", "--no-wasm", "--tls", "off"];
    let default = parsed(&render_ok(&args, &[]));
    assert_eq!(
        endpoints(&cluster(&default, "data_service")),
        ["127.0.0.1:8081"]
    );
    assert_eq!(
        endpoints(&cluster(&default, "calculation_service")),
        ["127.0.0.1:8082"]
    );

    let moved_yaml = render_ok(
        &args,
        &[
            ("DATA_SERVICE_URL", "http://10.1.2.3:9081"),
            ("CALCULATION_SERVICE_URL", "http://10.1.2.4:9082/"),
        ],
    );
    let moved = parsed(&moved_yaml);
    assert_eq!(
        endpoints(&cluster(&moved, "data_service")),
        ["10.1.2.3:9081"]
    );
    assert_eq!(
        endpoints(&cluster(&moved, "calculation_service")),
        ["10.1.2.4:9082"]
    );
    envoy_validate(&moved_yaml).unwrap_or_else(|e| panic!("moved services rejected: {e}"));

    // The compose shape keeps the compose service names (.env.example's
    // loopback URLs describe make run, not the compose network).
    let compose = parsed(&render_ok(
        &["--shape", "compose", "--no-wasm", "--tls", "off"],
        &[("DATA_SERVICE_URL", "http://127.0.0.1:8081")],
    ));
    assert_eq!(
        endpoints(&cluster(&compose, "data_service")),
        ["data-service:8081"]
    );

    for bad in [
        "10.1.2.3:9081",
        "https://data:8081",
        "http://data:99999",
        "http://data:81/x",
    ] {
        let err = render(&args, &[("DATA_SERVICE_URL", bad)]).expect_err(bad);
        assert!(err.contains("DATA_SERVICE_URL"), "{bad}: {err}");
    }
}

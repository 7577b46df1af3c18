//! Retries, the backend clusters, the admin interface, edge hardening, and
//! the differences between the local and compose shapes.

use super::*;

#[test]
fn a_calculation_is_retried_only_when_it_never_reached_a_backend() {
    let v = rendered(&["--shape", "local"]);
    let post = route(&v, "/api/v1/calculate-locate", "calculation_service");
    assert_eq!(
        post["route"]["retry_policy"]["retry_on"],
        "connect-failure,refused-stream"
    );
    let get = route(&v, "/api/v1/rates/{ticker}", "data_service");
    let policy = &get["route"]["retry_policy"];
    assert_eq!(
        policy["retry_on"],
        "connect-failure,refused-stream,reset,5xx"
    );
    assert!(policy.get("per_try_timeout").is_some(), "{get}");
    // No other route retries on 5xx: only the GET of rates does.
    let on_5xx: Vec<String> = routes(&v)
        .iter()
        .filter(|r| {
            r["route"]["retry_policy"]["retry_on"]
                .as_str()
                .is_some_and(|s| s.contains("5xx"))
        })
        .map(|r| r["name"].to_string())
        .collect();
    assert_eq!(on_5xx, [r#""/api/v1/rates/{ticker}""#]);
}

#[test]
fn every_backend_cluster_has_timeouts_breakers_budget_outlier_detection_and_health_checks() {
    let v = rendered(&["--shape", "local"]);
    for name in [
        "data_service",
        "calculation_service",
        "auth_service",
        "ops_service",
        "rate_limit_service",
    ] {
        let c = cluster(&v, name);
        for present in [
            &c["connect_timeout"],
            &c["circuit_breakers"]["thresholds"][0]["retry_budget"],
            &c["outlier_detection"],
            &c["per_connection_buffer_limit_bytes"],
        ] {
            assert!(!present.is_null(), "{name} lacks a setting:\n{c}");
        }
        assert_eq!(
            c["health_checks"][0]["http_health_check"]["path"],
            "/health"
        );
    }
    let rls = cluster(&v, "rate_limit_service");
    assert!(
        rls.to_string().contains("http2_protocol_options"),
        "RLS speaks gRPC"
    );
    assert_eq!(
        rls["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
            ["health_check_config"]["port_value"],
        8091
    );
}

#[test]
fn the_admin_interface_listens_on_loopback_in_every_shape() {
    for shape in ["local", "compose"] {
        let v = rendered(&["--shape", shape]);
        assert_eq!(
            v["admin"]["address"]["socket_address"]["address"], "127.0.0.1",
            "{shape}"
        );
    }
}

#[test]
fn edge_hardening_settings_are_in_every_listener() {
    let v = rendered(&["--shape", "compose", "--tls", "on"]);
    let hcms = public_hcms(&v);
    assert_eq!(hcms.len(), 2, "plain and TLS listeners");
    for hcm in &hcms {
        assert_eq!(hcm["use_remote_address"], true);
        assert_eq!(hcm["xff_num_trusted_hops"], 0);
        assert_eq!(hcm["normalize_path"], true);
        assert_eq!(hcm["merge_slashes"], true);
        assert_eq!(hcm["path_with_escaped_slashes_action"], "REJECT_REQUEST");
        assert_eq!(
            hcm["common_http_protocol_options"]["headers_with_underscores_action"],
            "REJECT_REQUEST"
        );
        assert_eq!(hcm["max_request_headers_kb"], 32);
        assert!(hcm["request_headers_timeout"].is_string());
    }
    let hsts = |hcm: &Value| {
        hcm["route_config"]["response_headers_to_add"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|h| h["header"]["key"] == "strict-transport-security")
    };
    assert!(!hsts(hcms[0]) && hsts(hcms[1]), "HSTS on TLS only");
    let tls = &v["static_resources"]["listeners"][1]["filter_chains"][0]["transport_socket"]
        ["typed_config"]["common_tls_context"]["tls_params"];
    assert_eq!(tls["tls_minimum_protocol_version"], "TLSv1_2");
    let plain = render_ok(
        &["--shape", "compose", "--tls", "off"],
        &[("JWT_SECRET_KEY", SECRET)],
    );
    assert!(!plain.contains("DownstreamTlsContext"));
}

#[test]
fn local_and_compose_shapes_differ_only_in_addresses_and_paths() {
    let local = rendered(&["--shape", "local"]);
    let compose = rendered(&["--shape", "compose"]);
    // Blank out what legitimately differs: addresses, file paths, the
    // cluster type that follows from DNS names, the node id and the
    // compose-only admin listener and cluster. Everything else must be
    // equal.
    fn normalise(v: &Value) -> Value {
        match v {
            Value::Object(m) => Value::Object(
                m.iter()
                    .filter(|(_, x)| x["name"] != "internal_admin" && x["name"] != "envoy_admin")
                    .map(|(k, x)| {
                        let x = match k.as_str() {
                            "address" if x.is_string() => Value::Null,
                            "filename" | "type" | "id" if x.is_string() => Value::Null,
                            _ => normalise(x),
                        };
                        (k.clone(), x)
                    })
                    .collect(),
            ),
            Value::Array(a) => Value::Array(
                a.iter()
                    .filter(|x| x["name"] != "internal_admin" && x["name"] != "envoy_admin")
                    .map(normalise)
                    .collect(),
            ),
            other => other.clone(),
        }
    }
    assert_eq!(normalise(&local), normalise(&compose), "shapes drifted");
    assert_eq!(
        endpoints(&cluster(&compose, "data_service")),
        ["data-service:8081"]
    );
    assert_eq!(
        endpoints(&cluster(&local, "data_service")),
        ["127.0.0.1:8081"]
    );
}

//! Every shape renders, and what the filters are handed is what their own
//! config types read back.

use std::collections::BTreeMap;

use filter_core::auth::{AuthConfig, Settings as AuthSettings};
use gateway_config::envoy::Port;
use gateway_config::{render, Options, Shape};
use serde_json::Value;

const SECRET: &str = "0123456789abcdef0123456789abcdef-test";

fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    let mut env: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    env.entry("JWT_SECRET_KEY".into())
        .or_insert_with(|| SECRET.into());
    env
}

fn rendered(options: &Options, pairs: &[(&str, &str)]) -> Value {
    let (yaml, _) = render(options, &env(pairs)).unwrap_or_else(|e| panic!("{e}"));
    serde_norway::from_str(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"))
}

/// The `configuration` strings of the wasm filters, by filter name.
fn plugin_configs(v: &Value, out: &mut BTreeMap<String, String>) {
    match v {
        Value::Object(m) => {
            if let (Some(Value::String(name)), Some(cfg)) = (m.get("name"), m.get("configuration"))
            {
                if let Some(Value::String(s)) = cfg.get("value") {
                    out.insert(name.clone(), s.clone());
                }
            }
            m.values().for_each(|x| plugin_configs(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| plugin_configs(x, out)),
        _ => {}
    }
}

#[test]
fn the_auth_filter_reads_back_exactly_the_configuration_it_is_given() {
    let v = rendered(
        &Options::new(Shape::Local),
        &[("SLOW_REQUEST_MS", "750"), ("RATE_LIMIT_PER_MINUTE", "120")],
    );
    let mut configs = BTreeMap::new();
    plugin_configs(&v, &mut configs);
    assert_eq!(
        configs.keys().collect::<Vec<_>>(),
        ["auth_filter", "validation_filter"],
        "with authentication on the auth filter records the metrics"
    );
    let auth = &configs["auth_filter"];
    let parsed: AuthConfig = serde_json::from_str(auth).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        serde_json::to_string(&parsed).unwrap_or_default(),
        *auth,
        "serialise(deserialise(x)) == x"
    );
    let settings = AuthSettings::from_json(auth.as_bytes()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(settings.metrics.map(|m| m.slow_request_ms), Some(750));
    assert!(settings.local_rate_limit.is_some());
    assert!(settings.jwt.is_some());
}

#[test]
fn every_shape_renders_with_its_own_addresses() {
    for shape in [Shape::Local, Shape::Compose] {
        for (auth, rl, tls) in [
            (true, true, true),
            (false, false, false),
            (true, false, true),
        ] {
            let mut o = Options::new(shape);
            o.tls = tls;
            let b = |x: bool| if x { "true" } else { "false" };
            let v = rendered(
                &o,
                &[
                    ("ENABLE_AUTHENTICATION", b(auth)),
                    ("ENABLE_RATE_LIMITING", b(rl)),
                ],
            );
            let listeners = v["static_resources"]["listeners"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let names: Vec<&str> = listeners
                .iter()
                .filter_map(|l| l["name"].as_str())
                .collect();
            let mut want = vec!["public_http"];
            if tls {
                want.push("public_https");
            }
            if shape == Shape::Compose {
                want.push("internal_admin");
            }
            assert_eq!(names, want);
            let data = &v["static_resources"]["clusters"][0];
            let addr = &data["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]
                ["address"]["socket_address"];
            let want_addr = if shape == Shape::Local {
                "127.0.0.1"
            } else {
                "data-service"
            };
            assert_eq!(addr["address"], want_addr);
            assert_eq!(addr["port_value"], 8081);
        }
    }
}

#[test]
fn placeholder_ports_are_left_for_the_harness() {
    let mut o = Options::new(Shape::Local);
    o.listener_port = Port::Placeholder("{{LISTENER_PORT}}".into());
    let (yaml, _) = render(&o, &env(&[])).unwrap_or_else(|e| panic!("{e}"));
    assert!(yaml.contains("port_value: '{{LISTENER_PORT}}'"), "{yaml}");
}

#[test]
fn a_short_jwt_secret_is_refused_when_authentication_is_on() {
    let err = render(
        &Options::new(Shape::Local),
        &env(&[("JWT_SECRET_KEY", "short")]),
    )
    .err()
    .map(|e| e.to_string())
    .unwrap_or_default();
    assert!(err.contains("JWT_SECRET_KEY"), "{err}");
}

//! Envoy configurations for the suites: the gateway's own (rendered by
//! gateway-config), pieces of it, a wasm filter entry and a plain proxy.

use gateway_config::envoy::Port;

use crate::wasm_file;

/// One piece of the gateway's Envoy configuration (gateway-config's
/// `parts`) as a `key:` section re-indented by `indent` spaces: `stats_config`,
/// `access_log` or `local_reply_config`, for configurations that embed them.
pub fn gateway_part(key: &str, indent: usize) -> String {
    use gateway_config::{parts, to_yaml};
    use std::collections::BTreeMap;
    let yaml = match key {
        "stats_config" => to_yaml(&BTreeMap::from([(key, parts::stats_config())])),
        "access_log" => to_yaml(&BTreeMap::from([(key, parts::access_log())])),
        "local_reply_config" => to_yaml(&BTreeMap::from([(key, parts::local_reply_config())])),
        other => panic!("no gateway part {other}"),
    }
    .unwrap_or_else(|e| panic!("{key}: {e}"));
    yaml.lines()
        .map(|l| format!("{}{l}", " ".repeat(indent)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// An HTTP filter list entry loading the built `<name>.wasm` with a JSON
/// plugin configuration (V8 runtime, fail closed).
pub fn wasm_filter(name: &str, config: &str) -> String {
    format!(
        r#"
          - name: {name}
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: {name}
                root_id: {name}
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '{config}'
                vm_config:
                  vm_id: {name}
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: {file} }} }}
                fail_open: false"#,
        file = wasm_file(name).display()
    )
}

/// A minimal Envoy config: one listener routing everything to one
/// upstream port, for tests of the harness itself and as a template.
pub fn plain_proxy_config(upstream_port: u16) -> String {
    router_config(
        &http_listener("main", LISTENER_PORT, "ingress"),
        r#"              - match: { prefix: "/" }
                route: { cluster: upstream }"#,
        &static_cluster("upstream", upstream_port),
    )
}

/// A configuration of one `listener` (an [`http_listener`]) with the
/// router as its only filter, whose one virtual host routes by `routes`
/// (entries of its `routes:` list, indented by 14 spaces) to `clusters`
/// (`clusters:` list entries).
pub fn router_config(listener: &str, routes: &str, clusters: &str) -> String {
    format!(
        r#"
{ADMIN}
static_resources:
  listeners:
{listener}
{virtual_host}
{routes}
          http_filters:
{ROUTER}
  clusters:{clusters}
"#,
        virtual_host = virtual_host("all")
    )
}

/// The start of an HTTP connection manager's `route_config` (indented by
/// ten spaces): one virtual host `name` for every domain, its `routes:`
/// list to follow (entries indented by 14 spaces).
pub fn virtual_host(name: &str) -> String {
    format!(
        r#"          route_config:
            virtual_hosts:
            - name: {name}
              domains: ["*"]
              routes:"#
    )
}

/// A `clusters:` list entry: cluster `name` with the one endpoint
/// 127.0.0.1:`port` (static, 1 s connect timeout), indented for
/// `static_resources.clusters`.
pub fn static_cluster(name: &str, port: u16) -> String {
    cluster(name, "1s", Some(&port.to_string()))
}

/// A static `clusters:` list entry: cluster `name` connecting within
/// `connect_timeout` (`0.5s`) to its one endpoint 127.0.0.1:`port` (a
/// number or a placeholder such as [`ADMIN_PORT`]), or with no endpoint at
/// all when `port` is `None`.
pub fn cluster(name: &str, connect_timeout: &str, port: Option<&str>) -> String {
    let endpoints = match port {
        Some(port) => format!(
            "[{{ lb_endpoints: [{{ endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }} }} }}] }}]"
        ),
        None => "[]".to_owned(),
    };
    format!(
        r#"
  - name: {name}
    type: STATIC
    connect_timeout: {connect_timeout}
    load_assignment:
      cluster_name: {name}
      endpoints: {endpoints}"#
    )
}

/// The `local` gateway config exactly as `make run` renders it
/// (gateway-config, `--shape local`, TLS off, the three built filters),
/// with the clusters pointed at `upstreams` (`(cluster, "host:port")`), the
/// rate-limit service's health port, and `sets` as `NAME=VALUE` overrides
/// of the environment. Listener and admin ports are left as placeholders
/// for [`Envoy::start`].
pub fn render_local_gateway(
    upstreams: &[(&str, String)],
    rate_limit_health_port: u16,
    sets: &[String],
) -> String {
    let wasm = wasm_file("auth_filter");
    wasm_file("validation_filter");
    wasm_file("metrics_filter");
    let mut options = gateway_options(gateway_config::Shape::Local);
    options.tls = false;
    options.wasm_dir = wasm.parent().map(|d| d.display().to_string());
    options.rate_limit_health_port = Some(rate_limit_health_port);
    options.upstreams = upstreams
        .iter()
        .map(|(cluster, addr)| format!("{cluster}={addr}"))
        .collect();
    render_gateway(&options, sets, true).unwrap_or_else(|e| panic!("render failed: {e}"))
}

/// gateway-config's options for `shape`, with the listener and admin ports
/// left as the placeholders [`crate::Envoy::start`] fills.
pub fn gateway_options(shape: gateway_config::Shape) -> gateway_config::Options {
    let mut options = gateway_config::Options::new(shape);
    options.listener_port = Port::Placeholder(LISTENER_PORT.into());
    options.admin_port = Port::Placeholder(ADMIN_PORT.into());
    options
}

/// The gateway config for `options`, with `sets` (`NAME=VALUE`) as the
/// SPEC §9 variables, over the process environment when `inherit_env`.
pub fn render_gateway(
    options: &gateway_config::Options,
    sets: &[String],
    inherit_env: bool,
) -> Result<String, gateway_config::Error> {
    let mut env: std::collections::BTreeMap<String, String> = if inherit_env {
        std::env::vars().collect()
    } else {
        Default::default()
    };
    for set in sets {
        let (k, v) = set
            .split_once('=')
            .ok_or_else(|| gateway_config::Error(format!("expected NAME=VALUE, got {set}")))?;
        env.insert(k.to_owned(), v.to_owned());
    }
    gateway_config::render(options, &env).map(|(yaml, _warnings)| yaml)
}

/// The first lines of a configuration: Envoy's admin API on 127.0.0.1 at
/// the `{{ADMIN_PORT}}` placeholder [`crate::Envoy::start`] fills.
pub const ADMIN: &str =
    "admin:\n  address: { socket_address: { address: 127.0.0.1, port_value: {{ADMIN_PORT}} } }";

/// The listener port placeholder [`crate::Envoy::start`] fills.
pub const LISTENER_PORT: &str = "{{LISTENER_PORT}}";

/// The admin port placeholder [`crate::Envoy::start`] fills.
pub const ADMIN_PORT: &str = "{{ADMIN_PORT}}";

/// A `static_resources.listeners` entry up to its HTTP connection
/// manager's `stat_prefix`: listener `name` on 127.0.0.1:`port` (a number
/// or [`LISTENER_PORT`]) with one filter chain. The manager's other fields
/// follow, indented by ten spaces.
pub fn http_listener(name: &str, port: &str, stat_prefix: &str) -> String {
    format!(
        r#"  - name: {name}
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: {stat_prefix}"#
    )
}

/// The buffer filter holding request bodies up to 64 KiB, an entry of an
/// HTTP connection manager's `http_filters` (indented by ten spaces).
pub const BUFFER: &str = r#"          - name: envoy.filters.http.buffer
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 65536"#;

/// The router, the last entry of an HTTP connection manager's
/// `http_filters` (indented by ten spaces).
pub const ROUTER: &str = r#"          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"#;

//! The gateway's real Envoy configuration in front of the real services,
//! for the suites that go through the whole chain.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ops_service::{build_on, OpsConfig};

use super::{backends, client, fake_backend, tempdir};

pub const JWT_SECRET: &str = "schemathesis-run-secret-0123456789abcdef";

/// The gateway's own Envoy configuration (gateway-config, local shape, TLS
/// and global rate limiting off), pointed at the given upstreams; listener
/// and admin ports left for the harness.
fn rendered_gateway(upstreams: &[(&str, SocketAddr)], wasm: &std::path::Path) -> String {
    let mut options = e2e::config::gateway_options(gateway_config::Shape::Local);
    options.tls = false;
    options.wasm_dir = Some(wasm.display().to_string());
    options.upstreams = upstreams
        .iter()
        .map(|(cluster, addr)| format!("{cluster}={addr}"))
        .collect();
    let sets = [
        "ENABLE_RATE_LIMITING=false".to_owned(),
        format!("JWT_SECRET_KEY={JWT_SECRET}"),
    ];
    e2e::render_gateway(&options, &sets, true).unwrap_or_else(|e| panic!("render failed: {e}"))
}

/// The gateway's real Envoy configuration (auth, validation and metrics
/// filters, local replies, routes) in front of the real data, calculation,
/// auth and ops services, with a real admin key of client `test123`.
pub struct GatewayStack {
    pub envoy: e2e::Envoy,
    pub key: String,
    pub dir: PathBuf,
    /// The backends' servers and states, alive as long as the stack.
    pub _servers: Vec<Box<dyn std::any::Any + Send>>,
}

/// `GET <path>` through `envoy` with the API key `key`.
pub async fn get_with_key(envoy: &e2e::Envoy, path: &str, key: &str) -> reqwest::Response {
    client()
        .get(envoy.url(path))
        .header("x-api-key", key)
        .send()
        .await
        .unwrap()
}

/// Starts a [`GatewayStack`] and waits (bounded) until it answers.
pub async fn gateway_stack() -> GatewayStack {
    for filter in ["auth_filter", "validation_filter", "metrics_filter"] {
        e2e::wasm_file(filter); // built, or a message saying how
    }
    let wasm = e2e::wasm_dir();
    let dir = tempdir("schemathesis-db");
    let database_url = format!("sqlite://{}?mode=rwc", dir.join("gateway.db").display());
    let any_port: SocketAddr = "127.0.0.1:0".parse().unwrap();

    let service_config = services::Config::new(any_port, database_url.clone());
    let (data, data_state) = services::start_data_service(&service_config).await.unwrap();
    let (calc, calc_state) = services::start_calculation_service(&service_config)
        .await
        .unwrap();
    let (auth, auth_state) = e2e::local::start_auth_service(&database_url, JWT_SECRET).await;
    let key = auth_state
        .store
        .create_api_key(&store::NewApiKey {
            client_id: "test123".into(),
            scopes: vec!["admin".into()],
            rate_limit_per_minute: None,
            expires_at: None,
        })
        .await
        .unwrap()
        .key;
    // The rate-limit service is not in the request path here (global rate
    // limiting off); a stand-in answers its health check.
    let rate_limit = fake_backend("").await;

    // Held from now on, so no ephemeral port of Envoy's connections takes it.
    let ops_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops_addr: SocketAddr = ops_listener.local_addr().unwrap();
    let envoy = e2e::Envoy::start(&rendered_gateway(
        &[
            ("data_service", data.addr),
            ("calculation_service", calc.addr),
            ("auth_service", auth.addr),
            ("ops_service", ops_addr),
        ],
        &wasm,
    ))
    .await;
    let ops = build_on(
        OpsConfig {
            listen_addr: ops_addr,
            envoy_admin_url: format!("http://127.0.0.1:{}", envoy.admin_port),
            backends: backends([data.addr, calc.addr, auth.addr, rate_limit]),
            database_url: Some(database_url),
            redis_url: Some("redis://127.0.0.1:6379".into()),
            probe_timeout: Duration::from_millis(2000),
        },
        ops_listener,
    )
    .await
    .unwrap();
    tokio::spawn(ops.serve(std::future::pending()));

    // The chain answers once the active health checks of both the data
    // service and the ops service (started after Envoy) have passed (bounded).
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    for path in ["/api/v1/rates/AAPL", "/discovery/services"] {
        loop {
            let r = get_with_key(&envoy, path, &key).await;
            let status = r.status().as_u16();
            let body = r.text().await.unwrap();
            if status == 200 {
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "gateway never answered 200 on {path}: {status} {body}\n{}",
                envoy.log()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    GatewayStack {
        envoy,
        key,
        dir,
        _servers: vec![
            Box::new(data),
            Box::new(data_state),
            Box::new(calc),
            Box::new(calc_state),
            Box::new(auth),
            Box::new(auth_state),
        ],
    }
}

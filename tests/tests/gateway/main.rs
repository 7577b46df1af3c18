//! The gateway's Envoy configuration, rendered by gateway-config and run in
//! a real Envoy: routes, the 404/405 envelope, edge hardening, resilient
//! clusters (health checks, safe retries, circuit breakers) and TLS.
//!
//! These suites exercise Envoy's own behaviour, so the config is rendered
//! without the wasm filters (they have their own suites) and with
//! authentication and rate limiting off; test backends stand in for the
//! services.
//!
//! * [`routing`]: routes, `/health`, the 404/405 envelope, identity headers,
//!   CORS;
//! * [`edge`]: header names, escaped slashes, path normalisation, header
//!   size;
//! * [`resilience`]: health checks, retries, the circuit breaker, timeouts,
//!   the compose admin listener;
//! * [`tls`]: protocol versions, ciphers, HSTS.

mod backend;
mod edge;
mod resilience;
mod routing;
mod tls;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use e2e::{free_port, render_gateway, CountingUpstream, Envoy};
use gateway_config::envoy::Port;
use gateway_config::Shape;
use serde_json::Value;

// ---------------------------------------------------------------------------
// Rendering and starting the gateway
// ---------------------------------------------------------------------------

/// The four clusters of the gateway.
const CLUSTERS: [&str; 4] = [
    "data_service",
    "calculation_service",
    "auth_service",
    "ops_service",
];

/// Which backend ports each cluster gets, plus renderer settings.
#[derive(Default)]
struct Setup {
    upstreams: Vec<(&'static str, Vec<u16>)>,
    sets: Vec<(&'static str, String)>,
    tls_port: Option<u16>,
}

impl Setup {
    fn upstream(mut self, cluster: &'static str, ports: &[u16]) -> Self {
        self.upstreams.push((cluster, ports.to_vec()));
        self
    }
    /// Every cluster on the one backend `port`.
    fn all_on(port: u16) -> Self {
        CLUSTERS
            .into_iter()
            .fold(Setup::default(), |s, c| s.upstream(c, &[port]))
    }
    fn set(mut self, k: &'static str, v: impl Into<String>) -> Self {
        self.sets.push((k, v.into()));
        self
    }
    fn tls(mut self) -> Self {
        self.tls_port = Some(free_port());
        self
    }

    fn render(&self) -> String {
        let mut options = e2e::config::gateway_options(Shape::Local);
        options.no_wasm = true;
        match self.tls_port {
            Some(p) => {
                options.tls = true;
                options.tls_port = Port::Number(p);
                options.cert_dir = Some(e2e::gateway_cert_dir().display().to_string());
            }
            None => options.tls = false,
        }
        let mut sets = vec![
            "ENABLE_AUTHENTICATION=false".to_owned(),
            "ENABLE_RATE_LIMITING=false".to_owned(),
        ];
        sets.extend(self.sets.iter().map(|(k, v)| format!("{k}={v}")));
        // Clusters without a test backend point at a closed port.
        let closed = free_port();
        for cluster in CLUSTERS {
            let ports = self
                .upstreams
                .iter()
                .find(|(c, _)| *c == cluster)
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| vec![closed]);
            let hosts: Vec<String> = ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
            options
                .upstreams
                .push(format!("{cluster}={}", hosts.join(",")));
        }
        // Only the settings given here, never the test process's own.
        render_gateway(&options, &sets, false).unwrap_or_else(|e| panic!("render failed: {e}"))
    }

    async fn start(self) -> (Envoy, Option<u16>) {
        let yaml = self.render();
        (Envoy::start(&yaml).await, self.tls_port)
    }
}

/// A counting data service behind a gateway that routes nothing else.
async fn data_gateway() -> (CountingUpstream, Envoy) {
    let data = CountingUpstream::start().await;
    let (envoy, _) = Setup::default()
        .upstream("data_service", &[data.port])
        .start()
        .await;
    (data, envoy)
}

// ---------------------------------------------------------------------------
// Talking to the gateway
// ---------------------------------------------------------------------------

struct Reply {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body))
    }
    /// Asserts the SPEC §6 envelope with `code`, and that its request id is
    /// the x-request-id header.
    fn assert_envelope(&self, status: u16, code: &str) {
        if let Err(e) =
            e2e::check_envelope(self.status, |h| self.header(h), &self.body, status, code)
        {
            panic!("{e}");
        }
        assert_eq!(
            self.header("content-type"),
            Some("application/json"),
            "content-type of {}",
            self.body
        );
    }
}

/// One HTTP/1.1 request written byte for byte (no client-side path
/// normalisation), answered with `Connection: close`. Blocking: the tests
/// run on a multi-threaded runtime so in-process upstreams keep serving.
fn raw(port: u16, method: &str, target: &str, headers: &[(&str, &str)], body: &str) -> Reply {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let mut req = format!("{method} {target} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    let (status, headers, body) = e2e::parse_response(&buf);
    assert!(
        status != 0,
        "no status line in {:?}",
        String::from_utf8_lossy(&buf)
    );
    let headers: HashMap<String, String> = headers.into_iter().collect();
    Reply {
        status,
        headers,
        body,
    }
}

async fn get(client: &reqwest::Client, url: &str) -> Reply {
    into_reply(client.get(url).send().await.expect("request")).await
}

async fn into_reply(r: reqwest::Response) -> Reply {
    let status = r.status().as_u16();
    let headers = r
        .headers()
        .iter()
        .map(|(k, v)| (k.as_str().to_string(), v.to_str().unwrap_or("").to_string()))
        .collect();
    let body = r.text().await.unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// A counter or gauge from Envoy's admin /stats (plain format).
async fn stat(envoy: &Envoy, name: &str) -> u64 {
    let text = envoy.admin_get(&format!("/stats?filter=^{name}$")).await;
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}
/// A valid locate-fee calculation, as JSON.
const CALCULATION: &str =
    r#"{"ticker":"AAPL","position_value":100,"loan_days":1,"client_id":"test123"}"#;

/// `POST /api/v1/calculate-locate` with [`CALCULATION`].
async fn post_calculation(client: &reqwest::Client, envoy: &Envoy) -> reqwest::Response {
    client
        .post(envoy.url("/api/v1/calculate-locate"))
        .header("content-type", "application/json")
        .body(CALCULATION)
        .send()
        .await
        .expect("request")
}

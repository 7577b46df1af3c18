//! The auth filter (`auth_filter.wasm`) inside a real Envoy, in front of a
//! counting upstream, calling the in-process auth service through the
//! `auth_service` cluster.
//!
//! Needs `cargo build --release --target wasm32-wasip1 -p auth-filter` and
//! `.venv/bin/envoy`.
//!
//! * [`keys`]: API keys: forwarding, refusals, the body held during the
//!   verification, revocation, an auth service outage;
//! * [`jwt`]: HS256 and ES256 tokens verified in the filter;
//! * [`failures`]: a malformed plugin configuration, wrong-key floods, a
//!   trapping filter;
//! * [`benchmark`]: the added cost per request (ignored by default).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod benchmark;
mod failures;
mod jwt;
mod keys;

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_service::{AppState, Signing};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use e2e::config::{cluster, http_listener, virtual_host, ADMIN, LISTENER_PORT, ROUTER};
use e2e::{static_cluster, wasm_file, wasm_filter, CountingUpstream, Envoy};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use services::common::Server;
use store::NewApiKey;

const SECRET: &str = "e2e-shared-hs256-secret-0123456789abcdef";
const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPVzhHez0N6sGqXzG
IZ6WfZITSOVS7FEWd7EbM7AfX2qhRANCAARw04d8U/fRM1nyBHJ2fIjA37mUPlYj
BEcAwQYDnteOaB1UnklBxFJ+GAXY9hP1iAKSkrfsEbnLzdMNLsKGY1FX
-----END PRIVATE KEY-----
";
const EC_DER_B64: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPVzhHez0N6sGqXzGIZ6WfZITSOVS7FEWd7EbM7AfX2qhRANCAARw04d8U/fRM1nyBHJ2fIjA37mUPlYjBEcAwQYDnteOaB1UnklBxFJ+GAXY9hP1iAKSkrfsEbnLzdMNLsKGY1FX";

/// The auth service over a new SQLite database of its own, signing with
/// `signing`.
async fn start_auth_service(tag: &str, signing: Signing) -> (Server, AppState) {
    let (_dir, database_url) = e2e::local::sqlite_database(&format!("auth-filter-{tag}"));
    let mut config = e2e::local::auth_service_config(&database_url, SECRET);
    config.signing = signing;
    auth_service::start(&config).await.unwrap()
}

async fn create_key(
    state: &AppState,
    client_id: &str,
    expires_at: Option<&str>,
) -> (String, String) {
    let created = state
        .store
        .create_api_key(&NewApiKey {
            client_id: client_id.into(),
            scopes: vec!["admin".into()],
            rate_limit_per_minute: Some(90),
            expires_at: expires_at.map(str::to_owned),
        })
        .await
        .unwrap();
    (created.key, created.record.key_id)
}

/// Envoy with the auth filter; `/api/v1/auth/token` goes to the auth
/// service, everything else to the counting upstream.
fn envoy_yaml(plugin_config: &Value, upstream_port: u16, auth_port: u16) -> String {
    envoy_yaml_with(
        plugin_config,
        upstream_port,
        auth_port,
        &wasm_file("auth_filter"),
    )
}

/// [`envoy_yaml`] with the filter loaded from `wasm`.
fn envoy_yaml_with(
    plugin_config: &Value,
    upstream_port: u16,
    auth_port: u16,
    wasm: &std::path::Path,
) -> String {
    let configuration = serde_json::to_string(&plugin_config.to_string()).unwrap();
    format!(
        r#"
{ADMIN}
stats_config:
  stats_tags:
  - tag_name: status
    regex: '(\.status=(.*?);)'
static_resources:
  listeners:
{listener}
{virtual_host}
              - match: {{ path: "/api/v1/auth/token" }}
                route: {{ cluster: auth_service }}
              - match: {{ prefix: "/" }}
                route: {{ cluster: upstream }}
          http_filters:
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: auth
                root_id: auth
                fail_open: false
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: {configuration}
                vm_config:
                  vm_id: auth
                  runtime: envoy.wasm.runtime.v8
                  code: {{ local: {{ filename: "{wasm}" }} }}
{ROUTER}
  clusters:{upstream}{auth}
"#,
        listener = http_listener("main", LISTENER_PORT, "ingress"),
        virtual_host = virtual_host("all"),
        upstream = static_cluster("upstream", upstream_port),
        auth = cluster("auth_service", "0.25s", Some(&auth_port.to_string())),
        wasm = wasm.display()
    )
}

struct Gateway {
    envoy: Envoy,
    upstream: CountingUpstream,
    auth: Option<Server>,
    state: AppState,
    client: reqwest::Client,
}

impl Gateway {
    async fn start(tag: &str, plugin_config: Value, signing: Signing) -> Gateway {
        let upstream = CountingUpstream::start().await;
        let (auth, state) = start_auth_service(tag, signing).await;
        let yaml = envoy_yaml(&plugin_config, upstream.port, auth.addr.port());
        let envoy = Envoy::start(&yaml).await;
        Gateway {
            envoy,
            upstream,
            auth: Some(auth),
            state,
            client: reqwest::Client::new(),
        }
    }

    async fn get(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let mut req = self.client.get(self.envoy.url(path));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        (status, headers, body)
    }

    async fn status_with_key(&self, key: &str) -> u16 {
        self.get("/api/v1/rates/AAPL", &[("x-api-key", key)])
            .await
            .0
    }

    async fn status_with_token(&self, token: &str) -> u16 {
        self.get(
            "/api/v1/rates/AAPL",
            &[("authorization", &format!("Bearer {token}"))],
        )
        .await
        .0
    }

    async fn exchange(&self, key: &str) -> String {
        let resp = self
            .client
            .post(self.envoy.url("/api/v1/auth/token"))
            .header("x-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let body: Value = resp.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// `authentication_attempts_total{status}` once it has settled: the
    /// filter counts in the VM and hands its totals to Envoy every 200 ms,
    /// so two reads 500 ms apart must agree.
    async fn attempts(&self, status: &str) -> u64 {
        let mut last = self.attempts_now(status).await;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(500)).await;
            let now = self.attempts_now(status).await;
            if now == last {
                return now;
            }
            last = now;
        }
        last
    }

    async fn attempts_now(&self, status: &str) -> u64 {
        let stats = self.envoy.admin_get("/stats/prometheus").await;
        let needle = format!("authentication_attempts_total{{status=\"{status}\"}} ");
        stats
            .lines()
            .find_map(|l| l.strip_prefix(&needle))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }
}

fn assert_envelope(status: u16, body: &Value, expected_status: u16, code: &str) {
    assert_eq!(status, expected_status, "{body}");
    assert_eq!(body["status"], "error", "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims(sub: &str, exp: u64) -> Value {
    json!({"sub": sub, "iss": "borrow-rate-gateway", "aud": "borrow-rate-api",
           "iat": now(), "exp": exp, "scope": "admin"})
}

fn hs_token(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

/// The auth service signing with the shared HS256 [`SECRET`].
fn hs256() -> Signing {
    Signing::Hs256 {
        secret: SECRET.into(),
    }
}

/// The auth service signing ES256 with [`EC_PEM`] as key `k1`.
fn es256() -> Signing {
    Signing::Es256 {
        private_key_pem: EC_PEM.into(),
        key_id: Some("k1".into()),
    }
}

/// The JWKS the auth service `server` publishes.
async fn jwks_of(server: &Server) -> Value {
    reqwest::get(server.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

fn hs_plugin_config() -> Value {
    json!({"jwt": {"algorithm": "HS256", "secret": SECRET, "leeway_seconds": 5}})
}

//! The auth filter (`auth_filter.wasm`) inside a real Envoy, in front of a
//! counting upstream, calling the in-process auth service through the
//! `auth_service` cluster.
//!
//! Needs `cargo build --release --target wasm32-wasip1 -p auth-filter` and
//! `.venv/bin/envoy`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use auth_service::{AppState, Signing};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use e2e::{wasm_file, wasm_filter, CountingUpstream, Envoy};
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

fn db_url(tag: &str) -> String {
    let dir = std::env::temp_dir().join(format!(
        "auth-filter-e2e-{}-{tag}-{}",
        std::process::id(),
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    ));
    format!("sqlite://{}/auth.db", dir.display())
}

async fn start_auth_service(tag: &str, signing: Signing) -> (Server, AppState) {
    let addr: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = auth_service::Config::hs256(services::Config::new(addr, db_url(tag)), SECRET);
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
admin:
  address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{ADMIN_PORT}}}} }} }}
stats_config:
  stats_tags:
  - tag_name: status
    regex: '(\.status=(.*?);)'
static_resources:
  listeners:
  - name: main
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {{{{LISTENER_PORT}}}} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: ingress
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
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
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: upstream
    type: STATIC
    connect_timeout: 1s
    load_assignment:
      cluster_name: upstream
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {upstream_port} }} }} }}
  - name: auth_service
    type: STATIC
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: auth_service
      endpoints:
      - lb_endpoints:
        - endpoint: {{ address: {{ socket_address: {{ address: 127.0.0.1, port_value: {auth_port} }} }} }}
"#,
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

fn hs_plugin_config() -> Value {
    json!({"jwt": {"algorithm": "HS256", "secret": SECRET, "leeway_seconds": 5}})
}

#[tokio::test]
async fn valid_key_reaches_upstream_as_its_client_with_spoofed_headers_and_key_removed() {
    let gw = Gateway::start(
        "valid",
        hs_plugin_config(),
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (key, _) = create_key(&gw.state, "test123", Some("2099-01-01T00:00:00Z")).await;
    let (status, _, body) = gw
        .get(
            "/api/v1/rates/AAPL",
            &[
                ("x-api-key", &key),
                ("x-client-id", "someone_else"),
                ("x-client-scopes", "admin superuser"),
                ("x-auth-method", "jwt"),
                ("x-client-rate-limit", "1000000"),
            ],
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let seen = gw.upstream.requests();
    assert_eq!(seen.len(), 1);
    let ids: Vec<&str> = seen[0]
        .headers
        .iter()
        .filter(|(n, _)| n == "x-client-id")
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(
        ids,
        vec!["test123"],
        "exactly the gateway's own x-client-id"
    );
    assert_eq!(seen[0].header("x-client-scopes"), Some("admin"));
    assert_eq!(seen[0].header("x-auth-method"), Some("api_key"));
    assert_eq!(seen[0].header("x-client-rate-limit"), Some("90"));
    assert_eq!(
        seen[0].header("x-api-key"),
        None,
        "the key does not travel upstream"
    );

    // The second request is answered from the cache: the auth service is
    // asked once.
    assert_eq!(gw.status_with_key(&key).await, 200);
    let verifications = reqwest::get(gw.auth.as_ref().unwrap().url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        verifications.contains("auth_key_verifications_total{result=\"active\"} 1\n"),
        "{verifications}"
    );
    assert_eq!(gw.attempts("success").await, 2);

    // Public paths need no credential.
    let (status, _, _) = gw.get("/health", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(gw.upstream.count(), 3);
}

#[tokio::test]
async fn bad_keys_and_missing_credentials_get_401_envelopes_metrics_and_log_lines() {
    let gw = Gateway::start(
        "bad",
        hs_plugin_config(),
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (expired, _) = create_key(&gw.state, "big_fund", Some("2020-01-01T00:00:00Z")).await;
    let unknown = "brl_0123456789abcdefghijABCDEFGHIJklmnopqrst";

    let (status, headers, body) = gw
        .get(
            "/api/v1/rates/AAPL",
            &[("x-api-key", unknown), ("x-request-id", "req-unknown-1")],
        )
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");
    assert_eq!(body["error"]["message"], "Invalid API key");
    assert_eq!(body["error"]["request_id"], "req-unknown-1");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");

    let (status, _, body) = gw
        .get("/api/v1/rates/AAPL", &[("x-api-key", &expired)])
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");
    assert_eq!(body["error"]["message"], "API key has expired");

    let (status, _, body) = gw.get("/api/v1/calculate-locate", &[]).await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");

    let (status, _, body) = gw
        .get("/api/v1/rates/AAPL", &[("x-api-key", "brl_short")])
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");

    // A credential that is not even UTF-8 is refused without harming the VM.
    let raw = reqwest::header::HeaderValue::from_bytes(b"brl_\xff\xfe").unwrap();
    let resp = gw
        .client
        .get(gw.envoy.url("/api/v1/rates/AAPL"))
        .header("x-api-key", raw.clone())
        .header("x-request-id", raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let (status, _, _) = gw.get("/api/v1/rates/AAPL", &[]).await;
    assert_eq!(status, 401, "the filter still answers afterwards");

    assert_eq!(
        gw.upstream.count(),
        0,
        "nothing unauthenticated reaches the upstream"
    );
    assert_eq!(gw.attempts("invalid_key").await, 3);
    assert_eq!(gw.attempts("expired_key").await, 1);
    assert_eq!(gw.attempts("missing_credentials").await, 2);

    let log = gw.envoy.log();
    assert!(
        log.contains("msg=\"Authentication error\" reason=invalid_key")
            && log.contains("request_id=\"req-unknown-1\""),
        "{log}"
    );
    assert!(log.contains("reason=expired_key"), "{log}");
    assert!(
        !log.contains(unknown) && !log.contains(&expired),
        "no key in the log"
    );
}

#[tokio::test]
async fn request_body_waits_for_the_key_verification() {
    let gw = Gateway::start(
        "body",
        hs_plugin_config(),
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (key, _) = create_key(&gw.state, "test123", None).await;
    let unknown = "brl_ZYXWVUTSRQPONMLKJIHGfedcbazyxwvutsrqpo99";
    let body = r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    for (credential, expected) in [(unknown, 401), (key.as_str(), 200)] {
        let resp = gw
            .client
            .post(gw.envoy.url("/api/v1/calculate-locate"))
            .header("x-api-key", credential)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), expected);
    }
    let seen = gw.upstream.requests();
    assert_eq!(
        seen.len(),
        1,
        "the unknown key's body must not slip through"
    );
    assert_eq!(seen[0].header("x-client-id"), Some("test123"));
    assert_eq!(seen[0].body, body.as_bytes());
}

/// A TCP relay to `target` that holds every chunk of the answers for
/// `delay`: a slow auth service.
async fn slow_relay(target: SocketAddr, delay: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            let Ok(server) = tokio::net::TcpStream::connect(target).await else {
                continue;
            };
            let (mut client_rx, mut client_tx) = client.into_split();
            let (mut server_rx, mut server_tx) = server.into_split();
            tokio::spawn(async move {
                let _ = tokio::io::copy(&mut client_rx, &mut server_tx).await;
            });
            tokio::spawn(async move {
                let mut buf = vec![0u8; 16 * 1024];
                while let Ok(n) = server_rx.read(&mut buf).await {
                    if n == 0 {
                        break;
                    }
                    tokio::time::sleep(delay).await;
                    if client_tx.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    port
}

/// One HTTP/1.1 POST written by hand: the headers and the first part of
/// the body at once, the rest of the body `pause` later. Returns the
/// response status (0 without a status line).
async fn post_in_two_parts(port: u16, key: &str, body: &str, pause: Duration) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut conn = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (first, rest) = body.split_at(body.len() / 2);
    let head = format!(
        "POST /api/v1/calculate-locate HTTP/1.1\r\nhost: gateway\r\nx-api-key: {key}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{first}",
        body.len()
    );
    conn.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(pause).await;
    conn.write_all(rest.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).await.unwrap();
    e2e::parse_response(&answer).0
}

#[tokio::test]
async fn a_body_arriving_while_the_key_is_verified_moves_on_only_with_the_decision() {
    // The auth filter has no body callback: pausing in the request headers
    // holds the body too. Verification answers take 400 ms here, and the
    // second half of each body arrives 150 ms into the verification.
    let upstream = CountingUpstream::start().await;
    let (auth, state) = start_auth_service(
        "slowverify",
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let relay = slow_relay(auth.addr, Duration::from_millis(400)).await;
    let mut config = hs_plugin_config();
    config["verify_timeout_ms"] = json!(3000);
    let envoy = Envoy::start(&envoy_yaml(&config, upstream.port, relay)).await;
    let (key, _) = create_key(&state, "test123", None).await;
    let unknown = "brl_ZYXWVUTSRQPONMLKJIHGfedcbazyxwvutsrqpo99";
    let body = r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
    let pause = Duration::from_millis(150);

    let started = Instant::now();
    assert_eq!(
        post_in_two_parts(envoy.port, unknown, body, pause).await,
        401
    );
    assert!(started.elapsed() >= Duration::from_millis(400), "verified");
    assert!(
        upstream.requests().is_empty(),
        "nothing of a refused request reaches the upstream"
    );

    assert_eq!(post_in_two_parts(envoy.port, &key, body, pause).await, 200);
    let seen = upstream.requests();
    assert_eq!(seen.len(), 1, "the request went upstream once");
    assert_eq!(seen[0].header("x-client-id"), Some("test123"));
    assert_eq!(
        seen[0].body,
        body.as_bytes(),
        "both parts of the body, in order"
    );
    drop(auth);
}

#[tokio::test]
async fn revoked_key_stops_working_within_the_configured_ttl() {
    let config = json!({"strip_credential_header": false,
                        "cache": {"positive_ttl_seconds": 2, "negative_ttl_seconds": 1}});
    let gw = Gateway::start(
        "revoke",
        config,
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (key, key_id) = create_key(&gw.state, "client123", None).await;
    assert_eq!(gw.status_with_key(&key).await, 200);
    assert_eq!(
        gw.upstream.requests()[0].header("x-api-key"),
        Some(key.as_str()),
        "kept when strip_credential_header is false"
    );
    gw.state.store.revoke_api_key(&key_id).await.unwrap();
    let revoked_at = Instant::now();
    let refused_after = loop {
        let status = gw.status_with_key(&key).await;
        if status == 401 {
            break revoked_at.elapsed();
        }
        assert_eq!(status, 200);
        assert!(
            revoked_at.elapsed() < Duration::from_secs(5),
            "still accepted 5 s after revocation"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        refused_after <= Duration::from_millis(2_500),
        "{refused_after:?}"
    );
    let (_, _, body) = gw.get("/api/v1/rates/AAPL", &[("x-api-key", &key)]).await;
    assert_eq!(body["error"]["message"], "API key has been revoked");
    assert!(gw.attempts("revoked_key").await >= 1);
}

#[tokio::test]
async fn auth_service_outage_keeps_cached_keys_and_fails_closed_for_unknown_ones() {
    let config = json!({"cache": {"positive_ttl_seconds": 1, "stale_on_error_seconds": 60}});
    let mut gw = Gateway::start(
        "outage",
        config,
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (known, _) = create_key(&gw.state, "test123", None).await;
    let (never_seen, _) = create_key(&gw.state, "retail_broker", None).await;
    assert_eq!(gw.status_with_key(&known).await, 200);

    gw.auth.take().unwrap().shutdown().await;
    tokio::time::sleep(Duration::from_millis(1_200)).await; // past the positive TTL

    let (status, _, body) = gw.get("/api/v1/rates/AAPL", &[("x-api-key", &known)]).await;
    assert_eq!(status, 200, "a key verified before keeps working: {body}");
    assert_eq!(
        gw.upstream.requests()[1].header("x-client-id"),
        Some("test123")
    );

    let (status, headers, body) = gw
        .get("/api/v1/rates/AAPL", &[("x-api-key", &never_seen)])
        .await;
    assert_envelope(status, &body, 503, "SERVICE_UNAVAILABLE");
    assert_eq!(headers.get("content-type").unwrap(), "application/json");
    assert_eq!(gw.upstream.count(), 2);
    assert!(gw.envoy.log().contains("serving cached key"));
}

#[tokio::test]
async fn hs256_tokens_are_verified_in_the_filter() {
    let gw = Gateway::start(
        "hs256",
        hs_plugin_config(),
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (key, _) = create_key(&gw.state, "test123", None).await;

    // A token from the exchange, through the gateway.
    let token = gw.exchange(&key).await;
    assert_eq!(gw.status_with_token(&token).await, 200);
    let seen = gw.upstream.requests();
    assert_eq!(seen[0].header("x-client-id"), Some("test123"));
    assert_eq!(seen[0].header("x-auth-method"), Some("jwt"));
    assert_eq!(seen[0].header("x-client-rate-limit"), Some("90"));
    assert_eq!(seen[0].header("authorization"), None);

    // A JWT cannot buy another JWT.
    let resp = gw
        .client
        .post(gw.envoy.url("/api/v1/auth/token"))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let expired = hs_token(&claims("test123", now() - 60));
    assert_eq!(gw.status_with_token(&expired).await, 401);

    let (head, sig) = token.rsplit_once('.').unwrap();
    let mut sig = URL_SAFE_NO_PAD.decode(sig).unwrap();
    sig[5] ^= 0x40;
    let tampered = format!("{head}.{}", URL_SAFE_NO_PAD.encode(sig));
    assert_eq!(gw.status_with_token(&tampered).await, 401);

    let none_head = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let none_body = URL_SAFE_NO_PAD.encode(claims("test123", now() + 600).to_string());
    assert_eq!(
        gw.status_with_token(&format!("{none_head}.{none_body}."))
            .await,
        401
    );

    let mut wrong_iss = claims("test123", now() + 600);
    wrong_iss["iss"] = json!("evil-issuer");
    assert_eq!(gw.status_with_token(&hs_token(&wrong_iss)).await, 401);

    let mut wrong_aud = claims("test123", now() + 600);
    wrong_aud["aud"] = json!("other-api");
    assert_eq!(gw.status_with_token(&hs_token(&wrong_aud)).await, 401);

    let mut string_exp = claims("test123", now() + 600);
    string_exp["exp"] = json!((now() + 600).to_string());
    let (status, _, body) = gw
        .get(
            "/api/v1/rates/AAPL",
            &[(
                "authorization",
                &format!("Bearer {}", hs_token(&string_exp)),
            )],
        )
        .await;
    assert_envelope(status, &body, 401, "UNAUTHORIZED");

    assert_eq!(gw.upstream.count(), 1, "only the valid token got through");
    assert_eq!(gw.attempts("expired_token").await, 1);
    assert_eq!(gw.attempts("invalid_token").await, 5);
    assert!(!gw.envoy.log().contains(&token));
}

#[tokio::test]
async fn es256_gateway_rejects_algorithm_confusion_and_unknown_kid() {
    let signing = Signing::Es256 {
        private_key_pem: EC_PEM.into(),
        key_id: Some("k1".into()),
    };
    // The filter trusts exactly the JWKS the auth service publishes.
    let (probe, _) = start_auth_service("es256-probe", signing.clone()).await;
    let jwks: Value = reqwest::get(probe.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    probe.shutdown().await;
    let config = json!({"jwt": {"algorithm": "ES256", "jwks": jwks}});
    let gw = Gateway::start("es256", config, signing).await;
    let (key, _) = create_key(&gw.state, "big_fund", None).await;

    let token = gw.exchange(&key).await;
    assert_eq!(gw.status_with_token(&token).await, 200);
    assert_eq!(
        gw.upstream.requests()[0].header("x-client-id"),
        Some("big_fund")
    );

    // HS256 "signed" with the public key: the classic confusion attack.
    let der = STANDARD.decode(EC_DER_B64).unwrap();
    let public_point = &der[der.len() - 65..];
    for public in [public_point.to_vec(), serde_json::to_vec(&jwks).unwrap()] {
        let forged = encode(
            &Header::new(Algorithm::HS256),
            &claims("big_fund", now() + 600),
            &EncodingKey::from_secret(&public),
        )
        .unwrap();
        assert_eq!(gw.status_with_token(&forged).await, 401);
    }

    let mut header = Header::new(Algorithm::ES256);
    header.kid = Some("k-unknown".into());
    let unknown_kid = encode(
        &header,
        &claims("big_fund", now() + 600),
        &EncodingKey::from_ec_der(&der),
    )
    .unwrap();
    assert_eq!(gw.status_with_token(&unknown_kid).await, 401);
    assert_eq!(gw.upstream.count(), 1);
    assert_eq!(gw.attempts("invalid_token").await, 3);
}

#[tokio::test]
async fn malformed_plugin_config_is_rejected_by_envoy_naming_the_field() {
    let upstream = CountingUpstream::start().await;
    for (config, field) in [
        (
            json!({"cache": {"positive_ttl_seconds": 600}}),
            "cache.positive_ttl_seconds",
        ),
        (
            json!({"jwt": {"algorithm": "HS256", "secret": "short"}}),
            "jwt.secret",
        ),
        (json!({"unexpected": true}), "unexpected"),
    ] {
        let yaml = envoy_yaml(&config, upstream.port, upstream.port);
        let err = match Envoy::try_start(&yaml).await {
            Ok(_) => panic!("envoy accepted {config}"),
            Err(log) => log,
        };
        let expected = format!("invalid auth filter configuration: field `{field}`");
        assert!(err.contains(&expected), "{field} not named in:\n{err}");
    }
}

#[tokio::test]
async fn a_thousand_wrong_keys_from_one_address_are_throttled_without_blocking_another_address() {
    let gw = Gateway::start(
        "bruteforce",
        json!({"brute_force": {"max_failures": 20, "window_seconds": 60}}),
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (valid, _) = create_key(&gw.state, "test123", None).await;
    let attacker = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 1]))
        .build()
        .unwrap();
    let other = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
        .build()
        .unwrap();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut first_429 = None;
    for i in 0..1000 {
        let guess = format!("brl_{:0>40}", i);
        let resp = attacker
            .get(gw.envoy.url("/api/v1/rates/AAPL"))
            .header("x-api-key", &guess)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        *statuses.entry(status).or_default() += 1;
        if status == 429 && first_429.is_none() {
            assert!(resp.headers().contains_key("retry-after"));
            assert_eq!(resp.headers()["x-ratelimit-remaining"], "0");
            let body: Value = resp.json().await.unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED", "{body}");
            first_429 = Some(i);
        }
    }
    assert_eq!(statuses.get(&401), Some(&20), "{statuses:?}");
    assert_eq!(statuses.get(&429), Some(&980), "{statuses:?}");
    assert_eq!(first_429, Some(20));
    // Only the 20 guesses before the throttle were looked at.
    assert_eq!(gw.attempts("invalid_key").await, 20);
    assert_eq!(gw.upstream.count(), 0);

    // A valid client on another address is not slowed down at all, and a
    // wrong key from there is still judged on its merits.
    for _ in 0..5 {
        let resp = other
            .get(gw.envoy.url("/api/v1/rates/AAPL"))
            .header("x-api-key", &valid)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
    }
    let resp = other
        .get(gw.envoy.url("/api/v1/rates/AAPL"))
        .header("x-api-key", format!("brl_{:0>40}", 5000))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(gw.upstream.count(), 5);
}

/// The test-only build of the auth filter that traps on a request carrying
/// `x-test-trap` (feature `trap-on-marked-request`, built by
/// `make wasm-test-variant` into a target directory of its own).
fn trap_variant_wasm() -> std::path::PathBuf {
    let p = e2e::target_dir().join("wasm-test-variant/wasm32-wasip1/release/auth_filter.wasm");
    assert!(
        p.exists(),
        "{} is missing: run `make wasm-test-variant`",
        p.display()
    );
    p
}

/// The failure policy the gateway ships for its wasm filters, as rendered
/// by gateway-config (the one source of every shape), as a YAML line.
fn shipped_failure_policy() -> String {
    let yaml = e2e::render_local_gateway(&[], 8091, &[format!("JWT_SECRET_KEY={SECRET}")]);
    let policies: std::collections::BTreeSet<&str> = yaml
        .lines()
        .map(str::trim)
        .filter(|l| l.starts_with("failure_policy:"))
        .collect();
    assert_eq!(
        policies.len(),
        1,
        "one policy for every filter: {policies:?}"
    );
    policies
        .first()
        .map(|l| (*l).to_owned())
        .unwrap_or_default()
}

#[tokio::test]
async fn a_trapping_auth_filter_fails_closed_and_is_reloaded_for_the_next_request() {
    let upstream = CountingUpstream::start().await;
    let (auth, state) = start_auth_service(
        "trap",
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (key, _) = create_key(&state, "test123", None).await;
    let policy = shipped_failure_policy();
    let yaml = envoy_yaml_with(
        &hs_plugin_config(),
        upstream.port,
        auth.addr.port(),
        &trap_variant_wasm(),
    );
    assert!(yaml.contains("fail_open: false"));
    let yaml = yaml.replace("fail_open: false", &policy);
    let envoy = Envoy::start(&yaml).await;
    let client = reqwest::Client::new();
    let get = |headers: Vec<(&'static str, String)>| {
        let mut req = client.get(envoy.url("/api/v1/rates/AAPL"));
        for (k, v) in headers {
            req = req.header(k, v);
        }
        async move {
            let resp = req.send().await.unwrap();
            let status = resp.status().as_u16();
            (status, resp.text().await.unwrap())
        }
    };

    let (status, body) = get(vec![("x-api-key", key.clone())]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(upstream.count(), 1);

    // The marked request kills the VM, with a valid key and without any
    // credential: neither may pass (never fail open for auth).
    for headers in [
        vec![("x-api-key", key.clone()), ("x-test-trap", "1".to_owned())],
        vec![("x-test-trap", "1".to_owned())],
    ] {
        let (status, body) = get(headers).await;
        assert_eq!(status, 503, "a trapped filter answered {status}: {body}");
        assert_eq!(
            upstream.count(),
            1,
            "a trapped filter let a request through"
        );
    }
    assert!(
        envoy
            .log()
            .contains("proxy_on_request_headers failed: Uncaught RuntimeError: unreachable"),
        "the test variant did not trap:\n{}",
        envoy.log()
    );

    // The VM is reloaded: authentication works again (bounded wait for the
    // reload backoff), and still refuses requests without credentials.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = get(vec![("x-api-key", key.clone())]).await;
        if status == 200 {
            break;
        }
        assert!(
            (500..600).contains(&status),
            "while reloading: {status} {body}"
        );
        assert!(
            Instant::now() < deadline,
            "the auth filter was never reloaded:\n{}",
            envoy.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(upstream.count(), 2);
    let (status, body) = get(vec![]).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(upstream.count(), 2);
}

// ------------------------------------------------------------ benchmark

/// The filter config rendered with a direct response instead of the
/// upstream, optionally without the wasm filter (bare Envoy).
fn bench_yaml(plugin_config: &Value, auth_port: u16, with_filter: bool) -> String {
    bench_yaml_with(
        plugin_config,
        auth_port,
        with_filter,
        &wasm_file("auth_filter"),
    )
}

/// [`bench_yaml`] with the filter loaded from `wasm`. With `BENCH_PROXIED=1`
/// the route goes to an upstream instead: a second listener of the same
/// Envoy answering with the direct response (every case pays the same
/// proxy hop, and the metrics record their backend series).
fn bench_yaml_with(
    plugin_config: &Value,
    auth_port: u16,
    with_filter: bool,
    wasm: &std::path::Path,
) -> String {
    let yaml = if std::env::var("BENCH_PROXIED").is_ok_and(|v| v == "1") {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .unwrap()
            .port();
        envoy_yaml_with(plugin_config, port, auth_port, wasm).replacen(
            "  clusters:\n",
            &format!("{}  clusters:\n", bench_upstream_listener(port)),
            1,
        )
    } else {
        envoy_yaml_with(plugin_config, auth_port, auth_port, wasm).replace(
            "route: { cluster: upstream }",
            r#"direct_response: { status: 200, body: { inline_string: "{\"status\":\"success\"}" } }"#,
        )
    };
    if with_filter {
        return yaml;
    }
    let start = yaml
        .find("          - name: envoy.filters.http.wasm")
        .unwrap();
    let end = yaml
        .find("          - name: envoy.filters.http.router")
        .unwrap();
    format!("{}{}", &yaml[..start], &yaml[end..])
}

/// A listener answering every request with the benchmark's direct response.
fn bench_upstream_listener(port: u16) -> String {
    format!(
        r#"  - name: bench_upstream
    address: {{ socket_address: {{ address: 127.0.0.1, port_value: {port} }} }}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: bench_upstream
          route_config:
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
              - match: {{ prefix: "/" }}
                direct_response: {{ status: 200, body: {{ inline_string: "{{\"status\":\"success\"}}" }} }}
          http_filters:
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
"#
    )
}

/// CPU time used so far by the process `pid` (all threads), nanoseconds
/// (kernel clock ticks of 10 ms: a run of a few seconds reads it to <1 %).
fn cpu_ns(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // utime and stime are fields 14 and 15 of stat(5).
    (ticks(11) + ticks(12)) * 10_000_000
}

/// One `wrk` run pinned to CPU 1 against the Envoy process `pid`: requests
/// per second, and Envoy CPU time per request in µs (unlike the rate, the
/// CPU time is barely moved by other processes competing for the core).
fn wrk(
    url: &str,
    pid: u32,
    header: Option<&str>,
    script: Option<&std::path::Path>,
    seconds: u32,
) -> (f64, f64) {
    let mut cmd = std::process::Command::new("taskset");
    cmd.args(["-c", "1", "wrk", "-t1", "-c16", &format!("-d{seconds}s")]);
    if let Some(h) = header {
        cmd.args(["-H", h]);
    }
    if let Some(s) = script {
        cmd.arg("-s").arg(s);
    }
    let cpu_before = cpu_ns(pid);
    let out = cmd.arg(url).output().expect("wrk");
    let cpu = cpu_ns(pid) - cpu_before;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Non-2xx"), "errors during the run:\n{text}");
    let rps: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no rate in:\n{text}"));
    let requests: f64 = text
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{text}"));
    (rps, cpu as f64 / 1000.0 / requests)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pin_to_cpu0(pid: u32) {
    let _ = std::process::Command::new("taskset")
        .args(["-cp", "0", &pid.to_string()])
        .output();
}

/// A wrk script sending a different bearer token from `tokens` each request,
/// so (with 16 cache slots) nearly every request verifies a signature.
fn token_script(tokens: &[String]) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!(
        "auth-bench-{}-{}.lua",
        std::process::id(),
        tokens.len() + tokens[0].len()
    ));
    let list: Vec<String> = tokens.iter().map(|t| format!("\"{t}\"")).collect();
    let script = format!(
        "local tokens = {{{}}}\nlocal i = 0\nrequest = function()\n  i = i % #tokens + 1\n  return wrk.format(nil, nil, {{[\"Authorization\"] = \"Bearer \" .. tokens[i]}})\nend\n",
        list.join(",")
    );
    std::fs::write(&path, script).unwrap();
    path
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Added cost per request of the auth filter against bare Envoy: one Envoy
/// worker pinned to CPU 0, wrk on CPU 1, interleaved rounds, medians.
/// Run with `cargo test -p e2e --release --test auth_filter -- --ignored --nocapture`.
/// `BENCH_COMPARE_WASM=label=/path/a.wasm,label2=/path/b.wasm` adds other
/// builds of the filter (public path, cached key, cached JWT) to the same
/// interleaved rounds, for before/after figures under the same load.
/// `BENCH_METRICS=1` adds the filter recording the metrics (also for each
/// compared build); `BENCH_PROXIED=1` routes to an upstream instead of a
/// direct response (see [`bench_yaml_with`]).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: minutes of saturated load"]
async fn benchmark_added_cost_per_request() {
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let seconds: u32 = std::env::var("BENCH_SECONDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5);
    let es_signing = Signing::Es256 {
        private_key_pem: EC_PEM.into(),
        key_id: Some("k1".into()),
    };
    let (auth, state) = start_auth_service(
        "bench",
        Signing::Hs256 {
            secret: SECRET.into(),
        },
    )
    .await;
    let (es_auth, _) = start_auth_service("bench-es", es_signing).await;
    let jwks: Value = reqwest::get(es_auth.url("/.well-known/jwks.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (key, _) = create_key(&state, "test123", None).await;
    let hs_config = json!({"cache": {"positive_ttl_seconds": 60, "slots": 16},
                           "jwt": {"algorithm": "HS256", "secret": SECRET}});
    let es_config = json!({"cache": {"slots": 16}, "jwt": {"algorithm": "ES256", "jwks": jwks}});
    let bare = Envoy::start(&bench_yaml(&hs_config, auth.addr.port(), false)).await;
    let hs = Envoy::start(&bench_yaml(&hs_config, auth.addr.port(), true)).await;
    let es = Envoy::start(&bench_yaml(&es_config, es_auth.addr.port(), true)).await;
    for e in [&bare, &hs, &es] {
        pin_to_cpu0(e.pid());
    }
    let mut others: Vec<(String, Envoy)> = Vec::new();
    let compare = std::env::var("BENCH_COMPARE_WASM").unwrap_or_default();
    let compare: Vec<(&str, &str)> = compare
        .split(',')
        .filter(|s| !s.is_empty())
        .map(|spec| spec.split_once('=').unwrap_or((spec, spec)))
        .collect();
    for (label, file) in &compare {
        let yaml = bench_yaml_with(&hs_config, auth.addr.port(), true, file.as_ref());
        let envoy = Envoy::start(&yaml).await;
        pin_to_cpu0(envoy.pid());
        others.push(((*label).to_owned(), envoy));
    }
    // BENCH_METRICS=1: what recording the SPEC §8 metrics adds, in the auth
    // filter itself (its `metrics` section, as the gateway runs it) and as
    // a separate metrics filter in front of it.
    if std::env::var("BENCH_METRICS").is_ok_and(|v| v == "1") {
        let mut with_metrics = hs_config.clone();
        with_metrics["metrics"] = json!({});
        let inside = Envoy::start(&bench_yaml(&with_metrics, auth.addr.port(), true)).await;
        let filter = bench_yaml(&hs_config, auth.addr.port(), true).replacen(
            "          - name: envoy.filters.http.wasm",
            &format!(
                "{}\n          - name: envoy.filters.http.wasm",
                wasm_filter("metrics_filter", "{}").trim_start_matches('\n')
            ),
            1,
        );
        let separate = Envoy::start(&filter).await;
        for (label, envoy) in [("metrics in auth", inside), ("+ metrics filter", separate)] {
            pin_to_cpu0(envoy.pid());
            others.push((label.to_owned(), envoy));
        }
        // The compared builds recording the metrics too.
        for (label, file) in &compare {
            let yaml = bench_yaml_with(&with_metrics, auth.addr.port(), true, file.as_ref());
            let envoy = Envoy::start(&yaml).await;
            pin_to_cpu0(envoy.pid());
            others.push((format!("{label}, metrics in auth"), envoy));
        }
    }
    let token = hs_token(&claims("test123", now() + 3600));
    let hs_tokens: Vec<String> = (0..500)
        .map(|i| hs_token(&claims(&format!("c{i}"), now() + 3600)))
        .collect();
    let der = STANDARD.decode(EC_DER_B64).unwrap();
    let es_key = EncodingKey::from_ec_der(&der);
    let mut es_header = Header::new(Algorithm::ES256);
    es_header.kid = Some("k1".into());
    let es_tokens: Vec<String> = (0..500)
        .map(|i| encode(&es_header, &claims(&format!("c{i}"), now() + 3600), &es_key).unwrap())
        .collect();
    let hs_script = token_script(&hs_tokens);
    let es_script = token_script(&es_tokens);
    let key_header = format!("x-api-key: {key}");
    let jwt_header = format!("authorization: Bearer {token}");
    let path = "/api/v1/rates/AAPL";
    // Warm the caches (and check every variant answers 200).
    let client = reqwest::Client::new();
    let mut warm = vec![&hs];
    warm.extend(others.iter().map(|(_, e)| e));
    for (e, h) in warm.iter().flat_map(|e| {
        [
            (*e, ("x-api-key", key.as_str())),
            (
                *e,
                ("authorization", jwt_header.split_once(": ").unwrap().1),
            ),
        ]
    }) {
        let status = client
            .get(e.url(path))
            .header(h.0, h.1)
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status.as_u16(), 200);
    }
    let rss_before = (rss_kib(bare.pid()), rss_kib(hs.pid()));
    // Each case is compared with bare Envoy serving the same request (a
    // long `Authorization` header costs Envoy's codec too).
    // (case, index of its bare baseline, (req/s, CPU µs/request) per round)
    type Case = (String, usize, Vec<(f64, f64)>);
    let mut results: Vec<Case> = [
        ("bare Envoy", 0),
        ("bare Envoy, X-API-Key header", 1),
        ("bare Envoy, bearer header", 2),
        ("filter, public path", 0),
        ("cached API key", 1),
        ("cached HS256 JWT", 2),
        ("uncached HS256 JWT", 2),
        ("uncached ES256 JWT", 2),
    ]
    .iter()
    .map(|(name, base)| ((*name).to_owned(), *base, vec![]))
    .collect();
    for (label, _) in &others {
        for (case, base) in [
            ("public path", 0),
            ("cached API key", 1),
            ("cached HS256 JWT", 2),
        ] {
            results.push((format!("[{label}] {case}"), base, vec![]));
        }
    }
    for _ in 0..rounds {
        let mut runs = vec![
            wrk(&bare.url(path), bare.pid(), None, None, seconds),
            wrk(
                &bare.url(path),
                bare.pid(),
                Some(&key_header),
                None,
                seconds,
            ),
            wrk(
                &bare.url(path),
                bare.pid(),
                Some(&jwt_header),
                None,
                seconds,
            ),
            wrk(&hs.url("/health"), hs.pid(), None, None, seconds),
            wrk(&hs.url(path), hs.pid(), Some(&key_header), None, seconds),
            wrk(&hs.url(path), hs.pid(), Some(&jwt_header), None, seconds),
            wrk(&hs.url(path), hs.pid(), None, Some(&hs_script), seconds),
            wrk(&es.url(path), es.pid(), None, Some(&es_script), seconds),
        ];
        for (_, e) in &others {
            runs.push(wrk(&e.url("/health"), e.pid(), None, None, seconds));
            runs.push(wrk(&e.url(path), e.pid(), Some(&key_header), None, seconds));
            runs.push(wrk(&e.url(path), e.pid(), Some(&jwt_header), None, seconds));
        }
        for (slot, rps) in results.iter_mut().zip(runs) {
            slot.2.push(rps);
        }
    }
    let rate = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.0).collect());
    let cpu = |runs: &[(f64, f64)]| median(runs.iter().map(|r| r.1).collect());
    let base: Vec<(f64, f64)> = results[..3]
        .iter()
        .map(|(_, _, runs)| (1e6 / rate(runs), cpu(runs)))
        .collect();
    println!("auth filter benchmark: {rounds} interleaved rounds of {seconds} s, medians");
    println!(
        "  {:<32} {:>9} {:>12} {:>8} {:>14} {:>8}",
        "case", "req/s", "µs/request", "added", "Envoy CPU µs", "added"
    );
    for (name, b, runs) in &results {
        let rps = rate(runs);
        let us = 1e6 / rps;
        let cpu_us = cpu(runs);
        println!(
            "  {name:<32} {rps:>9.0} {us:>12.1} {:>8.1} {cpu_us:>14.1} {:>8.1}",
            us - base[*b].0,
            cpu_us - base[*b].1
        );
    }
    println!(
        "  RSS after warm-up: bare {} KiB, with auth filter {} KiB; after load: bare {} KiB, with filter {} KiB",
        rss_before.0, rss_before.1, rss_kib(bare.pid()), rss_kib(hs.pid())
    );
    let _ = std::fs::remove_file(hs_script);
    let _ = std::fs::remove_file(es_script);
}

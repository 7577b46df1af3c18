//! The attack catalogue: hostile requests through the rendered `local`
//! gateway (auth, both rate limits, validation, metrics) in front of the real
//! data, calculation, auth, ops and rate-limit services. Every case asserts
//! the documented status and envelope and, from Envoy's per-cluster upstream
//! request counters, whether anything reached a backend (the data,
//! calculation and ops services; the auth filter's own key-verification
//! calls to the auth service are not counted).
//!
//! Requests are written byte for byte over TCP (no client library
//! normalises a path or a header), each case from its own loopback address
//! (127.0.0.10, .11, ...), so the brute-force throttling of one case never
//! changes the answer of another. The catalogue is also the table in
//! docs/reliability.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use e2e::Envoy;
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use store::NewApiKey;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "attack-catalogue-hs256-secret-0123456789";
const BACKENDS: [&str; 3] = ["data_service", "calculation_service", "ops_service"];

/// One HTTP/1.1 response.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Checks status and, for errors, the SPEC §6 envelope with its
    /// `x-request-id`.
    fn check(&self, status: u16, code: Option<&str>) -> Result<(), String> {
        match code {
            Some(code) => {
                e2e::check_envelope(self.status, |h| self.header(h), &self.body, status, code)
                    .map(|_| ())
            }
            None if self.status != status => Err(format!(
                "status {} (expected {status}): {}",
                self.status, self.body
            )),
            None => Ok(()),
        }
    }
}

/// Sends `head` (request line and headers, without the final blank line)
/// and `body` from `source` to the gateway; a `content-length` is added when
/// there is a body.
async fn raw(port: u16, source: Ipv4Addr, head: &str, body: &[u8]) -> Reply {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap();
    let mut req = format!("{head}\r\nhost: gateway\r\nconnection: close\r\n");
    if !body.is_empty() {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    let mut bytes = req.into_bytes();
    bytes.extend_from_slice(body);
    stream.write_all(&bytes).await.unwrap();
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut buf)).await;
    let (status, headers, body) = e2e::parse_response(&buf);
    Reply {
        status,
        headers,
        body,
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn claims() -> Value {
    json!({"sub": "test123", "iss": "borrow-rate-gateway", "aud": "borrow-rate-api",
           "iat": now(), "exp": now() + 600, "scope": ""})
}

fn with(mut claims: Value, key: &str, value: Value) -> Value {
    claims[key] = value;
    claims
}

fn without(mut claims: Value, key: &str) -> Value {
    claims.as_object_mut().unwrap().remove(key);
    claims
}

fn hs256(claims: &Value, kid: Option<&str>, secret: &[u8]) -> String {
    let mut header = Header::new(Algorithm::HS256);
    header.kid = kid.map(str::to_owned);
    encode(&header, claims, &EncodingKey::from_secret(secret)).unwrap()
}

/// A token whose header and payload are the given JSON texts, HS256-signed
/// with the gateway's secret (for payloads serde would never write).
fn hs256_raw(header: &str, payload: &str) -> String {
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(payload)
    );
    let signature = jsonwebtoken::crypto::sign(
        signing_input.as_bytes(),
        &EncodingKey::from_secret(SECRET.as_bytes()),
        Algorithm::HS256,
    )
    .unwrap();
    format!("{signing_input}.{signature}")
}

/// A P-256 public key (SPKI PEM), what an attacker would sign HS256 tokens
/// with in an algorithm-confusion attack.
const EC_PUBLIC_PEM: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEcNOHfFP30TNZ8gRydnyIwN+5lD5W
IwRHAMEGA57Xjmgdsp5JQcRSfhgF2PYT9YgCkpK37BG5y83QzQs0ocZjVRVX
-----END PUBLIC KEY-----
";

struct Catalogue {
    envoy: Envoy,
    _services: Vec<services::common::Server>,
    _rls: ratelimit::Running,
    valid: String,
    other_client: String,
    revoked: String,
    expired: String,
    next_source: u8,
    results: Vec<(String, Result<(), String>)>,
}

impl Catalogue {
    /// Requests that reached the data, calculation and ops services.
    async fn backend_requests(&self) -> u64 {
        let stats = self
            .envoy
            .admin_get("/stats?filter=upstream_rq_total$")
            .await;
        BACKENDS
            .iter()
            .map(|cluster| {
                let prefix = format!("cluster.{cluster}.upstream_rq_total: ");
                stats
                    .lines()
                    .find_map(|l| l.strip_prefix(&prefix))
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            })
            .sum()
    }

    /// A fresh loopback source address for one case.
    fn source(&mut self) -> Ipv4Addr {
        self.next_source += 1;
        Ipv4Addr::new(127, 0, 0, 9 + self.next_source)
    }

    /// Runs one case: sends the request, checks status and envelope, and
    /// whether it reached a backend.
    async fn case(
        &mut self,
        name: &str,
        head: &str,
        body: &[u8],
        expect: (u16, Option<&str>),
        reaches_backend: bool,
    ) -> Reply {
        let source = self.source();
        let before = self.backend_requests().await;
        let reply = raw(self.envoy.port, source, head, body).await;
        let reached = self.backend_requests().await > before;
        let mut outcome = reply.check(expect.0, expect.1);
        if outcome.is_ok() && reached != reaches_backend {
            outcome = Err(format!(
                "reached a backend: {reached} (expected {reaches_backend})"
            ));
        }
        self.results.push((name.to_owned(), outcome));
        reply
    }

    async fn rates_with(&mut self, name: &str, header: &str, expect: (u16, Option<&str>)) {
        let head = format!("GET /api/v1/rates/AAPL HTTP/1.1\r\n{header}");
        let reaches = expect.0 == 200;
        self.case(name, &head, b"", expect, reaches).await;
    }

    async fn bearer(&mut self, name: &str, token: &str) {
        let header = format!("authorization: Bearer {token}");
        self.rates_with(name, &header, (401, Some("UNAUTHORIZED")))
            .await;
    }

    async fn calculate(
        &mut self,
        name: &str,
        key: &str,
        extra: &str,
        body: &[u8],
        expect: (u16, Option<&str>),
        reaches: bool,
    ) {
        let head = format!(
            "POST /api/v1/calculate-locate HTTP/1.1\r\nx-api-key: {key}\r\ncontent-type: application/json{extra}"
        );
        self.case(name, &head, body, expect, reaches).await;
    }
}

async fn start() -> Catalogue {
    let dir = e2e::scratch_dir("attacks");
    let db = format!("sqlite://{}/pricing.db", dir.display());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let config = || services::Config::new(any, db.clone());
    let (data, _) = services::state::start_data_service(&config())
        .await
        .unwrap();
    let (calc, _) = services::state::start_calculation_service(&config())
        .await
        .unwrap();
    let (auth, auth_state) = e2e::local::start_auth_service(&db, SECRET).await;
    let rls = ratelimit::spawn(e2e::local::rate_limit_config("attacks"))
        .await
        .unwrap();
    let store = &auth_state.store;
    let key = |client_id: &str, expires_at: Option<String>| NewApiKey {
        client_id: client_id.into(),
        scopes: vec![],
        rate_limit_per_minute: Some(100_000),
        expires_at,
    };
    let valid = store
        .create_api_key(&key("test123", None))
        .await
        .unwrap()
        .key;
    let other_client = store
        .create_api_key(&key("client123", None))
        .await
        .unwrap()
        .key;
    let revoked = store.create_api_key(&key("test123", None)).await.unwrap();
    store.revoke_api_key(&revoked.record.key_id).await.unwrap();
    let expired = store
        .create_api_key(&key("test123", Some("2020-01-01T00:00:00Z".into())))
        .await
        .unwrap()
        .key;

    // Held from now on, so no ephemeral port of Envoy's connections takes it.
    let ops_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let ops_port = ops_listener.local_addr().unwrap().port();
    let yaml = e2e::local::local_gateway(
        &[
            ("data_service", data.addr.to_string()),
            ("calculation_service", calc.addr.to_string()),
            ("auth_service", auth.addr.to_string()),
            ("ops_service", format!("127.0.0.1:{ops_port}")),
            ("rate_limit_service", rls.grpc_addr.to_string()),
        ],
        &rls,
        SECRET,
        &["CORS_ORIGINS=https://app.example.com".into()],
    );
    let envoy = Envoy::start(&yaml).await;
    let url = |a: SocketAddr| format!("http://{a}");
    let ops = ops_service::build_on(
        ops_service::OpsConfig {
            listen_addr: SocketAddr::from(([127, 0, 0, 1], ops_port)),
            envoy_admin_url: format!("http://127.0.0.1:{}", envoy.admin_port),
            backends: vec![ops_service::Backend {
                name: "data_service".into(),
                base_url: url(data.addr),
                critical: true,
            }],
            database_url: None,
            redis_url: None,
            probe_timeout: Duration::from_millis(1000),
        },
        ops_listener,
    )
    .await
    .unwrap();
    tokio::spawn(ops.serve(std::future::pending()));
    // Every backend healthy in Envoy's eyes before the first case.
    e2e::wait_until_healthy(&envoy, &[], Duration::from_secs(30)).await;
    Catalogue {
        envoy,
        _services: vec![data, calc, auth],
        _rls: rls,
        valid,
        other_client,
        revoked: revoked.key,
        expired,
        next_source: 0,
        results: Vec::new(),
    }
}

const BODY: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_attack_in_the_catalogue_gets_its_documented_answer_and_nothing_slips_through() {
    let mut c = start().await;
    let unauthorized = (401, Some("UNAUTHORIZED"));
    let valid = c.valid.clone();

    // The baseline: a valid key reaches the data service.
    c.rates_with(
        "baseline_valid_key",
        &format!("x-api-key: {valid}"),
        (200, None),
    )
    .await;

    // --- JWT
    let none = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims().to_string())
    );
    let secret = SECRET.as_bytes();
    let payload = claims().to_string();
    let duplicated = payload.replacen(
        r#""sub":"test123""#,
        r#""sub":"test123","sub":"big_fund""#,
        1,
    );
    assert_ne!(payload, duplicated);
    let refused_tokens = [
        ("jwt_alg_none", none),
        (
            "jwt_hs256_signed_with_an_es256_public_key",
            hs256(&claims(), None, EC_PUBLIC_PEM.as_bytes()),
        ),
        (
            "jwt_signed_with_another_secret",
            hs256(&claims(), None, b"not-the-gateway-secret-0123456789abcdef"),
        ),
        (
            "jwt_unknown_kid",
            hs256(&claims(), Some("k-unknown"), secret),
        ),
        (
            "jwt_kid_with_path_characters",
            hs256(&claims(), Some("../../../../etc/passwd"), secret),
        ),
        (
            "jwt_kid_with_sql_characters",
            hs256(&claims(), Some("' OR '1'='1'; --"), secret),
        ),
        (
            "jwt_expired",
            hs256(&with(claims(), "exp", json!(now() - 3600)), None, secret),
        ),
        (
            "jwt_nbf_in_the_future",
            hs256(&with(claims(), "nbf", json!(now() + 3600)), None, secret),
        ),
        (
            "jwt_exp_as_a_string",
            hs256(
                &with(claims(), "exp", json!((now() + 600).to_string())),
                None,
                secret,
            ),
        ),
        (
            "jwt_nbf_as_a_string",
            hs256(&with(claims(), "nbf", json!("yesterday")), None, secret),
        ),
        (
            "jwt_missing_exp",
            hs256(&without(claims(), "exp"), None, secret),
        ),
        (
            "jwt_wrong_issuer",
            hs256(&with(claims(), "iss", json!("evil-issuer")), None, secret),
        ),
        (
            "jwt_wrong_audience",
            hs256(&with(claims(), "aud", json!("another-api")), None, secret),
        ),
        ("jwt_bad_base64", "eyJ!!!.@@@.###".to_owned()),
        (
            "jwt_duplicated_claims",
            hs256_raw(r#"{"alg":"HS256","typ":"JWT"}"#, &duplicated),
        ),
    ];
    for (name, token) in &refused_tokens {
        c.bearer(name, token).await;
    }
    let huge = format!(
        "{}{}",
        hs256(&claims(), None, secret),
        "A".repeat(100 * 1024)
    );
    c.rates_with(
        "jwt_of_100_kb",
        &format!("authorization: Bearer {huge}"),
        (431, Some("VALIDATION_ERROR")),
    )
    .await;

    // --- API keys
    let mut off_by_one = valid.clone();
    let last = off_by_one.pop().unwrap();
    off_by_one.push(if last == 'a' { 'b' } else { 'a' });
    let other = c.other_client.clone();
    let refused_keys = [
        ("api_key_empty", "x-api-key: ".to_owned()),
        (
            "api_key_of_10_kb",
            format!("x-api-key: brl_{}", "a".repeat(10 * 1024)),
        ),
        (
            "api_key_one_character_off",
            format!("x-api-key: {off_by_one}"),
        ),
        ("api_key_revoked", format!("x-api-key: {}", c.revoked)),
        ("api_key_expired", format!("x-api-key: {}", c.expired)),
        (
            "two_api_key_headers",
            format!("x-api-key: {valid}\r\nx-api-key: {other}"),
        ),
    ];
    for (name, header) in &refused_keys {
        c.rates_with(name, header, unauthorized).await;
    }
    c.case(
        "api_key_in_the_query_string",
        &format!("GET /api/v1/rates/AAPL?api_key={valid}&x-api-key={valid} HTTP/1.1"),
        b"",
        unauthorized,
        false,
    )
    .await;
    c.rates_with(
        "api_key_sent_as_a_bearer_token",
        &format!("authorization: Bearer {valid}"),
        unauthorized,
    )
    .await;

    // --- Headers and paths
    c.rates_with(
        "spoofed_x_client_id_without_credentials",
        "x-client-id: test123\r\nx-client-scopes: admin",
        unauthorized,
    )
    .await;
    // client123 claims to be an admin acting for test123: the gateway
    // replaces the identity headers, so the backend's BOLA check holds.
    c.calculate(
        "spoofed_identity_headers_with_a_valid_key",
        &other,
        "\r\nx-client-id: test123\r\nx-client-scopes: admin\r\nx-auth-method: jwt",
        BODY.as_bytes(),
        (403, Some("FORBIDDEN")),
        true,
    )
    .await;
    c.rates_with(
        "x_envoy_headers_from_the_client",
        &format!(
            "x-api-key: {valid}\r\nx-envoy-upstream-rq-timeout-ms: 1\r\nx-envoy-retry-on: 5xx\r\nx-envoy-max-retries: 50"
        ),
        (200, None),
    )
    .await;
    c.rates_with(
        "header_name_with_an_underscore",
        &format!("x-api-key: {valid}\r\nx_client_id: big_fund"),
        (400, Some("VALIDATION_ERROR")),
    )
    .await;
    c.rates_with(
        "oversized_request_headers",
        &format!("x-api-key: {valid}\r\nx-padding: {}", "p".repeat(90 * 1024)),
        (431, Some("VALIDATION_ERROR")),
    )
    .await;
    c.case(
        "dot_segments_towards_the_internal_endpoint",
        &format!("POST /api/v1/rates/../../../internal/v1/keys/verify HTTP/1.1\r\nx-api-key: {valid}\r\ncontent-type: application/json"),
        br#"{"key_hash":"00"}"#,
        (404, Some("NOT_FOUND")),
        false,
    )
    .await;
    c.case(
        "escaped_slash_in_the_path",
        &format!("GET /api/v1/rates/AAPL%2F..%2F..%2Finternal HTTP/1.1\r\nx-api-key: {valid}"),
        b"",
        (400, Some("VALIDATION_ERROR")),
        false,
    )
    .await;
    c.case(
        "double_slash_towards_the_internal_endpoint",
        &format!("POST //internal/v1/keys/verify HTTP/1.1\r\nx-api-key: {valid}\r\ncontent-type: application/json"),
        br#"{"key_hash":"00"}"#,
        (404, Some("NOT_FOUND")),
        false,
    )
    .await;
    c.case(
        "mixed_case_path",
        &format!("GET /API/V1/Rates/AAPL HTTP/1.1\r\nx-api-key: {valid}"),
        b"",
        (404, Some("NOT_FOUND")),
        false,
    )
    .await;
    c.case(
        "encoded_nul_in_the_path",
        &format!("GET /api/v1/rates/AA%00PL HTTP/1.1\r\nx-api-key: {valid}"),
        b"",
        (400, Some("VALIDATION_ERROR")),
        false,
    )
    .await;

    // --- Bodies (valid key, so only validation stands in the way)
    let bad = (400, Some("VALIDATION_ERROR"));
    let deep = format!("{}1{}", "[".repeat(2000), "]".repeat(2000));
    let nested = format!(
        r#"{{"ticker":"AAPL","position_value":{deep},"loan_days":30,"client_id":"test123"}}"#
    );
    c.calculate(
        "deeply_nested_json",
        &valid,
        "",
        nested.as_bytes(),
        bad,
        false,
    )
    .await;
    let body = BODY.replace("100000", "1e400");
    c.calculate("huge_number", &valid, "", body.as_bytes(), bad, false)
        .await;
    let body = BODY.replace("100000", "NaN");
    c.calculate("nan_literal", &valid, "", body.as_bytes(), bad, false)
        .await;
    let body = BODY.replace("100000", r#""Infinity""#);
    c.calculate("infinity_string", &valid, "", body.as_bytes(), bad, false)
        .await;
    let body = BODY.replace(r#""loan_days":30"#, r#""loan_days":30,"loan_days":3650"#);
    c.calculate("duplicate_keys", &valid, "", body.as_bytes(), bad, false)
        .await;
    let body = BODY.replace(r#""loan_days":30"#, r#""loan_days":true"#);
    c.calculate("wrong_types", &valid, "", body.as_bytes(), bad, false)
        .await;
    let body = BODY.replace(r#""client_id""#, r#""is_admin":true,"client_id""#);
    c.calculate("unknown_field", &valid, "", body.as_bytes(), bad, false)
        .await;
    let mut big = BODY.trim_end_matches('}').to_owned();
    big.push_str(r#","pad":""#);
    while big.len() < 8 * 1024 - 1 {
        big.push('x');
    }
    big.push_str("\"}");
    assert_eq!(big.len(), 8 * 1024 + 1);
    c.calculate(
        "body_of_8_kib_plus_1",
        &valid,
        "",
        big.as_bytes(),
        (413, Some("PAYLOAD_TOO_LARGE")),
        false,
    )
    .await;
    c.calculate(
        "truncated_json",
        &valid,
        "",
        &BODY.as_bytes()[..40],
        bad,
        false,
    )
    .await;
    let head = format!(
        "POST /api/v1/calculate-locate HTTP/1.1\r\nx-api-key: {valid}\r\ncontent-type: text/plain"
    );
    c.case(
        "wrong_content_type",
        &head,
        BODY.as_bytes(),
        (415, Some("UNSUPPORTED_MEDIA_TYPE")),
        false,
    )
    .await;

    // --- Authorization
    c.calculate(
        "another_clients_id_in_the_body",
        &other,
        "",
        BODY.as_bytes(),
        (403, Some("FORBIDDEN")),
        true,
    )
    .await;
    c.case(
        "admin_endpoint_without_the_admin_scope",
        &format!("GET /discovery/services HTTP/1.1\r\nx-api-key: {valid}"),
        b"",
        (403, Some("FORBIDDEN")),
        true,
    )
    .await;
    c.case(
        "admin_endpoint_without_credentials",
        "GET /discovery/services HTTP/1.1",
        b"",
        unauthorized,
        false,
    )
    .await;
    let not_allowed = (405, Some("METHOD_NOT_ALLOWED"));
    for (name, method, path) in [
        ("delete_on_rates", "DELETE", "/api/v1/rates/AAPL"),
        ("put_on_calculate_locate", "PUT", "/api/v1/calculate-locate"),
        ("get_on_calculate_locate", "GET", "/api/v1/calculate-locate"),
        ("trace_on_rates", "TRACE", "/api/v1/rates/AAPL"),
    ] {
        let head = format!("{method} {path} HTTP/1.1\r\nx-api-key: {valid}");
        let reply = c.case(name, &head, b"", not_allowed, false).await;
        if reply.status == 405 && reply.header("allow").is_none() {
            c.results.push((
                format!("{name}_allow_header"),
                Err("no Allow header".into()),
            ));
        }
    }
    let preflight = c
        .case(
            "cors_preflight_from_an_origin_not_allowed",
            "OPTIONS /api/v1/rates/AAPL HTTP/1.1\r\norigin: https://evil.example\r\naccess-control-request-method: GET",
            b"",
            // Envoy's CORS filter answers the preflight itself, without
            // the allow-origin header a browser needs to go on.
            (200, None),
            false,
        )
        .await;
    if preflight.header("access-control-allow-origin").is_some() {
        c.results.push((
            "cors_preflight_from_an_origin_not_allowed_gets_no_allow_origin".into(),
            Err(format!("{:?}", preflight.headers)),
        ));
    }

    // --- Brute force: one address guessing keys is throttled (429 after
    // the 20 failures a minute of the default config); a valid client on
    // another address is not.
    let attacker = c.source();
    let before = c.backend_requests().await;
    let mut statuses = Vec::new();
    for i in 0..30 {
        let head = format!("GET /api/v1/rates/AAPL HTTP/1.1\r\nx-api-key: brl_{i:0>40}");
        statuses.push(raw(c.envoy.port, attacker, &head, b"").await);
    }
    let throttled = statuses.iter().filter(|r| r.status == 429).count();
    let outcome = statuses[29]
        .check(429, Some("RATE_LIMITED"))
        .and_then(|()| match statuses[29].header("retry-after") {
            Some(_) if throttled == 10 => Ok(()),
            _ => Err(format!(
                "{throttled} of 30 throttled, retry-after {:?}",
                statuses[29].header("retry-after")
            )),
        });
    c.results
        .push(("brute_force_guessing_keys_from_one_address".into(), outcome));
    let bystander = c.source();
    let head = format!("GET /api/v1/rates/AAPL HTTP/1.1\r\nx-api-key: {valid}");
    let outcome = raw(c.envoy.port, bystander, &head, b"")
        .await
        .check(200, None);
    let reached = c.backend_requests().await - before;
    let outcome = outcome.and_then(|()| {
        (reached == 1)
            .then_some(())
            .ok_or(format!("{reached} requests reached a backend"))
    });
    c.results.push((
        "brute_force_never_blocks_a_client_on_another_address".into(),
        outcome,
    ));

    let failed: Vec<String> = c
        .results
        .iter()
        .filter_map(|(name, r)| r.as_ref().err().map(|e| format!("{name}: {e}")))
        .collect();
    println!("{} attack cases run", c.results.len());
    assert!(c.results.len() >= 40, "only {} cases", c.results.len());
    assert!(failed.is_empty(), "failed cases:\n{}", failed.join("\n"));
}

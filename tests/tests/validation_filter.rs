//! The validation filter (SPEC §4) and the one error envelope (SPEC §6)
//! through a real Envoy: metrics filter → validation filter → buffer →
//! router, with the gateway's own local-reply mapping, access log and stats
//! configuration (gateway-config's `parts`).
//!
//! Needs the filters built: `cargo build --release --target wasm32-wasip1
//! -p validation-filter -p metrics-filter`.

use std::time::Duration;

use e2e::config::{cluster, http_listener, virtual_host, ADMIN, BUFFER, LISTENER_PORT};
use e2e::stand_in::stalling_upstream;
use e2e::{free_port, gateway_part, wasm_filter, CountingUpstream, Envoy};
use serde_json::Value;
use std::io::{Read, Write};
use std::net::TcpStream;

/// Ports of the upstreams the test gateway routes to.
struct Upstreams {
    /// `/api/v1/rates/…` and `/api/v1/calculate-locate`.
    api: u16,
    /// Accepts connections and never answers (upstream timeout).
    stall: u16,
    /// Nothing listens there (connection refused).
    closed: u16,
}

fn gateway_yaml(up: &Upstreams, validation_config: &str, metrics_config: &str) -> String {
    let stats = gateway_part("stats_config", 0);
    let access_log = gateway_part("access_log", 10);
    let local_reply = gateway_part("local_reply_config", 10);
    let metrics = wasm_filter("metrics_filter", metrics_config);
    let validation = wasm_filter("validation_filter", validation_config);
    let cluster =
        |name, port: Option<u16>| cluster(name, "0.5s", port.map(|p| p.to_string()).as_deref());
    let clusters = [
        cluster("data_service", Some(up.api)),
        cluster("calculation_service", Some(up.api)),
        cluster("stall_service", Some(up.stall)),
        cluster("closed_service", Some(up.closed)),
        cluster("empty_service", None),
    ]
    .concat();
    format!(
        r#"
{ADMIN}
{stats}
static_resources:
  listeners:
{listener}
          generate_request_id: true
          preserve_external_request_id: false
          always_set_request_id_in_response: true
{access_log}
{local_reply}
{virtual_host}
              - name: /api/v1/rates/{{ticker}}
                match: {{ safe_regex: {{ regex: "/api/v1/rates/[^/]+" }}, headers: [{{ name: ":method", string_match: {{ exact: GET }} }}] }}
                route: {{ cluster: data_service, timeout: 3s }}
              - name: /api/v1/calculate-locate
                match: {{ path: /api/v1/calculate-locate, headers: [{{ name: ":method", string_match: {{ exact: POST }} }}] }}
                route: {{ cluster: calculation_service, timeout: 3s }}
              - name: /api/v1/calculate-locate
                match: {{ path: /api/v1/calculate-locate }}
                direct_response: {{ status: 405, body: {{ inline_string: "method not allowed" }} }}
              - name: stall
                match: {{ path: /stall }}
                route: {{ cluster: stall_service, timeout: 0.3s }}
              - name: closed
                match: {{ path: /closed }}
                route: {{ cluster: closed_service, timeout: 1s }}
              - name: empty
                match: {{ path: /empty }}
                route: {{ cluster: empty_service, timeout: 1s }}
          http_filters:{metrics}{validation}
{BUFFER}
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
              suppress_envoy_headers: true
    # the listener's, after its filter chain
    per_connection_buffer_limit_bytes: 32768
  clusters:{clusters}
"#,
        listener = http_listener("main", LISTENER_PORT, "public_http"),
        virtual_host = virtual_host("gateway")
    )
}

struct Gateway {
    envoy: Envoy,
    upstream: CountingUpstream,
    _stall: tokio::task::JoinHandle<()>,
}

async fn gateway() -> Gateway {
    let upstream = CountingUpstream::start().await;
    let (stall, stall_task) = stalling_upstream().await;
    let ports = Upstreams {
        api: upstream.port,
        stall,
        closed: free_port(),
    };
    let envoy = Envoy::start(&gateway_yaml(&ports, "{}", "{}")).await;
    Gateway {
        envoy,
        upstream,
        _stall: stall_task,
    }
}

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts the SPEC §6 envelope with the request id of the response
    /// header; returns the `error` object.
    fn envelope(&self, status: u16, code: &str) -> Value {
        e2e::check_envelope(
            self.status,
            |h| self.header(h),
            &String::from_utf8_lossy(&self.body),
            status,
            code,
        )
        .unwrap_or_else(|e| panic!("{e}"))["error"]
            .clone()
    }

    fn detail_fields(&self) -> Vec<String> {
        self.json()["error"]["details"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|d| d["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// Writes `head` then each chunk of `body_parts` with `pause` in between,
/// and reads the whole response (the request asks to close the connection).
async fn raw_exchange(port: u16, head: &str, body_parts: &[Vec<u8>], pause: Duration) -> Reply {
    let head = head.to_owned();
    let parts = body_parts.to_vec();
    let raw = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(head.as_bytes()).unwrap();
        for part in &parts {
            if !pause.is_zero() {
                std::thread::sleep(pause);
            }
            // The gateway may answer (and close) before the whole body is sent.
            if stream.write_all(part).is_err() {
                break;
            }
        }
        let mut raw = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
                // A reset after a complete early answer still leaves it readable.
                Err(e) if !raw.is_empty() && e.kind() == std::io::ErrorKind::ConnectionReset => {
                    break
                }
                Err(e) => panic!(
                    "reading the response: {e} (got {:?})",
                    String::from_utf8_lossy(&raw)
                ),
            }
        }
        raw
    })
    .await
    .unwrap();
    parse_reply(&raw)
}

fn parse_reply(raw: &[u8]) -> Reply {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no header end in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if let Some(len) = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
    {
        body.truncate(len);
    }
    Reply {
        status,
        headers,
        body,
    }
}

/// One request with a fixed-length body (or none when `body` is `None`).
async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> Reply {
    let mut head = format!("{method} {path} HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if let Some(body) = body {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let parts = body.map(|b| vec![b.to_vec()]).unwrap_or_default();
    raw_exchange(port, &head, &parts, Duration::ZERO).await
}

async fn post_locate(port: u16, body: &[u8]) -> Reply {
    send(
        port,
        "POST",
        "/api/v1/calculate-locate",
        &[("content-type", "application/json")],
        Some(body),
    )
    .await
}

/// A chunked request body, `chunk` bytes per HTTP chunk.
fn chunked(body: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut parts: Vec<Vec<u8>> = body
        .chunks(chunk.max(1))
        .map(|c| {
            let mut p = format!("{:x}\r\n", c.len()).into_bytes();
            p.extend_from_slice(c);
            p.extend_from_slice(b"\r\n");
            p
        })
        .collect();
    parts.push(b"0\r\n\r\n".to_vec());
    parts
}

const CHUNKED_HEAD: &str = "POST /api/v1/calculate-locate HTTP/1.1\r\nhost: gateway\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";

const VALID: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;

fn body_with(field: &str, raw_value: &str) -> String {
    let mut members = vec![
        ("ticker", r#""AAPL""#.to_owned()),
        ("position_value", "100000".to_owned()),
        ("loan_days", "30".to_owned()),
        ("client_id", r#""test123""#.to_owned()),
    ];
    for m in &mut members {
        if m.0 == field {
            m.1 = raw_value.to_owned();
        }
    }
    let inner: Vec<String> = members
        .iter()
        .map(|(k, v)| format!(r#""{k}":{v}"#))
        .collect();
    format!("{{{}}}", inner.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_requests_reach_the_upstream_unchanged() {
    let gw = gateway().await;
    let port = gw.envoy.port;

    let r = post_locate(port, VALID.as_bytes()).await;
    assert_eq!(r.status, 200);
    let r = send(
        port,
        "POST",
        "/api/v1/calculate-locate",
        &[("content-type", "application/json; charset=utf-8")],
        Some(br#"{"ticker":"brk.b","position_value":"1234.50","loan_days":365,"client_id":"big_fund"}"#),
    )
    .await;
    assert_eq!(r.status, 200);
    let r = send(port, "GET", "/api/v1/rates/BRK.B", &[], None).await;
    assert_eq!(r.status, 200);

    assert_eq!(gw.upstream.count(), 3);
    let seen = gw.upstream.requests();
    assert_eq!(
        seen[0].body,
        VALID.as_bytes(),
        "the body is forwarded as sent"
    );
    assert_eq!(seen[2].path, "/api/v1/rates/BRK.B");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_spec_rule_is_enforced_one_by_one() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    let cases: Vec<(String, &str)> =
        vec![
        (body_with("ticker", r#""TOOLONG""#), "ticker"),
        (body_with("ticker", r#""AA1""#), "ticker"),
        (body_with("ticker", r#""BRK.BBB""#), "ticker"),
        (body_with("ticker", r#""""#), "ticker"),
        (body_with("ticker", "7"), "ticker"),
        (body_with("position_value", "0"), "position_value"),
        (body_with("position_value", "-5"), "position_value"),
        (body_with("position_value", "1000000000000.01"), "position_value"),
        (body_with("position_value", "10.123"), "position_value"),
        (body_with("position_value", r#""12,5""#), "position_value"),
        (body_with("loan_days", "0"), "loan_days"),
        (body_with("loan_days", "366"), "loan_days"),
        (body_with("loan_days", "1.5"), "loan_days"),
        (body_with("loan_days", r#""30""#), "loan_days"),
        (body_with("client_id", r#""a b""#), "client_id"),
        (body_with("client_id", &format!(r#""{}""#, "x".repeat(65))), "client_id"),
        (body_with("client_id", "null"), "client_id"),
        (
            r#"{"position_value":100000,"loan_days":30,"client_id":"test123"}"#.to_owned(),
            "ticker",
        ),
        (
            r#"{"ticker":"AAPL","position_value":1,"loan_days":30,"client_id":"c","extra":true}"#
                .to_owned(),
            "extra",
        ),
    ];
    for (body, field) in &cases {
        let r = post_locate(port, body.as_bytes()).await;
        r.envelope(400, "VALIDATION_ERROR");
        assert_eq!(r.detail_fields(), [*field], "{body}");
    }
    // Edges that are valid.
    for body in [
        body_with("position_value", "1000000000000"),
        body_with("position_value", "0.01"),
        body_with("loan_days", "1"),
        body_with("loan_days", "365"),
        body_with("client_id", &format!(r#""{}""#, "x".repeat(64))),
        body_with("ticker", r#""abcde.fg""#),
    ] {
        assert_eq!(
            post_locate(port, body.as_bytes()).await.status,
            200,
            "{body}"
        );
    }
    assert_eq!(
        gw.upstream.count(),
        6,
        "only the valid requests went upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_violations_together_are_listed_and_never_reach_the_upstream() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    let r = post_locate(
        port,
        br#"{"ticker":"123456","position_value":-1,"loan_days":999,"client_id":"no spaces","color":"red"}"#,
    )
    .await;
    let error = r.envelope(400, "VALIDATION_ERROR");
    let mut fields = r.detail_fields();
    fields.sort();
    assert_eq!(
        fields,
        [
            "client_id",
            "color",
            "loan_days",
            "position_value",
            "ticker"
        ]
    );
    assert!(error["details"][0]["issue"]
        .as_str()
        .is_some_and(|i| !i.is_empty()));

    let r = send(port, "GET", "/api/v1/rates/NOT_A_TICKER", &[], None).await;
    r.envelope(400, "VALIDATION_ERROR");
    assert_eq!(r.detail_fields(), ["ticker"]);

    assert_eq!(gw.upstream.count(), 0);

    // The operator log line names the fields and the request.
    let request_id = r.header("x-request-id").unwrap().to_owned();
    let log = gw.envoy.log();
    let line = log
        .lines()
        .find(|l| l.contains("msg=\"Validation error\"") && l.contains(&request_id))
        .unwrap_or_else(|| panic!("no Validation error line for {request_id} in:\n{log}"));
    assert!(line.contains("level=WARN"), "{line}");
    assert!(line.contains("fields=\"ticker\""), "{line}");
    assert!(
        line.contains("endpoint=\"/api/v1/rates/{ticker}\""),
        "{line}"
    );
    assert!(line.contains("client_id="), "{line}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_json_is_a_400_not_a_crash() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    let cases: Vec<(Vec<u8>, Vec<&str>)> = vec![
        (b"{\"ticker\":\"AAPL\",".to_vec(), vec!["body"]),
        (b"not json".to_vec(), vec!["body"]),
        (b"[1,2,3]".to_vec(), vec!["body"]),
        (b"{\"ticker\":\"AA\xffPL\",\"position_value\":1,\"loan_days\":1,\"client_id\":\"c\"}".to_vec(), vec!["body"]),
        (b"\xfe\xff{}".to_vec(), vec!["body"]),
        (
            br#"{"ticker":"AAPL","ticker":"MSFT","position_value":1,"loan_days":1,"client_id":"c"}"#.to_vec(),
            vec!["ticker"],
        ),
        (body_with("position_value", "1e400").into_bytes(), vec!["position_value"]),
        (body_with("loan_days", "1e400").into_bytes(), vec!["loan_days"]),
        (body_with("position_value", "-0").into_bytes(), vec!["position_value"]),
        (body_with("position_value", r#""NaN""#).into_bytes(), vec!["position_value"]),
        (body_with("position_value", "NaN").into_bytes(), vec!["body"]),
        (body_with("loan_days", r#""Infinity""#).into_bytes(), vec!["loan_days"]),
        (
            // Deep nesting inside a member is skipped without recursion and
            // reported as a wrong type, not a crash.
            format!(r#"{{"ticker":{}1{}}}"#, "[".repeat(3000), "]".repeat(3000)).into_bytes(),
            vec!["ticker", "position_value", "loan_days", "client_id"],
        ),
    ];
    for (body, fields) in &cases {
        let r = post_locate(port, body).await;
        r.envelope(400, "VALIDATION_ERROR");
        assert_eq!(
            r.detail_fields(),
            *fields,
            "{:?}",
            String::from_utf8_lossy(body)
        );
    }
    // The filter is still alive and passes a valid request.
    assert_eq!(post_locate(port, VALID.as_bytes()).await.status, 200);
    assert_eq!(gw.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_type_must_be_json() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    for ct in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonp"),
        None,
    ] {
        let headers: Vec<(&str, &str)> = ct.map(|c| ("content-type", c)).into_iter().collect();
        let r = send(
            port,
            "POST",
            "/api/v1/calculate-locate",
            &headers,
            Some(VALID.as_bytes()),
        )
        .await;
        r.envelope(415, "UNSUPPORTED_MEDIA_TYPE");
    }
    let r = send(
        port,
        "POST",
        "/api/v1/calculate-locate",
        &[("content-type", "Application/JSON;charset=UTF-8")],
        Some(VALID.as_bytes()),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(gw.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_8_kib_are_413_and_8_kib_exactly_is_accepted() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    // Valid JSON padded with whitespace to exactly 8192 bytes.
    let mut exact = VALID.as_bytes().to_vec();
    exact.resize(8192, b' ');
    assert_eq!(post_locate(port, &exact).await.status, 200);

    let mut over = exact.clone();
    over.push(b' ');
    // Declared length: rejected from the headers.
    post_locate(port, &over)
        .await
        .envelope(413, "PAYLOAD_TOO_LARGE");
    // Chunked: rejected once the accumulated size passes the limit.
    let r = raw_exchange(port, CHUNKED_HEAD, &chunked(&over, 1024), Duration::ZERO).await;
    r.envelope(413, "PAYLOAD_TOO_LARGE");
    // Far over the limit, chunked, still the filter's answer.
    let huge = vec![b' '; 30_000];
    let r = raw_exchange(port, CHUNKED_HEAD, &chunked(&huge, 4096), Duration::ZERO).await;
    r.envelope(413, "PAYLOAD_TOO_LARGE");

    assert_eq!(gw.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_in_many_small_slow_chunks_is_validated_whole() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    let r = raw_exchange(
        port,
        CHUNKED_HEAD,
        &chunked(VALID.as_bytes(), 3),
        Duration::from_millis(2),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", String::from_utf8_lossy(&r.body));
    assert_eq!(gw.upstream.count(), 1);
    assert_eq!(gw.upstream.requests()[0].body, VALID.as_bytes());

    let bad = body_with("loan_days", "0");
    let r = raw_exchange(
        port,
        CHUNKED_HEAD,
        &chunked(bad.as_bytes(), 2),
        Duration::from_millis(2),
    )
    .await;
    r.envelope(400, "VALIDATION_ERROR");
    assert_eq!(r.detail_fields(), ["loan_days"]);
    assert_eq!(gw.upstream.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_body_lists_every_required_field() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    let expected = ["ticker", "position_value", "loan_days", "client_id"];
    // No body at all (no content-length, no transfer-encoding).
    let r = send(
        port,
        "POST",
        "/api/v1/calculate-locate",
        &[("content-type", "application/json")],
        None,
    )
    .await;
    r.envelope(400, "VALIDATION_ERROR");
    assert_eq!(r.detail_fields(), expected);
    // content-length: 0.
    let r = post_locate(port, b"").await;
    r.envelope(400, "VALIDATION_ERROR");
    assert_eq!(r.detail_fields(), expected);
    // An empty chunked body.
    let r = raw_exchange(port, CHUNKED_HEAD, &chunked(b"", 1), Duration::ZERO).await;
    r.envelope(400, "VALIDATION_ERROR");
    assert_eq!(r.detail_fields(), expected);
    assert_eq!(gw.upstream.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_generated_replies_use_the_error_envelope() {
    let gw = gateway().await;
    let port = gw.envoy.port;

    for (path, status, code) in [
        // No route.
        ("/no/such/route", 404, "NOT_FOUND"),
        // A direct_response route (wrong method on a known path).
        ("/api/v1/calculate-locate", 405, "METHOD_NOT_ALLOWED"),
        // A cluster without any endpoint: no healthy upstream.
        ("/empty", 503, "SERVICE_UNAVAILABLE"),
        // A closed port: connection refused.
        ("/closed", 503, "SERVICE_UNAVAILABLE"),
        // An upstream that never answers: route timeout.
        ("/stall", 504, "BACKEND_TIMEOUT"),
    ] {
        let r = send(port, "GET", path, &[], None).await;
        r.envelope(status, code);
    }
    // Malformed HTTP from the client (invalid chunk size).
    let r = raw_exchange(
        port,
        CHUNKED_HEAD,
        &[b"zz\r\nxx\r\n0\r\n\r\n".to_vec()],
        Duration::ZERO,
    )
    .await;
    r.envelope(400, "VALIDATION_ERROR");

    // Upstream answers are never rewritten.
    let r = send(port, "GET", "/api/v1/rates/AAPL", &[], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["upstream"], "counting");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_is_one_json_object_per_request() {
    let gw = gateway().await;
    let port = gw.envoy.port;
    let r = send(
        port,
        "GET",
        "/api/v1/rates/AAPL",
        &[("x-client-id", "test123")],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    let request_id = r.header("x-request-id").unwrap().to_owned();
    // Envoy flushes access logs every 10 s by default.
    let mut entry = None;
    for _ in 0..150 {
        entry = gw
            .envoy
            .log()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|v| v["request_id"] == request_id.as_str());
        if entry.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let entry = entry.unwrap_or_else(|| panic!("no access log entry:\n{}", gw.envoy.log()));
    assert_eq!(entry["msg"], "Access");
    assert_eq!(entry["client_id"], "test123");
    assert_eq!(entry["route"], "/api/v1/rates/{ticker}");
    assert_eq!(entry["path"], "/api/v1/rates/AAPL");
    assert_eq!(entry["status"], 200);
    assert_eq!(entry["upstream_cluster"], "data_service");
    assert!(entry["duration_ms"].is_number(), "{entry}");
    assert!(entry["upstream_host"]
        .as_str()
        .is_some_and(|h| h.starts_with("127.0.0.1:")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_plugin_config_keeps_envoy_from_starting() {
    let ports = Upstreams {
        api: free_port(),
        stall: free_port(),
        closed: free_port(),
    };
    let err = Envoy::try_start(&gateway_yaml(&ports, r#"{"max_body_bytes":0}"#, "{}"))
        .await
        .err()
        .expect("envoy must refuse the config");
    assert!(err.contains("max_body_bytes"), "{err}");
    let err = Envoy::try_start(&gateway_yaml(&ports, r#"{"max_body_size":10}"#, "{}"))
        .await
        .err()
        .expect("envoy must refuse the config");
    assert!(err.contains("max_body_size"), "{err}");
}

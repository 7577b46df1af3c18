//! The shared layers, extractors and envelopes, over real HTTP against a
//! router served on port 0.

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use service_http::{serve_with, ApiJson, AppError, JsonBody, Layers, RequestId, Server};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Order {
    ticker: String,
    days: u32,
}

fn app() -> Router {
    Router::new()
        .route("/id", get(|rid: RequestId| async move { rid.0 }))
        .route(
            "/order",
            post(|ApiJson(order): ApiJson<Order>| async move { order.ticker }),
        )
        .route(
            "/raw",
            post(|JsonBody(bytes): JsonBody| async move { bytes.len().to_string() }),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(400)).await;
                "done"
            }),
        )
        .route(
            "/missing",
            get(|| async { Err::<(), _>(AppError::TickerNotFound("ZZZ".into())) }),
        )
        .route(
            "/internal",
            get(|| async { Err::<(), _>(AppError::Internal("secret detail".into())) }),
        )
        .route(
            "/own-json-error",
            get(|| async {
                (
                    StatusCode::NOT_FOUND,
                    [(header::CONTENT_TYPE, "application/json")],
                    r#"{"mine":true}"#,
                )
            }),
        )
        .route(
            "/with-header",
            get(|| async {
                let mut r = AppError::Forbidden("no".into()).into_response();
                r.headers_mut()
                    .insert("x-extra", HeaderValue::from_static("kept"));
                r
            }),
        )
}

async fn start(layers: Layers) -> Server {
    serve_with(app(), "127.0.0.1:0".parse().unwrap(), layers)
        .await
        .unwrap()
}

struct Answer {
    status: u16,
    request_id: Option<String>,
    content_type: Option<String>,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Answer {
    async fn of(r: reqwest::RequestBuilder) -> Self {
        let r = r.send().await.unwrap();
        let headers = r.headers().clone();
        let h = |n: &str| headers.get(n).map(|v| v.to_str().unwrap().to_owned());
        Self {
            status: r.status().as_u16(),
            request_id: h("x-request-id"),
            content_type: h("content-type"),
            headers: headers.clone(),
            text: r.text().await.unwrap(),
        }
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("{e}: {}", self.text))
    }

    /// The SPEC §6 envelope with this status, code and the echoed id.
    fn assert_envelope(&self, status: u16, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        let v = self.json();
        assert_eq!(v["status"], "error", "{}", self.text);
        assert_eq!(v["error"]["code"], code, "{}", self.text);
        let rid = self.request_id.as_deref().expect("x-request-id");
        assert_eq!(v["error"]["request_id"], rid, "{}", self.text);
        v
    }
}

fn is_uuid_v4(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.iter().map(|p| p.len()).collect::<Vec<_>>() == [8, 4, 4, 4, 12]
        && s.bytes().all(|b| b == b'-' || b.is_ascii_hexdigit())
        && parts[2].starts_with('4')
}

#[tokio::test]
async fn a_missing_request_id_is_generated_and_echoed() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    let a = Answer::of(http.get(server.url("/id"))).await;
    assert_eq!(a.status, 200);
    let rid = a.request_id.expect("x-request-id");
    assert!(is_uuid_v4(&rid), "{rid}");
    assert_eq!(a.text, rid, "the handler sees the id the response carries");
    let b = Answer::of(http.get(server.url("/id"))).await;
    assert_ne!(b.request_id.unwrap(), rid, "a fresh id per request");
    server.shutdown().await;
}

#[tokio::test]
async fn a_usable_incoming_request_id_is_kept_on_successes_and_errors() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    let id = "gw-7f3a:2026/11/23#1";
    let ok = Answer::of(http.get(server.url("/id")).header("x-request-id", id)).await;
    assert_eq!(ok.request_id.as_deref(), Some(id));
    assert_eq!(ok.text, id);
    let longest = "r".repeat(128);
    let ok = Answer::of(http.get(server.url("/id")).header("x-request-id", &longest)).await;
    assert_eq!(ok.request_id.as_deref(), Some(longest.as_str()));
    let err = Answer::of(http.get(server.url("/missing")).header("x-request-id", id)).await;
    let v = err.assert_envelope(404, "TICKER_NOT_FOUND");
    assert_eq!(v["error"]["request_id"], id);
    assert_eq!(
        err.text,
        format!(
            r#"{{"status":"error","error":{{"code":"TICKER_NOT_FOUND","message":"Ticker ZZZ not found","request_id":"{id}"}}}}"#
        )
    );
    server.shutdown().await;
}

#[tokio::test]
async fn an_unusable_request_id_is_replaced_by_a_generated_one() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    for bad in ["has space", &"r".repeat(129), ""] {
        let a = Answer::of(http.get(server.url("/id")).header("x-request-id", bad)).await;
        let rid = a.request_id.expect("x-request-id");
        assert!(is_uuid_v4(&rid), "{bad:?} -> {rid}");
        assert_eq!(a.text, rid);
        let e = Answer::of(http.get(server.url("/missing")).header("x-request-id", bad)).await;
        let rid = e.request_id.clone().unwrap();
        assert!(is_uuid_v4(&rid), "{bad:?} -> {rid}");
        e.assert_envelope(404, "TICKER_NOT_FOUND");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_in_the_envelope() {
    let server = start(Layers::default().body_limit(64)).await;
    let http = reqwest::Client::new();
    let small = r#"{"ticker":"AAPL","days":1}"#;
    let ok = Answer::of(
        http.post(server.url("/order"))
            .header("content-type", "application/json")
            .body(small),
    )
    .await;
    assert_eq!((ok.status, ok.text.as_str()), (200, "AAPL"));
    let big = format!(r#"{{"ticker":"{}","days":1}}"#, "A".repeat(100));
    let a = Answer::of(
        http.post(server.url("/order"))
            .header("content-type", "application/json")
            .header("x-request-id", "big-1")
            .body(big),
    )
    .await;
    a.assert_envelope(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        a.text,
        r#"{"status":"error","error":{"code":"PAYLOAD_TOO_LARGE","message":"Request body must be at most 64 bytes","request_id":"big-1"}}"#
    );
    server.shutdown().await;
}

#[tokio::test]
async fn the_default_body_limit_is_the_spec_8_kib() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    let post = |n: usize| {
        http.post(server.url("/raw"))
            .header("content-type", "application/json")
            .body(" ".repeat(n))
    };
    let at_limit = Answer::of(post(pricing::MAX_BODY_BYTES)).await;
    assert_eq!((at_limit.status, at_limit.text.as_str()), (200, "8192"));
    let over = Answer::of(post(pricing::MAX_BODY_BYTES + 1)).await;
    let v = over.assert_envelope(413, "PAYLOAD_TOO_LARGE");
    assert_eq!(
        v["error"]["message"],
        "Request body must be at most 8192 bytes"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_streamed_body_over_the_limit_is_413_in_the_envelope() {
    let server = start(Layers::default().body_limit(64)).await;
    let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
    let mut req = Vec::new();
    write!(
        req,
        "POST /raw HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         x-request-id: chunked-1\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    for _ in 0..4 {
        write!(req, "20\r\n{}\r\n", " ".repeat(32)).unwrap();
    }
    req.extend_from_slice(b"0\r\n\r\n");
    tcp.write_all(&req).await.unwrap();
    let mut raw = String::new();
    tcp.read_to_string(&mut raw).await.unwrap();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 413"), "{raw}");
    assert!(head.contains("x-request-id: chunked-1"), "{raw}");
    assert!(
        body.contains(r#""code":"PAYLOAD_TOO_LARGE","message":"Request body must be at most 64 bytes","request_id":"chunked-1""#),
        "{raw}"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn a_slow_handler_times_out_in_the_envelope() {
    let server = start(Layers::default().timeout(Duration::from_millis(100))).await;
    let http = reqwest::Client::new();
    let a = Answer::of(
        http.get(server.url("/slow"))
            .header("x-request-id", "slow-1"),
    )
    .await;
    let v = a.assert_envelope(504, "BACKEND_TIMEOUT");
    assert_eq!(v["error"]["request_id"], "slow-1");
    let fast = Answer::of(http.get(server.url("/id"))).await;
    assert_eq!(fast.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn a_handler_within_the_timeout_answers_normally() {
    let server = start(Layers::default().timeout(Duration::from_secs(5))).await;
    let a = Answer::of(reqwest::Client::new().get(server.url("/slow"))).await;
    assert_eq!((a.status, a.text.as_str()), (200, "done"));
    assert!(a.request_id.is_some());
    server.shutdown().await;
}

#[tokio::test]
async fn an_unknown_route_and_a_wrong_method_are_envelopes() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    let nf = Answer::of(http.get(server.url("/nope")).header("x-request-id", "nf-1")).await;
    let v = nf.assert_envelope(404, "NOT_FOUND");
    assert_eq!(v["error"]["message"], "No such resource");
    assert_eq!(v["error"]["request_id"], "nf-1");
    let wm = Answer::of(http.delete(server.url("/id"))).await;
    let v = wm.assert_envelope(405, "METHOD_NOT_ALLOWED");
    assert_eq!(v["error"]["message"], "Method not allowed on this path");
    assert!(
        wm.headers.contains_key("allow"),
        "the framework's Allow stays"
    );
    server.shutdown().await;
}

#[tokio::test]
async fn json_extractor_rejections_are_envelopes_naming_the_field() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    let post = |body: &str, ct: &str| {
        http.post(server.url("/order"))
            .header("content-type", ct.to_owned())
            .header("x-request-id", "json-1")
            .body(body.to_owned())
    };
    let fields = |a: &Answer| -> Vec<String> {
        a.json()["error"]["details"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["field"].as_str().unwrap().to_owned())
            .collect()
    };
    let malformed = Answer::of(post("{", "application/json")).await;
    malformed.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(fields(&malformed), ["body"]);
    let missing = Answer::of(post(r#"{"ticker":"A"}"#, "application/json")).await;
    missing.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(fields(&missing), ["days"]);
    let unknown = Answer::of(post(r#"{"ticker":"A","days":1,"x":1}"#, "application/json")).await;
    assert_eq!(fields(&unknown), ["x"]);
    let v = Answer::of(post("{}", "text/plain"))
        .await
        .assert_envelope(415, "UNSUPPORTED_MEDIA_TYPE");
    assert_eq!(v["error"]["request_id"], "json-1");
    let charset = Answer::of(post(
        r#"{"ticker":"A","days":1}"#,
        "application/json; charset=utf-8",
    ))
    .await;
    assert_eq!(charset.status, 200);
    server.shutdown().await;
}

#[tokio::test]
async fn internal_details_are_logged_never_sent() {
    let server = start(Layers::default()).await;
    let a = Answer::of(reqwest::Client::new().get(server.url("/internal"))).await;
    let v = a.assert_envelope(500, "INTERNAL_ERROR");
    assert_eq!(v["error"]["message"], "Internal server error");
    assert!(!a.text.contains("secret detail"), "{}", a.text);
    server.shutdown().await;
}

#[tokio::test]
async fn a_json_error_a_handler_built_itself_is_left_alone_but_gets_the_id() {
    let server = start(Layers::default()).await;
    let http = reqwest::Client::new();
    let a = Answer::of(
        http.get(server.url("/own-json-error"))
            .header("x-request-id", "own-1"),
    )
    .await;
    assert_eq!((a.status, a.text.as_str()), (404, r#"{"mine":true}"#));
    assert_eq!(a.request_id.as_deref(), Some("own-1"));
    let h = Answer::of(http.get(server.url("/with-header"))).await;
    h.assert_envelope(403, "FORBIDDEN");
    assert_eq!(h.headers["x-extra"], "kept");
    server.shutdown().await;
}

#[tokio::test]
async fn outside_the_layers_an_error_still_carries_a_matching_id() {
    let resp = AppError::NotFound("gone".into()).into_response();
    let rid = resp.headers()["x-request-id"].to_str().unwrap().to_owned();
    let body = axum::body::to_bytes(resp.into_body(), 4096).await.unwrap();
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v,
        json!({"status": "error", "error": {"code": "NOT_FOUND", "message": "gone", "request_id": rid}})
    );
}

/// A `MakeWriter` into a shared buffer.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn each_request_runs_in_a_span_with_method_route_and_request_id() {
    let out = Captured::default();
    let writer = out.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .finish();
    // The test runtime is single-threaded: the server task sees this
    // thread's default subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let router = Router::new().route(
        "/items/{id}",
        get(|| async {
            tracing::info!("inside the handler");
            "ok"
        }),
    );
    let server = serve_with(router, "127.0.0.1:0".parse().unwrap(), Layers::default())
        .await
        .unwrap();
    let a = Answer::of(
        reqwest::Client::new()
            .get(server.url("/items/42"))
            .header("x-request-id", "span-1"),
    )
    .await;
    assert_eq!(a.status, 200);
    server.shutdown().await;
    let logs = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
    let line = logs
        .lines()
        .find(|l| l.contains("inside the handler"))
        .unwrap_or_else(|| panic!("{logs}"));
    for field in ["method=GET", "route=\"/items/{id}\"", "request_id=span-1"] {
        assert!(line.contains(field), "{field} missing: {line}");
    }
}

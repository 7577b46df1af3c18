//! The data and calculation services over real HTTP on port 0, against a
//! real database: SQLite always, PostgreSQL too when `DATABASE_URL` is set
//! (each test gets a fresh database, created and dropped on 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use services::common::Server;
use services::{start_calculation_service, start_data_service, AppState, Config};
use sqlx::Connection;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

// ---------------------------------------------------------------------------
// Harness
// ---------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

/// A database for one test, removed on `cleanup`.
struct TestDb {
    url: String,
    engine: &'static str,
    pg_admin: Option<(String, String)>,
    sqlite_path: Option<std::path::PathBuf>,
}

impl TestDb {
    fn sqlite() -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "pricing-test-{}-{}-{n}",
            std::process::id(),
            rand_suffix()
        ));
        let path = dir.join("pricing.db");
        Self {
            url: format!("sqlite://{}", path.display()),
            engine: "sqlite",
            pg_admin: None,
            sqlite_path: Some(dir),
        }
    }

    async fn postgres(admin_url: &str) -> Self {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("pricing_test_{}_{}_{n}", std::process::id(), rand_suffix());
        let mut conn = sqlx::PgConnection::connect(admin_url)
            .await
            .expect("connect to DATABASE_URL");
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut conn)
            .await
            .expect("CREATE DATABASE");
        conn.close().await.ok();
        Self {
            url: replace_db_name(admin_url, &name),
            engine: "postgres",
            pg_admin: Some((admin_url.to_owned(), name)),
            sqlite_path: None,
        }
    }

    async fn cleanup(self) {
        if let Some((admin, name)) = &self.pg_admin {
            if let Ok(mut conn) = sqlx::PgConnection::connect(admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut conn)
                    .await;
            }
        }
        if let Some(dir) = &self.sqlite_path {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

fn rand_suffix() -> String {
    format!("{:08x}", rand_u32())
}

fn rand_u32() -> u32 {
    let t = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    t.subsec_nanos() ^ (COUNTER.load(Ordering::Relaxed) as u32).wrapping_mul(2_654_435_761)
}

fn replace_db_name(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(q) => format!("{base}/{name}?{q}"),
        None => format!("{base}/{name}"),
    }
}

/// The databases every test runs against.
async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite()];
    match std::env::var("DATABASE_URL") {
        Ok(url) if url.starts_with("postgres") => dbs.push(TestDb::postgres(&url).await),
        _ => eprintln!("DATABASE_URL unset: PostgreSQL path skipped (SQLite only)"),
    }
    dbs
}

/// Both services on port 0 over one database.
struct Stack {
    data: Server,
    calc: Server,
    calc_state: AppState,
    http: reqwest::Client,
}

fn config(url: &str) -> Config {
    let mut c = Config::new("127.0.0.1:0".parse().unwrap(), url);
    c.db_acquire_timeout = Duration::from_millis(1500);
    c
}

impl Stack {
    async fn start(url: &str) -> Self {
        let (calc, calc_state) = start_calculation_service(&config(url)).await.unwrap();
        let (data, _) = start_data_service(&config(url)).await.unwrap();
        Self {
            data,
            calc,
            calc_state,
            http: reqwest::Client::new(),
        }
    }

    async fn rate(&self, ticker: &str) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .get(self.data.url(&format!("/rates/{ticker}")))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap(), headers)
    }

    async fn calculate_raw(&self, body: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = self
            .http
            .post(self.calc.url("/calculate-locate"))
            .header("content-type", "application/json")
            .body(body.to_owned());
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Answer::from(req.send().await.unwrap()).await
    }

    async fn calculate(&self, body: Value) -> Answer {
        self.calculate_raw(&body.to_string(), &[]).await
    }

    async fn stop(self) {
        self.data.shutdown().await;
        self.calc.shutdown().await;
        self.calc_state.store.close().await;
    }
}

struct Answer {
    status: u16,
    text: String,
    json: Value,
    request_id: Option<String>,
    content_type: Option<String>,
}

impl Answer {
    async fn from(r: reqwest::Response) -> Self {
        let status = r.status().as_u16();
        let h = |n: &str| {
            r.headers()
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let request_id = h("x-request-id");
        let content_type = h("content-type");
        let text = r.text().await.unwrap();
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Self {
            status,
            text,
            json,
            request_id,
            content_type,
        }
    }

    fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }

    fn fields(&self) -> Vec<String> {
        self.json["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|e| e["field"].as_str().unwrap().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The envelope invariants of SPEC §6.
    fn assert_envelope(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.json["status"], "error", "{}", self.text);
        assert_eq!(self.code(), code, "{}", self.text);
        assert_eq!(self.content_type.as_deref(), Some("application/json"));
        let rid = self.json["error"]["request_id"].as_str().unwrap();
        assert!(!rid.is_empty());
        assert_eq!(self.request_id.as_deref(), Some(rid));
        assert!(self.json["error"]["message"].as_str().is_some());
    }
}

fn locate(ticker: &str, pv: Value, days: Value, client: &str) -> Value {
    json!({"ticker": ticker, "position_value": pv, "loan_days": days, "client_id": client})
}

// ---------------------------------------------------------------------------
// Data service
// ---------------------------------------------------------------------------

#[tokio::test]
async fn all_eight_seed_tickers_answer_with_their_exact_spec_rate() {
    let expected = [
        ("AAPL", "0.0039105", "EASY", "18.5", "2"),
        ("MSFT", "0.003045", "EASY", "16.0", "1"),
        ("NVDA", "0.006532", "EASY", "42.0", "3"),
        ("TSLA", "0.0279", "MEDIUM", "55.0", "4"),
        ("AMC", "0.4374", "HARD", "80.0", "7"),
        ("GME", "0.6475", "HARD", "85.0", "8"),
        ("BRK.B", "0.00224", "EASY", "12.0", "0"),
        ("KO", "0.0025", "EASY", "10.0", "0"),
    ];
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        for (ticker, rate, status, vol, event) in expected {
            let r = stack
                .http
                .get(stack.data.url(&format!("/rates/{}", ticker.to_lowercase())))
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{ticker} on {}", db.engine);
            assert!(r.headers().contains_key("x-request-id"));
            let text = r.text().await.unwrap();
            assert!(
                text.contains(&format!("\"current_rate\":{rate},")),
                "{ticker}: {text}"
            );
            assert!(
                text.contains(&format!("\"volatility_index\":{vol},")),
                "{text}"
            );
            assert!(
                text.contains(&format!("\"event_risk_factor\":{event},")),
                "{text}"
            );
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["status"], "success");
            assert_eq!(v["ticker"], ticker);
            assert_eq!(v["borrow_status"], status, "{ticker}");
            let updated = v["last_updated"].as_str().unwrap();
            assert!(store::time::parse_rfc3339(updated).is_some(), "{updated}");
        }
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn rates_reject_a_bad_ticker_and_report_an_unknown_one() {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        let (status, body, headers) = stack.rate("ZZZZ").await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "TICKER_NOT_FOUND");
        assert_eq!(
            headers.get("x-request-id").unwrap().to_str().unwrap(),
            body["error"]["request_id"]
        );
        let (status, body, _) = stack.rate("TOOLONG").await;
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "VALIDATION_ERROR");
        assert_eq!(body["error"]["details"][0]["field"], "ticker");
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_changed_stock_is_served_within_five_seconds() {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        let (_, before, _) = stack.rate("KO").await;
        assert_eq!(before["current_rate"], json!(0.0025));
        // Another process (gatewayctl) changes the row.
        let other = store::Store::connect(&db.url).await.unwrap();
        other
            .upsert_stock(
                "KO",
                &pricing::StockRisk {
                    base_rate: "0.0500".parse().unwrap(),
                    volatility_index: "0".parse().unwrap(),
                    event_risk_factor: "0".parse().unwrap(),
                    min_rate: "0.0010".parse().unwrap(),
                },
            )
            .await
            .unwrap();
        let changed_at = Instant::now();
        loop {
            let (_, now, _) = stack.rate("KO").await;
            if now["current_rate"] == json!(0.05) {
                assert_eq!(now["borrow_status"], "MEDIUM");
                break;
            }
            assert!(
                changed_at.elapsed() < Duration::from_millis(5500),
                "stale rate served for more than 5 s on {}",
                db.engine
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        other.close().await;
        stack.stop().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------
// Calculation service
// ---------------------------------------------------------------------------

#[tokio::test]
async fn spec_worked_examples_price_to_the_cent() {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        let a = stack
            .calculate(locate("AAPL", json!(100000), json!(30), "test123"))
            .await;
        assert_eq!(a.status, 200, "{}", a.text);
        assert_eq!(
            a.text,
            r#"{"status":"success","total_fee":58.75,"breakdown":{"borrow_cost":32.14,"markup":1.61,"transaction_fees":25.00},"borrow_rate_used":0.0039105}"#
        );
        assert!(a.request_id.is_some());
        let g = stack
            .calculate(locate("gme", json!("250000.00"), json!(7), "client123"))
            .await;
        assert_eq!(g.status, 200, "{}", g.text);
        assert!(g.text.contains(r#""total_fee":3462.28"#), "{}", g.text);
        assert!(g.text.contains(r#""borrow_cost":3104.45"#));
        assert!(g.text.contains(r#""markup":232.83"#));
        assert!(g.text.contains(r#""transaction_fees":125.00"#));
        assert!(g.text.contains(r#""borrow_rate_used":0.6475"#));
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn every_violated_field_is_listed_in_one_400() {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        let all_bad = stack
            .calculate(locate("TOOLONG", json!(0), json!(400), "a b"))
            .await;
        all_bad.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(
            all_bad.fields(),
            ["ticker", "position_value", "loan_days", "client_id"]
        );
        let cases: [(Value, &[&str]); 8] = [
            (
                locate("AAPL", json!(-5), json!(30), "test123"),
                &["position_value"],
            ),
            (
                locate("AAPL", json!(1.005), json!(30), "test123"),
                &["position_value"],
            ),
            (
                locate("AAPL", json!(1_000_000_000_001u64), json!(30), "test123"),
                &["position_value"],
            ),
            (
                locate("AAPL", json!(100), json!(0), "test123"),
                &["loan_days"],
            ),
            (
                locate("AAPL", json!(100), json!(366), "test123"),
                &["loan_days"],
            ),
            (
                locate("AAPL", json!(100), json!(1.5), "test123"),
                &["loan_days"],
            ),
            (
                locate("AAPL", json!(100), json!(30), &"x".repeat(65)),
                &["client_id"],
            ),
            (
                json!({}),
                &["ticker", "position_value", "loan_days", "client_id"],
            ),
        ];
        for (body, fields) in cases {
            let a = stack.calculate(body.clone()).await;
            a.assert_envelope(400, "VALIDATION_ERROR");
            assert_eq!(a.fields(), fields, "{body}");
        }
        let mut extra = locate("AAPL", json!(100), json!(30), "test123");
        extra["surprise"] = json!(1);
        let a = stack.calculate(extra).await;
        a.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(a.fields(), ["surprise"]);
        let a = stack.calculate_raw("{\"ticker\":", &[]).await;
        a.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(a.fields(), ["body"]);
        // Bounds that are valid.
        for (pv, days) in [
            (json!(0.01), json!(1)),
            (json!(1_000_000_000_000u64), json!(365)),
        ] {
            let a = stack.calculate(locate("KO", pv, days, "test123")).await;
            assert_eq!(a.status, 200, "{}", a.text);
        }
        assert_eq!(stack.calc_state.store.audit_count().await.unwrap(), 2);
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn transport_errors_are_envelopes_with_their_codes() {
    let db = TestDb::sqlite();
    let stack = Stack::start(&db.url).await;
    let body = locate("AAPL", json!(100000), json!(30), "test123").to_string();
    let r = stack
        .http
        .post(stack.calc.url("/calculate-locate"))
        .header("content-type", "text/plain")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    Answer::from(r)
        .await
        .assert_envelope(415, "UNSUPPORTED_MEDIA_TYPE");
    let big = format!(r#"{{"ticker":"{}"}}"#, "A".repeat(9000));
    stack
        .calculate_raw(&big, &[])
        .await
        .assert_envelope(413, "PAYLOAD_TOO_LARGE");
    let r = stack
        .http
        .get(stack.calc.url("/nowhere"))
        .send()
        .await
        .unwrap();
    Answer::from(r).await.assert_envelope(404, "NOT_FOUND");
    let r = stack
        .http
        .get(stack.calc.url("/calculate-locate"))
        .send()
        .await
        .unwrap();
    Answer::from(r)
        .await
        .assert_envelope(405, "METHOD_NOT_ALLOWED");
    let r = stack
        .http
        .delete(stack.data.url("/rates/AAPL"))
        .send()
        .await
        .unwrap();
    Answer::from(r)
        .await
        .assert_envelope(405, "METHOD_NOT_ALLOWED");
    stack.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_incoming_request_id_is_echoed_and_used_in_errors_and_audit() {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        let body = locate("AAPL", json!(100000), json!(30), "test123").to_string();
        let ok = stack
            .calculate_raw(
                &body,
                &[("x-request-id", "req-ok-1"), ("x-client-id", "test123")],
            )
            .await;
        assert_eq!(ok.status, 200);
        assert_eq!(ok.request_id.as_deref(), Some("req-ok-1"));
        let rows = stack
            .calc_state
            .store
            .audit_by_request_id("req-ok-1")
            .await
            .unwrap();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.caller.as_deref(), Some("test123"));
        assert_eq!(row.client_id, "test123");
        assert_eq!(row.ticker, "AAPL");
        assert_eq!(row.position_value, "100000");
        assert_eq!(row.loan_days, 30);
        assert_eq!(row.borrow_rate_used, "0.0039105");
        assert_eq!(row.total_fee, "58.75");
        assert_eq!(row.transaction_fees, "25.00");

        let bad = stack
            .calculate_raw("{}", &[("x-request-id", "req-bad-2")])
            .await;
        bad.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(bad.json["error"]["request_id"], "req-bad-2");
        let generated = stack.calculate_raw("{}", &[]).await;
        generated.assert_envelope(400, "VALIDATION_ERROR");
        assert_eq!(generated.request_id.as_deref().map(str::len), Some(36));
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unknown_ticker_and_unknown_client_are_404_with_their_codes() {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        stack
            .calculate(locate("ZZZZ", json!(100), json!(30), "test123"))
            .await
            .assert_envelope(404, "TICKER_NOT_FOUND");
        stack
            .calculate(locate("AAPL", json!(100), json!(30), "nobody"))
            .await
            .assert_envelope(404, "CLIENT_NOT_FOUND");
        assert_eq!(stack.calc_state.store.audit_count().await.unwrap(), 0);
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn pricing_another_client_is_forbidden_unless_admin() {
    let db = TestDb::sqlite();
    let stack = Stack::start(&db.url).await;
    let body = locate("AAPL", json!(100000), json!(30), "client123").to_string();
    stack
        .calculate_raw(
            &body,
            &[("x-client-id", "test123"), ("x-client-scopes", "")],
        )
        .await
        .assert_envelope(403, "FORBIDDEN");
    let admin = stack
        .calculate_raw(
            &body,
            &[
                ("x-client-id", "test123"),
                ("x-client-scopes", "read admin"),
            ],
        )
        .await;
    assert_eq!(admin.status, 200, "{}", admin.text);
    let own = stack
        .calculate_raw(&body, &[("x-client-id", "client123")])
        .await;
    assert_eq!(own.status, 200);
    let internal = stack.calculate_raw(&body, &[]).await;
    assert_eq!(internal.status, 200);
    assert_eq!(stack.calc_state.store.audit_count().await.unwrap(), 3);
    stack.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn two_hundred_concurrent_calculations_write_exactly_two_hundred_audit_rows() {
    for db in databases().await {
        let stack = Arc::new(Stack::start(&db.url).await);
        let mut tasks = Vec::new();
        for i in 0..200u32 {
            let stack = stack.clone();
            tasks.push(tokio::spawn(async move {
                let body = locate("GME", json!(1000 + i), json!(1 + i % 365), "client123");
                let rid = format!("concurrent-{i}");
                stack
                    .calculate_raw(&body.to_string(), &[("x-request-id", &rid)])
                    .await
                    .status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
        let store = &stack.calc_state.store;
        assert_eq!(store.audit_count().await.unwrap(), 200, "{}", db.engine);
        assert_eq!(
            store
                .audit_by_request_id("concurrent-199")
                .await
                .unwrap()
                .len(),
            1
        );
        let stack = Arc::into_inner(stack).unwrap();
        stack.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn health_and_metrics_answer() {
    let db = TestDb::sqlite();
    let stack = Stack::start(&db.url).await;
    for server in [&stack.data, &stack.calc] {
        let r = stack.http.get(server.url("/health")).send().await.unwrap();
        assert_eq!(r.status(), 200);
        let v: Value = r.json().await.unwrap();
        assert_eq!(
            v,
            json!({"status": "healthy", "version": env!("CARGO_PKG_VERSION")})
        );
    }
    stack
        .calculate(locate("AAPL", json!(100), json!(30), "test123"))
        .await;
    let text = stack
        .http
        .get(stack.calc.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(r#"pricing_backend_requests_total{endpoint="/calculate-locate",method="POST",service="calculation_service",status_code="200"} 1"#),
        "{text}"
    );
    assert!(text.contains(
        r#"pricing_backend_audit_writes_total{result="success",service="calculation_service"} 1"#
    ));
    assert!(
        text.contains(r#"pricing_backend_request_duration_seconds_count{endpoint="/calculate-locate",service="calculation_service"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "pricing_backend_build_info{{service=\"calculation_service\",version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )),
        "{text}"
    );
    assert!(text.contains("\nprocess_resident_memory_bytes "), "{text}");
    stack.stop().await;
    db.cleanup().await;
}

// ---------------------------------------------------------------------------
// Database outage
// ---------------------------------------------------------------------------

/// A TCP relay to PostgreSQL that the test can cut (dropping every open
/// connection and refusing new ones) and restore.
struct CuttableProxy {
    addr: SocketAddr,
    up: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl CuttableProxy {
    async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (up2, conns2) = (up.clone(), conns.clone());
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                if !up2.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let task = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns2.lock().unwrap().push(task);
            }
        });
        Self {
            addr,
            up,
            conns,
            accept,
        }
    }

    fn cut(&self) {
        self.up.store(false, Ordering::SeqCst);
        for t in self.conns.lock().unwrap().drain(..) {
            t.abort();
        }
    }

    fn restore(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

impl Drop for CuttableProxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

async fn wait_for_status(http: &reqwest::Client, url: &str, want: u16) -> Answer {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let a = Answer::from(http.get(url).send().await.unwrap()).await;
        if a.status == want || Instant::now() > deadline {
            return a;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn database_down_mid_test_is_503_in_the_envelope_and_recovers() {
    let Ok(admin) = std::env::var("DATABASE_URL") else {
        eprintln!("DATABASE_URL unset: database outage test skipped (needs PostgreSQL)");
        return;
    };
    let db = TestDb::postgres(&admin).await;
    // Point the services at the database through the relay.
    let host_port = db
        .url
        .split("://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .and_then(|auth| auth.rsplit('@').next())
        .unwrap()
        .to_owned();
    let target: SocketAddr = tokio::net::lookup_host(if host_port.contains(':') {
        host_port.clone()
    } else {
        format!("{host_port}:5432")
    })
    .await
    .unwrap()
    .next()
    .unwrap();
    let proxy = CuttableProxy::start(target).await;
    let via_proxy = db.url.replacen(&host_port, &proxy.addr.to_string(), 1);
    let stack = Stack::start(&via_proxy).await;
    let body = locate("AAPL", json!(100000), json!(30), "test123").to_string();
    assert_eq!(stack.calculate_raw(&body, &[]).await.status, 200);

    proxy.cut();
    let health = wait_for_status(&stack.http, &stack.calc.url("/health"), 503).await;
    health.assert_envelope(503, "SERVICE_UNAVAILABLE");
    let calc = stack
        .calculate_raw(&body, &[("x-request-id", "during-outage")])
        .await;
    calc.assert_envelope(503, "SERVICE_UNAVAILABLE");
    let data = wait_for_status(&stack.http, &stack.data.url("/health"), 503).await;
    data.assert_envelope(503, "SERVICE_UNAVAILABLE");

    proxy.restore();
    let health = wait_for_status(&stack.http, &stack.calc.url("/health"), 200).await;
    assert_eq!(health.status, 200, "{}", health.text);
    let calc = stack.calculate_raw(&body, &[]).await;
    assert_eq!(calc.status, 200, "{}", calc.text);
    // The failed calculation left no audit row; the two successes did.
    let store = &stack.calc_state.store;
    assert_eq!(store.audit_count().await.unwrap(), 2);
    assert!(store
        .audit_by_request_id("during-outage")
        .await
        .unwrap()
        .is_empty());
    stack.stop().await;
    drop(proxy);
    db.cleanup().await;
}

// ---------------------------------------------------------------------------
// Shared plumbing (services::common), as the other backends use it
// ---------------------------------------------------------------------------

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct TokenRequest {
    client_id: String,
    ttl: u32,
}

fn plumbing_app() -> axum::Router {
    use axum::routing::{get, post};
    use services::common::{ApiJson, AppError, RequestId};
    axum::Router::new()
        .route(
            "/echo",
            post(
                |rid: RequestId, ApiJson(req): ApiJson<TokenRequest>| async move {
                    axum::Json(json!({"client_id": req.client_id, "request_id": rid.0}))
                },
            ),
        )
        .route(
            "/slow",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(700)).await;
                "done"
            }),
        )
        .route(
            "/fail",
            get(|| async { Err::<(), _>(AppError::Internal("secret detail".into())) }),
        )
}

#[tokio::test]
async fn api_json_rejections_are_envelopes_naming_the_field() {
    let server = services::common::serve(plumbing_app(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(server.addr.port(), 0);
    let http = reqwest::Client::new();
    let post = |body: &str, ct: &str| {
        http.post(server.url("/echo"))
            .header("content-type", ct.to_owned())
            .header("x-request-id", "plumbing-1")
            .body(body.to_owned())
            .send()
    };
    let ok = Answer::from(
        post(r#"{"client_id":"c1","ttl":5}"#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(ok.status, 200);
    assert_eq!(
        ok.json,
        json!({"client_id": "c1", "request_id": "plumbing-1"})
    );
    assert_eq!(ok.request_id.as_deref(), Some("plumbing-1"));

    let malformed = Answer::from(post("{", "application/json").await.unwrap()).await;
    malformed.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(malformed.fields(), ["body"]);
    assert_eq!(malformed.json["error"]["request_id"], "plumbing-1");
    let missing = Answer::from(
        post(r#"{"client_id":"c1"}"#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    missing.assert_envelope(400, "VALIDATION_ERROR");
    assert_eq!(missing.fields(), ["ttl"]);
    let unknown = Answer::from(
        post(r#"{"client_id":"c","ttl":1,"x":1}"#, "application/json")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(unknown.fields(), ["x"]);
    Answer::from(post("{}", "text/plain").await.unwrap())
        .await
        .assert_envelope(415, "UNSUPPORTED_MEDIA_TYPE");
    let charset = Answer::from(
        post(
            r#"{"client_id":"c1","ttl":5}"#,
            "application/json; charset=utf-8",
        )
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(charset.status, 200);
    let big = format!(r#"{{"client_id":"{}","ttl":1}}"#, "a".repeat(10_000));
    Answer::from(post(&big, "application/json").await.unwrap())
        .await
        .assert_envelope(413, "PAYLOAD_TOO_LARGE");

    let fail = Answer::from(http.get(server.url("/fail")).send().await.unwrap()).await;
    fail.assert_envelope(500, "INTERNAL_ERROR");
    assert!(!fail.text.contains("secret detail"), "{}", fail.text);
    server.shutdown().await;
}

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_then_refuses_connections() {
    let server = services::common::serve(plumbing_app(), "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let url = server.url("/slow");
    let addr = server.addr;
    let in_flight =
        tokio::spawn(async move { reqwest::get(url).await.unwrap().text().await.unwrap() });
    tokio::time::sleep(Duration::from_millis(200)).await;
    server.shutdown().await;
    assert_eq!(in_flight.await.unwrap(), "done");
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn accepted_connections_have_tcp_nodelay_so_no_response_waits_for_a_delayed_ack() {
    use axum::serve::Listener as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let plain = TcpStream::connect(addr).await.unwrap();
    let (untapped, _) = listener.accept().await.unwrap();
    assert!(!untapped.nodelay().unwrap(), "the OS default is Nagle on");
    drop((plain, untapped));
    let mut listener = services::common::no_delay(listener);
    let _client = TcpStream::connect(addr).await.unwrap();
    let (accepted, _) = listener.accept().await;
    assert!(accepted.nodelay().unwrap());
}

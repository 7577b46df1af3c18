//! The data and calculation services over real HTTP on port 0, against a
//! real database: SQLite always, PostgreSQL too when `DATABASE_URL` is set
//! (each test gets a fresh database, created and dropped on 127.0.0.1).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::{json, Value};
use services::common::Server;
use services::{start_calculation_service, start_data_service, AppState, Config};
use sqlx::Connection;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

mod calculation;
mod data;
mod health;
mod plumbing;

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

/// Runs `test` against a fresh [`Stack`] on each of [`databases`] (and
/// that database), then
/// stops the stack and drops the database.
async fn on_every_database(test: impl AsyncFn(&Stack, &TestDb)) {
    for db in databases().await {
        let stack = Stack::start(&db.url).await;
        test(&stack, &db).await;
        stack.stop().await;
        db.cleanup().await;
    }
}

/// [`on_every_database`] on SQLite only.
async fn on_sqlite(test: impl AsyncFn(&Stack)) {
    let db = TestDb::sqlite();
    let stack = Stack::start(&db.url).await;
    test(&stack).await;
    stack.stop().await;
    db.cleanup().await;
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

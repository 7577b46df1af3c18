//! The rate-limit service spoken to over real gRPC, as Envoy does.

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::rate_limit::Unit;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use ratelimit::{Config, FailureMode, Running};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::Channel;

mod limits;
mod limits_file;
mod redis_counters;
mod service;

fn unique(tag: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!(
        "{tag}-{}-{nanos}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn config() -> Config {
    Config {
        grpc_addr: "127.0.0.1:0".parse().unwrap(),
        http_addr: "127.0.0.1:0".parse().unwrap(),
        key_prefix: unique("test"),
        reload_interval: Duration::from_millis(50),
        ..Config::default()
    }
}

async fn client(r: &Running) -> RateLimitServiceClient<Channel> {
    RateLimitServiceClient::connect(format!("http://{}", r.grpc_addr))
        .await
        .unwrap()
}

fn descriptor(entries: &[(&str, &str)]) -> RateLimitDescriptor {
    RateLimitDescriptor {
        entries: entries
            .iter()
            .map(|(k, v)| Entry {
                key: (*k).to_owned(),
                value: (*v).to_owned(),
            })
            .collect(),
        ..Default::default()
    }
}

async fn ask(
    c: &mut RateLimitServiceClient<Channel>,
    entries: &[(&str, &str)],
) -> RateLimitResponse {
    c.should_rate_limit(RateLimitRequest {
        domain: "borrow_rate_gateway".to_owned(),
        descriptors: vec![descriptor(entries)],
        hits_addend: 1,
    })
    .await
    .unwrap()
    .into_inner()
}

fn header<'a>(r: &'a RateLimitResponse, name: &str) -> Option<&'a str> {
    r.response_headers_to_add
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_str())
}

fn is_ok(r: &RateLimitResponse) -> bool {
    r.overall_code == Code::Ok as i32
}

fn is_over(r: &RateLimitResponse) -> bool {
    r.overall_code == Code::OverLimit as i32
}

/// A limits file in envoyproxy/ratelimit's format with these descriptors.
fn new_format(descriptors: &str) -> String {
    format!("domain: borrow_rate_gateway\ndescriptors:\n{descriptors}")
}

/// `remote_address` under `unauthenticated: true`, 2 per minute.
const ADDRESS_2: &str = concat!(
    "  - key: unauthenticated\n",
    "    value: \"true\"\n",
    "    descriptors:\n",
    "      - key: remote_address\n",
    "        rate_limit: { unit: minute, requests_per_unit: 2 }\n",
);

fn limits_file(body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("rls-limits"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("limits.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

async fn ask_all(
    c: &mut RateLimitServiceClient<Channel>,
    descriptors: &[&[(&str, &str)]],
) -> RateLimitResponse {
    c.should_rate_limit(RateLimitRequest {
        domain: "borrow_rate_gateway".to_owned(),
        descriptors: descriptors.iter().map(|d| descriptor(d)).collect(),
        hits_addend: 1,
    })
    .await
    .unwrap()
    .into_inner()
}

/// The service on `config`, and a client of it.
async fn start(config: Config) -> (Running, RateLimitServiceClient<Channel>) {
    let rls = ratelimit::spawn(config).await.unwrap();
    let c = client(&rls).await;
    (rls, c)
}

async fn with_file(body: &str) -> (Running, RateLimitServiceClient<Channel>) {
    with_limits_file(limits_file(&new_format(body))).await
}

/// The service reading its limits from `file`, and a client of it.
async fn with_limits_file(file: PathBuf) -> (Running, RateLimitServiceClient<Channel>) {
    start(Config {
        limits_file: Some(file),
        ..config()
    })
    .await
}

/// The descriptor of an unauthenticated request from `ip`.
fn address(ip: &str) -> [(&'static str, &str); 2] {
    [("unauthenticated", "true"), ("remote_address", ip)]
}

/// Waits (5 s at most) until `count` is above zero: a reload, a reload
/// error.
async fn wait_until_counted(what: &str, count: impl Fn() -> u64) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() == 0 {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `RateLimit: "<policy>";r=<remaining>;t=<reset>` split into its parts.
fn ietf_ratelimit(r: &RateLimitResponse) -> (String, u64, u64) {
    let v = header(r, "ratelimit").expect("RateLimit header");
    let mut parts = v.split(';');
    let policy = parts.next().unwrap().to_owned();
    let mut remaining = None;
    let mut reset = None;
    for p in parts {
        match p.split_once('=') {
            Some(("r", n)) => remaining = Some(n.parse().unwrap()),
            Some(("t", n)) => reset = Some(n.parse().unwrap()),
            _ => panic!("unexpected parameter {p:?} in {v:?}"),
        }
    }
    (policy, remaining.unwrap(), reset.unwrap())
}

/// `GET path` on the service's HTTP side: the status and the JSON body.
async fn get_json(rls: &Running, path: &str) -> (u16, serde_json::Value) {
    let r = reqwest::get(format!("http://{}{path}", rls.http_addr))
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn health(rls: &Running) -> (u16, serde_json::Value) {
    get_json(rls, "/health").await
}

async fn metrics_text(rls: &Running) -> String {
    reqwest::get(format!("http://{}/metrics", rls.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

const ROUTE_LOCATE_2: &str = concat!(
    "  - key: route\n",
    "    value: calculate-locate\n",
    "    descriptors:\n",
    "      - key: client_id\n",
    "        rate_limit: { unit: minute, requests_per_unit: 2 }\n",
);

/// A Redis URL that nothing listens on.
fn dead_redis() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("redis://127.0.0.1:{port}")
}

fn redis_url() -> Option<String> {
    match std::env::var("REDIS_URL") {
        Ok(u) if !u.is_empty() => Some(u),
        _ => {
            println!("REDIS_URL is not set: skipping the Redis-backed test");
            None
        }
    }
}

/// A TCP forwarder to Redis that can be cut and restored on the same port.
struct RedisProxy {
    port: u16,
    target: String,
    tasks: std::sync::Arc<std::sync::Mutex<Vec<tokio::task::JoinHandle<()>>>>,
}

impl RedisProxy {
    async fn start(target: &str, port: u16) -> RedisProxy {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let port = listener.local_addr().unwrap().port();
        let tasks = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let conns = std::sync::Arc::clone(&tasks);
        let to = target.to_owned();
        let accept = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let to = to.clone();
                let conn = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                conns.lock().unwrap().push(conn);
            }
        });
        tasks.lock().unwrap().push(accept);
        RedisProxy {
            port,
            target: target.to_owned(),
            tasks,
        }
    }

    /// Closes the listener and every forwarded connection.
    fn cut(&self) {
        for t in self.tasks.lock().unwrap().drain(..) {
            t.abort();
        }
    }
}

/// Redis as operators run it: `rediss://` with a CA file, an ACL user,
/// refusals that say why, and a Redis lost mid-window. Each test starts its
/// own `redis-server` (TLS port only, a throwaway CA made here, nothing
/// kept on disk) and skips with a printed reason when there is none.
mod redis_tls;

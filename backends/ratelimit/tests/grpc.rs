//! The rate-limit service spoken to over real gRPC, as Envoy does.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::extensions::common::ratelimit::v3::rate_limit_descriptor::Entry;
use envoy_types::pb::envoy::extensions::common::ratelimit::v3::RateLimitDescriptor;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_response::Code;
use envoy_types::pb::envoy::service::ratelimit::v3::rate_limit_service_client::RateLimitServiceClient;
use envoy_types::pb::envoy::service::ratelimit::v3::{RateLimitRequest, RateLimitResponse};
use ratelimit::{Config, FailureMode, Running};
use tonic::transport::Channel;

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
        domain: "gateway".to_owned(),
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

#[tokio::test]
async fn a_key_with_limit_n_gets_n_ok_answers_then_over_limit() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let id = unique("client");
    for expected_remaining in (0..3).rev() {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "3")]).await;
        assert!(is_ok(&r), "{r:?}");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
        assert_eq!(
            header(&r, "x-ratelimit-remaining"),
            Some(expected_remaining.to_string().as_str())
        );
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        assert!(header(&r, "retry-after").is_none());
        let st = &r.statuses[0];
        assert_eq!(st.current_limit.as_ref().unwrap().requests_per_unit, 3);
        assert_eq!(st.limit_remaining, expected_remaining);
        assert!(st.duration_until_reset.as_ref().unwrap().seconds >= 1);
    }
    let r = ask(&mut c, &[("client_id", &id), ("client_limit", "3")]).await;
    assert!(is_over(&r), "{r:?}");
    assert_eq!(r.statuses[0].code, Code::OverLimit as i32);
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    let retry: u64 = header(&r, "retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(
        header(&r, "x-ratelimit-reset"),
        header(&r, "retry-after"),
        "Retry-After and X-RateLimit-Reset agree"
    );
    assert_eq!(rls.shared.metrics().decisions("ok"), 3);
    assert_eq!(rls.shared.metrics().decisions("over_limit"), 1);
}

#[tokio::test]
async fn clients_are_counted_separately() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let (a, b) = (unique("a"), unique("b"));
    assert!(is_ok(
        &ask(&mut c, &[("client_id", &a), ("client_limit", "1")]).await
    ));
    assert!(is_over(
        &ask(&mut c, &[("client_id", &a), ("client_limit", "1")]).await
    ));
    assert!(is_ok(
        &ask(&mut c, &[("client_id", &b), ("client_limit", "1")]).await
    ));
}

#[tokio::test]
async fn the_default_limit_applies_when_the_key_has_none_and_its_own_limit_overrides_it() {
    let rls = ratelimit::spawn(Config {
        default_per_minute: 2,
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let plain = unique("plain");
    for _ in 0..2 {
        let r = ask(&mut c, &[("client_id", &plain)]).await;
        assert!(is_ok(&r));
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    }
    assert!(is_over(&ask(&mut c, &[("client_id", &plain)]).await));

    let generous = unique("generous");
    for _ in 0..4 {
        let r = ask(&mut c, &[("client_id", &generous), ("client_limit", "4")]).await;
        assert!(is_ok(&r), "own limit 4 beats default 2");
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("4"));
    }
    assert!(is_over(
        &ask(&mut c, &[("client_id", &generous), ("client_limit", "4")]).await
    ));
}

fn limits_file(body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(unique("rls-limits"));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("limits.yaml");
    std::fs::write(&p, body).unwrap();
    p
}

#[tokio::test]
async fn unauthenticated_traffic_is_limited_per_source_address() {
    let file = limits_file("unauthenticated:\n  per_minute: 2\n");
    let rls = ratelimit::spawn(Config {
        limits_file: Some(file),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let a = [("unauthenticated", "true"), ("remote_address", "192.0.2.1")];
    assert!(is_ok(&ask(&mut c, &a).await));
    assert!(is_ok(&ask(&mut c, &a).await));
    let r = ask(&mut c, &a).await;
    assert!(is_over(&r));
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("2"));
    assert!(header(&r, "retry-after").is_some());
    let b = [("unauthenticated", "true"), ("remote_address", "192.0.2.2")];
    assert!(
        is_ok(&ask(&mut c, &b).await),
        "another address has its own budget"
    );
}

#[tokio::test]
async fn a_changed_limits_file_applies_without_restart() {
    let file = limits_file("unauthenticated:\n  per_minute: 1\n");
    let rls = ratelimit::spawn(Config {
        limits_file: Some(file.clone()),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let addr = [("remote_address", "198.51.100.7")];
    assert!(is_ok(&ask(&mut c, &addr).await));
    assert!(is_over(&ask(&mut c, &addr).await));

    // Rewrite with a later modification time and a higher limit.
    tokio::time::sleep(Duration::from_millis(20)).await;
    std::fs::write(&file, "unauthenticated:\n  per_minute: 3\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rls.shared.metrics().reloads.get() == 0 {
        assert!(Instant::now() < deadline, "limits file was not reloaded");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = ask(&mut c, &addr).await;
    assert!(is_ok(&r), "{r:?}");
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));

    // A broken file is rejected and the limits in force stay.
    std::fs::write(&file, "unauthenticated:\n  per_minute: -1\n").unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while rls.shared.metrics().reload_errors.get() == 0 {
        assert!(Instant::now() < deadline, "broken file was not noticed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let r = ask(&mut c, &addr).await;
    assert_eq!(header(&r, "x-ratelimit-limit"), Some("3"));
}

#[tokio::test]
async fn a_bad_limits_file_stops_the_service_from_starting() {
    let file = limits_file("unauthenticated:\n  per_minute: 0\n");
    let err = ratelimit::build(Config {
        limits_file: Some(file),
        ..config()
    })
    .await
    .err()
    .unwrap();
    assert!(err.contains("unauthenticated.per_minute"), "{err}");
}

#[tokio::test]
async fn a_descriptor_matching_no_rule_is_allowed_without_headers() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let r = ask(&mut c, &[("path", "/health")]).await;
    assert!(is_ok(&r));
    assert!(header(&r, "x-ratelimit-limit").is_none());
    assert_eq!(rls.shared.metrics().unmatched.get(), 1);
}

#[tokio::test]
async fn an_empty_domain_is_an_invalid_argument() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let err = c
        .should_rate_limit(RateLimitRequest {
            domain: String::new(),
            descriptors: vec![descriptor(&[("client_id", "x")])],
            hits_addend: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn health_and_metrics_answer_over_http() {
    let rls = ratelimit::spawn(config()).await.unwrap();
    let mut c = client(&rls).await;
    let id = unique("m");
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["status"], "healthy");
    assert_eq!(body["version"], ratelimit::VERSION);
    let metrics = reqwest::get(format!("http://{}/metrics", rls.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("ratelimit_decisions_total{result=\"ok\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ratelimit_decisions_total{result=\"over_limit\"} 1"));
    assert!(metrics.contains("ratelimit_storage_info{storage=\"memory\"} 1"));
    assert!(
        metrics.contains(&format!(
            "rate_limit_client_utilization_ratio{{client_id=\"{id}\"}} 1\n"
        )),
        "{metrics}"
    );
    let missing = reqwest::get(format!("http://{}/nope", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    let body: serde_json::Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "NOT_FOUND");
}

/// A Redis URL that nothing listens on.
fn dead_redis() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    drop(l);
    format!("redis://127.0.0.1:{port}")
}

#[tokio::test]
async fn redis_down_allows_requests_by_default_and_health_reports_503() {
    let rls = ratelimit::spawn(Config {
        redis_url: Some(dead_redis()),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("down");
    for _ in 0..3 {
        let r = ask(&mut c, &[("client_id", &id), ("client_limit", "1")]).await;
        assert!(is_ok(&r), "fail-open: {r:?}");
    }
    assert_eq!(rls.shared.metrics().decisions("failure_allowed"), 3);
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body["error"]["code"], "SERVICE_UNAVAILABLE");
}

#[tokio::test]
async fn redis_down_denies_requests_when_configured_to() {
    let rls = ratelimit::spawn(Config {
        redis_url: Some(dead_redis()),
        failure_mode: FailureMode::Deny,
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let r = ask(&mut c, &[("client_id", &unique("deny"))]).await;
    assert!(is_over(&r));
    assert_eq!(header(&r, "retry-after"), Some("1"));
    assert_eq!(rls.shared.metrics().decisions("failure_denied"), 1);
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

#[tokio::test]
async fn two_service_replicas_sharing_redis_enforce_one_limit() {
    let Some(url) = redis_url() else { return };
    let shared_cfg = Config {
        redis_url: Some(url),
        ..config()
    };
    let one = ratelimit::spawn(shared_cfg.clone()).await.unwrap();
    let two = ratelimit::spawn(shared_cfg).await.unwrap();
    let (mut c1, mut c2) = (client(&one).await, client(&two).await);
    let id = unique("shared");
    let d = [("client_id", id.as_str()), ("client_limit", "4")];
    let mut ok = 0;
    for i in 0..8 {
        let c = if i % 2 == 0 { &mut c1 } else { &mut c2 };
        let r = ask(c, &d).await;
        assert_eq!(header(&r, "x-ratelimit-limit"), Some("4"));
        let reset: u64 = header(&r, "x-ratelimit-reset").unwrap().parse().unwrap();
        assert!((1..=60).contains(&reset), "{reset}");
        if is_ok(&r) {
            ok += 1;
            assert_eq!(
                header(&r, "x-ratelimit-remaining"),
                Some((4 - ok).to_string().as_str())
            );
        } else {
            assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
            assert_eq!(header(&r, "retry-after"), Some(reset.to_string().as_str()));
        }
    }
    assert_eq!(ok, 4, "4 allowed in total across both replicas");
    assert_eq!(one.shared.metrics().decisions("failure_allowed"), 0);
    let health = reqwest::get(format!("http://{}/health", one.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("http://{}/metrics", one.http_addr))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("ratelimit_storage_info{storage=\"redis\"} 1"));
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

#[tokio::test]
async fn losing_redis_fails_open_and_counting_resumes_when_it_returns() {
    let Some(url) = redis_url() else { return };
    let target = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let proxy = RedisProxy::start(&target, 0).await;
    let rls = ratelimit::spawn(Config {
        redis_url: Some(format!("redis://127.0.0.1:{}", proxy.port)),
        ..config()
    })
    .await
    .unwrap();
    let mut c = client(&rls).await;
    let id = unique("flaky");
    let d = [("client_id", id.as_str()), ("client_limit", "2")];
    let r = ask(&mut c, &d).await;
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("1"));

    proxy.cut();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let r = ask(&mut c, &d).await;
    assert!(is_ok(&r), "fail-open while Redis is away: {r:?}");
    assert!(header(&r, "x-ratelimit-remaining").is_none());
    assert!(rls.shared.metrics().decisions("failure_allowed") >= 1);
    let health = reqwest::get(format!("http://{}/health", rls.http_addr))
        .await
        .unwrap();
    assert_eq!(health.status(), 503);

    let _back = RedisProxy::start(&proxy.target, proxy.port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = reqwest::get(format!("http://{}/health", rls.http_addr))
            .await
            .unwrap();
        if h.status() == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not reconnect to Redis"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The counter kept in Redis survived: one hit before the cut, one now.
    let r = ask(&mut c, &d).await;
    assert!(is_ok(&r));
    assert_eq!(header(&r, "x-ratelimit-remaining"), Some("0"));
    assert!(is_over(&ask(&mut c, &d).await));
}

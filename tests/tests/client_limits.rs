//! Every client gets exactly its own rate limit, through the real gateway:
//! the `local` configuration as `make run` renders it (the auth filter with
//! its per-client bucket, the global rate-limit filter), the real auth
//! service verifying real keys, the real rate-limit service (in memory, or
//! in Redis when `REDIS_URL` is set), and a counting upstream behind every
//! route.
//!
//! The window test drives keys at 5, 1 000 and 20 000 a minute at twice
//! their limit for two one-minute windows, on one instance, then on two
//! instances sharing one rate-limit service (about 4.5 minutes in all;
//! about 700 requests a second).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::local::{
    gatewayctl_json, local_gateway, local_upstreams, loopback, rate_limit_config, run_gatewayctl,
    sqlite_database, start_auth_service, unique,
};
use e2e::{answer, text, Answer, CountingUpstream, Envoy};
use serde_json::Value;

const SECRET: &str = "client-limits-test-secret-0123456789abcdef";

/// gatewayctl's `--actor` in the audit log.
const ACTOR: &str = "limits-test";

/// The gateway pieces one test needs.
struct Stack {
    envoys: Vec<Envoy>,
    rls: Option<ratelimit::Running>,
    auth: auth_service::AppState,
    database_url: String,
    dir: PathBuf,
    _servers: Vec<Box<dyn std::any::Any + Send>>,
}

/// One instance, the memory backend, no limits file, fail open, the
/// production 100 ms decision timeout, unless changed.
struct StackOptions {
    instances: usize,
    redis_url: Option<String>,
    limits_file: Option<PathBuf>,
    failure_mode_deny: bool,
    /// RATE_LIMIT_TIMEOUT_MS of the gateway.
    decision_timeout_ms: u32,
}

impl Default for StackOptions {
    fn default() -> Self {
        StackOptions {
            instances: 1,
            redis_url: None,
            limits_file: None,
            failure_mode_deny: false,
            decision_timeout_ms: 100,
        }
    }
}

impl Stack {
    async fn start(options: StackOptions) -> Stack {
        let (dir, database_url) = sqlite_database("client-limits");
        let (auth_server, auth) = start_auth_service(&database_url, SECRET).await;
        let upstream = CountingUpstream::start().await;
        let rls = ratelimit::spawn(ratelimit::Config {
            redis_url: options.redis_url.clone(),
            limits_file: options.limits_file.clone(),
            reload_interval: Duration::from_millis(200),
            failure_mode: if options.failure_mode_deny {
                ratelimit::config::FailureMode::Deny
            } else {
                ratelimit::config::FailureMode::Allow
            },
            ..rate_limit_config("climits")
        })
        .await
        .unwrap();
        let mut envoys = Vec::new();
        for _ in 0..options.instances {
            let yaml = local_gateway(
                &local_upstreams(
                    loopback(upstream.port),
                    loopback(upstream.port),
                    auth_server.addr,
                    rls.grpc_addr,
                ),
                &rls,
                SECRET,
                &[
                    format!("RATE_LIMIT_TIMEOUT_MS={}", options.decision_timeout_ms),
                    format!(
                        "RATE_LIMIT_FAILURE_MODE={}",
                        if options.failure_mode_deny {
                            "deny"
                        } else {
                            "allow"
                        }
                    ),
                ],
            );
            envoys.push(Envoy::start(&yaml).await);
        }
        let stack = Stack {
            envoys,
            rls: Some(rls),
            auth,
            database_url,
            dir,
            _servers: vec![Box::new(auth_server), Box::new(upstream)],
        };
        // Ready once every instance answers an authenticated request (the
        // active health checks of the upstream and the rate-limit service
        // have passed); a key of its own so no test key is spent.
        let warm = stack.key("warmup", Some(1_000_000)).await.0;
        let client = http();
        for envoy in &stack.envoys {
            envoy
                .until_answer(
                    Duration::from_secs(30),
                    || send(&client, envoy, &warm, Route::Rates),
                    |a| a.status == 200 && a.header("x-ratelimit-limit").is_some(),
                )
                .await;
        }
        stack
    }

    /// A new key (and its id) for a new client, with its own limit.
    async fn key(&self, tag: &str, per_minute: Option<u32>) -> (String, String, String) {
        let client_id = unique(tag);
        let created = self
            .auth
            .store
            .create_api_key(&store::NewApiKey {
                client_id: client_id.clone(),
                scopes: Vec::new(),
                rate_limit_per_minute: per_minute.map(i64::from),
                expires_at: None,
            })
            .await
            .unwrap();
        (created.key, created.record.key_id, client_id)
    }

    fn rls_url(&self, path: &str) -> String {
        let rls = self.rls.as_ref().expect("rate-limit service running");
        format!("http://{}{path}", rls.http_addr)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn http() -> reqwest::Client {
    static CLIENT: std::sync::OnceLock<reqwest::Client> = std::sync::OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .no_proxy()
                .pool_max_idle_per_host(256)
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap()
        })
        .clone()
}

#[derive(Clone, Copy)]
enum Route {
    Rates,
    CalculateLocate,
}

async fn send(client: &reqwest::Client, envoy: &Envoy, key: &str, route: Route) -> Answer {
    let request = match route {
        Route::Rates => client.get(envoy.url("/api/v1/rates/AAPL")),
        Route::CalculateLocate => client
            .post(envoy.url("/api/v1/calculate-locate"))
            .header("content-type", "application/json")
            .body(r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"x"}"#),
    };
    answer(request.header("x-api-key", key)).await
}

/// What a client driven at twice its limit got in one of the rate-limit
/// service's one-minute windows.
#[derive(Debug, Clone, Default)]
struct Window {
    /// Let through by the rate limit, certainly decided inside this window:
    /// answered 200, or 504 when the test's own upstream (in this process,
    /// sharing its CPU with the load) timed out after the limit let the
    /// request through (Envoy's router answers 504; the rate-limit filter
    /// never does).
    granted: u64,
    /// Of `granted` and `granted_at_boundary`, the 504s.
    upstream_timeouts: u64,
    /// Answered 429, certainly decided inside this window.
    refused: u64,
    /// Granted, but sent before and answered after a window boundary (the
    /// decision may have fallen on either side of it): counted here by the
    /// moment it was sent.
    granted_at_boundary: u64,
    /// Requests sent inside this window, whatever their answer.
    sent: u64,
    /// Statuses other than 200, 429 and 504.
    other: Vec<u16>,
}

/// One answer: when its request left and when the answer came back, in
/// seconds from the first request's departure.
struct Sent {
    sent: f64,
    answered: f64,
    status: u16,
}

/// Sends `2 × per_minute` requests a minute for `windows` minutes, spread
/// evenly and round-robin over `envoys`. The first request opens the
/// rate-limit service's window; every later one is sent half a period off
/// the even grid, so none is planned on a window boundary.
///
/// Answers are counted in the window they were decided in, from the moments
/// the request really left and its answer came back (not the planned ones:
/// on a loaded machine the sender falls behind its plan). The service's
/// window opened somewhere between the first request's departure and its
/// answer, so a request is certainly in window `i` when it left at least
/// `60 i` seconds after the first answer and was answered less than
/// `60 (i + 1)` seconds after the first departure; the others are
/// `granted_at_boundary` (when granted). Requests sent after the last
/// window are not counted.
async fn drive(envoys: &[Envoy], key: &str, per_minute: u64, windows: u32) -> Vec<Window> {
    let total = 2 * per_minute * u64::from(windows);
    let period = Duration::from_secs(60).as_secs_f64() / (2 * per_minute) as f64;
    let answers = Arc::new(std::sync::Mutex::new(Vec::with_capacity(total as usize)));
    let in_flight = Arc::new(tokio::sync::Semaphore::new(256));
    let start = tokio::time::Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for k in 0..total {
        let offset = if k == 0 {
            0.0
        } else {
            (k as f64 + 0.5) * period
        };
        if offset >= 60.0 * f64::from(windows) {
            break;
        }
        tokio::time::sleep_until(start + Duration::from_secs_f64(offset)).await;
        let permit = in_flight.clone().acquire_owned().await.unwrap();
        let envoy_url = envoys[(k % envoys.len() as u64) as usize].url("/api/v1/rates/AAPL");
        let key = key.to_owned();
        let answers = answers.clone();
        tasks.spawn(async move {
            let sent = start.elapsed().as_secs_f64();
            let status = match http().get(envoy_url).header("x-api-key", key).send().await {
                Ok(r) => {
                    let s = r.status().as_u16();
                    let _ = r.bytes().await;
                    s
                }
                Err(_) => 0,
            };
            let answered = start.elapsed().as_secs_f64();
            drop(permit);
            answers.lock().unwrap().push(Sent {
                sent,
                answered,
                status,
            });
        });
        // Reap finished tasks as we go so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let answers = std::mem::take(&mut *answers.lock().unwrap());
    let first_answered = answers
        .iter()
        .map(|a| a.answered)
        .fold(f64::INFINITY, f64::min);
    let mut got = vec![Window::default(); windows as usize];
    for a in &answers {
        let by_departure = (a.sent / 60.0) as usize;
        let Some(w) = got.get_mut(by_departure) else {
            continue;
        };
        w.sent += 1;
        let certain = a.sent - first_answered >= 60.0 * by_departure as f64
            && a.answered < 60.0 * (by_departure + 1) as f64;
        if a.status == 504 {
            w.upstream_timeouts += 1;
        }
        match (a.status, certain) {
            (200 | 504, true) => w.granted += 1,
            (200 | 504, false) => w.granted_at_boundary += 1,
            (429, true) => w.refused += 1,
            (429, false) => {}
            (other, _) => w.other.push(other),
        }
    }
    got
}

/// The issue's bound: granted within 1 % of the limit in every window,
/// where a grant decided at a window boundary may belong to either side.
fn assert_granted_its_limit(label: &str, per_minute: u64, got: &[Window]) {
    let slack = per_minute / 100;
    for (i, w) in got.iter().enumerate() {
        assert!(
            w.other.is_empty(),
            "{label}: window {i}: statuses other than 200/429/504: {:?}",
            w.other
        );
        assert!(
            w.sent > per_minute,
            "{label}: window {i}: only {} requests left in the window for a limit of {per_minute}: \
             the machine could not drive the key above its limit; all windows: {got:?}",
            w.sent
        );
        let low = w.granted;
        let high = w.granted + w.granted_at_boundary;
        assert!(
            high + slack >= per_minute && low <= per_minute + slack,
            "{label}: window {i}: granted {low} (+{} at a boundary, refused {}) for a limit of \
             {per_minute} a minute (±{slack} allowed); all windows: {got:?}",
            w.granted_at_boundary,
            w.refused
        );
    }
}

const WINDOW_LIMITS: [u64; 3] = [5, 1_000, 20_000];

/// One scenario: the three keys at twice their limit, at once, for two
/// windows.
async fn every_key_gets_its_limit(stack: &Stack, label: &str) {
    let mut keys = Vec::new();
    for limit in WINDOW_LIMITS {
        keys.push((
            limit,
            stack.key(&format!("w{limit}"), Some(limit as u32)).await.0,
        ));
    }
    let runs = keys
        .iter()
        .map(|(limit, key)| drive(&stack.envoys, key, *limit, 2));
    let results = futures_join_all(runs).await;
    for ((limit, _), got) in keys.iter().zip(&results) {
        println!("{label}: {limit}/min -> {got:?}");
    }
    for envoy in &stack.envoys {
        let stats = envoy.admin_get("/stats?filter=ratelimit").await;
        let relevant: Vec<&str> = stats.lines().filter(|l| !l.ends_with(": 0")).collect();
        println!("{label}: Envoy rate-limit stats: {relevant:?}");
    }
    for ((limit, _), got) in keys.iter().zip(&results) {
        assert_granted_its_limit(&format!("{label}, {limit}/min"), *limit, got);
    }
}

/// `join_all` without another dependency: the futures run concurrently on
/// this task.
async fn futures_join_all<F: std::future::Future>(
    futures: impl Iterator<Item = F>,
) -> Vec<F::Output> {
    let futures: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = futures.iter().map(|_| None).collect();
    let mut futures: Vec<Option<_>> = futures.into_iter().map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (slot, out) in futures.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_at_5_1000_and_20000_a_minute_get_exactly_their_limit_per_window_at_twice_that_rate() {
    // Two instances share a Redis-backed service: the machine's
    // (`REDIS_URL`) or, without one, a redis-server of this test's own.
    let private = match std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
    {
        Some(_) => None,
        None => e2e::PrivateRedis::start(),
    };
    let redis = std::env::var("REDIS_URL")
        .ok()
        .filter(|u| !u.trim().is_empty())
        .or_else(|| private.as_ref().map(|r| r.url()));
    if redis.is_none() {
        println!(
            "no REDIS_URL and no redis-server: the two-instance run shares an in-memory \
             rate-limit service (the Redis-backed run is skipped)"
        );
    }
    // The decisions are what is measured: on this 2-core machine, loaded by
    // the test itself, a decision can take longer than the production
    // 100 ms, and a timed-out decision would be a grant (fail open) or a
    // refusal the service may still have counted (deny). So decisions may
    // take up to 5 s here (2 s was seen to time out under a parallel build),
    // and a failed one is a refusal. One scenario at a
    // time, so the machine serves about 700 requests a second.
    let one = Stack::start(StackOptions {
        failure_mode_deny: true,
        decision_timeout_ms: 5000,
        ..StackOptions::default()
    })
    .await;
    every_key_gets_its_limit(&one, "one instance, memory").await;
    drop(one);
    let two = Stack::start(StackOptions {
        instances: 2,
        redis_url: redis.clone(),
        failure_mode_deny: true,
        decision_timeout_ms: 5000,
        ..StackOptions::default()
    })
    .await;
    let two_label = if redis.is_some() {
        "two instances, Redis"
    } else {
        "two instances, memory"
    };
    every_key_gets_its_limit(&two, two_label).await;
}

#[tokio::test]
async fn a_limit_raised_with_gatewayctl_applies_through_the_gateway_within_the_revocation_window() {
    let stack = Stack::start(StackOptions::default()).await;
    let envoy = &stack.envoys[0];
    let (key, key_id, _) = stack.key("update", Some(3)).await;
    for _ in 0..3 {
        assert_eq!(send(&http(), envoy, &key, Route::Rates).await.status, 200);
    }
    let refused = send(&http(), envoy, &key, Route::Rates).await;
    assert_eq!(refused.status, 429, "{}", refused.body);

    run_gatewayctl(
        &stack.database_url,
        ACTOR,
        &["keys", "update", &key_id, "--rate-limit-per-minute", "100"],
    );
    let changed = Instant::now();
    let allowed = loop {
        let a = send(&http(), envoy, &key, Route::Rates).await;
        if a.status == 200 {
            break a;
        }
        assert_eq!(a.status, 429, "{}", a.body);
        assert!(
            changed.elapsed() < Duration::from_secs(60),
            "the new limit did not apply within 60 s"
        );
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    println!("new limit applied after {:?}", changed.elapsed());
    assert_eq!(allowed.number("x-ratelimit-limit"), 100);

    let shown = gatewayctl_json(&stack.database_url, ACTOR, &["keys", "show", &key_id]);
    assert_eq!(shown["rate_limit_per_minute"], 100, "{shown}");
    let update = shown["history"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "update")
        .unwrap_or_else(|| panic!("no update in the history: {shown}"));
    assert_eq!(update["actor"], ACTOR, "{update}");
    assert!(
        update["at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{update}"
    );
}

fn write(path: &Path, text: &str) {
    // Written aside and renamed, so the service never reads half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

const ROUTE_LIMITS: &str = r#"
domain: borrow_rate_gateway
descriptors:
  - key: client_id
    rate_limit: { unit: minute, requests_per_unit: 60 }
  - key: route
    value: calculate-locate
    descriptors:
      - key: client_id
        rate_limit: { unit: minute, requests_per_unit: 2 }
"#;

#[tokio::test]
async fn a_route_limit_from_the_descriptor_file_applies_and_a_bad_file_keeps_it() {
    let dir = e2e::scratch_dir("route-limits");
    let file = dir.join("limits.yaml");
    write(&file, ROUTE_LIMITS);
    let stack = Stack::start(StackOptions {
        limits_file: Some(file.clone()),
        ..StackOptions::default()
    })
    .await;
    let envoy = &stack.envoys[0];

    // calculate-locate: 2 a minute for this client, whatever its own limit.
    let (key, _, _) = stack.key("route", Some(100)).await;
    let statuses = |n: usize, route: Route| {
        let key = key.clone();
        async move {
            let mut s = Vec::new();
            for _ in 0..n {
                s.push(send(&http(), envoy, &key, route).await);
            }
            s
        }
    };
    let locate = statuses(3, Route::CalculateLocate).await;
    assert_eq!(
        locate.iter().map(|a| a.status).collect::<Vec<_>>(),
        [200, 200, 429],
        "{}",
        locate[2].body
    );
    let policy = locate[0].header("ratelimit-policy").unwrap_or_default();
    assert!(
        policy.contains(r#""route-calculate-locate";q=2;w=60"#),
        "{policy}"
    );
    // rates: only the key's own 100 a minute.
    for a in statuses(3, Route::Rates).await {
        assert_eq!(a.status, 200, "{}", a.body);
        assert_eq!(a.number("x-ratelimit-limit"), 100);
    }

    // A malformed file is refused; the rule in force stays.
    let before_errors = reload_errors(&stack).await;
    write(
        &file,
        &ROUTE_LIMITS.replace(
            "unit: minute, requests_per_unit: 2",
            "unit: minutes, requests_per_unit: 2",
        ),
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while reload_errors(&stack).await == before_errors {
        assert!(Instant::now() < deadline, "the bad file was never read");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (other, _, _) = stack.key("route2", Some(100)).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(
            send(&http(), envoy, &other, Route::CalculateLocate)
                .await
                .status,
        );
    }
    assert_eq!(got, [200, 200, 429], "the last good rule stays in force");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_tier_rule_of_the_descriptor_file_limits_every_key_with_that_tier_scope() {
    let dir = e2e::scratch_dir("tier-limits");
    let file = dir.join("limits.yaml");
    write(
        &file,
        r#"
domain: borrow_rate_gateway
descriptors:
  - key: client_id
  - key: tier
    value: bronze
    descriptors:
      - key: client_id
        rate_limit: { unit: minute, requests_per_unit: 2 }
"#,
    );
    let stack = Stack::start(StackOptions {
        limits_file: Some(file),
        ..StackOptions::default()
    })
    .await;
    let envoy = &stack.envoys[0];
    let key_with = |scope: Option<&'static str>| {
        let stack = &stack;
        async move {
            let client_id = unique("tiered");
            stack
                .auth
                .store
                .create_api_key(&store::NewApiKey {
                    client_id,
                    scopes: scope.map(|s| vec![s.to_owned()]).unwrap_or_default(),
                    rate_limit_per_minute: Some(100),
                    expires_at: None,
                })
                .await
                .unwrap()
                .key
        }
    };
    // Two bronze clients: 2 a minute each, counted per client.
    for _ in 0..2 {
        let bronze = key_with(Some("tier:bronze")).await;
        let mut got = Vec::new();
        for _ in 0..3 {
            got.push(send(&http(), envoy, &bronze, Route::Rates).await.status);
        }
        assert_eq!(got, [200, 200, 429], "a bronze key");
    }
    // No tier scope: only the key's own 100 a minute.
    let plain = key_with(None).await;
    for _ in 0..3 {
        assert_eq!(send(&http(), envoy, &plain, Route::Rates).await.status, 200);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

async fn reload_errors(stack: &Stack) -> u64 {
    let text = text(http().get(stack.rls_url("/metrics"))).await;
    text.lines()
        .find(|l| l.starts_with("ratelimit_limits_reload_errors_total"))
        .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .unwrap_or(0.0) as u64
}

/// The IETF fields agree with the X-RateLimit ones.
fn assert_ietf_fields(a: &Answer, limit: u64) {
    let policy = a.header("ratelimit-policy").unwrap_or_else(|| {
        panic!("no RateLimit-Policy: {:?}", a.headers);
    });
    assert!(
        policy.contains(&format!(r#""client";q={limit};w=60"#)),
        "{policy}"
    );
    let current = a
        .header("ratelimit")
        .unwrap_or_else(|| panic!("no RateLimit: {:?}", a.headers));
    let remaining = a.number("x-ratelimit-remaining");
    let reset = a.number("x-ratelimit-reset");
    assert!(
        current.contains(&format!(";r={remaining};t={reset}")),
        "RateLimit {current} vs X-RateLimit-Remaining {remaining}, -Reset {reset}"
    );
}

#[tokio::test]
async fn answers_carry_the_rate_limit_headers_from_the_service_and_from_the_local_bucket() {
    let mut stack = Stack::start(StackOptions::default()).await;
    let envoy = &stack.envoys[0];

    // The rate-limit service's decisions, on 200 and on 429.
    let (key, _, _) = stack.key("headers", Some(2)).await;
    let first = send(&http(), envoy, &key, Route::Rates).await;
    assert_eq!(first.status, 200);
    assert_eq!(first.number("x-ratelimit-limit"), 2);
    assert_eq!(first.number("x-ratelimit-remaining"), 1);
    assert_ietf_fields(&first, 2);
    send(&http(), envoy, &key, Route::Rates).await;
    let refused = send(&http(), envoy, &key, Route::Rates).await;
    assert_eq!(refused.status, 429);
    let body: Value = serde_json::from_str(&refused.body).unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    assert_eq!(refused.number("x-ratelimit-remaining"), 0);
    assert!(refused.number("retry-after") >= 1);
    assert_ietf_fields(&refused, 2);

    // The rate-limit service gone (failing open): the auth filter's own
    // bucket holds the client at its limit on this instance, with the same
    // headers.
    stack.rls.take().unwrap().stop().await;
    let (key, _, _) = stack.key("local", Some(3)).await;
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let a = send(&http(), envoy, &key, Route::Rates).await;
        statuses.push(a.status);
        last = Some(a);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429], "the bucket holds 3");
    let local = last.unwrap();
    let body: Value = serde_json::from_str(&local.body).unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED", "{}", local.body);
    assert_eq!(
        body["error"]["request_id"],
        local.header("x-request-id").unwrap_or_default()
    );
    assert_eq!(local.number("x-ratelimit-limit"), 3);
    assert_eq!(local.number("x-ratelimit-remaining"), 0);
    let retry = local.number("retry-after");
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    assert_eq!(local.number("x-ratelimit-reset"), retry);
    assert_ietf_fields(&local, 3);
}

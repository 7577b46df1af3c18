//! Chaos under load (short form, in `make test`): a constant-rate load of
//! `rates` and `calculate-locate` runs through the rendered `local` gateway
//! while its dependencies fail one at a time. Two runs, one after the other:
//!
//! 1. **Stops**: the calculation service, the auth service, the rate-limit
//!    service and the data service are shut down in turn (no new
//!    connections, in-flight requests finish) and started again on the
//!    same port.
//! 2. **Crashes**: the calculation service, running as a process of its
//!    own, is SIGKILLed and started again; a Redis server and a
//!    PostgreSQL cluster of the test's own (the machine's binaries, never
//!    the servers others share) are crashed — Redis SIGKILLed, PostgreSQL
//!    stopped with `pg_ctl -m immediate`, which kills every backend without
//!    a checkpoint — and started again (PostgreSQL replaying its WAL);
//!    Envoy is hot-restarted (a new process takes over the listener, the
//!    old one drains and exits).
//!
//! Asserted over each run:
//!
//! * every answer is a success or the SPEC §6 envelope (JSON, a code, the
//!   request id) — no HTML, no plain text, no connection errors;
//! * service is back within 10 s of each dependency returning;
//! * during the Envoy hot restart no request fails, except (rarely, at most
//!   2 %) one sent on a keep-alive connection just as the old Envoy closed
//!   it — the HTTP/1.1 idle-close race no server can avoid;
//! * no process died that was not killed on purpose;
//! * the audit log holds exactly one row per successful calculation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{free_port, Envoy, PrivatePostgres, PrivateRedis};
use serde_json::Value;
use store::NewApiKey;

const SECRET: &str = "chaos-under-load-hs256-secret-0123456789";
const BODY: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
/// Requests per second of each kind (rates and calculate-locate).
const RATE: u64 = 20;
/// How long a dependency stays down.
const PAUSE: Duration = Duration::from_secs(3);
/// How long the load runs after a dependency returns, before the next fault.
const SETTLE: Duration = Duration::from_secs(13);
/// Recovery is judged on the requests sent from 10 s after a dependency
/// returned until this long before the next fault: a request sent just
/// before a fault may reach the gateway after it, and meet the next
/// dependency already gone.
const BEFORE_NEXT_FAULT: Duration = Duration::from_secs(1);
/// The two runs share two cores: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// One answer of the load.
struct Answer {
    calculation: bool,
    sent_at: Instant,
    outcome: Result<(u16, String, Option<String>), String>,
}

impl Answer {
    fn ok(&self) -> bool {
        matches!(self.outcome, Ok((200, _, _)))
    }

    /// Why this answer is neither a success nor the SPEC envelope, if it is not.
    fn not_an_envelope(&self) -> Option<String> {
        let (status, body, request_id) = match &self.outcome {
            Ok(parts) => parts,
            Err(e) => return Some(format!("transport error: {e}")),
        };
        let v: Value = match serde_json::from_str(body) {
            Ok(v) => v,
            Err(_) => return Some(format!("{status}, not JSON: {body:?}")),
        };
        if *status == 200 && v["status"] == "success" {
            return None;
        }
        let envelope = v["status"] == "error"
            && v["error"]["code"].as_str().is_some_and(|c| !c.is_empty())
            && request_id
                .as_deref()
                .is_some_and(|rid| v["error"]["request_id"] == rid);
        (!envelope).then(|| format!("{status}: {body}"))
    }

    /// A keep-alive connection closed under a request before any byte of
    /// the answer: the HTTP/1.1 race between a client reusing an idle
    /// connection and a draining server closing it (no side can tell
    /// whether the request was seen, so no client may retry a POST).
    fn idle_close(&self) -> bool {
        matches!(&self.outcome, Err(e) if e.contains("IncompleteMessage"))
    }

    fn describe(&self) -> String {
        match &self.outcome {
            Ok((s, b, _)) => format!("{s} {b}"),
            Err(e) => format!("transport error: {e}"),
        }
    }

    /// [`Answer::describe`], with the request kind and Envoy's access-log
    /// line for the request (its response flags and details say which part
    /// of the gateway answered, and why).
    fn explain(&self, envoy_log: &str) -> String {
        let kind = if self.calculation {
            "calculate-locate"
        } else {
            "rates"
        };
        let access = match &self.outcome {
            Ok((_, _, Some(rid))) => envoy_log
                .lines()
                .filter(|l| l.contains(rid.as_str()))
                .collect::<Vec<_>>()
                .join("\n  "),
            _ => String::new(),
        };
        format!("{kind}: {}\n  {access}", self.describe())
    }
}

/// RATE rates and RATE calculations a second through the gateway, each
/// request on its own schedule whatever the answers do.
struct Load {
    answers: Arc<Mutex<Vec<Answer>>>,
    running: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Load {
    fn start(envoy: &Envoy, key: &str) -> Load {
        let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
        let running = Arc::new(AtomicBool::new(true));
        let (answers2, running2) = (Arc::clone(&answers), Arc::clone(&running));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let (rates_url, calc_url) = (
            envoy.url("/api/v1/rates/AAPL"),
            envoy.url("/api/v1/calculate-locate"),
        );
        let key = key.to_owned();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / (2 * RATE)));
            let mut calculation = false;
            let mut in_flight = Vec::new();
            while running2.load(Ordering::Relaxed) {
                tick.tick().await;
                calculation = !calculation;
                let req = if calculation {
                    client
                        .post(&calc_url)
                        .header("content-type", "application/json")
                        .body(BODY)
                } else {
                    client.get(&rates_url)
                };
                let req = req.header("x-api-key", &key);
                let answers = Arc::clone(&answers2);
                in_flight.push(tokio::spawn(async move {
                    let sent_at = Instant::now();
                    let outcome = match req.send().await {
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let rid = resp
                                .headers()
                                .get("x-request-id")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_owned);
                            resp.text()
                                .await
                                .map(|body| (status, body, rid))
                                .map_err(|e| e.to_string())
                        }
                        Err(e) => Err(format!("{e:?}")),
                    };
                    answers.lock().unwrap().push(Answer {
                        calculation,
                        sent_at,
                        outcome,
                    });
                }));
            }
            for task in in_flight {
                let _ = task.await;
            }
        });
        Load {
            answers,
            running,
            task,
        }
    }

    async fn stop(self) -> Vec<Answer> {
        self.running.store(false, Ordering::Relaxed);
        self.task.await.unwrap();
        std::mem::take(&mut *self.answers.lock().unwrap())
    }
}

/// The assertions shared by both runs; `returned_at` holds each
/// dependency's name and when it came back, `envoy_log` what the gateway
/// logged (quoted for the requests that failed).
///
/// `crashes`: a process or database was killed mid-work, so a calculation
/// may have been committed after its client was already lost (the commit's
/// acknowledgement dies with the connection). Then every successful
/// calculation must still have exactly one row, and the rows beyond them
/// can be no more than the calculations that failed.
async fn assert_nothing_lost(
    answers: &[Answer],
    returned_at: &[(&str, Instant)],
    db: &str,
    envoy_log: &str,
    crashes: bool,
) {
    let bad: Vec<String> = answers.iter().filter_map(Answer::not_an_envelope).collect();
    assert!(
        bad.is_empty(),
        "{} of {} answers were neither a success nor the envelope:\n{}",
        bad.len(),
        answers.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let failed = answers.iter().filter(|a| !a.ok()).count();
    assert!(
        failed > 0,
        "no fault was visible: the test did not stop anything"
    );

    // Service is back within 10 s of each dependency returning: every
    // request sent from then until (shortly before) the next fault
    // succeeded.
    for (name, at) in returned_at {
        let window = *at + Duration::from_secs(10)..*at + SETTLE - BEFORE_NEXT_FAULT;
        let after: Vec<&Answer> = answers
            .iter()
            .filter(|a| window.contains(&a.sent_at))
            .collect();
        assert!(!after.is_empty(), "no load after the {name} returned");
        let still_failing: Vec<String> = after
            .iter()
            .filter(|a| !a.ok())
            .map(|a| a.explain(envoy_log))
            .collect();
        assert!(
            still_failing.is_empty(),
            "10 s after the {name} returned, still failing:\n{}",
            still_failing.join("\n")
        );
    }

    // Not one lost or extra audit record.
    let successes = answers.iter().filter(|a| a.calculation && a.ok()).count();
    let store = store::Store::connect(db).await.unwrap();
    let rows = store.audit_count().await.unwrap();
    println!(
        "{} answers, {failed} failed during faults, {successes} successful calculations, {rows} audit rows",
        answers.len()
    );
    let successes = i64::try_from(successes).unwrap();
    if !crashes {
        assert_eq!(
            rows, successes,
            "audit rows against successful calculations"
        );
        return;
    }
    for a in answers.iter().filter(|a| a.calculation && a.ok()) {
        let Ok((_, _, Some(rid))) = &a.outcome else {
            panic!("a successful calculation without x-request-id");
        };
        let found = store.audit_by_request_id(rid).await.unwrap().len();
        assert_eq!(found, 1, "audit rows of the successful calculation {rid}");
    }
    let failed_calculations = answers.iter().filter(|a| a.calculation && !a.ok()).count();
    assert!(
        rows - successes <= i64::try_from(failed_calculations).unwrap(),
        "{} audit rows beyond the successful calculations, but only {failed_calculations} failed",
        rows - successes
    );
}

/// The backends every run needs, addressed on free loopback ports.
struct Ports {
    data: u16,
    calc: u16,
    auth: u16,
    rls_grpc: u16,
    rls_http: u16,
}

impl Ports {
    fn new() -> Ports {
        Ports {
            data: free_port(),
            calc: free_port(),
            auth: free_port(),
            rls_grpc: free_port(),
            rls_http: free_port(),
        }
    }

    fn rls_config(&self, redis_url: Option<String>) -> ratelimit::Config {
        ratelimit::Config {
            grpc_addr: addr(self.rls_grpc),
            http_addr: addr(self.rls_http),
            key_prefix: format!("chaos{}_{}", std::process::id(), self.rls_grpc),
            redis_url,
            ..ratelimit::Config::default()
        }
    }

    /// The `local` gateway pointed at these ports, health-checking every
    /// 500 ms and with local buckets far above the load.
    async fn gateway(&self, restartable: bool) -> Envoy {
        let yaml = e2e::render_local_gateway(
            &[
                ("data_service", addr(self.data).to_string()),
                ("calculation_service", addr(self.calc).to_string()),
                ("auth_service", addr(self.auth).to_string()),
                ("ops_service", addr(free_port()).to_string()),
                ("rate_limit_service", addr(self.rls_grpc).to_string()),
            ],
            self.rls_http,
            &[
                format!("JWT_SECRET_KEY={SECRET}"),
                "HEALTH_CHECK_INTERVAL_MS=500".into(),
            ],
        );
        let envoy = if restartable {
            Envoy::start_restartable(&yaml).await
        } else {
            Envoy::start(&yaml).await
        };
        e2e::wait_until_healthy(&envoy, &["ops_service"], Duration::from_secs(30)).await;
        envoy
    }
}

/// One dependency's outage under the load: `stop` it, leave it down for
/// [`PAUSE`], `start` it again (noted in `returned_at` as `name`) and give
/// the gateway [`SETTLE`]: the new instance.
async fn outage<T>(
    returned_at: &mut Vec<(&'static str, Instant)>,
    name: &'static str,
    stop: impl std::future::Future<Output = ()>,
    start: impl std::future::Future<Output = T>,
) -> T {
    stop.await;
    tokio::time::sleep(PAUSE).await;
    let back = start.await;
    returned_at.push((name, Instant::now()));
    tokio::time::sleep(SETTLE).await;
    back
}

async fn create_key(store: &store::Store) -> String {
    store
        .create_api_key(&NewApiKey {
            client_id: "test123".into(),
            scopes: vec![],
            rate_limit_per_minute: Some(1_000_000),
            expires_at: None,
        })
        .await
        .unwrap()
        .key
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_each_dependency_stops_and_returns_without_a_lost_audit_row_or_a_bare_error() {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = e2e::scratch_dir("chaos");
    let db = format!("sqlite://{}/pricing.db", dir.display());
    let ports = Ports::new();
    let service = |port: u16| services::Config::new(addr(port), db.clone());
    let auth_config = auth_service::Config::hs256(service(ports.auth), SECRET);
    let rls_config = ports.rls_config(None);

    let (data, _) = services::state::start_data_service(&service(ports.data))
        .await
        .unwrap();
    let (calc, _) = services::state::start_calculation_service(&service(ports.calc))
        .await
        .unwrap();
    let (auth, auth_state) = auth_service::start(&auth_config).await.unwrap();
    let rls = ratelimit::spawn(rls_config.clone()).await.unwrap();
    let key = create_key(&auth_state.store).await;
    let envoy = ports.gateway(false).await;

    let load = Load::start(&envoy, &key);
    let mut returned_at = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;

    let calc = outage(
        &mut returned_at,
        "calculation service",
        calc.shutdown(),
        async {
            services::state::start_calculation_service(&service(ports.calc))
                .await
                .unwrap()
                .0
        },
    )
    .await;
    let auth = outage(&mut returned_at, "auth service", auth.shutdown(), async {
        auth_service::start(&auth_config).await.unwrap().0
    })
    .await;
    let rls = outage(&mut returned_at, "rate-limit service", rls.stop(), async {
        ratelimit::spawn(rls_config.clone()).await.unwrap()
    })
    .await;
    let data = outage(&mut returned_at, "data service", data.shutdown(), async {
        services::state::start_data_service(&service(ports.data))
            .await
            .unwrap()
            .0
    })
    .await;

    let answers = load.stop().await;
    assert_nothing_lost(&answers, &returned_at, &db, &envoy.log(), false).await;
    drop((calc, auth, rls, data, envoy));
}

/// The calculation service as a process of its own (this package's copy
/// of its binary), so it can be SIGKILLed.
struct CalculationProcess {
    child: Child,
}

impl CalculationProcess {
    async fn start(port: u16, db: &str, log: &std::path::Path) -> CalculationProcess {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_calculation-service-under-test"))
            .env("LISTEN_ADDR", addr(port).to_string())
            .env("DATABASE_URL", db)
            .env("DB_ACQUIRE_TIMEOUT_MS", "1000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let health = format!("http://{}/health", addr(port));
        let deadline = Instant::now() + Duration::from_secs(20);
        while !reqwest::get(&health)
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            assert!(Instant::now() < deadline, "calculation service not healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        CalculationProcess { child }
    }

    fn sigkill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    fn still_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for CalculationProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_a_killed_backend_crashed_database_and_redis_and_an_envoy_hot_restart_lose_nothing(
) {
    let _one = ONE_AT_A_TIME.lock().await;
    let dir = e2e::scratch_dir("crash");
    let ports = Ports::new();

    // The database: a PostgreSQL cluster of the test's own, which it can
    // crash, when DATABASE_URL names PostgreSQL (the PostgreSQL paths are
    // tested) and the server binaries are here; else a SQLite file.
    let wants_pg = std::env::var("DATABASE_URL").is_ok_and(|u| u.starts_with("postgres"));
    let pg = if wants_pg {
        let pg = PrivatePostgres::start();
        assert!(
            pg.is_some(),
            "DATABASE_URL names PostgreSQL, but no PostgreSQL server binaries \
             (initdb, pg_ctl) were found to run a cluster this test may crash"
        );
        pg
    } else {
        println!("DATABASE_URL does not name PostgreSQL: the database crash is skipped (SQLite has no server to crash)");
        None
    };
    let db = match &pg {
        Some(pg) => pg.url(),
        None => format!("sqlite://{}/pricing.db", dir.display()),
    };
    // Redis of the test's own, which it can SIGKILL, when REDIS_URL is set
    // (the Redis paths are tested).
    let mut redis = if std::env::var("REDIS_URL").is_ok() {
        let redis = PrivateRedis::start();
        assert!(
            redis.is_some(),
            "REDIS_URL is set, but no redis-server binary was found to run a server this test may kill"
        );
        redis
    } else {
        println!("REDIS_URL is not set: the Redis crash is skipped (in-memory counters)");
        None
    };

    let service = |port: u16| services::Config::new(addr(port), db.clone());
    let auth_config = auth_service::Config::hs256(service(ports.auth), SECRET);
    let rls_config = ports.rls_config(redis.as_ref().map(PrivateRedis::url));
    let (data, _) = services::state::start_data_service(&service(ports.data))
        .await
        .unwrap();
    let calc_log = dir.join("calculation-service.log");
    let calc = CalculationProcess::start(ports.calc, &db, &calc_log).await;
    let (auth, auth_state) = auth_service::start(&auth_config).await.unwrap();
    let rls = ratelimit::spawn(rls_config).await.unwrap();
    let key = create_key(&auth_state.store).await;
    let mut envoy = ports.gateway(true).await;

    let load = Load::start(&envoy, &key);
    let mut returned_at = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Faults whose effect the load must see: (name, down at, back at).
    let mut visible = Vec::new();
    let down = Instant::now();
    calc.sigkill();
    tokio::time::sleep(PAUSE).await;
    let mut calc = CalculationProcess::start(ports.calc, &db, &calc_log).await;
    returned_at.push(("SIGKILLed calculation service", Instant::now()));
    visible.push(("SIGKILLed calculation service", down, Instant::now()));
    tokio::time::sleep(SETTLE).await;

    if let Some(redis) = &mut redis {
        // Hidden from clients by failing open; the rate-limit service's
        // own health shows the crash was real.
        redis.kill();
        let health = format!("http://{}/health", addr(ports.rls_http));
        let deadline = Instant::now() + PAUSE;
        let mut unhealthy = false;
        while Instant::now() < deadline {
            unhealthy |= reqwest::get(&health)
                .await
                .is_ok_and(|r| r.status().as_u16() == 503);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(unhealthy, "the rate-limit service never saw Redis go");
        redis.restart();
        returned_at.push(("Redis", Instant::now()));
        tokio::time::sleep(SETTLE).await;
    }

    if let Some(pg) = &pg {
        let down = Instant::now();
        pg.crash();
        tokio::time::sleep(PAUSE).await;
        pg.restart();
        returned_at.push(("PostgreSQL", Instant::now()));
        visible.push(("PostgreSQL", down, Instant::now()));
        tokio::time::sleep(SETTLE).await;
    }

    let restart_began = Instant::now();
    envoy.hot_restart(Duration::from_secs(2)).await;
    let restart_ended = Instant::now();
    returned_at.push(("hot-restarted Envoy", restart_ended));
    tokio::time::sleep(SETTLE).await;

    let mut answers = load.stop().await;
    // During the hot restart the only failure allowed is the keep-alive
    // race (an idle connection closed by the old Envoy as a request goes
    // out on it), and rarely: a refused connection, an error answer or a
    // reset mid-answer fails the test. Those requests are left out of the
    // checks below, except the audit count: a closed connection must not
    // have written an audit row either.
    let restart = restart_began..restart_ended;
    let sent_during_restart = answers
        .iter()
        .filter(|a| restart.contains(&a.sent_at))
        .count();
    let raced = answers
        .iter()
        .filter(|a| restart.contains(&a.sent_at) && a.idle_close())
        .count();
    answers.retain(|a| !(restart.contains(&a.sent_at) && a.idle_close()));
    let during_restart: Vec<String> = answers
        .iter()
        .filter(|a| restart.contains(&a.sent_at) && !a.ok())
        .map(Answer::describe)
        .collect();
    println!(
        "hot restart took {:?}; {sent_during_restart} requests sent meanwhile, \
         {raced} of them on a keep-alive connection the old Envoy closed",
        restart_ended - restart_began
    );
    assert!(
        raced * 50 <= sent_during_restart.max(100),
        "{raced} of {sent_during_restart} requests lost their connection in the hot restart"
    );
    for (name, down, back) in &visible {
        let failed = answers
            .iter()
            .filter(|a| (*down..*back + Duration::from_secs(1)).contains(&a.sent_at) && !a.ok())
            .count();
        println!("{name}: {failed} requests answered with an envelope");
        assert!(failed > 0, "the {name} fault was not visible to the load");
    }
    assert!(sent_during_restart > 0, "no load during the hot restart");
    assert!(
        during_restart.is_empty(),
        "requests failed during the Envoy hot restart: {during_restart:?}"
    );
    assert!(
        calc.still_running(),
        "the calculation service died:\n{}",
        std::fs::read_to_string(&calc_log).unwrap_or_default()
    );
    assert_nothing_lost(&answers, &returned_at, &db, &envoy.log(), true).await;

    drop((calc, auth, rls, data, envoy, redis, pg));
}

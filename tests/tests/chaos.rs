//! Chaos under load (short form, in `make test`): a constant-rate load of
//! `rates` and `calculate-locate` runs through the rendered `local` gateway
//! while the calculation service, the auth service, the rate-limit service
//! and the data service are stopped in turn (SIGTERM-style: no new
//! connections, in-flight requests finish) and started again on the same
//! port. Asserted over the whole run:
//!
//! * every answer is a success or the SPEC §6 envelope (JSON, a code, the
//!   request id) — no HTML, no plain text, no connection errors;
//! * service is back within 10 s of each dependency returning;
//! * the audit log holds exactly one row per successful calculation.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use e2e::{free_port, Envoy};
use serde_json::Value;
use store::NewApiKey;

const SECRET: &str = "chaos-under-load-hs256-secret-0123456789";
const BODY: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
/// Requests per second of each kind (rates and calculate-locate).
const RATE: u64 = 20;

/// One answer of the load.
struct Answer {
    calculation: bool,
    sent_at: Instant,
    outcome: Result<(u16, String, Option<String>), String>,
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// Why `answer` is neither a success nor the SPEC envelope, if it is not.
fn not_an_envelope(answer: &Answer) -> Option<String> {
    let (status, body, request_id) = match &answer.outcome {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_load_each_dependency_stops_and_returns_without_a_lost_audit_row_or_a_bare_error() {
    let dir = e2e::scratch_dir("chaos");
    let db = format!("sqlite://{}/pricing.db", dir.display());
    let (data_port, calc_port, auth_port) = (free_port(), free_port(), free_port());
    let (rls_grpc, rls_http) = (free_port(), free_port());
    let service = |port: u16| services::Config::new(addr(port), db.clone());
    let auth_config = auth_service::Config::hs256(service(auth_port), SECRET);
    let rls_config = ratelimit::Config {
        grpc_addr: addr(rls_grpc),
        http_addr: addr(rls_http),
        key_prefix: format!("chaos{}", std::process::id()),
        ..ratelimit::Config::default()
    };

    let (data, _) = services::state::start_data_service(&service(data_port))
        .await
        .unwrap();
    let (calc, _) = services::state::start_calculation_service(&service(calc_port))
        .await
        .unwrap();
    let (auth, auth_state) = auth_service::start(&auth_config).await.unwrap();
    let rls = ratelimit::spawn(rls_config.clone()).await.unwrap();
    let key = auth_state
        .store
        .create_api_key(&NewApiKey {
            client_id: "test123".into(),
            scopes: vec![],
            rate_limit_per_minute: Some(1_000_000),
            expires_at: None,
        })
        .await
        .unwrap()
        .key;

    let yaml = e2e::render_local_gateway(
        &[
            ("data_service", addr(data_port).to_string()),
            ("calculation_service", addr(calc_port).to_string()),
            ("auth_service", addr(auth_port).to_string()),
            ("ops_service", addr(free_port()).to_string()),
            ("rate_limit_service", addr(rls_grpc).to_string()),
        ],
        rls_http,
        &[
            format!("JWT_SECRET_KEY={SECRET}"),
            "HEALTH_CHECK_INTERVAL_MS=500".into(),
            "LOCAL_RATE_LIMIT_BURST=100000".into(),
            "LOCAL_RATE_LIMIT_PER_SECOND=100000".into(),
        ],
    );
    let envoy = Envoy::start(&yaml).await;
    e2e::wait_until_healthy(&envoy, &["ops_service"], Duration::from_secs(30)).await;

    // The load: RATE rates and RATE calculations a second, each request on
    // its own schedule whatever the answers do.
    let answers = Arc::new(Mutex::new(Vec::<Answer>::new()));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let load = {
        let (answers, running) = (Arc::clone(&answers), Arc::clone(&running));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        let (rates_url, calc_url) = (
            envoy.url("/api/v1/rates/AAPL"),
            envoy.url("/api/v1/calculate-locate"),
        );
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(1000 / (2 * RATE)));
            let mut calculation = false;
            let mut in_flight = Vec::new();
            while running.load(std::sync::atomic::Ordering::Relaxed) {
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
                let answers = Arc::clone(&answers);
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
                        Err(e) => Err(e.to_string()),
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
        })
    };

    let pause = Duration::from_secs(3);
    let settle = Duration::from_secs(12);
    let mut returned_at = Vec::new();
    tokio::time::sleep(Duration::from_secs(2)).await;

    calc.shutdown().await;
    tokio::time::sleep(pause).await;
    let (calc, _) = services::state::start_calculation_service(&service(calc_port))
        .await
        .unwrap();
    returned_at.push(("calculation service", Instant::now()));
    tokio::time::sleep(settle).await;

    auth.shutdown().await;
    tokio::time::sleep(pause).await;
    let (auth, _) = auth_service::start(&auth_config).await.unwrap();
    returned_at.push(("auth service", Instant::now()));
    tokio::time::sleep(settle).await;

    rls.stop().await;
    tokio::time::sleep(pause).await;
    let rls = ratelimit::spawn(rls_config.clone()).await.unwrap();
    returned_at.push(("rate-limit service", Instant::now()));
    tokio::time::sleep(settle).await;

    data.shutdown().await;
    tokio::time::sleep(pause).await;
    let (data, _) = services::state::start_data_service(&service(data_port))
        .await
        .unwrap();
    returned_at.push(("data service", Instant::now()));
    tokio::time::sleep(settle).await;

    running.store(false, std::sync::atomic::Ordering::Relaxed);
    load.await.unwrap();
    let answers = std::mem::take(&mut *answers.lock().unwrap());

    // Every answer is a success or the envelope.
    let bad: Vec<String> = answers.iter().filter_map(not_an_envelope).collect();
    assert!(
        bad.is_empty(),
        "{} of {} answers were neither a success nor the envelope:\n{}",
        bad.len(),
        answers.len(),
        bad.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    let ok = |a: &Answer| matches!(a.outcome, Ok((200, _, _)));
    let failed = answers.iter().filter(|a| !ok(a)).count();
    assert!(
        failed > 0,
        "no fault was visible: the test did not stop anything"
    );

    // Service is back within 10 s of each dependency returning: every
    // request sent from then until the next fault succeeded.
    for (name, at) in &returned_at {
        let window = *at + Duration::from_secs(10)..*at + settle;
        let after: Vec<&Answer> = answers
            .iter()
            .filter(|a| window.contains(&a.sent_at))
            .collect();
        assert!(!after.is_empty(), "no load after the {name} returned");
        let still_failing: Vec<String> = after
            .iter()
            .filter(|a| !ok(a))
            .filter_map(|a| a.outcome.as_ref().ok().map(|(s, b, _)| format!("{s} {b}")))
            .collect();
        assert!(
            still_failing.is_empty(),
            "10 s after the {name} returned, still failing: {still_failing:?}"
        );
    }

    // Not one lost or extra audit record.
    let successes = answers.iter().filter(|a| a.calculation && ok(a)).count();
    let rows = store::Store::connect(&db)
        .await
        .unwrap()
        .audit_count()
        .await
        .unwrap();
    println!(
        "{} answers, {failed} failed during faults, {successes} successful calculations, {rows} audit rows",
        answers.len()
    );
    assert_eq!(
        rows,
        i64::try_from(successes).unwrap(),
        "audit rows against successful calculations"
    );
    drop((calc, auth, rls, data));
}

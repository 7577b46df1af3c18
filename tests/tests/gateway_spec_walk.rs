//! The SPEC walk through the whole gateway: the `local` configuration as
//! `make run` renders it (auth, both rate limits, validation and metrics
//! filters), in front of the real data, calculation, auth and rate-limit
//! services (in process, on free ports, one fresh SQLite database).
//!
//! Needs the three filters built (`make wasm`) and `.venv/bin/envoy`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use e2e::{answer, Answer, Envoy};
use serde_json::{json, Value};
use store::NewApiKey;

const SECRET: &str = "spec-walk-hs256-secret-0123456789abcdef";

/// `cluster.<name>.upstream_rq_total` from Envoy's admin stats.
async fn upstream_requests(envoy: &Envoy, cluster: &str) -> u64 {
    let stat = format!("cluster.{cluster}.upstream_rq_total: ");
    envoy
        .admin_get("/stats?filter=upstream_rq_total$")
        .await
        .lines()
        .find_map(|l| l.strip_prefix(&stat))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

struct Walk {
    envoy: Envoy,
    client: reqwest::Client,
    data: Option<services::common::Server>,
    _calc: services::common::Server,
    _auth: services::common::Server,
    _rls: ratelimit::Running,
    test123: String,
    client123: String,
    admin: String,
    limited: String,
}

impl Walk {
    fn url(&self, path: &str) -> String {
        self.envoy.url(path)
    }
    async fn get(&self, path: &str, key: Option<&str>) -> Answer {
        let mut r = self.client.get(self.url(path));
        if let Some(k) = key {
            r = r.header("x-api-key", k);
        }
        answer(r).await
    }
    async fn calculate(&self, key: &str, body: &Value) -> Answer {
        answer(
            self.client
                .post(self.url("/api/v1/calculate-locate"))
                .header("x-api-key", key)
                .header("content-type", "application/json")
                .body(body.to_string()),
        )
        .await
    }
}

async fn start() -> Walk {
    let dir = e2e::scratch_dir("spec-walk");
    let db = format!("sqlite://{}/pricing.db", dir.display());
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();

    // The data service migrates and seeds the database first.
    let (data, _) = services::state::start_data_service(&services::Config::new(any, db.clone()))
        .await
        .expect("data service");
    let (calc, _) =
        services::state::start_calculation_service(&services::Config::new(any, db.clone()))
            .await
            .expect("calculation service");
    let (auth, auth_state) = e2e::local::start_auth_service(&db, SECRET).await;
    let rls = ratelimit::spawn(e2e::local::rate_limit_config("walk"))
        .await
        .expect("rate-limit service");

    let key = |client_id: &str, scopes: &[&str], limit: Option<i64>| NewApiKey {
        client_id: client_id.into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        rate_limit_per_minute: limit,
        expires_at: None,
    };
    let store = &auth_state.store;
    let test123 = store
        .create_api_key(&key("test123", &[], None))
        .await
        .unwrap()
        .key;
    let client123 = store
        .create_api_key(&key("client123", &[], None))
        .await
        .unwrap()
        .key;
    let admin = store
        .create_api_key(&key("big_fund", &["admin"], None))
        .await
        .unwrap()
        .key;
    let limited = store
        .create_api_key(&key("retail_broker", &[], Some(2)))
        .await
        .unwrap()
        .key;

    let yaml = e2e::local::local_gateway(
        &e2e::local::local_upstreams(data.addr, calc.addr, auth.addr, rls.grpc_addr),
        &rls,
        SECRET,
        &[
            "ENABLE_AUTHENTICATION=true".into(),
            "ENABLE_RATE_LIMITING=true".into(),
            "CORS_ORIGINS=https://app.example.com".into(),
        ],
    );
    let envoy = Envoy::start(&yaml).await;
    // As `make run` does: every backend healthy before the walk (the ops
    // service is not started here).
    e2e::wait_until_healthy(&envoy, &["ops_service"], Duration::from_secs(20)).await;
    Walk {
        envoy,
        client: reqwest::Client::new(),
        data: Some(data),
        _calc: calc,
        _auth: auth,
        _rls: rls,
        test123,
        client123,
        admin,
        limited,
    }
}

/// SPEC §5 seed data: ticker, exact rate, status.
const SEED_RATES: [(&str, &str, &str); 8] = [
    ("AAPL", "0.0039105", "EASY"),
    ("MSFT", "0.003045", "EASY"),
    ("NVDA", "0.006532", "EASY"),
    ("TSLA", "0.0279", "MEDIUM"),
    ("AMC", "0.4374", "HARD"),
    ("GME", "0.6475", "HARD"),
    ("BRK.B", "0.00224", "EASY"),
    ("KO", "0.0025", "EASY"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_walk_through_the_rendered_local_gateway() {
    let mut w = start().await;

    // Liveness, answered by Envoy.
    let r = w.get("/health", None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json(), json!({"status":"healthy","version":"0.1.0"}));

    // Rates for every seed ticker, with the key; exact digits.
    for (ticker, rate, status) in SEED_RATES {
        let r = w
            .get(&format!("/api/v1/rates/{ticker}"), Some(&w.test123))
            .await;
        assert_eq!(r.status, 200, "{ticker}: {}", r.body);
        assert!(r.header("x-request-id").is_some());
        let v = r.json();
        assert_eq!(v["status"], "success");
        assert_eq!(v["ticker"], ticker);
        assert_eq!(
            v["current_rate"].to_string().parse::<f64>().unwrap(),
            rate.parse::<f64>().unwrap(),
            "{ticker}: {}",
            r.body
        );
        assert!(
            r.body.contains(&format!("\"current_rate\":{rate}")),
            "{ticker}: exact digits {rate} in {}",
            r.body
        );
        assert_eq!(v["borrow_status"], status, "{ticker}");
    }
    // Tickers are normalised to upper case.
    let r = w.get("/api/v1/rates/brk.b", Some(&w.test123)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["ticker"], "BRK.B");
    // Allowed responses carry the rate-limit headers.
    assert!(r.header("x-ratelimit-limit").is_some(), "{:?}", r.headers);
    assert!(
        r.header("x-ratelimit-remaining").is_some(),
        "{:?}",
        r.headers
    );

    // Token exchange, then the JWT instead of the key.
    let r = answer(
        w.client
            .post(w.url("/api/v1/auth/token"))
            .header("x-api-key", &w.test123),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    let token = v["access_token"].as_str().expect("access_token").to_owned();
    let r = answer(w.client.get(w.url("/api/v1/rates/GME")).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"current_rate\":0.6475"), "{}", r.body);

    // Worked example 1 (key), exactly as SPEC §6 prints it.
    let r = w
        .calculate(
            &w.test123,
            &json!({"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for needle in [
        "\"total_fee\":58.75",
        "\"borrow_cost\":32.14",
        "\"markup\":1.61",
        "\"transaction_fees\":25.00",
        "\"borrow_rate_used\":0.0039105",
    ] {
        assert!(r.body.contains(needle), "{needle} in {}", r.body);
    }
    assert_eq!(r.json()["status"], "success");

    // Worked example 2 (client123's own key, through a JWT of it).
    let r = answer(
        w.client
            .post(w.url("/api/v1/auth/token"))
            .header("x-api-key", &w.client123),
    )
    .await;
    let token123 = r.json()["access_token"].as_str().unwrap().to_owned();
    let r = answer(
        w.client
            .post(w.url("/api/v1/calculate-locate"))
            .bearer_auth(&token123)
            .header("content-type", "application/json")
            .body(
                r#"{"ticker":"GME","position_value":250000,"loan_days":7,"client_id":"client123"}"#,
            ),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    for needle in [
        "\"total_fee\":3462.28",
        "\"borrow_cost\":3104.45",
        "\"markup\":232.83",
        "\"transaction_fees\":125.00",
        "\"borrow_rate_used\":0.6475",
    ] {
        assert!(r.body.contains(needle), "{needle} in {}", r.body);
    }

    // ---- every error code, in the envelope, with x-request-id ----

    // 401: no credentials; an unknown key; a forged token.
    w.get("/api/v1/rates/AAPL", None)
        .await
        .assert_envelope(401, "UNAUTHORIZED");
    let unknown = format!("brl_{}", "A".repeat(40));
    w.get("/api/v1/rates/AAPL", Some(&unknown))
        .await
        .assert_envelope(401, "UNAUTHORIZED");
    let forged = format!("{}x", &token[..token.len() - 1]);
    answer(
        w.client
            .get(w.url("/api/v1/rates/AAPL"))
            .bearer_auth(forged),
    )
    .await
    .assert_envelope(401, "UNAUTHORIZED");

    // CORS: a preflight carries no credentials and is answered before
    // authentication; even a 401 carries the CORS headers; other origins
    // get none.
    let r = answer(
        w.client
            .request(reqwest::Method::OPTIONS, w.url("/api/v1/calculate-locate"))
            .header("origin", "https://app.example.com")
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "x-api-key, content-type"),
    )
    .await;
    assert_eq!(r.status, 200, "preflight: {}", r.body);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert!(r
        .header("access-control-allow-methods")
        .is_some_and(|m| m.contains("POST")));
    let r = answer(
        w.client
            .get(w.url("/api/v1/rates/AAPL"))
            .header("origin", "https://app.example.com"),
    )
    .await;
    r.assert_envelope(401, "UNAUTHORIZED");
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    let r = answer(
        w.client
            .get(w.url("/api/v1/rates/AAPL"))
            .header("x-api-key", &w.test123)
            .header("origin", "https://evil.example.com"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);

    // 403: pricing for another client without the admin scope.
    w.calculate(
        &w.test123,
        &json!({"ticker":"AAPL","position_value":100,"loan_days":1,"client_id":"client123"}),
    )
    .await
    .assert_envelope(403, "FORBIDDEN");

    // 404s.
    w.get("/api/v1/nothing-here", Some(&w.test123))
        .await
        .assert_envelope(404, "NOT_FOUND");
    w.get("/api/v1/rates/ZZZZ", Some(&w.test123))
        .await
        .assert_envelope(404, "TICKER_NOT_FOUND");
    w.calculate(
        &w.admin,
        &json!({"ticker":"AAPL","position_value":100,"loan_days":1,"client_id":"nobody"}),
    )
    .await
    .assert_envelope(404, "CLIENT_NOT_FOUND");

    // 405: a known path, the wrong method.
    answer(
        w.client
            .post(w.url("/api/v1/rates/AAPL"))
            .header("x-api-key", &w.test123),
    )
    .await
    .assert_envelope(405, "METHOD_NOT_ALLOWED");

    // 413, 415, 400 — answered by the gateway: none of them reaches the
    // calculation service.
    let calc_upstream_before = upstream_requests(&w.envoy, "calculation_service").await;
    let big = format!(
        r#"{{"ticker":"AAPL","position_value":100,"loan_days":1,"client_id":"test123","pad":"{}"}}"#,
        "x".repeat(9000)
    );
    answer(
        w.client
            .post(w.url("/api/v1/calculate-locate"))
            .header("x-api-key", &w.test123)
            .header("content-type", "application/json")
            .body(big),
    )
    .await
    .assert_envelope(413, "PAYLOAD_TOO_LARGE");
    answer(
        w.client
            .post(w.url("/api/v1/calculate-locate"))
            .header("x-api-key", &w.test123)
            .header("content-type", "text/plain")
            .body("ticker=AAPL"),
    )
    .await
    .assert_envelope(415, "UNSUPPORTED_MEDIA_TYPE");
    let v = w
        .calculate(
            &w.test123,
            &json!({"ticker":"123456","position_value":-5,"loan_days":0,"client_id":"test123"}),
        )
        .await
        .assert_envelope(400, "VALIDATION_ERROR");
    let fields: Vec<&str> = v["error"]["details"]
        .as_array()
        .expect("details")
        .iter()
        .filter_map(|d| d["field"].as_str())
        .collect();
    for f in ["ticker", "position_value", "loan_days"] {
        assert!(fields.contains(&f), "{f} reported in {v}");
    }
    assert_eq!(
        upstream_requests(&w.envoy, "calculation_service").await,
        calc_upstream_before,
        "invalid calculate-locate requests must not reach the backend"
    );

    // 429: a key limited to 2 per minute.
    for i in 0..2 {
        let r = w.get("/api/v1/rates/KO", Some(&w.limited)).await;
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    let r = w.get("/api/v1/rates/KO", Some(&w.limited)).await;
    r.assert_envelope(429, "RATE_LIMITED");
    assert!(r.header("retry-after").is_some(), "{:?}", r.headers);
    assert_eq!(
        r.header("x-ratelimit-limit")
            .map(|v| v.split(',').next().unwrap_or("").trim()),
        Some("2")
    );
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    // Another client is not affected.
    assert_eq!(
        w.get("/api/v1/rates/KO", Some(&w.test123)).await.status,
        200
    );

    // 503: the data service goes away; Envoy answers for it.
    w.data.take().unwrap().shutdown().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let r = w.get("/api/v1/rates/AAPL", Some(&w.test123)).await;
        if r.status == 503 {
            r.assert_envelope(503, "SERVICE_UNAVAILABLE");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {} after the data service stopped",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The other routes keep working.
    let r = w
        .calculate(
            &w.test123,
            &json!({"ticker":"KO","position_value":1000,"loan_days":10,"client_id":"test123"}),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

//! The metrics filter (SPEC §8) through a real Envoy with the gateway's
//! stats configuration (gateway-config's `parts::stats_config`): Envoy's admin `/stats/prometheus` is
//! scraped and parsed as Prometheus text exposition.
//!
//! Durations are recorded in microseconds; the `le` bounds checked here are
//! therefore 100 … 10000000 for requests and 500 … 10000000 for backend
//! calls (the ops service rescales them to seconds on /metrics).
//!
//! Every behaviour is checked twice: with the metrics filter first in the
//! chain, and with the auth filter recording the metrics itself (its
//! `metrics` section, as the rendered gateway runs it), placed after the
//! local rate limit so that the rate-limited requests are ones it never saw
//! the headers of.
//!
//! Needs the filters built: `make wasm`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use e2e::config::{cluster, http_listener, virtual_host, ADMIN, BUFFER, LISTENER_PORT, ROUTER};
use e2e::stand_in::stalling_upstream;
use e2e::{free_port, gateway_part, wasm_filter, CountingUpstream, Envoy};

// ---------------------------------------------------------------------------
// Prometheus text format (0.0.4), read by the ops service's reader
// (`ops_service::text_format`, on the `prom_text_format_parser` crate)
// ---------------------------------------------------------------------------

/// One sample line.
#[derive(Debug, Clone, PartialEq)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A parsed exposition: `# TYPE` declarations and samples.
#[derive(Debug, Default)]
struct Exposition {
    types: HashMap<String, String>,
    samples: Vec<Sample>,
}

impl Exposition {
    /// The families as the ops service reads them, flattened back into one
    /// sample per line (`_bucket` with `le`, `_sum`, `_count`).
    fn parse(text: &str) -> Result<Self, String> {
        let mut out = Exposition::default();
        for family in ops_service::text_format::parse(text)? {
            let name = family.name().to_owned();
            let kind = format!("{:?}", family.get_field_type()).to_lowercase();
            out.types.insert(name.clone(), kind.clone());
            for m in family.get_metric() {
                let labels: BTreeMap<String, String> = m
                    .get_label()
                    .iter()
                    .map(|l| (l.name().to_owned(), l.value().to_owned()))
                    .collect();
                let mut push = |suffix: &str, extra: Option<(&str, String)>, value: f64| {
                    let mut labels = labels.clone();
                    if let Some((k, v)) = extra {
                        labels.insert(k.to_owned(), v);
                    }
                    out.samples.push(Sample {
                        name: format!("{name}{suffix}"),
                        labels,
                        value,
                    });
                };
                match kind.as_str() {
                    "histogram" => {
                        let h = m.get_histogram();
                        for b in h.get_bucket() {
                            let le = b.upper_bound().to_string();
                            push("_bucket", Some(("le", le)), b.cumulative_count() as f64);
                        }
                        let count = h.get_sample_count() as f64;
                        push("_bucket", Some(("le", "+Inf".to_owned())), count);
                        push("_sum", None, h.get_sample_sum());
                        push("_count", None, count);
                    }
                    "summary" => {
                        let q = m.get_summary();
                        for quantile in q.get_quantile() {
                            let at = quantile.quantile().to_string();
                            push("", Some(("quantile", at)), quantile.value());
                        }
                        push("_sum", None, q.sample_sum());
                        push("_count", None, q.sample_count() as f64);
                    }
                    "counter" => push("", None, m.get_counter().get_value()),
                    _ => push("", None, m.get_gauge().get_value()),
                }
            }
        }
        Ok(out)
    }

    /// The value of the series with exactly these labels (0 when absent).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        let want: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples
            .iter()
            .filter(|s| s.name == name && s.labels == want)
            .map(|s| s.value)
            .sum()
    }

    fn series(&self, name: &str) -> Vec<&Sample> {
        self.samples.iter().filter(|s| s.name == name).collect()
    }
}

#[test]
fn the_parser_reads_labels_with_braces_escapes_and_special_values() {
    let text = "# TYPE http_requests_total counter\n\
        http_requests_total{endpoint=\"/api/v1/rates/{ticker}\",method=\"GET\",status_code=\"200\"} 3\n\
        x_bucket{le=\"+Inf\"} 7 1700000000\n\
        weird{a=\"q\\\"uote\\\\\",b=\"\"} NaN\n\
        plain 1.5e3\n";
    let e = Exposition::parse(text).unwrap();
    assert_eq!(e.types["http_requests_total"], "counter");
    assert_eq!(
        e.value(
            "http_requests_total",
            &[
                ("endpoint", "/api/v1/rates/{ticker}"),
                ("method", "GET"),
                ("status_code", "200")
            ]
        ),
        3.0
    );
    assert_eq!(e.value("x_bucket", &[("le", "+Inf")]), 7.0);
    assert_eq!(e.series("weird")[0].labels["a"], "q\"uote\\");
    assert_eq!(e.value("plain", &[]), 1500.0);
    assert!(Exposition::parse("bad{a=1} 2").is_err());
    assert!(Exposition::parse("1bad 2").is_err());
    assert!(Exposition::parse("ok{a=\"x\"").is_err());
}

// ---------------------------------------------------------------------------
// The gateway under test
// ---------------------------------------------------------------------------

/// Which filter records the metrics.
#[derive(Clone, Copy)]
enum Recorder {
    /// The metrics filter, first in the chain.
    MetricsFilter,
    /// The auth filter (authentication off, so every request passes) with a
    /// `metrics` section, after the local rate limit.
    AuthFilter,
}

fn gateway_yaml(api: u16, stall: u16, recorder: Recorder, config: &str) -> String {
    let stats = gateway_part("stats_config", 0);
    let local_reply = gateway_part("local_reply_config", 10);
    let (metrics, auth) = match recorder {
        Recorder::MetricsFilter => (wasm_filter("metrics_filter", config), String::new()),
        Recorder::AuthFilter => (
            String::new(),
            wasm_filter(
                "auth_filter",
                &format!(r#"{{"enabled":false,"metrics":{config}}}"#),
            ),
        ),
    };
    let validation = wasm_filter("validation_filter", "{}");
    let cluster = |name, port: u16| cluster(name, "0.5s", Some(&port.to_string()));
    let clusters = [
        cluster("data_service", api),
        cluster("calculation_service", api),
        cluster("auth_service", api),
        cluster("stall_service", stall),
        cluster("closed_service", free_port()),
    ]
    .concat();
    format!(
        r#"
{ADMIN}
stats_flush_interval: 0.2s
{stats}
static_resources:
  listeners:
{listener}
          generate_request_id: true
          always_set_request_id_in_response: true
{local_reply}
{virtual_host}
              - match: {{ safe_regex: {{ regex: "/api/v1/rates/[^/]+" }}, headers: [{{ name: ":method", string_match: {{ exact: GET }} }}] }}
                route: {{ cluster: data_service, regex_rewrite: {{ pattern: {{ regex: "^/api/v1/rates/" }}, substitution: "/rates/" }}, timeout: 3s }}
              - match: {{ path: /api/v1/calculate-locate }}
                route: {{ cluster: calculation_service, timeout: 3s }}
              - match: {{ path: /api/v1/auth/token }}
                route: {{ cluster: auth_service, timeout: 3s }}
                typed_per_filter_config:
                  envoy.filters.http.local_ratelimit:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
                    stat_prefix: token_route
                    token_bucket: {{ max_tokens: 2, tokens_per_fill: 2, fill_interval: 3600s }}
                    filter_enabled: {{ runtime_key: rl_enabled, default_value: {{ numerator: 100, denominator: HUNDRED }} }}
                    filter_enforced: {{ runtime_key: rl_enforced, default_value: {{ numerator: 100, denominator: HUNDRED }} }}
              - match: {{ path: /health/stall }}
                route: {{ cluster: stall_service, timeout: 0.3s }}
              - match: {{ path: /health/closed }}
                route: {{ cluster: closed_service, timeout: 1s }}
          http_filters:{metrics}
          - name: envoy.filters.http.local_ratelimit
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit
              stat_prefix: local_rate_limit{auth}{validation}
{BUFFER}
{ROUTER}
  clusters:{clusters}
"#,
        listener = http_listener("main", LISTENER_PORT, "public_http"),
        virtual_host = virtual_host("gateway")
    )
}

struct Gateway {
    envoy: Envoy,
    upstream: CountingUpstream,
    client: reqwest::Client,
    _stall: tokio::task::JoinHandle<()>,
}

impl Gateway {
    async fn start(recorder: Recorder, config: &str) -> Gateway {
        let upstream = CountingUpstream::start().await;
        let (stall, stall_task) = stalling_upstream().await;
        let envoy = Envoy::start(&gateway_yaml(upstream.port, stall, recorder, config)).await;
        Gateway {
            envoy,
            upstream,
            client: reqwest::Client::new(),
            _stall: stall_task,
        }
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.envoy.url(path)).send().await.unwrap()
    }

    async fn post_json(&self, path: &str, body: &str) -> reqwest::Response {
        self.client
            .post(self.envoy.url(path))
            .header("content-type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .unwrap()
    }

    /// The status of `POST /api/v1/calculate-locate` with `body`.
    async fn calculate_status(&self, body: &str) -> u16 {
        self.post_json("/api/v1/calculate-locate", body)
            .await
            .status()
            .as_u16()
    }

    async fn scrape(&self) -> Exposition {
        let text = self.envoy.admin_get("/stats/prometheus").await;
        Exposition::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// Scrapes once `requests` requests in total have been recorded: the
    /// filter records a request when Envoy logs it, which may be just after
    /// the client has its response.
    async fn scrape_after(&self, requests: usize) -> Exposition {
        self.scrape_until(|e| {
            e.series("http_requests_total")
                .iter()
                .map(|s| s.value)
                .sum::<f64>()
                >= requests as f64
        })
        .await
    }

    /// Envoy's log once `ready` holds for it (or after 5 s).
    async fn log_until(&self, ready: impl Fn(&str) -> bool) -> String {
        for _ in 0..50 {
            let log = self.envoy.log();
            if ready(&log) {
                return log;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.envoy.log()
    }

    /// Scrapes until `ready` holds (histograms appear after a stats flush).
    async fn scrape_until(&self, ready: impl Fn(&Exposition) -> bool) -> Exposition {
        for _ in 0..50 {
            let e = self.scrape().await;
            if ready(&e) {
                return e;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.scrape().await
    }
}

const VALID: &str =
    r#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#;
const RATES: &str = "/api/v1/rates/{ticker}";
const LOCATE: &str = "/api/v1/calculate-locate";

fn requests(method: &str, endpoint: &str, status: &str) -> [(&'static str, String); 3] {
    [
        ("endpoint", endpoint.to_owned()),
        ("method", method.to_owned()),
        ("status_code", status.to_owned()),
    ]
}

fn count(e: &Exposition, labels: &[(&'static str, String)]) -> f64 {
    let l: Vec<(&str, &str)> = labels.iter().map(|(k, v)| (*k, v.as_str())).collect();
    e.value("http_requests_total", &l)
}

async fn request_counters_rise_by_exactly_the_requests_sent_per_status_code_with(
    recorder: Recorder,
) {
    let gw = Gateway::start(recorder, "{}").await;
    // Warm-up so every series exists before the first scrape.
    assert_eq!(gw.get("/api/v1/rates/AAPL").await.status(), 200);
    let before = gw.scrape_after(1).await;

    for _ in 0..3 {
        assert_eq!(gw.get("/api/v1/rates/MSFT").await.status(), 200);
    }
    for ticker in ["TOOLONG1", "A1"] {
        assert_eq!(
            gw.get(&format!("/api/v1/rates/{ticker}")).await.status(),
            400
        );
    }
    for _ in 0..2 {
        assert_eq!(gw.calculate_status(VALID).await, 200);
    }
    assert_eq!(gw.calculate_status("{}").await, 400);
    for i in 0..4 {
        assert_eq!(gw.get(&format!("/random/path/{i}")).await.status(), 404);
    }
    let after = gw.scrape_after(1 + 3 + 2 + 2 + 1 + 4).await;

    let delta =
        |labels: [(&'static str, String); 3]| count(&after, &labels) - count(&before, &labels);
    assert_eq!(delta(requests("GET", RATES, "200")), 3.0);
    assert_eq!(delta(requests("GET", RATES, "400")), 2.0);
    assert_eq!(delta(requests("POST", LOCATE, "200")), 2.0);
    assert_eq!(delta(requests("POST", LOCATE, "400")), 1.0);
    assert_eq!(delta(requests("GET", "unmatched", "404")), 4.0);
    assert_eq!(
        after.types.get("http_requests_total").map(String::as_str),
        Some("counter")
    );

    // Every series has exactly the SPEC §8 labels, and no raw path leaks
    // into `endpoint`.
    let series = after.series("http_requests_total");
    assert!(!series.is_empty());
    let endpoints: BTreeSet<&str> = series
        .iter()
        .map(|s| s.labels["endpoint"].as_str())
        .collect();
    for s in &series {
        let keys: Vec<&str> = s.labels.keys().map(String::as_str).collect();
        assert_eq!(keys, ["endpoint", "method", "status_code"], "{s:?}");
    }
    assert_eq!(endpoints, BTreeSet::from([LOCATE, RATES, "unmatched"]));
    assert_eq!(gw.upstream.count(), 1 + 3 + 2);
}

async fn durations_are_histograms_with_microsecond_buckets_from_100_us_to_10_s_with(
    recorder: Recorder,
) {
    let gw = Gateway::start(recorder, "{}").await;
    for _ in 0..4 {
        assert_eq!(gw.get("/api/v1/rates/KO").await.status(), 200);
    }
    assert_eq!(gw.calculate_status(VALID).await, 200);
    let e = gw
        .scrape_until(|e| {
            e.value(
                "http_request_duration_seconds_count",
                &[("endpoint", RATES)],
            ) >= 4.0
                && e.value(
                    "backend_request_duration_seconds_count",
                    &[("service", "data_service")],
                ) >= 4.0
        })
        .await;

    assert_eq!(
        e.types
            .get("http_request_duration_seconds")
            .map(String::as_str),
        Some("histogram")
    );
    assert_eq!(
        e.value(
            "http_request_duration_seconds_count",
            &[("endpoint", RATES)]
        ),
        4.0
    );
    assert_eq!(
        e.value(
            "http_request_duration_seconds_count",
            &[("endpoint", LOCATE)]
        ),
        1.0
    );
    let expected_le = [
        1e2,
        2.5e2,
        5e2,
        1e3,
        2.5e3,
        5e3,
        1e4,
        2.5e4,
        5e4,
        1e5,
        2.5e5,
        5e5,
        1e6,
        2.5e6,
        5e6,
        1e7,
        f64::INFINITY,
    ];
    for (name, label, value) in [
        ("http_request_duration_seconds_bucket", "endpoint", RATES),
        (
            "backend_request_duration_seconds_bucket",
            "service",
            "data_service",
        ),
    ] {
        let buckets: Vec<&Sample> = e
            .series(name)
            .into_iter()
            .filter(|s| s.labels.get(label).map(String::as_str) == Some(value))
            .collect();
        let mut le: Vec<f64> = buckets
            .iter()
            .map(|s| {
                let keys: BTreeSet<&str> = s.labels.keys().map(String::as_str).collect();
                assert_eq!(keys, BTreeSet::from([label, "le"]), "{s:?}");
                match s.labels["le"].as_str() {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap(),
                }
            })
            .collect();
        le.sort_by(|a, b| a.partial_cmp(b).unwrap());
        // Requests from 100 µs (answers the gateway gives itself), backend
        // calls from 500 µs.
        let from = if name.starts_with("backend") {
            5e2
        } else {
            1e2
        };
        let expected: Vec<f64> = expected_le.iter().copied().filter(|b| *b >= from).collect();
        assert_eq!(le, expected, "{name}");
        // Cumulative, and the +Inf bucket holds every observation.
        let inf = buckets
            .iter()
            .find(|s| s.labels["le"] == "+Inf")
            .unwrap()
            .value;
        assert_eq!(inf, 4.0, "{name}");
        // Loopback requests take well under 5 s: all in the 5 s bucket.
        let five_s = buckets
            .iter()
            .find(|s| s.labels["le"].parse::<f64>().ok() == Some(5e6))
            .unwrap()
            .value;
        assert_eq!(five_s, 4.0, "{name}");
    }
    // Microseconds: 4 loopback requests take more than 4 µs and less than 20 s.
    let sum = e.value("http_request_duration_seconds_sum", &[("endpoint", RATES)]);
    assert!(sum > 4.0 && sum < 2e7, "sum {sum}");
}

async fn backend_requests_are_counted_per_service_and_outcome_with(recorder: Recorder) {
    let gw = Gateway::start(recorder, "{}").await;
    for _ in 0..2 {
        assert_eq!(gw.get("/api/v1/rates/GME").await.status(), 200);
    }
    assert_eq!(gw.calculate_status(VALID).await, 200);
    // Rejected by validation: never reaches calculation_service.
    assert_eq!(gw.calculate_status("[]").await, 400);
    assert_eq!(gw.get("/health/closed").await.status(), 503);
    assert_eq!(gw.get("/health/stall").await.status(), 504);

    let e = gw.scrape_after(6).await;
    let backend = |service: &str, status: &str| {
        e.value(
            "backend_requests_total",
            &[("service", service), ("status", status)],
        )
    };
    assert_eq!(backend("data_service", "success"), 2.0);
    assert_eq!(backend("data_service", "error"), 0.0);
    assert_eq!(backend("calculation_service", "success"), 1.0);
    assert_eq!(backend("closed_service", "error"), 1.0);
    assert_eq!(backend("stall_service", "error"), 1.0);
    assert_eq!(
        e.series("backend_requests_total").len(),
        4,
        "one series per service and outcome seen: {:?}",
        e.series("backend_requests_total")
    );
    assert_eq!(
        e.types.get("backend_requests_total").map(String::as_str),
        Some("counter")
    );
}

async fn rate_limited_requests_are_counted_and_logged_with(recorder: Recorder) {
    let gw = Gateway::start(recorder, "{}").await;
    let mut statuses = Vec::new();
    let mut limited_ids = Vec::new();
    for _ in 0..5 {
        let r = gw.post_json("/api/v1/auth/token", "{}").await;
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().get("retry-after").is_some());
            let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"]["code"], "RATE_LIMITED");
            assert_eq!(body["error"]["request_id"], id.as_str());
            limited_ids.push(id);
        }
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429]);
    let e = gw.scrape_after(5).await;
    assert_eq!(e.value("rate_limit_exceeded_total", &[]), 3.0);
    assert_eq!(
        count(&e, &requests("POST", "/api/v1/auth/token", "429")),
        3.0
    );
    let log = gw
        .log_until(|log| log.matches("msg=\"Rate limit exceeded\"").count() >= 3)
        .await;
    for id in &limited_ids {
        assert!(
            log.lines()
                .any(|l| l.contains("msg=\"Rate limit exceeded\"")
                    && l.contains(&format!("request_id=\"{id}\""))
                    && l.contains("endpoint=\"/api/v1/auth/token\"")),
            "no Rate limit exceeded line for {id}:\n{log}"
        );
    }
}

async fn slow_requests_and_backend_failures_are_logged_with_the_request_id_with(
    recorder: Recorder,
) {
    let gw = Gateway::start(recorder, r#"{"slow_request_ms":100}"#).await;
    assert_eq!(gw.get("/api/v1/rates/AAPL").await.status(), 200);
    let r = gw.get("/health/stall").await;
    assert_eq!(r.status(), 504);
    let id = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    let log = gw
        .log_until(|log| {
            log.lines()
                .filter(|l| l.contains(&id))
                .filter(|l| l.contains("Slow request") || l.contains("Backend service error"))
                .count()
                >= 2
        })
        .await;
    let line_with = |msg: &str| {
        log.lines()
            .find(|l| l.contains(&format!("msg=\"{msg}\"")) && l.contains(&id))
            .unwrap_or_else(|| panic!("no {msg} line for {id}:\n{log}"))
            .to_owned()
    };
    let slow = line_with("Slow request");
    assert!(slow.contains("level=WARN"), "{slow}");
    assert!(slow.contains("threshold_ms=100"), "{slow}");
    assert!(slow.contains("endpoint=\"/health/{service}\""), "{slow}");
    let failed = line_with("Backend service error");
    assert!(failed.contains("level=ERROR"), "{failed}");
    assert!(failed.contains("service=\"stall_service\""), "{failed}");
    assert!(failed.contains("status_code=504"), "{failed}");
    // The fast request is not slow.
    assert_eq!(log.matches("msg=\"Slow request\"").count(), 1, "{log}");
}

async fn an_invalid_metrics_config_keeps_envoy_from_starting_with(recorder: Recorder) {
    for (config, field) in [
        (r#"{"slow_request_ms":0}"#, "slow_request_ms"),
        (r#"{"slow_request_ms":"fast"}"#, "slow_request_ms"),
        (r#"{"slow_ms":5}"#, "slow_ms"),
    ] {
        let err = Envoy::try_start(&gateway_yaml(free_port(), free_port(), recorder, config))
            .await
            .err()
            .unwrap_or_else(|| panic!("envoy accepted {config}"));
        assert!(err.contains(field), "{config}: {err}");
    }
}

// ---------------------------------------------------------------------------
// Each behaviour with either filter recording
// ---------------------------------------------------------------------------

/// Each check twice: `<check>` with the metrics filter recording, and
/// `<check>_when_the_auth_filter_records` with the auth filter recording
/// (as the rendered gateway runs it); `<check>_with` holds the check.
macro_rules! with_either_recorder {
    ($($check:ident, $when_auth:ident, $with:ident;)*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $check() {
            $with(Recorder::MetricsFilter).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $when_auth() {
            $with(Recorder::AuthFilter).await;
        }
    )*};
}

with_either_recorder! {
    request_counters_rise_by_exactly_the_requests_sent_per_status_code,
    request_counters_rise_by_exactly_the_requests_sent_per_status_code_when_the_auth_filter_records,
    request_counters_rise_by_exactly_the_requests_sent_per_status_code_with;
    durations_are_histograms_with_microsecond_buckets_from_100_us_to_10_s,
    durations_are_histograms_with_microsecond_buckets_from_100_us_to_10_s_when_the_auth_filter_records,
    durations_are_histograms_with_microsecond_buckets_from_100_us_to_10_s_with;
    backend_requests_are_counted_per_service_and_outcome,
    backend_requests_are_counted_per_service_and_outcome_when_the_auth_filter_records,
    backend_requests_are_counted_per_service_and_outcome_with;
    rate_limited_requests_are_counted_and_logged,
    rate_limited_requests_are_counted_and_logged_when_the_auth_filter_records,
    rate_limited_requests_are_counted_and_logged_with;
    slow_requests_and_backend_failures_are_logged_with_the_request_id,
    slow_requests_and_backend_failures_are_logged_with_the_request_id_when_the_auth_filter_records,
    slow_requests_and_backend_failures_are_logged_with_the_request_id_with;
    an_invalid_metrics_config_keeps_envoy_from_starting,
    an_invalid_metrics_config_keeps_envoy_from_starting_when_the_auth_filter_records,
    an_invalid_metrics_config_keeps_envoy_from_starting_with;
}

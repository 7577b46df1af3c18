//! The service's own metrics, exposed on `/metrics` (Prometheus text
//! format) from a registry of its own (see [`service_http::metrics`]), with
//! `process_*` and `ratelimit_build_info`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use service_http::metrics::prometheus::{
    GaugeVec, Histogram, IntCounter, IntCounterVec, IntGaugeVec, Opts, Registry,
};
use service_http::metrics::{duration_histogram, encode, register, registry};

/// Per client seen in its current window: hits counted and the limit.
/// Entries whose window has ended are dropped, so the label set stays
/// bounded by the clients active within one window.
#[derive(Debug, Default)]
pub struct Utilisation {
    clients: Mutex<HashMap<String, Used>>,
}

#[derive(Debug, Clone, Copy)]
struct Used {
    used: u64,
    max: u64,
    until: Instant,
}

/// Entries kept before expired ones are swept on insert.
const UTILISATION_SWEEP_AT: usize = 10_000;

impl Utilisation {
    /// Records a client's state after a decision.
    pub fn record(&self, client_id: &str, used: u64, max: u64, reset: Duration) {
        let now = Instant::now();
        let Ok(mut clients) = self.clients.lock() else {
            return;
        };
        if clients.len() >= UTILISATION_SWEEP_AT && !clients.contains_key(client_id) {
            clients.retain(|_, u| u.until > now);
        }
        let entry = Used {
            used: used.min(max),
            max,
            until: now + reset,
        };
        match clients.get_mut(client_id) {
            Some(u) => *u = entry,
            None => {
                clients.insert(client_id.to_owned(), entry);
            }
        }
    }

    /// `(client_id, ratio)` of every client whose window is still running.
    pub fn snapshot(&self) -> Vec<(String, f64)> {
        let now = Instant::now();
        let Ok(mut clients) = self.clients.lock() else {
            return Vec::new();
        };
        clients.retain(|_, u| u.until > now);
        let mut out: Vec<(String, f64)> = clients
            .iter()
            .map(|(id, u)| (id.clone(), u.used as f64 / u.max.max(1) as f64))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

/// A counter family bounded in label sets: once `cap` label sets exist, a
/// new one is counted under the caller's overflow label values.
#[derive(Debug)]
pub struct Series {
    cap: usize,
    counter: IntCounterVec,
    seen: Mutex<HashSet<Vec<String>>>,
}

/// Distinct label sets kept per series family (`detailed_metric` values are
/// client ids and addresses: unbounded without a cap).
pub const SERIES_MAX: usize = 1_000;

impl Series {
    fn new(name: &str, help: &str, labels: &[&str], cap: usize) -> Self {
        Self {
            cap,
            counter: IntCounterVec::new(Opts::new(name, help), labels)
                .expect("valid metric options"),
            seen: Mutex::default(),
        }
    }

    /// Adds `n` to the series with label values `values` (in the family's
    /// label order), or to `overflow` when the cap is reached and `values`
    /// is new.
    pub fn add(&self, values: &[&str], overflow: &[&str], n: u64) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        let key: Vec<String> = values.iter().map(|v| (*v).to_owned()).collect();
        let values = if seen.contains(&key) {
            values
        } else if seen.len() >= self.cap {
            let overflow_key = overflow.iter().map(|v| (*v).to_owned()).collect();
            seen.insert(overflow_key);
            overflow
        } else {
            seen.insert(key);
            values
        };
        self.counter.with_label_values(values).inc_by(n);
    }

    /// Value of one label set (tests).
    pub fn get(&self, values: &[&str]) -> u64 {
        if self.seen.lock().is_ok_and(|seen| {
            seen.contains(&values.iter().map(|v| (*v).to_owned()).collect::<Vec<_>>())
        }) {
            self.counter.with_label_values(values).get()
        } else {
            0
        }
    }
}

/// The service's own metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Decisions answered `OK` with every counter within its limit.
    pub ok: IntCounter,
    /// Decisions answered `OVER_LIMIT` because a limit was exhausted.
    pub over_limit: IntCounter,
    /// Decisions answered `OK` because the storage failed (failure mode allow).
    pub failure_allowed: IntCounter,
    /// Decisions answered `OVER_LIMIT` because the storage failed (failure mode deny).
    pub failure_denied: IntCounter,
    /// Descriptors that matched no rule (answered `OK`).
    pub unmatched: IntCounter,
    /// Storage operations that failed or timed out.
    pub storage_errors: IntCounter,
    /// Limits file reloads that changed the limits in force.
    pub reloads: IntCounter,
    /// Limits file reloads rejected (the previous limits stayed in force).
    pub reload_errors: IntCounter,
    /// Per-client use of the current window (`rate_limit_client_utilization_ratio`).
    pub utilisation: Utilisation,
    utilisation_gauge: GaugeVec,
    storage_info: IntGaugeVec,
    /// Hits over a `shadow_mode` limit, let through, by node
    /// (`ratelimit_shadow_mode_over_limit_total{node}`).
    pub shadow_over_limit: Series,
    /// Hits of nodes with `detailed_metric`, by node, descriptor values and
    /// result (`ratelimit_detailed_hits_total{node,descriptor,result}`).
    pub detailed: Series,
    latency: Histogram,
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid metric options");
    register(registry, &c);
    c
}

impl Default for Metrics {
    fn default() -> Self {
        let registry = registry("ratelimit_build_info", env!("CARGO_PKG_VERSION"), &[]);
        let decisions = IntCounterVec::new(
            Opts::new(
                "ratelimit_decisions_total",
                "ShouldRateLimit answers by result.",
            ),
            &["result"],
        )
        .expect("valid metric options");
        register(&registry, &decisions);
        let unmatched = counter(
            &registry,
            "ratelimit_unmatched_descriptors_total",
            "Descriptors that matched no rule.",
        );
        let storage_errors = counter(
            &registry,
            "ratelimit_storage_errors_total",
            "Counter storage operations that failed or timed out.",
        );
        let reloads = counter(
            &registry,
            "ratelimit_limits_reloads_total",
            "Limits file reloads applied.",
        );
        let reload_errors = counter(
            &registry,
            "ratelimit_limits_reload_errors_total",
            "Limits file reloads rejected.",
        );
        let storage_info = IntGaugeVec::new(
            Opts::new("ratelimit_storage_info", "Counter storage in use."),
            &["storage"],
        )
        .expect("valid metric options");
        register(&registry, &storage_info);
        let utilisation_gauge = GaugeVec::new(
            Opts::new(
                "rate_limit_client_utilization_ratio",
                "Share of its per-minute limit each client has used in its current window (1 = exhausted).",
            ),
            &["client_id"],
        )
        .expect("valid metric options");
        register(&registry, &utilisation_gauge);
        let shadow_over_limit = Series::new(
            "ratelimit_shadow_mode_over_limit_total",
            "Hits over a shadow_mode limit, counted and let through.",
            &["node"],
            SERIES_MAX,
        );
        register(&registry, &shadow_over_limit.counter);
        let detailed = Series::new(
            "ratelimit_detailed_hits_total",
            "Hits of limits with detailed_metric, per descriptor (at most 1000 series; more are counted as descriptor=\"_other\").",
            &["node", "descriptor", "result"],
            SERIES_MAX,
        );
        register(&registry, &detailed.counter);
        let latency = duration_histogram(
            &registry,
            "ratelimit_decision_duration_seconds",
            "Time to answer one ShouldRateLimit call.",
        );
        Self {
            ok: decisions.with_label_values(&["ok"]),
            over_limit: decisions.with_label_values(&["over_limit"]),
            failure_allowed: decisions.with_label_values(&["failure_allowed"]),
            failure_denied: decisions.with_label_values(&["failure_denied"]),
            unmatched,
            storage_errors,
            reloads,
            reload_errors,
            utilisation: Utilisation::default(),
            utilisation_gauge,
            storage_info,
            shadow_over_limit,
            detailed,
            latency,
            registry,
        }
    }
}

impl Metrics {
    /// Records the time spent answering one `ShouldRateLimit` call.
    pub fn observe_latency(&self, d: Duration) {
        self.latency.observe(d.as_secs_f64());
    }

    /// Total decisions by result (`ok`, `over_limit`, `failure_allowed`, `failure_denied`).
    pub fn decisions(&self, result: &str) -> u64 {
        match result {
            "ok" => self.ok.get(),
            "over_limit" => self.over_limit.get(),
            "failure_allowed" => self.failure_allowed.get(),
            "failure_denied" => self.failure_denied.get(),
            _ => 0,
        }
    }

    /// Prometheus text exposition; `storage` names the counter storage in
    /// use (`ratelimit_storage_info{storage}`).
    pub fn render(&self, storage: &str) -> String {
        self.storage_info.reset();
        self.storage_info.with_label_values(&[storage]).set(1);
        // Clients whose window ended leave the family.
        self.utilisation_gauge.reset();
        for (client, ratio) in self.utilisation.snapshot() {
            self.utilisation_gauge
                .with_label_values(&[client.as_str()])
                .set(ratio);
        }
        encode(&self.registry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_every_bucket_at_or_above_it_from_50us_to_10s() {
        let m = Metrics::default();
        m.observe_latency(Duration::from_micros(300));
        let text = m.render("memory");
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"0.00005\"} 0\n"));
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"0.00025\"} 0\n"));
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"0.0005\"} 1\n"));
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"10\"} 1\n"));
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"+Inf\"} 1\n"));
        assert!(text.contains("ratelimit_decision_duration_seconds_count 1\n"));
        assert!(
            text.contains("ratelimit_decision_duration_seconds_sum 0.0003\n"),
            "{text}"
        );
    }

    #[test]
    fn utilisation_is_used_over_limit_per_client_and_expires_with_the_window() {
        let m = Metrics::default();
        m.utilisation
            .record("test123", 48, 60, Duration::from_secs(30));
        m.utilisation
            .record("gone", 1, 10, Duration::from_millis(0));
        m.utilisation
            .record("we\"ird", 10, 10, Duration::from_secs(30));
        let text = m.render("memory");
        assert!(
            text.contains("rate_limit_client_utilization_ratio{client_id=\"test123\"} 0.8\n"),
            "{text}"
        );
        assert!(
            text.contains("rate_limit_client_utilization_ratio{client_id=\"we\\\"ird\"} 1\n"),
            "{text}"
        );
        assert!(!text.contains("gone"), "{text}");
    }

    #[test]
    fn series_are_bounded_and_overflow_into_one_label_set() {
        let s = Series::new("t_total", "t", &["d"], 2);
        let other = ["_other"];
        s.add(&["a"], &other, 1);
        s.add(&["b"], &other, 1);
        s.add(&["a"], &other, 1);
        s.add(&["c"], &other, 1);
        s.add(&["e"], &other, 1);
        assert_eq!(s.get(&["a"]), 2);
        assert_eq!(s.get(&["_other"]), 2);
        assert_eq!(s.get(&["c"]), 0);
    }

    #[test]
    fn decisions_are_labelled_by_result() {
        let m = Metrics::default();
        m.over_limit.inc();
        m.over_limit.inc();
        let text = m.render("memory");
        assert!(text.contains("ratelimit_decisions_total{result=\"over_limit\"} 2"));
        assert!(text.contains("ratelimit_decisions_total{result=\"ok\"} 0"));
        assert!(text.contains("ratelimit_storage_info{storage=\"memory\"} 1\n"));
        let text = m.render("redis");
        assert!(text.contains("ratelimit_storage_info{storage=\"redis\"} 1\n"));
        assert!(!text.contains("storage=\"memory\""));
    }

    #[test]
    fn build_info_and_process_metrics_are_exported() {
        let text = Metrics::default().render("memory");
        assert!(text.contains(&format!(
            "ratelimit_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
        #[cfg(target_os = "linux")]
        for name in service_http::metrics::PROCESS_FAMILIES {
            assert!(text.contains(&format!("\n{name} ")), "{name}: {text}");
        }
    }

    #[test]
    fn two_services_in_one_process_count_apart() {
        let a = Metrics::default();
        let b = Metrics::default();
        a.ok.inc();
        assert!(a
            .render("memory")
            .contains("ratelimit_decisions_total{result=\"ok\"} 1\n"));
        assert!(b
            .render("memory")
            .contains("ratelimit_decisions_total{result=\"ok\"} 0\n"));
    }
}

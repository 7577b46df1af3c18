//! Counters exposed on `/metrics` (Prometheus text format).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A monotonically increasing counter.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    /// Adds one.
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    /// Current value.
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

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

/// Counters keyed by a rendered label set, bounded: once `cap` label sets
/// exist, a new one is counted under the caller's overflow label set.
#[derive(Debug)]
pub struct Series {
    cap: usize,
    counts: Mutex<BTreeMap<String, u64>>,
}

/// Distinct label sets kept per series family (`detailed_metric` values are
/// client ids and addresses: unbounded without a cap).
pub const SERIES_MAX: usize = 1_000;

impl Default for Series {
    fn default() -> Self {
        Self {
            cap: SERIES_MAX,
            counts: Mutex::new(BTreeMap::new()),
        }
    }
}

impl Series {
    /// Adds `n` to the series `labels` (rendered, e.g. `node="a"`), or to
    /// `overflow` when the cap is reached and `labels` is new.
    pub fn add(&self, labels: String, overflow: impl FnOnce() -> String, n: u64) {
        let Ok(mut counts) = self.counts.lock() else {
            return;
        };
        let key = if counts.len() >= self.cap && !counts.contains_key(&labels) {
            overflow()
        } else {
            labels
        };
        *counts.entry(key).or_insert(0) += n;
    }

    /// Value of one label set (tests).
    pub fn get(&self, labels: &str) -> u64 {
        self.counts
            .lock()
            .map(|c| c.get(labels).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
        if let Ok(counts) = self.counts.lock() {
            for (labels, n) in counts.iter() {
                let _ = writeln!(out, "{name}{{{labels}}} {n}");
            }
        }
    }
}

/// Prometheus label value escaping.
pub fn label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Upper bounds (seconds) of the decision latency histogram.
const LATENCY_BOUNDS: [f64; 10] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
];

/// The service's own metrics.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Decisions answered `OK` with every counter within its limit.
    pub ok: Counter,
    /// Decisions answered `OVER_LIMIT` because a limit was exhausted.
    pub over_limit: Counter,
    /// Decisions answered `OK` because the storage failed (failure mode allow).
    pub failure_allowed: Counter,
    /// Decisions answered `OVER_LIMIT` because the storage failed (failure mode deny).
    pub failure_denied: Counter,
    /// Descriptors that matched no rule (answered `OK`).
    pub unmatched: Counter,
    /// Storage operations that failed or timed out.
    pub storage_errors: Counter,
    /// Limits file reloads that changed the limits in force.
    pub reloads: Counter,
    /// Limits file reloads rejected (the previous limits stayed in force).
    pub reload_errors: Counter,
    /// Per-client use of the current window (`rate_limit_client_utilization_ratio`).
    pub utilisation: Utilisation,
    /// Hits over a `shadow_mode` limit, let through, by node
    /// (`ratelimit_shadow_mode_over_limit_total{node}`).
    pub shadow_over_limit: Series,
    /// Hits of nodes with `detailed_metric`, by node, descriptor values and
    /// result (`ratelimit_detailed_hits_total{node,descriptor,result}`).
    pub detailed: Series,
    latency_buckets: [Counter; 10],
    latency_count: Counter,
    latency_sum_micros: Counter,
}

impl Metrics {
    /// Records the time spent answering one `ShouldRateLimit` call.
    pub fn observe_latency(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            if secs <= *bound {
                bucket.inc();
            }
        }
        self.latency_count.inc();
        self.latency_sum_micros.0.fetch_add(
            u64::try_from(d.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
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

    /// Prometheus text exposition.
    pub fn render(&self, storage: &str) -> String {
        let mut out = String::with_capacity(2048);
        out.push_str("# HELP ratelimit_decisions_total ShouldRateLimit answers by result.\n");
        out.push_str("# TYPE ratelimit_decisions_total counter\n");
        for result in ["ok", "over_limit", "failure_allowed", "failure_denied"] {
            let _ = writeln!(
                out,
                "ratelimit_decisions_total{{result=\"{result}\"}} {}",
                self.decisions(result)
            );
        }
        let simple = [
            (
                "ratelimit_unmatched_descriptors_total",
                "Descriptors that matched no rule.",
                &self.unmatched,
            ),
            (
                "ratelimit_storage_errors_total",
                "Counter storage operations that failed or timed out.",
                &self.storage_errors,
            ),
            (
                "ratelimit_limits_reloads_total",
                "Limits file reloads applied.",
                &self.reloads,
            ),
            (
                "ratelimit_limits_reload_errors_total",
                "Limits file reloads rejected.",
                &self.reload_errors,
            ),
        ];
        for (name, help, c) in simple {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {}",
                c.get()
            );
        }
        let _ = writeln!(
            out,
            "# HELP ratelimit_storage_info Counter storage in use.\n# TYPE ratelimit_storage_info gauge\nratelimit_storage_info{{storage=\"{storage}\"}} 1"
        );
        out.push_str("# HELP rate_limit_client_utilization_ratio Share of its per-minute limit each client has used in its current window (1 = exhausted).\n");
        out.push_str("# TYPE rate_limit_client_utilization_ratio gauge\n");
        for (client, ratio) in self.utilisation.snapshot() {
            let _ = writeln!(
                out,
                "rate_limit_client_utilization_ratio{{client_id=\"{}\"}} {ratio}",
                label(&client)
            );
        }
        self.shadow_over_limit.render(
            &mut out,
            "ratelimit_shadow_mode_over_limit_total",
            "Hits over a shadow_mode limit, counted and let through.",
        );
        self.detailed.render(
            &mut out,
            "ratelimit_detailed_hits_total",
            "Hits of limits with detailed_metric, per descriptor (at most 1000 series; more are counted as descriptor=\"_other\").",
        );
        out.push_str(
            "# HELP ratelimit_decision_duration_seconds Time to answer one ShouldRateLimit call.\n",
        );
        out.push_str("# TYPE ratelimit_decision_duration_seconds histogram\n");
        for (bound, bucket) in LATENCY_BOUNDS.iter().zip(&self.latency_buckets) {
            let _ = writeln!(
                out,
                "ratelimit_decision_duration_seconds_bucket{{le=\"{bound}\"}} {}",
                bucket.get()
            );
        }
        let count = self.latency_count.get();
        let _ = writeln!(
            out,
            "ratelimit_decision_duration_seconds_bucket{{le=\"+Inf\"}} {count}"
        );
        let _ = writeln!(
            out,
            "ratelimit_decision_duration_seconds_sum {}",
            self.latency_sum_micros.get() as f64 / 1e6
        );
        let _ = writeln!(out, "ratelimit_decision_duration_seconds_count {count}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_lands_in_every_bucket_at_or_above_it() {
        let m = Metrics::default();
        m.observe_latency(Duration::from_micros(300));
        let text = m.render("memory");
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"0.00025\"} 0"));
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"0.0005\"} 1"));
        assert!(text.contains("ratelimit_decision_duration_seconds_bucket{le=\"+Inf\"} 1"));
        assert!(text.contains("ratelimit_decision_duration_seconds_count 1"));
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
        let s = Series {
            cap: 2,
            counts: Mutex::new(BTreeMap::new()),
        };
        let other = || "d=\"_other\"".to_owned();
        s.add("d=\"a\"".to_owned(), other, 1);
        s.add("d=\"b\"".to_owned(), other, 1);
        s.add("d=\"a\"".to_owned(), other, 1);
        s.add("d=\"c\"".to_owned(), other, 1);
        s.add("d=\"e\"".to_owned(), other, 1);
        assert_eq!(s.get("d=\"a\""), 2);
        assert_eq!(s.get("d=\"_other\""), 2);
        assert_eq!(s.get("d=\"c\""), 0);
    }

    #[test]
    fn decisions_are_labelled_by_result() {
        let m = Metrics::default();
        m.over_limit.inc();
        m.over_limit.inc();
        let text = m.render("memory");
        assert!(text.contains("ratelimit_decisions_total{result=\"over_limit\"} 2"));
        assert!(text.contains("ratelimit_decisions_total{result=\"ok\"} 0"));
    }
}

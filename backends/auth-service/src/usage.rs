//! `last_used_at` of API keys, kept off the request path.
//!
//! A successful verification calls [`KeyUsage::record`], which only checks
//! an in-memory map of the last write per key id: when the key's last write
//! is younger than the interval (60 s by default, [`crate::Config::key_use_interval`])
//! nothing happens; otherwise the key id and the current time are handed
//! to a background writer (a bounded queue, never awaited) that updates
//! the row. A failed write is logged and never fails a request; a full
//! queue drops the record (logged) and lets the next use try again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use store::Store;
use tokio::sync::mpsc;

/// Default shortest time between two `last_used_at` writes of one key.
pub const DEFAULT_KEY_USE_INTERVAL: Duration = Duration::from_secs(60);

/// Records waiting for the writer; beyond this a record is dropped.
const QUEUE: usize = 1024;

/// Keys tracked before entries older than the interval are dropped.
const MAX_TRACKED: usize = 10_000;

/// Throttled recorder of key use.
#[derive(Debug)]
pub struct KeyUsage {
    interval: Duration,
    last_write: Mutex<HashMap<String, Instant>>,
    queue: mpsc::Sender<(String, String)>,
}

impl KeyUsage {
    /// Starts the background writer over `store` (needs a Tokio runtime).
    pub fn start(store: Store, interval: Duration) -> Self {
        let (queue, mut rx) = mpsc::channel::<(String, String)>(QUEUE);
        tokio::spawn(async move {
            while let Some((key_id, at)) = rx.recv().await {
                if let Err(e) = store.record_api_key_use(&key_id, &at).await {
                    tracing::warn!(key_id, error = %e, "Could not record the key's last use");
                }
            }
        });
        Self {
            interval,
            last_write: Mutex::default(),
            queue,
        }
    }

    /// Whether a use of `key_id` at `now` is due for a write (none for the
    /// key in the last interval); if so, `now` becomes its last write.
    pub fn due(&self, key_id: &str, now: Instant) -> bool {
        let Ok(mut last) = self.last_write.lock() else {
            return false;
        };
        if let Some(at) = last.get_mut(key_id) {
            if now.saturating_duration_since(*at) < self.interval {
                return false;
            }
            *at = now;
            return true;
        }
        if last.len() >= MAX_TRACKED {
            let interval = self.interval;
            last.retain(|_, at| now.saturating_duration_since(*at) < interval);
            if last.len() >= MAX_TRACKED {
                last.clear();
            }
        }
        last.insert(key_id.to_owned(), now);
        true
    }

    /// Notes that `key_id` was accepted now: queues a write when one is due.
    /// Never waits and never fails.
    pub fn record(&self, key_id: &str) {
        if !self.due(key_id, Instant::now()) {
            return;
        }
        let at = store::time::now_rfc3339();
        if let Err(e) = self.queue.try_send((key_id.to_owned(), at)) {
            tracing::warn!(key_id, error = %e, "Key use not recorded (writer busy)");
            if let Ok(mut last) = self.last_write.lock() {
                last.remove(key_id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usage(interval: Duration) -> (KeyUsage, mpsc::Receiver<(String, String)>) {
        let (queue, rx) = mpsc::channel(4);
        let usage = KeyUsage {
            interval,
            last_write: Mutex::default(),
            queue,
        };
        (usage, rx)
    }

    #[test]
    fn a_key_is_due_at_most_once_per_interval() {
        let (usage, _rx) = usage(Duration::from_secs(60));
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        assert!(usage.due("key_a", t0));
        assert!(!usage.due("key_a", at(1)));
        assert!(!usage.due("key_a", at(59)));
        // Another key has its own clock.
        assert!(usage.due("key_b", at(30)));
        assert!(usage.due("key_a", at(60)));
        assert!(!usage.due("key_a", at(119)));
        assert!(usage.due("key_a", at(120)));
        assert!(!usage.due("key_b", at(89)));
        assert!(usage.due("key_b", at(90)));
    }

    #[test]
    fn a_zero_interval_writes_every_use() {
        let (usage, _rx) = usage(Duration::ZERO);
        let t0 = Instant::now();
        assert!(usage.due("key_a", t0));
        assert!(usage.due("key_a", t0));
    }

    #[test]
    fn the_map_of_tracked_keys_stays_bounded() {
        let (usage, _rx) = usage(Duration::from_secs(60));
        let t0 = Instant::now();
        for i in 0..MAX_TRACKED {
            assert!(usage.due(&format!("key_{i}"), t0));
        }
        // Full of recent entries: cleared rather than grown.
        assert!(usage.due("key_new", t0 + Duration::from_secs(1)));
        assert!(usage.last_write.lock().unwrap().len() <= MAX_TRACKED);
        assert!(!usage.due("key_new", t0 + Duration::from_secs(2)));
    }

    #[test]
    fn a_full_queue_drops_the_record_and_lets_the_next_use_retry() {
        let (usage, mut rx) = usage(Duration::from_secs(60));
        for i in 0..4 {
            usage.record(&format!("key_{i}"));
        }
        usage.record("key_dropped");
        assert!(
            usage.due("key_dropped", Instant::now()),
            "a dropped record must not count as written"
        );
        let mut queued = Vec::new();
        while let Ok((key_id, at)) = rx.try_recv() {
            assert!(store::time::parse_rfc3339(&at).is_some());
            queued.push(key_id);
        }
        assert_eq!(queued, ["key_0", "key_1", "key_2", "key_3"]);
    }
}

//! The in-process cache of stocks and clients (entries live at most
//! [`StoreOptions::rate_cache_ttl`]).

use super::*;

/// Entries younger than the TTL are served without a query.
#[derive(Debug)]
pub(crate) struct TtlCache<T> {
    entries: HashMap<String, (Instant, T)>,
}

impl<T> Default for TtlCache<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<T: Clone> TtlCache<T> {
    pub(crate) fn get(cache: &Mutex<Self>, key: &str, ttl: Duration) -> Option<T> {
        let c = cache.lock().ok()?;
        let (at, v) = c.entries.get(key)?;
        (at.elapsed() < ttl).then(|| v.clone())
    }

    pub(crate) fn put(cache: &Mutex<Self>, key: &str, fetched_at: Instant, value: T) {
        if let Ok(mut c) = cache.lock() {
            if c.entries.len() > 10_000 {
                c.entries.clear();
            }
            c.entries.insert(key.to_owned(), (fetched_at, value));
        }
    }

    pub(crate) fn forget(cache: &Mutex<Self>, key: &str) {
        if let Ok(mut c) = cache.lock() {
            c.entries.remove(key);
        }
    }
}

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

    /// The entry for `key` while younger than `ttl`, else what `fetch`
    /// reads, kept (aged from before the read) when found: absent keys are
    /// not cached.
    pub(crate) async fn read_through(
        cache: &Mutex<Self>,
        key: &str,
        ttl: Duration,
        fetch: impl std::future::Future<Output = Result<Option<T>>>,
    ) -> Result<Option<T>> {
        if let Some(v) = Self::get(cache, key, ttl) {
            return Ok(Some(v));
        }
        let fetched_at = Instant::now();
        let value = fetch.await?;
        if let Some(v) = &value {
            Self::put(cache, key, fetched_at, v.clone());
        }
        Ok(value)
    }

    pub(crate) fn forget(cache: &Mutex<Self>, key: &str) {
        if let Ok(mut c) = cache.lock() {
            c.entries.remove(key);
        }
    }
}

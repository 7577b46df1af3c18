//! The host effects the auth logic needs, and an in-memory double.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

use super::decision::AttemptStatus;

/// What the auth logic asks of the proxy.
pub trait Host {
    /// Current time, milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
    /// How far real time may be ahead of [`Host::now_ms`] (a clock read
    /// from a periodic tick lags by up to one period). Cache ages and
    /// expiries are judged at `now_ms() + clock_slack_ms()`, so a coarse
    /// clock never stretches a TTL.
    fn clock_slack_ms(&self) -> u64 {
        0
    }
    /// Reads a shared-data value.
    fn shared_get(&self, key: &str) -> Option<Vec<u8>>;
    /// Writes a shared-data value (best effort).
    fn shared_set(&self, key: &str, value: &[u8]);
    /// Reads a shared-data value together with its version (Envoy's CAS
    /// number), for a later [`Host::shared_set_if_unchanged`]. `(None,
    /// None)` when the key does not exist.
    fn shared_get_versioned(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>);
    /// Writes a shared-data value only if the key is still at `version`
    /// (compare-and-swap); `None` writes unconditionally (a key not created
    /// yet). Another worker's write in between gives
    /// [`SharedWrite::Conflict`].
    fn shared_set_if_unchanged(&self, key: &str, value: &[u8], version: Option<u32>)
        -> SharedWrite;
    /// Adds one to `authentication_attempts_total{status}`.
    fn count_attempt(&self, status: AttemptStatus);
    /// Emits a warning-level log line (already formatted as logfmt).
    fn log_warn(&self, line: &str);
    /// The downstream peer's address (Envoy `source.address`, port
    /// included or not), for throttling failed authentications. Read only
    /// when a request is not served from the local cache.
    fn source_address(&self) -> Option<String> {
        None
    }
}

/// How a conditional shared-data write ([`Host::shared_set_if_unchanged`])
/// ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWrite {
    /// The value is stored.
    Written,
    /// Another worker wrote the key since it was read: read it again.
    Conflict,
    /// The host refused the write for another reason.
    Failed,
}

/// In-memory [`Host`] for tests: a settable clock, a map for shared data and
/// recorders for metrics and logs.
#[derive(Debug, Default)]
pub struct RecordingHost {
    /// Current time returned by [`Host::now_ms`].
    pub now_ms: Cell<u64>,
    /// Shared data.
    pub shared: RefCell<HashMap<String, Vec<u8>>>,
    /// Every counted attempt, in order.
    pub attempts: RefCell<Vec<AttemptStatus>>,
    /// Every log line, in order.
    pub logs: RefCell<Vec<String>>,
    /// The peer address [`Host::source_address`] returns.
    pub source: RefCell<Option<String>>,
    /// How many times [`Host::source_address`] was called.
    pub source_reads: Cell<u32>,
    /// Version of every shared-data key (bumped by every write).
    pub versions: RefCell<HashMap<String, u32>>,
    /// How many of the next conditional writes of an existing key find
    /// that another worker wrote it first (its version moves on, its value
    /// stays).
    pub cas_conflicts: Cell<u32>,
    /// Shared-data reads so far (plain and versioned).
    pub shared_reads: Cell<u32>,
    /// Shared-data writes attempted so far (plain and conditional).
    pub shared_writes: Cell<u32>,
}

impl RecordingHost {
    /// A host whose clock reads `now_ms`.
    pub fn at(now_ms: u64) -> Self {
        let host = Self::default();
        host.now_ms.set(now_ms);
        host
    }

    /// Moves the clock forward.
    pub fn advance_ms(&self, ms: u64) {
        self.now_ms.set(self.now_ms.get() + ms);
    }

    /// Makes the requests that follow come from `address`.
    pub fn set_source(&self, address: &str) {
        *self.source.borrow_mut() = Some(address.to_owned());
    }

    /// Number of shared-data keys in use.
    pub fn shared_len(&self) -> usize {
        self.shared.borrow().len()
    }

    /// Shared-data host calls so far (reads and writes).
    pub fn shared_calls(&self) -> u32 {
        self.shared_reads.get() + self.shared_writes.get()
    }

    fn bump_version(&self, key: &str) {
        let mut versions = self.versions.borrow_mut();
        let version = versions.entry(key.to_owned()).or_insert(0);
        *version = version.wrapping_add(1).max(1);
    }
}

impl Host for RecordingHost {
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        self.shared_reads.set(self.shared_reads.get() + 1);
        self.shared.borrow().get(key).cloned()
    }
    fn shared_set(&self, key: &str, value: &[u8]) {
        self.shared_writes.set(self.shared_writes.get() + 1);
        self.bump_version(key);
        self.shared
            .borrow_mut()
            .insert(key.to_owned(), value.to_vec());
    }
    fn shared_get_versioned(&self, key: &str) -> (Option<Vec<u8>>, Option<u32>) {
        self.shared_reads.set(self.shared_reads.get() + 1);
        let value = self.shared.borrow().get(key).cloned();
        let version = self.versions.borrow().get(key).copied();
        (value, version)
    }
    fn shared_set_if_unchanged(
        &self,
        key: &str,
        value: &[u8],
        version: Option<u32>,
    ) -> SharedWrite {
        self.shared_writes.set(self.shared_writes.get() + 1);
        if version.is_some() && self.cas_conflicts.get() > 0 {
            self.cas_conflicts.set(self.cas_conflicts.get() - 1);
            self.bump_version(key);
            return SharedWrite::Conflict;
        }
        // Envoy's rule: version 0 (none) writes unconditionally.
        let current = self.versions.borrow().get(key).copied();
        if version.is_some() && version != current {
            return SharedWrite::Conflict;
        }
        self.bump_version(key);
        self.shared
            .borrow_mut()
            .insert(key.to_owned(), value.to_vec());
        SharedWrite::Written
    }
    fn count_attempt(&self, status: AttemptStatus) {
        self.attempts.borrow_mut().push(status);
    }
    fn log_warn(&self, line: &str) {
        self.logs.borrow_mut().push(line.to_owned());
    }
    fn source_address(&self) -> Option<String> {
        self.source_reads.set(self.source_reads.get() + 1);
        self.source.borrow().clone()
    }
}

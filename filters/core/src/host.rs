//! The one host boundary of the filters: everything the auth, validation
//! and metrics logic asks of the proxy goes through [`Host`]. The
//! proxy-wasm implementation is `filter_host::ProxyHost` (filters/host);
//! [`RecordingHost`] is the in-memory double the tests and benches use.
//!
//! Every method takes `&self`: the proxy's host calls are free functions,
//! and the double records through cells, so one host value can be handed
//! to the auth logic (which keeps it behind `&dyn Host`) and to the
//! metrics and validation logic alike.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;

/// Counter or histogram.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetricKind {
    Counter,
    Histogram,
}

/// Level of a log line handed to the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogLevel {
    Debug,
    Info,
    Warn,
    Error,
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

/// What the filters' logic asks of the proxy.
pub trait Host {
    /// A request header of the current request (names are lower-case),
    /// `None` when absent. Envoy does not expose request headers to a body
    /// callback once they have gone on.
    fn request_header(&self, name: &str) -> Option<String>;
    /// The first `len` bytes of the buffered request body.
    fn request_body(&self, len: usize) -> Option<Vec<u8>>;
    /// The downstream peer's address (Envoy `source.address`, port
    /// included or not).
    fn source_address(&self) -> Option<String>;
    /// Ends the request with a local reply.
    fn send_reply(&self, status: u16, headers: &[(&str, &str)], body: &str);

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
    /// Writes a shared-data value (best effort): an unconditional
    /// [`Host::shared_set_if_unchanged`], a refused write logged at debug.
    fn shared_set(&self, key: &str, value: &[u8]) {
        if self.shared_set_if_unchanged(key, value, None) == SharedWrite::Failed {
            self.log(LogLevel::Debug, "filter: shared data write failed");
        }
    }
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

    /// Defines (or looks up) a metric; `None` when the host refuses.
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32>;
    /// Adds `by` to the counter `id`.
    fn increment_metric(&self, id: u32, by: i64);
    /// Records one histogram sample.
    fn record_metric(&self, id: u32, value: u64);
    /// Adds one to the filter's buffered counter in `slot` of its
    /// [`PendingCounts`] (set up when the filter is configured); the proxy
    /// side hands the totals over at its tick, so counting costs no host
    /// call.
    fn count(&self, slot: usize);

    /// Emits a log line (already formatted as logfmt).
    fn log(&self, level: LogLevel, line: &str);
}

/// Counter increments not yet handed to the host, one slot per counter.
#[derive(Debug, Default)]
pub struct PendingCounts {
    /// Metric id and the increments since the last flush.
    slots: Vec<(u32, i64)>,
}

impl PendingCounts {
    /// A new slot for the counter `id`.
    pub fn add_slot(&mut self, id: u32) -> usize {
        self.slots.push((id, 0));
        self.slots.len() - 1
    }

    /// Counts one more in `slot` (from [`PendingCounts::add_slot`]).
    pub fn count(&mut self, slot: usize) {
        if let Some((_, pending)) = self.slots.get_mut(slot) {
            *pending += 1;
        }
    }

    /// Increments not yet handed to the host, over every counter.
    pub fn pending(&self) -> i64 {
        self.slots.iter().map(|(_, n)| n).sum()
    }

    /// Hands every counter's pending increments to `increment` (one call
    /// per counter that has any) and starts counting from zero.
    pub fn flush(&mut self, mut increment: impl FnMut(u32, i64)) {
        for (id, pending) in &mut self.slots {
            if *pending != 0 {
                increment(*id, *pending);
                *pending = 0;
            }
        }
    }
}

/// Status, headers and body of a local reply sent through a
/// [`RecordingHost`].
pub type SentReply = (u16, Vec<(String, String)>, String);

/// In-memory [`Host`] for tests and benches: a settable clock, request
/// headers and body, a map for shared data, and recorders for replies,
/// metrics and logs.
#[derive(Debug, Default)]
pub struct RecordingHost {
    /// Current time returned by [`Host::now_ms`].
    pub now_ms: Cell<u64>,
    /// The request headers [`Host::request_header`] answers from.
    pub headers: RefCell<Vec<(String, String)>>,
    /// While set, request headers are out of reach, as in Envoy's body
    /// callbacks: [`Host::request_header`] answers `None` and counts the
    /// read in `hidden_header_reads`.
    pub headers_hidden: Cell<bool>,
    /// Header reads made while `headers_hidden` was set.
    pub hidden_header_reads: Cell<u32>,
    /// The buffered request body.
    pub body: RefCell<Vec<u8>>,
    /// Every local reply sent, in order.
    pub replies: RefCell<Vec<SentReply>>,
    /// Shared data.
    pub shared: RefCell<HashMap<String, Vec<u8>>>,
    /// Every buffered count ([`Host::count`]): its slot, in order.
    pub counted: RefCell<Vec<usize>>,
    /// Every defined metric; a metric's id is its index.
    pub metrics: RefCell<Vec<(MetricKind, String)>>,
    /// Counter totals by metric id.
    pub counters: RefCell<HashMap<u32, i64>>,
    /// Host calls that incremented a counter.
    pub increments: Cell<usize>,
    /// Histogram samples by metric id.
    pub histograms: RefCell<HashMap<u32, Vec<u64>>>,
    /// Every log line, in order.
    pub logs: RefCell<Vec<String>>,
    /// The level of every line in `logs`.
    pub log_levels: RefCell<Vec<LogLevel>>,
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

    /// A host whose request carries `headers`.
    pub fn with_headers(headers: &[(&str, &str)]) -> Self {
        let host = Self::default();
        *host.headers.borrow_mut() = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
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

    /// The id of the metric defined as `name`.
    pub fn metric_id(&self, name: &str) -> Option<u32> {
        let metrics = self.metrics.borrow();
        let index = metrics.iter().position(|(_, n)| n == name)?;
        u32::try_from(index).ok()
    }

    /// Whether a metric was defined as `name`.
    pub fn has_metric(&self, name: &str) -> bool {
        self.metric_id(name).is_some()
    }

    /// The total handed to the host for the counter `name` (0 when never
    /// defined or incremented).
    pub fn counter(&self, name: &str) -> i64 {
        self.metric_id(name)
            .and_then(|id| self.counters.borrow().get(&id).copied())
            .unwrap_or(0)
    }

    /// The samples recorded in the histogram `name`.
    pub fn samples(&self, name: &str) -> Vec<u64> {
        self.metric_id(name)
            .and_then(|id| self.histograms.borrow().get(&id).cloned())
            .unwrap_or_default()
    }

    /// The lines logged at `level`.
    pub fn logs_at(&self, level: LogLevel) -> Vec<String> {
        self.logs
            .borrow()
            .iter()
            .zip(self.log_levels.borrow().iter())
            .filter(|(_, l)| **l == level)
            .map(|(line, _)| line.clone())
            .collect()
    }

    fn bump_version(&self, key: &str) {
        let mut versions = self.versions.borrow_mut();
        let version = versions.entry(key.to_owned()).or_insert(0);
        *version = version.wrapping_add(1).max(1);
    }
}

impl Host for RecordingHost {
    fn request_header(&self, name: &str) -> Option<String> {
        if self.headers_hidden.get() {
            self.hidden_header_reads
                .set(self.hidden_header_reads.get() + 1);
            return None;
        }
        self.headers
            .borrow()
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
    fn request_body(&self, len: usize) -> Option<Vec<u8>> {
        let body = self.body.borrow();
        body.get(..len.min(body.len())).map(<[u8]>::to_vec)
    }
    fn source_address(&self) -> Option<String> {
        self.source_reads.set(self.source_reads.get() + 1);
        self.source.borrow().clone()
    }
    fn send_reply(&self, status: u16, headers: &[(&str, &str)], body: &str) {
        self.replies.borrow_mut().push((
            status,
            headers
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            body.to_owned(),
        ));
    }
    fn now_ms(&self) -> u64 {
        self.now_ms.get()
    }
    fn shared_get(&self, key: &str) -> Option<Vec<u8>> {
        self.shared_reads.set(self.shared_reads.get() + 1);
        self.shared.borrow().get(key).cloned()
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
    fn define_metric(&self, kind: MetricKind, name: &str) -> Option<u32> {
        let mut metrics = self.metrics.borrow_mut();
        metrics.push((kind, name.to_owned()));
        u32::try_from(metrics.len() - 1).ok()
    }
    fn increment_metric(&self, id: u32, by: i64) {
        self.increments.set(self.increments.get() + 1);
        *self.counters.borrow_mut().entry(id).or_default() += by;
    }
    fn record_metric(&self, id: u32, value: u64) {
        self.histograms
            .borrow_mut()
            .entry(id)
            .or_default()
            .push(value);
    }
    fn count(&self, slot: usize) {
        self.counted.borrow_mut().push(slot);
    }
    fn log(&self, level: LogLevel, line: &str) {
        self.logs.borrow_mut().push(line.to_owned());
        self.log_levels.borrow_mut().push(level);
    }
}

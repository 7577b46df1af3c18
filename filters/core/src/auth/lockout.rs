//! Brute-force throttling: failed authentications counted per source
//! address in proxy-wasm shared data, so keys and tokens cannot be guessed at
//! speed. An address with `max_failures` failures inside one window gets
//! 429 for every credential that is not already known good, until the
//! window ends; other addresses are never affected.
//!
//! Like the verification caches, the counters live in a fixed set of slots
//! (`brl.auth.fail.<slot>`), each holding one address and its count, so the
//! shared-data keys used never exceed `slots`. A different address landing
//! in a slot replaces it (a collision can only forget failures, never
//! throttle an innocent address).

use serde::{Deserialize, Serialize};

use crate::host::Host;

/// Throttling limits (from `brute_force` in the plugin configuration).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Failed authentications one address may make per window.
    pub max_failures: u32,
    /// Window length, in milliseconds.
    pub window_ms: u64,
    /// Shared-data slots for the counters.
    pub slots: u32,
}

/// One address's failures in its current window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct FailureWindow {
    /// The source address (IP only, no port).
    #[serde(rename = "a")]
    address: String,
    /// When the window started (host clock, ms since the epoch).
    #[serde(rename = "w")]
    started_ms: u64,
    /// Failures counted in the window.
    #[serde(rename = "n")]
    failures: u32,
}

/// An address that is being throttled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// Seconds until its window ends (`Retry-After`, at least 1).
    pub retry_after_seconds: u64,
    /// The per-window limit (`X-RateLimit-Limit`).
    pub limit: u32,
}

/// The failure counters of one plugin instance.
#[derive(Debug, Clone)]
pub struct FailureCounter {
    policy: LockoutPolicy,
}

/// The address part of Envoy's `source.address` (`1.2.3.4:5678`,
/// `[::1]:5678`, or a bare address).
pub fn address_without_port(source: &str) -> &str {
    if let Some(rest) = source.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match source.rsplit_once(':') {
        // One colon: IPv4 with a port. More: a bare IPv6 address.
        Some((host, _)) if !host.contains(':') => host,
        _ => source,
    }
}

fn slot_of(address: &str, slots: u32) -> u32 {
    let hash = address.bytes().fold(0x811c_9dc5_u32, |acc, b| {
        (acc ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    hash % slots.max(1)
}

impl FailureCounter {
    /// Counters for `policy`.
    pub fn new(policy: LockoutPolicy) -> Self {
        Self { policy }
    }

    /// The policy in force.
    pub fn policy(&self) -> &LockoutPolicy {
        &self.policy
    }

    fn key(&self, address: &str) -> String {
        format!("brl.auth.fail.{}", slot_of(address, self.policy.slots))
    }

    /// The current window of `address`, if one is open at `now_ms`.
    fn window(&self, host: &dyn Host, address: &str, now_ms: u64) -> Option<FailureWindow> {
        let bytes = host.shared_get(&self.key(address))?;
        let window: FailureWindow = serde_json::from_slice(&bytes).ok()?;
        let open = window.address == address
            && window.started_ms <= now_ms
            && now_ms - window.started_ms < self.policy.window_ms;
        open.then_some(window)
    }

    /// Whether `address` has used up its failures at `now_ms`.
    pub fn throttled(&self, host: &dyn Host, address: &str, now_ms: u64) -> Option<Throttled> {
        let window = self.window(host, address, now_ms)?;
        if window.failures < self.policy.max_failures {
            return None;
        }
        let ends = window.started_ms.saturating_add(self.policy.window_ms);
        Some(Throttled {
            retry_after_seconds: ends.saturating_sub(now_ms).div_ceil(1000).max(1),
            limit: self.policy.max_failures,
        })
    }

    /// Counts one failed authentication of `address` at `now_ms`.
    pub fn record_failure(&self, host: &dyn Host, address: &str, now_ms: u64) {
        let window = match self.window(host, address, now_ms) {
            Some(mut open) => {
                open.failures = open.failures.saturating_add(1);
                open
            }
            None => FailureWindow {
                address: address.to_owned(),
                started_ms: now_ms,
                failures: 1,
            },
        };
        if let Ok(bytes) = serde_json::to_vec(&window) {
            host.shared_set(&self.key(address), &bytes);
        }
    }
}

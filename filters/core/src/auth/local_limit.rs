//! The per-instance backstop of the rate limits (SPEC §7): one token bucket
//! per authenticated client, in proxy-wasm shared data (`lrl:<client_id>`)
//! so every worker of an Envoy instance draws from the same bucket, sized
//! from the client's own per-minute limit.
//!
//! For a client whose limit is `L` requests per minute:
//!
//! * the bucket holds at most `L` tokens (a full bucket is a burst of `L`);
//! * it refills continuously at `L + headroom` tokens per minute, with
//!   `headroom = max(1, ceil(L / 100))`, computed lazily from the time
//!   since the bucket was last written;
//! * tokens are counted in units of 1/60000 of a token, so one millisecond
//!   refills exactly `L + headroom` units: integer arithmetic, no rounding.
//!
//! The headroom makes the global limit, not this bucket, decide while the
//! rate-limit service is up: a client sending at twice its limit gets at
//! least `L` requests through the bucket in every 60-second window, and the
//! service then grants exactly `L`. While the service is down, each
//! instance passes at most `L + headroom` per 60-second window once the
//! client has emptied its bucket (plus what was left in the bucket when the
//! window started, at most `L`).
//!
//! A bucket written under another limit (the key's limit changed, or the
//! client uses two keys with different limits) takes the new limit at
//! once: the time since its last update refills it at the old rate up to
//! the old capacity, then its tokens are clamped to the new capacity and
//! it refills at the new rate from then on.
//!
//! One authenticated request costs two host calls: a versioned read and a
//! compare-and-swap write (a refused request only the read, unless the
//! bucket was just resized: the new size is written then). A write that
//! finds another worker got there first is retried with a fresh read, at
//! most [`CAS_RETRIES`] times; after that, or if the host refuses the
//! write, the request is allowed (the global limit still applies).

use std::collections::HashMap;

use crate::host::{Host, SharedWrite};

/// Units per token: one minute in milliseconds, so a bucket refilling at
/// `R` tokens per minute gains exactly `R` units per millisecond.
pub const UNITS_PER_TOKEN: u64 = 60_000;

/// Retries of a compare-and-swap write that lost to another worker, before
/// the request is allowed without taking a token.
pub const CAS_RETRIES: u32 = 4;

/// Prefix of a client's shared-data key (`lrl:<client_id>`).
pub const KEY_PREFIX: &str = "lrl:";

/// Which limit applies to a client (from `local_rate_limit` in the plugin
/// configuration).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalLimitPolicy {
    /// Limit of a client whose credential carries none of its own.
    pub default_per_minute: u32,
    /// Limits of named clients whose credentials carry none of their own.
    pub clients: HashMap<String, u32>,
}

impl LocalLimitPolicy {
    /// The per-minute limit of `client_id`: the credential's own limit when
    /// it has a positive one, else the client's entry in `clients`, else
    /// the default (the rate-limit service's order).
    pub fn limit_for(&self, client_id: &str, own: Option<u32>) -> u32 {
        own.filter(|limit| *limit > 0)
            .or_else(|| self.clients.get(client_id).copied())
            .unwrap_or(self.default_per_minute)
            .max(1)
    }

    /// Takes one token from `client_id`'s bucket at the host's current
    /// time. `None`: the request may go on; otherwise the bucket is empty.
    pub fn take(
        &self,
        host: &dyn Host,
        client_id: &str,
        own: Option<u32>,
    ) -> Option<ClientLimited> {
        let limit = self.limit_for(client_id, own);
        let key = format!("{KEY_PREFIX}{client_id}");
        let now_ms = host.now_ms();
        for _ in 0..=CAS_RETRIES {
            let (value, version) = host.shared_get_versioned(&key);
            let stored = value.as_deref().and_then(Bucket::decode);
            let bucket = match stored {
                Some(stored) => stored.at(limit, now_ms),
                None => Bucket::full(limit, now_ms),
            };
            let (next, outcome) = match bucket.take() {
                Some(taken) => (taken, None),
                None => {
                    let limited = ClientLimited {
                        limit,
                        retry_after_seconds: bucket.retry_after_seconds(),
                    };
                    // Nothing to write unless the limit changed: the next
                    // request refills from the same stored state.
                    if stored.is_some_and(|stored| stored.limit == limit) {
                        return Some(limited);
                    }
                    (bucket, Some(limited))
                }
            };
            match host.shared_set_if_unchanged(&key, &next.encode(), version) {
                SharedWrite::Written | SharedWrite::Failed => return outcome,
                SharedWrite::Conflict => {}
            }
        }
        None
    }
}

/// A client whose bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientLimited {
    /// The client's per-minute limit (`X-RateLimit-Limit`).
    pub limit: u32,
    /// Whole seconds until the bucket holds a token again (at least 1).
    pub retry_after_seconds: u64,
}

/// Extra tokens per minute the bucket refills beyond the limit:
/// `max(1, ceil(limit / 100))`.
pub fn headroom(limit: u32) -> u64 {
    u64::from(limit).div_ceil(100).max(1)
}

/// Tokens per minute a bucket for `limit` refills (also its units per
/// millisecond).
pub fn refill_per_minute(limit: u32) -> u64 {
    u64::from(limit) + headroom(limit)
}

fn capacity_units(limit: u32) -> u64 {
    u64::from(limit) * UNITS_PER_TOKEN
}

/// One client's bucket as stored in shared data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bucket {
    /// The per-minute limit the bucket was sized for.
    pub limit: u32,
    /// Tokens held, in units of 1/[`UNITS_PER_TOKEN`] token.
    pub units: u64,
    /// Host time of the last update (ms since the epoch).
    pub updated_ms: u64,
}

/// Stored form: format byte, limit (u32), units (u64), update time (u64),
/// little endian.
const FORMAT: u8 = 1;
const ENCODED_LEN: usize = 21;

impl Bucket {
    /// A full bucket for `limit` at `now_ms`.
    pub fn full(limit: u32, now_ms: u64) -> Self {
        Self {
            limit,
            units: capacity_units(limit),
            updated_ms: now_ms,
        }
    }

    /// The stored bytes.
    pub fn encode(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0] = FORMAT;
        out[1..5].copy_from_slice(&self.limit.to_le_bytes());
        out[5..13].copy_from_slice(&self.units.to_le_bytes());
        out[13..21].copy_from_slice(&self.updated_ms.to_le_bytes());
        out
    }

    /// Reads stored bytes; `None` for anything this version did not write.
    pub fn decode(bytes: &[u8]) -> Option<Self> {
        if bytes.len() != ENCODED_LEN || bytes.first() != Some(&FORMAT) {
            return None;
        }
        let limit = u32::from_le_bytes(bytes.get(1..5)?.try_into().ok()?);
        let units = u64::from_le_bytes(bytes.get(5..13)?.try_into().ok()?);
        let updated_ms = u64::from_le_bytes(bytes.get(13..21)?.try_into().ok()?);
        (limit > 0).then_some(Self {
            limit,
            units: units.min(capacity_units(limit)),
            updated_ms,
        })
    }

    /// The bucket at `now_ms` for a client now limited to `limit`: refilled
    /// for the time since its last update at the rate it was sized for (up
    /// to that capacity), then clamped to `limit`'s capacity. A clock behind
    /// the stored time (another worker's clock ran ahead) refills nothing
    /// and never moves the update time back.
    pub fn at(self, limit: u32, now_ms: u64) -> Self {
        let elapsed_ms = now_ms.saturating_sub(self.updated_ms);
        let refilled = self
            .units
            .saturating_add(elapsed_ms.saturating_mul(refill_per_minute(self.limit)))
            .min(capacity_units(self.limit));
        Self {
            limit,
            units: refilled.min(capacity_units(limit)),
            updated_ms: self.updated_ms.max(now_ms),
        }
    }

    /// The bucket with one token taken, or `None` when it holds less than
    /// one.
    pub fn take(self) -> Option<Self> {
        let units = self.units.checked_sub(UNITS_PER_TOKEN)?;
        Some(Self { units, ..self })
    }

    /// Whole tokens held.
    pub fn tokens(&self) -> u64 {
        self.units / UNITS_PER_TOKEN
    }

    /// Whole seconds until the bucket holds a token (at least 1).
    pub fn retry_after_seconds(&self) -> u64 {
        let missing = UNITS_PER_TOKEN.saturating_sub(self.units);
        let wait_ms = missing.div_ceil(refill_per_minute(self.limit));
        wait_ms.div_ceil(1000).max(1)
    }
}

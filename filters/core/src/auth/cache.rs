//! Verification answers cached in proxy-wasm shared data.
//!
//! Shared data cannot delete keys, so the cache is a fixed set of slots: an
//! entry lives in slot `digest mod slots` and carries its full digest; a
//! different digest landing in the same slot replaces it. The number of
//! shared-data keys therefore never exceeds `slots` per cache.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::decision::AttemptStatus;
use crate::host::Host;

/// Time limits of cached answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    /// Age up to which a valid key is used without asking again.
    pub positive_ttl_ms: u64,
    /// Age up to which a denial is repeated without asking again.
    pub negative_ttl_ms: u64,
    /// Extra age during which an answer may serve while the auth service is
    /// unreachable.
    pub stale_on_error_ms: u64,
    /// Slots per cache.
    pub slots: u32,
}

/// What was cached about one key, token, or key id (the status of the key
/// a token was issued for).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CacheEntry {
    /// Hex SHA-256 of the key or token, to tell slot collisions apart.
    #[serde(rename = "h")]
    pub digest: String,
    /// When the answer was received (host clock, ms since the epoch).
    #[serde(rename = "t")]
    pub stored_at_ms: u64,
    /// The answer.
    #[serde(rename = "k")]
    pub kind: EntryKind,
}

/// The cached answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// The credential is valid for this client.
    #[serde(rename = "v")]
    Valid {
        /// Client the credential belongs to.
        #[serde(rename = "c")]
        client_id: String,
        /// Scopes of the credential.
        #[serde(rename = "s")]
        scopes: Vec<String>,
        /// The key's own per-minute limit.
        #[serde(rename = "r", default, skip_serializing_if = "Option::is_none")]
        rate_limit_per_minute: Option<u32>,
        /// Unix seconds after which the credential is expired, if it expires.
        #[serde(rename = "e", default, skip_serializing_if = "Option::is_none")]
        expires_at: Option<u64>,
        /// Public id of the API key: the key's own id for a key answer,
        /// the `key_id` claim for a token. Absent in entries written before
        /// keys carried it, and for tokens issued without the claim.
        #[serde(rename = "i", default, skip_serializing_if = "Option::is_none")]
        key_id: Option<String>,
    },
    /// The credential is refused with this status.
    #[serde(rename = "d")]
    Denied {
        /// Why (`invalid_key`, `revoked_key`, `expired_key`).
        #[serde(rename = "s")]
        status: AttemptStatus,
        /// Client the key belonged to, when known.
        #[serde(rename = "c", default, skip_serializing_if = "Option::is_none")]
        client_id: Option<String>,
    },
}

/// How usable a cached key answer is at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Freshness {
    /// Within its TTL: use it.
    Fresh,
    /// Past its TTL but inside the stale-on-error window: ask again, and
    /// fall back to it only if the auth service cannot answer.
    Stale,
    /// Too old (or from the future): ignore it.
    Dead,
}

impl CacheEntry {
    /// Whether the answer is "valid for this client".
    pub fn is_valid(&self) -> bool {
        matches!(self.kind, EntryKind::Valid { .. })
    }

    /// Freshness of a key verification answer.
    pub fn key_freshness(&self, policy: &CachePolicy, now_ms: u64) -> Freshness {
        let Some(age) = now_ms.checked_sub(self.stored_at_ms) else {
            return Freshness::Dead;
        };
        let ttl = match self.kind {
            EntryKind::Valid { .. } => policy.positive_ttl_ms,
            EntryKind::Denied { .. } => policy.negative_ttl_ms,
        };
        if age < ttl {
            Freshness::Fresh
        } else if age < ttl.saturating_add(policy.stale_on_error_ms) {
            Freshness::Stale
        } else {
            Freshness::Dead
        }
    }
}

/// One bounded cache in shared data (`<prefix>.<slot>`), fronted by a layer
/// local to this VM so a hit costs no host call and no SHA-256.
///
/// The shared layer is keyed by the credential's digest (the only form other
/// workers see). The local layer lives in this VM's memory only; it is keyed
/// by a cheap hash of the credential itself and keeps the credential to
/// compare it exactly, so a hit needs neither the digest nor a verification.
/// Both layers hold at most one entry per slot; a local entry is only used
/// while fresh, so it never outlives what the shared entry would allow.
#[derive(Debug, Clone)]
pub struct SlotCache {
    prefix: String,
    slots: u32,
    local: RefCell<HashMap<u32, LocalEntry>>,
}

/// A local copy: the credential it belongs to and the shared answer.
#[derive(Clone)]
struct LocalEntry {
    credential: Box<str>,
    entry: Rc<CacheEntry>,
}

impl fmt::Debug for LocalEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalEntry")
            .field("credential", &"<redacted>")
            .field("entry", &self.entry)
            .finish()
    }
}

/// FNV-1a over the last 32 bytes of the credential (the random part of a
/// key, the signature of a token): cheap, and only picks a local slot (the
/// credential is compared exactly on a hit).
fn local_hash(credential: &str) -> u32 {
    let bytes = credential.as_bytes();
    let tail = &bytes[bytes.len().saturating_sub(32)..];
    tail.iter().fold(0x811c_9dc5_u32, |acc, b| {
        (acc ^ u32::from(*b)).wrapping_mul(0x0100_0193)
    })
}

impl SlotCache {
    /// A cache under `prefix` with `slots` slots (at least 1).
    pub fn new(prefix: impl Into<String>, slots: u32) -> Self {
        Self {
            prefix: prefix.into(),
            slots: slots.max(1),
            local: RefCell::new(HashMap::new()),
        }
    }

    fn slot(&self, digest: &str) -> u32 {
        let head = digest.get(..8).unwrap_or(digest);
        let n = u32::from_str_radix(head, 16).unwrap_or_else(|_| {
            digest.bytes().fold(0u32, |acc, b| {
                acc.wrapping_mul(31).wrapping_add(u32::from(b))
            })
        });
        n % self.slots
    }

    /// The shared-data key of the slot `digest` maps to.
    pub fn slot_key(&self, digest: &str) -> String {
        format!("{}.{}", self.prefix, self.slot(digest))
    }

    /// The VM-local copy of the answer for `credential` (the raw key or
    /// token), if any.
    pub fn get_local(&self, credential: &str) -> Option<Rc<CacheEntry>> {
        self.local
            .borrow()
            .get(&(local_hash(credential) % self.slots))
            .filter(|e| &*e.credential == credential)
            .map(|e| Rc::clone(&e.entry))
    }

    /// Keeps `entry` as the VM-local copy of the answer for `credential`,
    /// replacing whatever shared its local slot.
    pub fn remember(&self, credential: &str, entry: Rc<CacheEntry>) {
        self.local.borrow_mut().insert(
            local_hash(credential) % self.slots,
            LocalEntry {
                credential: credential.into(),
                entry,
            },
        );
    }

    /// The entry for `digest` in shared data (written by any worker).
    pub fn get(&self, host: &dyn Host, digest: &str) -> Option<CacheEntry> {
        let bytes = host.shared_get(&self.slot_key(digest))?;
        let entry: CacheEntry = serde_json::from_slice(&bytes).ok()?;
        (entry.digest == digest).then_some(entry)
    }

    /// Stores `entry` in its shared slot, replacing whatever was there.
    pub fn put(&self, host: &dyn Host, entry: &CacheEntry) {
        if let Ok(bytes) = serde_json::to_vec(entry) {
            host.shared_set(&self.slot_key(&entry.digest), &bytes);
        }
    }

    /// Number of entries in the local layer.
    pub fn local_len(&self) -> usize {
        self.local.borrow().len()
    }
}

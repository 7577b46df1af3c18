//! The limits file and the mapping from an Envoy descriptor to a limit.
//!
//! Descriptor layout sent by the gateway (see docs/rate-limiting.md):
//!
//! * authenticated: `[("client_id", <x-client-id>), ("client_limit", <x-client-rate-limit>)?]`
//! * unauthenticated: `[…, ("remote_address", <downstream address>)]` (any
//!   other entries are ignored).
//!
//! A descriptor with neither `client_id` nor `remote_address` matches no
//! rule and is answered `OK`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::Deserialize;

/// Descriptor key carrying the authenticated client id (`x-client-id`).
pub const CLIENT_ID_KEY: &str = "client_id";
/// Descriptor key carrying the key's own per-minute limit (`x-client-rate-limit`).
pub const CLIENT_LIMIT_KEY: &str = "client_limit";
/// Descriptor key carrying the downstream address of unauthenticated traffic.
pub const REMOTE_ADDRESS_KEY: &str = "remote_address";

/// Contents of the limits file (YAML). Every field is optional; unknown
/// fields are rejected so a typo never silently disables a limit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Limit for traffic without a client identity, per source address.
    #[serde(default)]
    pub unauthenticated: PerMinute,
    /// Per-client limits used when the key record carries no limit of its
    /// own (the key's limit always wins), keyed by client id.
    #[serde(default)]
    pub clients: BTreeMap<String, PerMinute>,
}

/// A limit expressed in requests per minute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PerMinute {
    /// Requests allowed per fixed one-minute window (must be ≥ 1).
    pub per_minute: u64,
}

/// Built-in per-address limit for unauthenticated traffic.
pub const DEFAULT_UNAUTHENTICATED_PER_MINUTE: u64 = 30;

impl Default for PerMinute {
    fn default() -> Self {
        Self {
            per_minute: DEFAULT_UNAUTHENTICATED_PER_MINUTE,
        }
    }
}

impl LimitsFile {
    /// Parses and checks a limits document; the error names the file and field.
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let parsed: Option<LimitsFile> =
            serde_norway::from_str(text).map_err(|e| format!("{origin}: {e}"))?;
        // An empty document means "all defaults".
        let parsed = parsed.unwrap_or_default();
        if parsed.unauthenticated.per_minute == 0 {
            return Err(format!(
                "{origin}: unauthenticated.per_minute must be at least 1"
            ));
        }
        for (client, limit) in &parsed.clients {
            if limit.per_minute == 0 {
                return Err(format!(
                    "{origin}: clients.{client}.per_minute must be at least 1"
                ));
            }
        }
        Ok(parsed)
    }

    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("{}: cannot be read: {e}", path.display()))?;
        Self::parse(&text, &path.display().to_string())
    }
}

/// Which limit a descriptor falls under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// `client` or `address` (also the metrics label).
    pub kind: RuleKind,
    /// The counted value: the client id or the source address.
    pub subject: String,
    /// Requests allowed per window.
    pub max: u64,
    /// Window length in seconds (always 60: limits are per minute).
    pub window_secs: u64,
}

/// The two kinds of limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Per authenticated client.
    Client,
    /// Per source address, for unauthenticated traffic.
    Address,
}

impl RuleKind {
    /// Stable name used in counter namespaces and metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Address => "address",
        }
    }
}

/// The limits in force: the environment default plus the (reloadable) file.
#[derive(Debug)]
pub struct Limits {
    default_per_minute: u64,
    file: RwLock<Arc<LimitsFile>>,
    path: Option<PathBuf>,
    modified: RwLock<Option<SystemTime>>,
}

impl Limits {
    /// Loads the file once (an error here stops the service from starting).
    pub fn new(default_per_minute: u64, path: Option<PathBuf>) -> Result<Self, String> {
        let (file, modified) = match &path {
            Some(p) => (LimitsFile::load(p)?, mtime(p)),
            None => (LimitsFile::default(), None),
        };
        Ok(Self {
            default_per_minute,
            file: RwLock::new(Arc::new(file)),
            path,
            modified: RwLock::new(modified),
        })
    }

    /// The file currently in force.
    pub fn current(&self) -> Arc<LimitsFile> {
        match self.file.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Re-reads the file when its modification time changed. Returns
    /// `Ok(true)` when new limits were applied; on a parse error the
    /// previous limits stay in force and the error is returned.
    pub fn reload_if_changed(&self) -> Result<bool, String> {
        let Some(path) = &self.path else {
            return Ok(false);
        };
        let now = mtime(path);
        let before = self.modified.read().map(|g| *g).unwrap_or(None);
        if now == before {
            return Ok(false);
        }
        if let Ok(mut g) = self.modified.write() {
            *g = now;
        }
        let file = LimitsFile::load(path)?;
        let changed = *self.current() != file;
        if let Ok(mut g) = self.file.write() {
            *g = Arc::new(file);
        }
        Ok(changed)
    }

    /// Maps one descriptor (its entries) to the rule that applies, if any.
    pub fn rule_for<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Rule> {
        let mut client_id = None;
        let mut client_limit = None;
        let mut remote = None;
        for (k, v) in entries {
            match k {
                CLIENT_ID_KEY if !v.is_empty() => client_id = Some(v),
                CLIENT_LIMIT_KEY => client_limit = v.trim().parse::<u64>().ok().filter(|n| *n > 0),
                REMOTE_ADDRESS_KEY if !v.is_empty() => remote = Some(v),
                _ => {}
            }
        }
        let file = self.current();
        if let Some(id) = client_id {
            let max = client_limit
                .or_else(|| file.clients.get(id).map(|l| l.per_minute))
                .unwrap_or(self.default_per_minute);
            return Some(Rule {
                kind: RuleKind::Client,
                subject: id.to_owned(),
                max,
                window_secs: 60,
            });
        }
        remote.map(|addr| Rule {
            kind: RuleKind::Address,
            subject: addr.to_owned(),
            max: file.unauthenticated.per_minute,
            window_secs: 60,
        })
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(file: &str) -> Limits {
        let l = Limits::new(60, None).unwrap();
        let parsed = LimitsFile::parse(file, "test").unwrap();
        *l.file.write().unwrap() = Arc::new(parsed);
        l
    }

    #[test]
    fn a_client_descriptor_uses_the_default_limit() {
        let r = limits("").rule_for([("client_id", "test123")]).unwrap();
        assert_eq!(r.kind, RuleKind::Client);
        assert_eq!(r.subject, "test123");
        assert_eq!(r.max, 60);
    }

    #[test]
    fn the_keys_own_limit_beats_the_file_and_the_default() {
        let l = limits("clients:\n  big_fund:\n    per_minute: 600\n");
        let own = l
            .rule_for([("client_id", "big_fund"), ("client_limit", "7")])
            .unwrap();
        assert_eq!(own.max, 7);
        let file = l.rule_for([("client_id", "big_fund")]).unwrap();
        assert_eq!(file.max, 600);
    }

    #[test]
    fn an_unusable_client_limit_falls_back_to_the_default() {
        let l = limits("");
        for bad in ["", "0", "-3", "ten"] {
            let r = l
                .rule_for([("client_id", "c"), ("client_limit", bad)])
                .unwrap();
            assert_eq!(r.max, 60, "{bad:?}");
        }
    }

    #[test]
    fn unauthenticated_traffic_is_limited_per_address_from_the_file() {
        let l = limits("unauthenticated:\n  per_minute: 5\n");
        let r = l
            .rule_for([("unauthenticated", "true"), ("remote_address", "10.0.0.1")])
            .unwrap();
        assert_eq!(r.kind, RuleKind::Address);
        assert_eq!(r.subject, "10.0.0.1");
        assert_eq!(r.max, 5);
    }

    #[test]
    fn a_descriptor_with_no_known_key_matches_no_rule() {
        assert!(limits("").rule_for([("path", "/x")]).is_none());
        assert!(limits("").rule_for([("client_id", "")]).is_none());
    }

    #[test]
    fn a_bad_limits_file_is_rejected_naming_the_field() {
        let e = LimitsFile::parse("unauthenticated:\n  per_minute: 0\n", "f.yaml").unwrap_err();
        assert!(e.contains("unauthenticated.per_minute"), "{e}");
        let e = LimitsFile::parse("unauthenticated:\n  per_mnute: 3\n", "f.yaml").unwrap_err();
        assert!(e.contains("per_mnute"), "{e}");
        let e = LimitsFile::parse("clients:\n  x:\n    per_minute: 0\n", "f.yaml").unwrap_err();
        assert!(e.contains("clients.x.per_minute"), "{e}");
    }

    #[test]
    fn the_shipped_limits_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("limits.yaml");
        LimitsFile::load(&path).unwrap();
    }
}

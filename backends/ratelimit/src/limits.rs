//! The limits file, in envoyproxy/ratelimit's YAML descriptor format, and
//! the mapping from an Envoy descriptor to a limit.
//!
//! Descriptors sent by the gateway in domain [`DOMAIN`] (see
//! docs/rate-limiting.md):
//!
//! * authenticated: `[client_id=<id>, client_limit=<N>?]`;
//! * authenticated, per route: `[route=<route>, client_id=<id>]`;
//! * unauthenticated: `[unauthenticated=true, remote_address=<addr>]`.
//!
//! A descriptor's entries are walked in order down the file's nested
//! `descriptors`: at each level an entry matches the node with its key and
//! value first, else the key-only node of its key (which counts each value
//! separately). A walk that ends, on the descriptor's last entry, at a node
//! with a `rate_limit` is limited by it; anything else is not limited.
//!
//! On top of that, the per-client descriptor (`client_id` alone, besides
//! `client_limit`) always has a limit: `client_limit` (the key's own limit
//! per minute) when present, else the file's node, else the
//! `RATE_LIMIT_PER_MINUTE` default.
//!
//! The previous format (`unauthenticated.per_minute`,
//! `clients.<id>.per_minute`) is still read and converted (see
//! [`LimitsFile::parse`]).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::SystemTime;

use serde::de::{self, Deserializer, Visitor};
use serde::Deserialize;

/// The rate-limit domain this service serves (Envoy's `domain`); a limits
/// file naming another domain is refused.
pub const DOMAIN: &str = "borrow_rate_gateway";
/// Descriptor key carrying the authenticated client id (`x-client-id`).
pub const CLIENT_ID_KEY: &str = "client_id";
/// Descriptor key carrying the key's own per-minute limit (`x-client-rate-limit`).
pub const CLIENT_LIMIT_KEY: &str = "client_limit";
/// Descriptor key carrying the downstream address of unauthenticated traffic.
pub const REMOTE_ADDRESS_KEY: &str = "remote_address";
/// Descriptor key marking unauthenticated traffic (value `true`).
pub const UNAUTHENTICATED_KEY: &str = "unauthenticated";
/// Descriptor key carrying the route name of a per-route descriptor.
pub const ROUTE_KEY: &str = "route";
/// Built-in per-address limit for unauthenticated traffic (no file, an
/// empty file, or an old-format file without `unauthenticated`).
pub const DEFAULT_UNAUTHENTICATED_PER_MINUTE: u64 = 30;
/// Where the conversion from the old format is documented.
pub const MIGRATION_SECTION: &str =
    "docs/rate-limiting.md, section \"Migrating from the old limits file\"";

/// Length of a rate-limit window (`rate_limit.unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unit {
    /// One second.
    Second,
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day.
    Day,
}

impl Unit {
    /// Window length in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Self::Second => 1,
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// The name used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Second => "second",
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }
}

impl<'de> Deserialize<'de> for Unit {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // Checked inside the visitor so that the error carries the field's
        // own path and line.
        struct UnitName;
        impl Visitor<'_> for UnitName {
            type Value = Unit;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("one of second, minute, hour, day")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Unit, E> {
                // envoyproxy/ratelimit accepts the units in any case.
                match s.to_ascii_lowercase().as_str() {
                    "second" => Ok(Unit::Second),
                    "minute" => Ok(Unit::Minute),
                    "hour" => Ok(Unit::Hour),
                    "day" => Ok(Unit::Day),
                    _ => Err(E::custom(format!(
                        "unknown variant {s:?}, expected one of second, minute, hour, day"
                    ))),
                }
            }
        }
        d.deserialize_str(UnitName)
    }
}

/// A whole number of at least 1, checked where it is read (so the error
/// names the field and its line).
struct AtLeastOne;

impl Visitor<'_> for AtLeastOne {
    type Value = u64;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a whole number of at least 1")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<u64, E> {
        if v == 0 {
            Err(E::custom(
                "must be at least 1 (a limit of 0 would refuse every request)",
            ))
        } else {
            Ok(v)
        }
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<u64, E> {
        u64::try_from(v)
            .map_err(|_| E::custom(format!("{v} is not a whole number of at least 1")))
            .and_then(|v| self.visit_u64(v))
    }
}

fn at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    d.deserialize_u64(AtLeastOne)
}

fn some_at_least_one<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    at_least_one(d).map(Some)
}

/// `rate_limit` of a descriptor node.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawRateLimit")]
pub struct RateLimitConfig {
    /// Window length.
    pub unit: Unit,
    /// Requests allowed per window (≥ 1; 0 when `unlimited`).
    pub requests_per_unit: u64,
    /// Matches but never limits nor counts (envoyproxy's `unlimited`).
    pub unlimited: bool,
    /// Optional name, referred to by another limit's `replaces`.
    pub name: Option<String>,
    /// Names of limits this one replaces when both apply to one request.
    pub replaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRateLimit {
    unit: Option<Unit>,
    #[serde(default, deserialize_with = "some_at_least_one")]
    requests_per_unit: Option<u64>,
    #[serde(default)]
    unlimited: bool,
    name: Option<String>,
    #[serde(default)]
    replaces: Vec<Replaces>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Replaces {
    name: String,
}

impl TryFrom<RawRateLimit> for RateLimitConfig {
    type Error = String;
    fn try_from(raw: RawRateLimit) -> Result<Self, String> {
        if raw.name.as_deref() == Some("") {
            return Err("name must not be empty".to_owned());
        }
        let replaces: Vec<String> = raw.replaces.into_iter().map(|r| r.name).collect();
        if replaces.iter().any(String::is_empty) {
            return Err("replaces: a name must not be empty".to_owned());
        }
        if raw.unlimited {
            if raw.unit.is_some() || raw.requests_per_unit.is_some() {
                return Err("unlimited: true takes no unit and no requests_per_unit".to_owned());
            }
            return Ok(Self {
                unit: Unit::Minute,
                requests_per_unit: 0,
                unlimited: true,
                name: raw.name,
                replaces,
            });
        }
        let unit = raw
            .unit
            .ok_or("missing field `unit` (one of second, minute, hour, day)")?;
        let requests_per_unit = raw
            .requests_per_unit
            .ok_or("missing field `requests_per_unit`")?;
        Ok(Self {
            unit,
            requests_per_unit,
            unlimited: false,
            name: raw.name,
            replaces,
        })
    }
}

/// One node of the descriptor tree.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescriptorConfig {
    /// The descriptor entry's key.
    pub key: String,
    /// The entry's value; absent: any value, each counted separately.
    #[serde(default, deserialize_with = "scalar_string")]
    pub value: Option<String>,
    /// The limit of a descriptor whose walk ends here.
    #[serde(default)]
    pub rate_limit: Option<RateLimitConfig>,
    /// Nodes for the descriptor's next entry.
    #[serde(default)]
    pub descriptors: Descriptors,
    /// Count and report, never refuse.
    #[serde(default)]
    pub shadow_mode: bool,
    /// Per-value metric series for descriptors limited by this node.
    #[serde(default)]
    pub detailed_metric: bool,
}

/// The nodes of one level; each key (or key and value) at most once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<DescriptorConfig>")]
pub struct Descriptors(pub Vec<DescriptorConfig>);

impl TryFrom<Vec<DescriptorConfig>> for Descriptors {
    type Error = String;
    fn try_from(nodes: Vec<DescriptorConfig>) -> Result<Self, String> {
        let mut seen = HashSet::new();
        for (i, n) in nodes.iter().enumerate() {
            if n.key.is_empty() {
                return Err(format!("[{i}].key must not be empty"));
            }
            if n.value.as_deref() == Some("") {
                return Err(format!(
                    "[{i}].value must not be empty (leave it out to match any value)"
                ));
            }
            if !seen.insert((n.key.as_str(), n.value.as_deref())) {
                let what = match &n.value {
                    Some(v) => format!("key {:?} with value {v:?}", n.key),
                    None => format!("key {:?} without value", n.key),
                };
                return Err(format!("[{i}]: duplicate descriptor, {what} appears twice"));
            }
        }
        Ok(Self(nodes))
    }
}

/// A YAML scalar read as a string (`value: true` and `value: 8` are the
/// strings `"true"` and `"8"`, as envoyproxy/ratelimit reads them).
fn scalar_string<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    struct Scalar;
    impl Visitor<'_> for Scalar {
        type Value = Option<String>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a string, number or boolean")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Some(v.to_owned()))
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
            Ok(Some(v.to_string()))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(Scalar)
}

fn service_domain<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    struct Domain;
    impl Visitor<'_> for Domain {
        type Value = String;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            write!(f, "the domain {DOMAIN}")
        }
        fn visit_str<E: de::Error>(self, domain: &str) -> Result<String, E> {
            if domain == DOMAIN {
                Ok(domain.to_owned())
            } else {
                Err(E::custom(format!(
                    "{domain:?} is not this service's domain (expected {DOMAIN})"
                )))
            }
        }
    }
    d.deserialize_str(Domain)
}

/// Contents of the limits file (envoyproxy/ratelimit's format). Unknown
/// fields are rejected so a typo never silently disables a limit.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsFile {
    /// Must be [`DOMAIN`].
    #[serde(deserialize_with = "service_domain")]
    pub domain: String,
    /// The top level of the descriptor tree.
    #[serde(default)]
    pub descriptors: Descriptors,
    /// Read from the old format and converted.
    #[serde(skip)]
    pub converted_from_old_format: bool,
}

impl Default for LimitsFile {
    /// The built-in limits (no file, or an empty one): 30 per minute per
    /// address for unauthenticated traffic; clients get
    /// `RATE_LIMIT_PER_MINUTE` unless their key has its own limit.
    fn default() -> Self {
        Self {
            domain: DOMAIN.to_owned(),
            descriptors: Descriptors(vec![unauthenticated_node(
                DEFAULT_UNAUTHENTICATED_PER_MINUTE,
            )]),
            converted_from_old_format: false,
        }
    }
}

fn per_minute(n: u64) -> Option<RateLimitConfig> {
    Some(RateLimitConfig {
        unit: Unit::Minute,
        requests_per_unit: n,
        unlimited: false,
        name: None,
        replaces: Vec::new(),
    })
}

fn node(key: &str, value: Option<&str>, rate_limit: Option<RateLimitConfig>) -> DescriptorConfig {
    DescriptorConfig {
        key: key.to_owned(),
        value: value.map(str::to_owned),
        rate_limit,
        descriptors: Descriptors::default(),
        shadow_mode: false,
        detailed_metric: false,
    }
}

fn unauthenticated_node(n: u64) -> DescriptorConfig {
    DescriptorConfig {
        descriptors: Descriptors(vec![node(REMOTE_ADDRESS_KEY, None, per_minute(n))]),
        ..node(UNAUTHENTICATED_KEY, Some("true"), None)
    }
}

/// The old format (before envoyproxy/ratelimit's): converted on reading.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OldFile {
    #[serde(default)]
    unauthenticated: Option<OldPerMinute>,
    #[serde(default)]
    clients: BTreeMap<String, OldPerMinute>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct OldPerMinute {
    #[serde(deserialize_with = "at_least_one")]
    per_minute: u64,
}

impl From<OldFile> for LimitsFile {
    fn from(old: OldFile) -> Self {
        let unauthenticated = old
            .unauthenticated
            .map_or(DEFAULT_UNAUTHENTICATED_PER_MINUTE, |u| u.per_minute);
        let mut nodes = vec![unauthenticated_node(unauthenticated)];
        for (id, limit) in old.clients {
            nodes.push(node(CLIENT_ID_KEY, Some(&id), per_minute(limit.per_minute)));
        }
        Self {
            domain: DOMAIN.to_owned(),
            descriptors: Descriptors(nodes),
            converted_from_old_format: true,
        }
    }
}

/// `<origin> line <n>: <path>: <message>` from a YAML error.
fn yaml_error(origin: &str, e: &serde_norway::Error) -> String {
    let text = e.to_string();
    match e.location() {
        Some(at) => {
            let suffix = format!(" at line {} column {}", at.line(), at.column());
            let message = text.strip_suffix(&suffix).unwrap_or(&text);
            format!("{origin} line {}: {message}", at.line())
        }
        None => format!("{origin}: {text}"),
    }
}

impl LimitsFile {
    /// Parses and checks a limits document. Errors name the origin, the
    /// line and the field: `limits.yaml line 7:
    /// descriptors[1].rate_limit.unit: unknown variant "minutes", …`.
    ///
    /// An empty document means the built-in limits ([`LimitsFile::default`]).
    /// A document in the old format (top-level `unauthenticated` /
    /// `clients`, no `domain`) is converted (see [`MIGRATION_SECTION`]).
    pub fn parse(text: &str, origin: &str) -> Result<Self, String> {
        let shape: serde_norway::Value =
            serde_norway::from_str(text).map_err(|e| yaml_error(origin, &e))?;
        let old_format = match &shape {
            serde_norway::Value::Null => return Ok(Self::default()),
            serde_norway::Value::Mapping(m) => {
                !m.contains_key("domain")
                    && !m.contains_key("descriptors")
                    && (m.contains_key("unauthenticated") || m.contains_key("clients"))
            }
            _ => false,
        };
        if old_format {
            let old: OldFile = serde_norway::from_str(text).map_err(|e| {
                format!(
                    "{} (old limits file format; see {MIGRATION_SECTION})",
                    yaml_error(origin, &e)
                )
            })?;
            return Ok(old.into());
        }
        serde_norway::from_str(text).map_err(|e| yaml_error(origin, &e))
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
    /// What the descriptor limits (also chooses the header policy name).
    pub kind: RuleKind,
    /// Policy name in the `RateLimit-Policy` / `RateLimit` headers:
    /// `client`, `route-<route>`, `address`, else the first entry's key.
    pub policy: String,
    /// The matched node's path in the file (`route=rates/client_id`);
    /// part of the counter name, so different nodes never share counters.
    pub path: String,
    /// The counted value(s): the values of the key-only entries.
    pub subject: String,
    /// Requests allowed per window.
    pub max: u64,
    /// Window unit.
    pub unit: Unit,
    /// Window length in seconds (`unit`'s length).
    pub window_secs: u64,
    /// Count and report, never refuse.
    pub shadow: bool,
    /// Matched an `unlimited` node: never counted nor refused.
    pub unlimited: bool,
    /// `detailed_metric`: the descriptor's `key=value` entries, as a
    /// metric label.
    pub detailed: Option<String>,
    /// `rate_limit.name`.
    pub name: Option<String>,
    /// `rate_limit.replaces`.
    pub replaces: Vec<String>,
}

/// The shapes of descriptors the gateway sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RuleKind {
    /// Per authenticated client (`client_id`).
    Client,
    /// Per route and client (`route`, `client_id`).
    Route,
    /// Per source address (`remote_address`), unauthenticated traffic.
    Address,
    /// Any other descriptor limited by the file.
    Other,
}

impl RuleKind {
    /// Stable name used in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Client => "client",
            Self::Route => "route",
            Self::Address => "address",
            Self::Other => "other",
        }
    }
}

/// A node of the compiled tree.
#[derive(Debug, Default)]
struct Node {
    path: String,
    rate_limit: Option<RateLimitConfig>,
    shadow: bool,
    detailed: bool,
    children: Level,
}

/// One level: nodes by (key, value) and key-only nodes by key.
#[derive(Debug, Default)]
struct Level {
    by_value: HashMap<(String, String), Node>,
    by_key: HashMap<String, Node>,
}

impl Level {
    fn compile(nodes: &[DescriptorConfig], parent: &str) -> Self {
        let mut level = Level::default();
        for n in nodes {
            let step = match &n.value {
                Some(v) => format!("{}={}", escape(&n.key), escape(v)),
                None => escape(&n.key),
            };
            let path = if parent.is_empty() {
                step
            } else {
                format!("{parent}/{step}")
            };
            let node = Node {
                children: Level::compile(&n.descriptors.0, &path),
                path,
                rate_limit: n.rate_limit.clone(),
                shadow: n.shadow_mode,
                detailed: n.detailed_metric,
            };
            match &n.value {
                Some(v) => level.by_value.insert((n.key.clone(), v.clone()), node),
                None => level.by_key.insert(n.key.clone(), node),
            };
        }
        level
    }

    /// The node where `entries` end, if the whole walk matches.
    fn walk(&self, entries: &[(&str, &str)]) -> Option<&Node> {
        let mut level = self;
        let mut found = None;
        for (k, v) in entries {
            let node = level
                .by_value
                .get(&((*k).to_owned(), (*v).to_owned()))
                .or_else(|| level.by_key.get(*k))?;
            level = &node.children;
            found = Some(node);
        }
        found
    }
}

/// Escapes the separators of counter names and paths in a key or value.
fn escape(s: &str) -> String {
    if !s.contains(['%', '/', '=', ':', ',']) {
        return s.to_owned();
    }
    s.replace('%', "%25")
        .replace('/', "%2F")
        .replace('=', "%3D")
        .replace(':', "%3A")
        .replace(',', "%2C")
}

/// A parsed file and its compiled tree.
#[derive(Debug)]
struct InForce {
    file: Arc<LimitsFile>,
    tree: Level,
}

impl InForce {
    fn new(file: LimitsFile) -> Self {
        let tree = Level::compile(&file.descriptors.0, "");
        Self {
            file: Arc::new(file),
            tree,
        }
    }
}

/// The limits in force: the environment default plus the (reloadable) file.
#[derive(Debug)]
pub struct Limits {
    default_per_minute: u64,
    in_force: RwLock<Arc<InForce>>,
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
            in_force: RwLock::new(Arc::new(InForce::new(file))),
            path,
            modified: RwLock::new(modified),
        })
    }

    fn in_force(&self) -> Arc<InForce> {
        match self.in_force.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// The file currently in force.
    pub fn current(&self) -> Arc<LimitsFile> {
        Arc::clone(&self.in_force().file)
    }

    /// Replaces the limits in force (tests).
    pub fn set(&self, file: LimitsFile) {
        if let Ok(mut g) = self.in_force.write() {
            *g = Arc::new(InForce::new(file));
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
        if changed {
            self.set(file);
        }
        Ok(changed)
    }

    /// Maps one descriptor (its entries) to the rule that applies, if any.
    pub fn rule_for<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Option<Rule> {
        let mut client_limit = None;
        let mut walk: Vec<(&str, &str)> = Vec::with_capacity(3);
        for (k, v) in entries {
            if k == CLIENT_LIMIT_KEY {
                client_limit = v.trim().parse::<u64>().ok().filter(|n| *n > 0);
            } else {
                walk.push((k, v));
            }
        }
        // Envoy never sends an empty value; such a descriptor matches nothing.
        if walk.is_empty() || walk.iter().any(|(_, v)| v.is_empty()) {
            return None;
        }
        let in_force = self.in_force();
        let node = in_force.tree.walk(&walk);
        let per_client = walk.len() == 1 && walk[0].0 == CLIENT_ID_KEY;
        if per_client {
            let id = walk[0].1;
            let own_or_default = |max: u64| {
                Some(Rule {
                    kind: RuleKind::Client,
                    policy: "client".to_owned(),
                    path: CLIENT_ID_KEY.to_owned(),
                    subject: escape(id),
                    max,
                    unit: Unit::Minute,
                    window_secs: Unit::Minute.seconds(),
                    shadow: false,
                    unlimited: false,
                    detailed: None,
                    name: None,
                    replaces: Vec::new(),
                })
            };
            if let Some(own) = client_limit {
                return own_or_default(own);
            }
            return match node {
                Some(n) if n.rate_limit.is_some() => rule_from(n, &walk),
                _ => own_or_default(self.default_per_minute),
            };
        }
        rule_from(node?, &walk)
    }
}

fn rule_from(node: &Node, walk: &[(&str, &str)]) -> Option<Rule> {
    let limit = node.rate_limit.as_ref()?;
    let (first_key, first_value) = walk[0];
    let (kind, policy) = if walk.len() == 1 && first_key == CLIENT_ID_KEY {
        (RuleKind::Client, "client".to_owned())
    } else if first_key == ROUTE_KEY {
        (RuleKind::Route, format!("route-{first_value}"))
    } else if walk.iter().any(|(k, _)| *k == REMOTE_ADDRESS_KEY) {
        (RuleKind::Address, "address".to_owned())
    } else {
        (RuleKind::Other, first_key.to_owned())
    };
    // The values the key-only nodes matched are what is counted; the
    // values of value nodes are in the path.
    let mut subject = String::new();
    let mut level_path = node.path.split('/');
    for (_, v) in walk {
        if level_path.next().is_some_and(|step| !step.contains('=')) {
            if !subject.is_empty() {
                subject.push('/');
            }
            subject.push_str(&escape(v));
        }
    }
    let detailed = node.detailed.then(|| {
        walk.iter()
            .map(|(k, v)| format!("{}={}", escape(k), escape(v)))
            .collect::<Vec<_>>()
            .join(",")
    });
    Some(Rule {
        kind,
        policy,
        path: node.path.clone(),
        subject,
        max: limit.requests_per_unit,
        unit: limit.unit,
        window_secs: limit.unit.seconds(),
        shadow: node.shadow,
        unlimited: limit.unlimited,
        detailed,
        name: limit.name.clone(),
        replaces: limit.replaces.clone(),
    })
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests;

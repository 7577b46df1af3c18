//! `gatewayctl`: the operator CLI over the pricing database.
//!
//! ```text
//! gatewayctl keys create --client-id ID [--expires-in-days N] [--rate-limit-per-minute N] [--scope S ...]
//! gatewayctl keys list [--client-id ID] [--active | --expired | --revoked]
//! gatewayctl keys show KEY_ID
//! gatewayctl keys history KEY_ID
//! gatewayctl keys update KEY_ID [--rate-limit-per-minute N | --no-rate-limit]
//!                               [--expires-at RFC3339 | --no-expiry] [--scope S ... | --no-scopes]
//! gatewayctl keys revoke KEY_ID
//! gatewayctl keys rotate KEY_ID [--grace-hours H]      (default grace: 24 h)
//! gatewayctl stocks list
//! gatewayctl stocks upsert --ticker T --base-rate D --volatility-index D --event-risk-factor D --min-rate D
//! gatewayctl clients list
//! gatewayctl clients upsert --client-id ID --markup-percentage D --fee-type FLAT|PERCENTAGE --fee-amount D
//! ```
//!
//! Global options: `--database-url URL` (else `DATABASE_URL`, else
//! `sqlite://var/pricing.db`, the same default as the services), `--json`
//! (machine-readable output, schema in docs/backends.md) and `--actor NAME`
//! (who made a key change, recorded in the key's history; else `USER`, else
//! `LOGNAME`, else `unknown`).
//!
//! `keys create` and `keys rotate` print the new key as the last line of
//! stdout (with `--json`: the `key` field); it is shown only then (only its
//! hash is stored).
//!
//! Exit codes (errors are always one line on stderr):
//!
//! | code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | usage error: bad arguments or values |
//! | 2 | not found: unknown key id |
//! | 3 | refused: the key's state does not allow it (revoking a revoked key, rotating or updating a revoked or replaced key, rotating an expired key) |
//! | 4 | database or other failure (unreachable, corrupt data) |

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pricing::{ClientId, ClientTerms, Decimal, FeeType, StockRisk, Ticker};
use serde_json::{json, Value};
use store::{ApiKey, KeyEvent, KeyStatus, KeyUpdate, NewApiKey, Store, StoreOptions};

/// Default time a rotated key keeps working after `keys rotate`.
const DEFAULT_ROTATE_GRACE_HOURS: u64 = 24;

/// Longest expiry accepted, as for `keys create --expires-in-days`.
const MAX_EXPIRY_DAYS: i64 = 36_500;

/// Exit codes (also in `--help` and docs/backends.md).
const EXIT_USAGE: u8 = 1;
const EXIT_NOT_FOUND: u8 = 2;
const EXIT_CONFLICT: u8 = 3;
const EXIT_FAILURE: u8 = 4;

const AFTER_HELP: &str = "\
Exit codes: 0 success, 1 usage error (bad arguments), 2 not found (unknown key id),
3 refused by the key's state (e.g. revoking a revoked key), 4 database or other failure.
Errors are one line on stderr. With --json, stdout is JSON: one object per line for
list and history, one object otherwise (schema: docs/backends.md).";

#[derive(Debug, Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "Manage API keys, stocks and clients of the borrow-rate gateway",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Database URL; default DATABASE_URL, else sqlite://var/pricing.db.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
    /// Print JSON instead of text (one object per line for list/history).
    #[arg(long, global = true)]
    json: bool,
    /// Who makes the change, recorded in the key history (default: USER,
    /// else LOGNAME, else "unknown").
    #[arg(long, global = true, value_name = "NAME")]
    actor: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Stocks and their risk inputs.
    #[command(subcommand)]
    Stocks(StocksCommand),
    /// Pricing clients and their terms.
    #[command(subcommand)]
    Clients(ClientsCommand),
}

#[derive(Debug, Subcommand)]
enum KeysCommand {
    /// Create a key; the key itself is printed once, as the last line.
    Create {
        /// The client the key belongs to.
        #[arg(long)]
        client_id: String,
        /// Days until the key expires (default: never).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=36_500))]
        expires_in_days: Option<u32>,
        /// The key's own per-minute rate limit (default: RATE_LIMIT_PER_MINUTE).
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
        rate_limit_per_minute: Option<u32>,
        /// Scope to grant (repeatable), e.g. `admin`.
        #[arg(long = "scope")]
        scopes: Vec<String>,
    },
    /// List keys (never the keys themselves: id, prefix, status, ...).
    List {
        /// Only the keys of this client.
        #[arg(long)]
        client_id: Option<String>,
        /// Only keys that work now (not revoked, not expired).
        #[arg(long, conflicts_with_all = ["expired", "revoked"])]
        active: bool,
        /// Only keys past their expiry (and not revoked).
        #[arg(long, conflicts_with = "revoked")]
        expired: bool,
        /// Only revoked keys.
        #[arg(long)]
        revoked: bool,
    },
    /// Everything stored about a key except its hash, with its history.
    Show {
        /// The key id (`key_…`) shown by `keys list`.
        key_id: String,
    },
    /// The key's history: create, update, rotate, revoke (who and when).
    History {
        /// The key id (`key_…`) shown by `keys list`.
        key_id: String,
    },
    /// Change a key in place (same secret): rate limit, expiry, scopes.
    Update {
        /// The key id (`key_…`) shown by `keys list`.
        key_id: String,
        /// The key's own per-minute rate limit.
        #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000),
              conflicts_with = "no_rate_limit")]
        rate_limit_per_minute: Option<u32>,
        /// Remove the key's own limit (RATE_LIMIT_PER_MINUTE applies).
        #[arg(long)]
        no_rate_limit: bool,
        /// New expiry, RFC 3339 (e.g. 2027-01-31T00:00:00Z or with an
        /// offset), in the future and within 100 years.
        #[arg(long, value_name = "RFC3339", conflicts_with = "no_expiry")]
        expires_at: Option<String>,
        /// The key never expires.
        #[arg(long)]
        no_expiry: bool,
        /// Scope (repeatable): replaces the key's scopes.
        #[arg(long = "scope", conflicts_with = "no_scopes")]
        scopes: Vec<String>,
        /// Remove every scope.
        #[arg(long)]
        no_scopes: bool,
    },
    /// Revoke a key at once (exit 3 if it is already revoked).
    Revoke {
        /// The key id (`key_…`) shown by `keys list`.
        key_id: String,
    },
    /// Replace a key by a new one; the old key keeps working for the grace
    /// period, then expires (refused for a revoked, expired or already
    /// replaced key).
    Rotate {
        /// The key id (`key_…`) shown by `keys list`.
        key_id: String,
        /// Hours the old key stays valid (0 = revoke it now).
        #[arg(long, default_value_t = DEFAULT_ROTATE_GRACE_HOURS,
              value_parser = clap::value_parser!(u64).range(0..=8_760))]
        grace_hours: u64,
    },
}

#[derive(Debug, Subcommand)]
enum StocksCommand {
    /// List stocks with their current borrow rate.
    List,
    /// Insert or update a stock.
    Upsert(StockArgs),
}

#[derive(Debug, Args)]
struct StockArgs {
    #[arg(long)]
    ticker: String,
    /// Annual base rate as a fraction (0.0030 = 0.30 %).
    #[arg(long)]
    base_rate: String,
    #[arg(long)]
    volatility_index: String,
    #[arg(long)]
    event_risk_factor: String,
    /// Floor of the borrow rate, as a fraction.
    #[arg(long)]
    min_rate: String,
}

#[derive(Debug, Subcommand)]
enum ClientsCommand {
    /// List clients and their terms.
    List,
    /// Insert or update a client.
    Upsert(ClientArgs),
}

#[derive(Debug, Args)]
struct ClientArgs {
    #[arg(long)]
    client_id: String,
    /// Percent added on top of the borrow cost (5.00 = 5 %).
    #[arg(long)]
    markup_percentage: String,
    /// FLAT (fee_amount per locate) or PERCENTAGE (of the position value).
    #[arg(long)]
    fee_type: String,
    #[arg(long)]
    fee_amount: String,
}

/// A failure with its exit code.
struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn usage(message: impl Into<String>) -> Self {
        Self {
            code: EXIT_USAGE,
            message: message.into(),
        }
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Self {
        use store::StoreErrorKind as K;
        let code = match e.kind() {
            K::Invalid => EXIT_USAGE,
            K::NotFound => EXIT_NOT_FOUND,
            K::Conflict => EXIT_CONFLICT,
            K::Unavailable | K::Other => EXIT_FAILURE,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                let _ = e.print();
                return ExitCode::SUCCESS;
            }
            if e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                let _ = e.print();
                return ExitCode::from(EXIT_USAGE);
            }
            // clap's message spans several lines (usage, hints); keep the
            // error sentence, plus the list it introduces when it ends
            // with ':' ("required arguments were not provided: --x").
            let rendered = e.to_string();
            let mut lines = rendered.lines().map(str::trim).filter(|l| !l.is_empty());
            let mut line = lines
                .next()
                .unwrap_or("error: invalid arguments")
                .to_owned();
            if line.ends_with(':') {
                let items: Vec<&str> = lines.take_while(|l| !l.starts_with("Usage:")).collect();
                line = format!("{line} {}", items.join(", "));
            }
            eprintln!("{line} (see gatewayctl --help)");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("error: {}", f.message.replace('\n', " "));
            ExitCode::from(f.code)
        }
    }
}

/// What every command gets besides its own arguments.
struct Ctx {
    url: Option<String>,
    json: bool,
    actor: String,
}

impl Ctx {
    async fn open(&self) -> Result<Store, Failure> {
        let url = self
            .url
            .clone()
            .unwrap_or_else(store::database_url_from_env);
        let mut options = StoreOptions::new(url);
        options.max_connections = 2;
        Ok(Store::connect_with(options).await?)
    }
}

fn decimal(field: &str, raw: &str) -> Result<Decimal, Failure> {
    store::parse_decimal(field, raw).map_err(|e| Failure::usage(e.to_string()))
}

fn non_negative(field: &str, raw: &str) -> Result<Decimal, Failure> {
    let d = decimal(field, raw)?;
    if d < Decimal::ZERO {
        return Err(Failure::usage(format!("{field}: must not be negative")));
    }
    Ok(d)
}

fn client_id(raw: &str) -> Result<ClientId, Failure> {
    ClientId::parse(raw).map_err(|e| Failure::usage(format!("client-id: {}", e.issue)))
}

fn scope(raw: &str) -> Result<String, Failure> {
    let ok = !raw.is_empty()
        && raw.len() <= 32
        && raw.starts_with(|c: char| c.is_ascii_lowercase())
        && raw
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_:.-".contains(&b));
    if ok {
        Ok(raw.to_owned())
    } else {
        Err(Failure::usage(format!(
            "scope: {raw:?} must be lower-case letters, digits, '_', ':', '.' or '-' (e.g. admin)"
        )))
    }
}

fn scopes(raw: &[String]) -> Result<Vec<String>, Failure> {
    let mut out: Vec<String> = Vec::new();
    for s in raw {
        let s = scope(s)?;
        if !out.contains(&s) {
            out.push(s);
        }
    }
    Ok(out)
}

/// An actor name: 1 to 64 characters, no control characters.
fn valid_actor(raw: &str) -> Option<String> {
    let a = raw.trim();
    (!a.is_empty() && a.chars().count() <= 64 && !a.chars().any(char::is_control))
        .then(|| a.to_owned())
}

/// `--actor`, else `USER`, else `LOGNAME`, else `unknown`.
fn actor(flag: Option<&str>) -> Result<String, Failure> {
    if let Some(raw) = flag {
        return valid_actor(raw).ok_or_else(|| {
            Failure::usage(format!(
                "actor: {raw:?} must be 1 to 64 characters without control characters"
            ))
        });
    }
    Ok(["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().as_deref().and_then(valid_actor))
        .unwrap_or_else(|| store::UNKNOWN_ACTOR.to_owned()))
}

/// Seconds since the epoch of an RFC 3339 time: `YYYY-MM-DDTHH:MM:SS`, an
/// optional fraction (dropped), then `Z` or a `±HH:MM` offset.
fn parse_rfc3339_any_offset(raw: &str) -> Option<i64> {
    let s = raw.trim();
    if s.len() < 20 || !s.is_ascii() {
        return None;
    }
    let (base, mut zone) = s.split_at(19);
    let base = base.to_ascii_uppercase();
    let secs = store::time::parse_rfc3339(&format!("{base}Z"))?;
    // Rejects impossible dates (2026-02-30) and leap seconds.
    if store::time::rfc3339(secs)[..19] != base {
        return None;
    }
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        zone = &frac[digits..];
    }
    let offset = match zone {
        "Z" | "z" => 0,
        _ => {
            let b = zone.as_bytes();
            if b.len() != 6 || b[3] != b':' || !matches!(b[0], b'+' | b'-') {
                return None;
            }
            let h: i64 = zone.get(1..3)?.parse().ok()?;
            let m: i64 = zone.get(4..6)?.parse().ok()?;
            if !zone[1..3].bytes().all(|c| c.is_ascii_digit())
                || !zone[4..6].bytes().all(|c| c.is_ascii_digit())
                || h > 23
                || m > 59
            {
                return None;
            }
            let sign = if b[0] == b'-' { -1 } else { 1 };
            sign * (h * 3600 + m * 60)
        }
    };
    Some(secs - offset)
}

/// `--expires-at`: a future RFC 3339 time within 100 years, stored in the
/// database's UTC form.
fn expires_at(raw: &str) -> Result<String, Failure> {
    let at = parse_rfc3339_any_offset(raw).ok_or_else(|| {
        Failure::usage(format!(
            "expires-at: {raw:?} is not an RFC 3339 time (e.g. 2027-01-31T00:00:00Z)"
        ))
    })?;
    let now = store::time::unix_now();
    if at <= now {
        return Err(Failure::usage(format!(
            "expires-at: {raw} is not in the future (use keys revoke to stop a key now)"
        )));
    }
    if at > now + MAX_EXPIRY_DAYS * 86_400 {
        return Err(Failure::usage(format!(
            "expires-at: {raw} is more than {MAX_EXPIRY_DAYS} days away"
        )));
    }
    Ok(store::time::rfc3339(at))
}

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

async fn run(cli: Cli) -> Result<(), Failure> {
    let ctx = Ctx {
        url: cli.database_url,
        json: cli.json,
        actor: actor(cli.actor.as_deref())?,
    };
    match cli.command {
        Command::Keys(cmd) => keys(&ctx, cmd).await,
        Command::Stocks(cmd) => stocks(&ctx, cmd).await,
        Command::Clients(cmd) => clients(&ctx, cmd).await,
    }
}

/// The JSON form of a key (docs/backends.md, "gatewayctl JSON"): every
/// stored field but the hash, with the status at `now`.
fn key_json(k: &ApiKey, now: &str) -> Value {
    json!({
        "key_id": k.key_id,
        "key_prefix": k.key_prefix,
        "client_id": k.client_id,
        "status": k.status_at(now).as_str(),
        "scopes": k.scopes,
        "rate_limit_per_minute": k.rate_limit_per_minute,
        "expires_at": k.expires_at,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
        "replaced_by": k.replaced_by,
        "last_used_at": k.last_used_at,
    })
}

/// An event's details as JSON (the stored text, parsed).
fn details_json(e: &KeyEvent) -> Value {
    serde_json::from_str(&e.details).unwrap_or_else(|_| Value::String(e.details.clone()))
}

fn event_json(e: &KeyEvent) -> Value {
    json!({
        "event_id": e.event_id,
        "key_id": e.key_id,
        "seq": e.seq,
        "action": e.action.as_str(),
        "actor": e.actor,
        "at": e.at,
        "details": details_json(e),
    })
}

fn event_line(e: &KeyEvent) -> String {
    format!(
        "{:>3}  {}  {:<6}  {}  {}",
        e.seq,
        e.at,
        e.action.as_str(),
        e.actor,
        e.details
    )
}

fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(show_value).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

fn print_key_fields(k: &ApiKey, now: &str) {
    println!("key_id: {}", k.key_id);
    println!("key_prefix: {}", k.key_prefix);
    println!("client_id: {}", k.client_id);
    println!("status: {}", k.status_at(now).as_str());
    println!(
        "scopes: {}",
        if k.scopes.is_empty() {
            "-".to_owned()
        } else {
            k.scopes.join(" ")
        }
    );
    println!(
        "rate_limit_per_minute: {}",
        k.rate_limit_per_minute
            .map_or_else(|| "default".to_owned(), |n| n.to_string())
    );
    println!("expires_at: {}", k.expires_at.as_deref().unwrap_or("never"));
    println!("created_at: {}", k.created_at);
    println!("revoked_at: {}", or_dash(k.revoked_at.as_deref()));
    println!("replaced_by: {}", or_dash(k.replaced_by.as_deref()));
    println!(
        "last_used_at: {}",
        k.last_used_at.as_deref().unwrap_or("never")
    );
}

fn print_new_key(created: &store::CreatedApiKey) {
    let r = &created.record;
    println!("key_id: {}", r.key_id);
    println!("client_id: {}", r.client_id);
    println!(
        "scopes: {}",
        if r.scopes.is_empty() {
            "-".to_owned()
        } else {
            r.scopes.join(" ")
        }
    );
    println!(
        "rate_limit_per_minute: {}",
        r.rate_limit_per_minute
            .map_or_else(|| "default".to_owned(), |n| n.to_string())
    );
    println!("expires_at: {}", r.expires_at.as_deref().unwrap_or("never"));
    println!("The key below is shown only once; store it securely.");
    println!("{}", created.key);
}

/// Which keys `keys list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListFilter {
    All,
    Only(KeyStatus),
}

async fn keys(ctx: &Ctx, cmd: KeysCommand) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Create {
            client_id: raw_client,
            expires_in_days,
            rate_limit_per_minute,
            scopes: raw_scopes,
        } => {
            let client = client_id(&raw_client)?;
            let scopes = scopes(&raw_scopes)?;
            let expires_at = expires_in_days
                .map(|d| store::time::rfc3339(store::time::unix_now() + i64::from(d) * 86_400));
            let store = ctx.open().await?;
            let created = store
                .create_api_key_by(
                    &NewApiKey {
                        client_id: client.to_string(),
                        scopes,
                        rate_limit_per_minute: rate_limit_per_minute.map(i64::from),
                        expires_at,
                    },
                    &ctx.actor,
                )
                .await?;
            if ctx.json {
                let mut v = key_json(&created.record, &store::time::now_rfc3339());
                v["key"] = Value::String(created.key.clone());
                println!("{v}");
            } else {
                print_new_key(&created);
            }
        }
        KeysCommand::List {
            client_id: c,
            active,
            expired,
            revoked,
        } => {
            if let Some(c) = &c {
                client_id(c)?;
            }
            let filter = match (active, expired, revoked) {
                (true, _, _) => ListFilter::Only(KeyStatus::Active),
                (_, true, _) => ListFilter::Only(KeyStatus::Expired),
                (_, _, true) => ListFilter::Only(KeyStatus::Revoked),
                _ => ListFilter::All,
            };
            let store = ctx.open().await?;
            let now = store::time::now_rfc3339();
            let list: Vec<ApiKey> = store
                .list_api_keys(c.as_deref())
                .await?
                .into_iter()
                .filter(|k| match filter {
                    ListFilter::All => true,
                    ListFilter::Only(s) => k.status_at(&now) == s,
                })
                .collect();
            if ctx.json {
                for k in &list {
                    println!("{}", key_json(k, &now));
                }
            } else {
                println!(
                    "{:<21} {:<9} {:<20} {:<8} {:<8} {:<6} {:<21} {:<21} {:<21} REPLACED_BY",
                    "KEY_ID",
                    "PREFIX",
                    "CLIENT_ID",
                    "STATUS",
                    "SCOPES",
                    "RPM",
                    "EXPIRES_AT",
                    "CREATED_AT",
                    "LAST_USED_AT"
                );
                for k in &list {
                    let scopes = k.scopes.join(",");
                    println!(
                        "{:<21} {:<9} {:<20} {:<8} {:<8} {:<6} {:<21} {:<21} {:<21} {}",
                        k.key_id,
                        k.key_prefix,
                        k.client_id,
                        k.status_at(&now).as_str(),
                        if scopes.is_empty() { "-" } else { &scopes },
                        k.rate_limit_per_minute
                            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        or_dash(k.expires_at.as_deref()),
                        k.created_at,
                        or_dash(k.last_used_at.as_deref()),
                        or_dash(k.replaced_by.as_deref()),
                    );
                }
            }
        }
        KeysCommand::Show { key_id } => {
            let store = ctx.open().await?;
            let key = store.api_key(&key_id).await?.ok_or_else(|| Failure {
                code: EXIT_NOT_FOUND,
                message: format!("no key with id {key_id}"),
            })?;
            let events = store.api_key_events(&key_id).await?;
            let now = store::time::now_rfc3339();
            if ctx.json {
                let mut v = key_json(&key, &now);
                v["history"] = events.iter().map(event_json).collect();
                println!("{v}");
            } else {
                print_key_fields(&key, &now);
                println!("history:");
                for e in &events {
                    println!("  {}", event_line(e));
                }
            }
        }
        KeysCommand::History { key_id } => {
            let store = ctx.open().await?;
            if store.api_key(&key_id).await?.is_none() {
                return Err(Failure {
                    code: EXIT_NOT_FOUND,
                    message: format!("no key with id {key_id}"),
                });
            }
            let events = store.api_key_events(&key_id).await?;
            if ctx.json {
                for e in &events {
                    println!("{}", event_json(e));
                }
            } else {
                println!(
                    "{:>3}  {:<20}  {:<6}  ACTOR  DETAILS",
                    "SEQ", "AT", "ACTION"
                );
                for e in &events {
                    println!("{}", event_line(e));
                }
            }
        }
        KeysCommand::Update {
            key_id,
            rate_limit_per_minute,
            no_rate_limit,
            expires_at: raw_expires,
            no_expiry,
            scopes: raw_scopes,
            no_scopes,
        } => {
            let update = KeyUpdate {
                rate_limit_per_minute: if no_rate_limit {
                    Some(None)
                } else {
                    rate_limit_per_minute.map(|n| Some(i64::from(n)))
                },
                expires_at: if no_expiry {
                    Some(None)
                } else {
                    raw_expires
                        .as_deref()
                        .map(expires_at)
                        .transpose()?
                        .map(Some)
                },
                scopes: if no_scopes {
                    Some(Vec::new())
                } else if raw_scopes.is_empty() {
                    None
                } else {
                    Some(scopes(&raw_scopes)?)
                },
            };
            if update.is_empty() {
                return Err(Failure::usage(
                    "nothing to update: give --rate-limit-per-minute/--no-rate-limit, \
                     --expires-at/--no-expiry or --scope/--no-scopes",
                ));
            }
            let store = ctx.open().await?;
            let updated = store
                .update_api_key_by(&key_id, &update, &ctx.actor)
                .await?;
            let now = store::time::now_rfc3339();
            let changes = updated
                .event
                .as_ref()
                .map_or_else(|| json!({}), details_json);
            if ctx.json {
                let mut v = key_json(&updated.record, &now);
                v["changes"] = changes;
                println!("{v}");
            } else if let Some(fields) = changes.as_object().filter(|f| !f.is_empty()) {
                println!("{key_id} updated:");
                for (field, change) in fields {
                    println!(
                        "  {field}: {} -> {}",
                        show_value(&change["from"]),
                        show_value(&change["to"])
                    );
                }
            } else {
                println!("{key_id} unchanged: it already has these values");
            }
        }
        KeysCommand::Revoke { key_id } => {
            let store = ctx.open().await?;
            let k = store.revoke_api_key_by(&key_id, &ctx.actor).await?;
            let now = store::time::now_rfc3339();
            if ctx.json {
                println!("{}", key_json(&k, &now));
            } else {
                println!(
                    "{} ({}, client {}) is {}",
                    k.key_id,
                    k.key_prefix,
                    k.client_id,
                    k.status_at(&now).as_str()
                );
            }
        }
        KeysCommand::Rotate {
            key_id,
            grace_hours,
        } => {
            let store = ctx.open().await?;
            let created = store
                .rotate_api_key_by(&key_id, Duration::from_secs(grace_hours * 3600), &ctx.actor)
                .await?;
            let old = store.api_key(&key_id).await?;
            let now = store::time::now_rfc3339();
            if ctx.json {
                let v = json!({
                    "key": created.key,
                    "new_key": key_json(&created.record, &now),
                    "old_key": old.as_ref().map(|o| key_json(o, &now)),
                });
                println!("{v}");
                return Ok(());
            }
            match old {
                Some(o) if o.status_at(&now) == KeyStatus::Active => println!(
                    "old key {} stays valid until {}",
                    o.key_id,
                    or_dash(o.expires_at.as_deref())
                ),
                Some(o) => println!("old key {} is {}", o.key_id, o.status_at(&now).as_str()),
                None => {}
            }
            print_new_key(&created);
        }
    }
    Ok(())
}

fn stock_json(s: &store::Stock) -> Result<Value, Failure> {
    let rate = s.borrow_rate()?;
    Ok(json!({
        "ticker": s.ticker,
        "base_rate": s.risk.base_rate.to_string(),
        "volatility_index": s.risk.volatility_index.to_string(),
        "event_risk_factor": s.risk.event_risk_factor.to_string(),
        "min_rate": s.risk.min_rate.to_string(),
        "current_rate": rate.to_string(),
        "borrow_status": rate.status().as_str(),
        "updated_at": s.updated_at,
    }))
}

fn client_json(c: &store::Client) -> Value {
    json!({
        "client_id": c.client_id,
        "markup_percentage": c.terms.markup_percentage.to_string(),
        "fee_type": c.terms.fee_type.as_str(),
        "fee_amount": c.terms.fee_amount.to_string(),
        "updated_at": c.updated_at,
    })
}

async fn stocks(ctx: &Ctx, cmd: StocksCommand) -> Result<(), Failure> {
    match cmd {
        StocksCommand::List => {
            let store = ctx.open().await?;
            let list = store.list_stocks().await?;
            if !ctx.json {
                println!(
                    "{:<8} {:<10} {:<10} {:<8} {:<10} {:<14} {:<7} UPDATED_AT",
                    "TICKER", "BASE_RATE", "VOLATILITY", "EVENT", "MIN_RATE", "RATE", "STATUS"
                );
            }
            for s in &list {
                if ctx.json {
                    println!("{}", stock_json(s)?);
                } else {
                    let rate = s.borrow_rate()?;
                    println!(
                        "{:<8} {:<10} {:<10} {:<8} {:<10} {:<14} {:<7} {}",
                        s.ticker,
                        s.risk.base_rate,
                        s.risk.volatility_index,
                        s.risk.event_risk_factor,
                        s.risk.min_rate,
                        rate.to_string(),
                        rate.status().as_str(),
                        s.updated_at
                    );
                }
            }
        }
        StocksCommand::Upsert(a) => {
            let ticker = Ticker::parse(&a.ticker)
                .map_err(|e| Failure::usage(format!("ticker: {}", e.issue)))?;
            let risk = StockRisk {
                base_rate: non_negative("base-rate", &a.base_rate)?,
                volatility_index: non_negative("volatility-index", &a.volatility_index)?,
                event_risk_factor: non_negative("event-risk-factor", &a.event_risk_factor)?,
                min_rate: non_negative("min-rate", &a.min_rate)?,
            };
            let rate = risk
                .borrow_rate()
                .map_err(|_| Failure::usage("the risk inputs are too large to compute a rate"))?;
            let store = ctx.open().await?;
            let s = store.upsert_stock(ticker.as_str(), &risk).await?;
            if ctx.json {
                println!("{}", stock_json(&s)?);
            } else {
                println!(
                    "{} saved: rate {} ({}), served within 5 s",
                    s.ticker,
                    rate,
                    rate.status().as_str()
                );
            }
        }
    }
    Ok(())
}

async fn clients(ctx: &Ctx, cmd: ClientsCommand) -> Result<(), Failure> {
    match cmd {
        ClientsCommand::List => {
            let store = ctx.open().await?;
            let list = store.list_clients().await?;
            if !ctx.json {
                println!(
                    "{:<20} {:<8} {:<11} {:<10} UPDATED_AT",
                    "CLIENT_ID", "MARKUP%", "FEE_TYPE", "FEE_AMOUNT"
                );
            }
            for c in &list {
                if ctx.json {
                    println!("{}", client_json(c));
                } else {
                    println!(
                        "{:<20} {:<8} {:<11} {:<10} {}",
                        c.client_id,
                        c.terms.markup_percentage,
                        c.terms.fee_type.as_str(),
                        c.terms.fee_amount,
                        c.updated_at
                    );
                }
            }
        }
        ClientsCommand::Upsert(a) => {
            let id = client_id(&a.client_id)?;
            let fee_type: FeeType = a
                .fee_type
                .to_ascii_uppercase()
                .parse()
                .map_err(|e: String| Failure::usage(format!("fee-type: {e}")))?;
            let terms = ClientTerms {
                markup_percentage: non_negative("markup-percentage", &a.markup_percentage)?,
                fee_type,
                fee_amount: non_negative("fee-amount", &a.fee_amount)?,
            };
            let store = ctx.open().await?;
            let c = store.upsert_client(id.as_str(), &terms).await?;
            if ctx.json {
                println!("{}", client_json(&c));
            } else {
                println!(
                    "{} saved: markup {} %, {} {}",
                    c.client_id,
                    c.terms.markup_percentage,
                    c.terms.fee_type.as_str(),
                    c.terms.fee_amount
                );
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_times_with_offsets_and_fractions_are_read_in_utc() {
        let t = |s| parse_rfc3339_any_offset(s);
        assert_eq!(t("2026-11-23T10:00:00Z"), Some(1_795_428_000));
        assert_eq!(t("2026-11-23t10:00:00z"), Some(1_795_428_000));
        assert_eq!(t("2026-11-23T10:00:00.250Z"), Some(1_795_428_000));
        assert_eq!(t("2026-11-23T12:00:00+02:00"), Some(1_795_428_000));
        assert_eq!(t("2026-11-23T05:30:00-04:30"), Some(1_795_428_000));
        for bad in [
            "2026-11-23",
            "2026-11-23T10:00:00",
            "2026-02-30T10:00:00Z",
            "2026-11-23T10:00:00+2:00",
            "2026-11-23T10:00:00+24:00",
            "2026-11-23T10:00:00.Z",
            "2026-11-23 10:00:00Z",
            "2026-11-23T10:00:60Z",
            "2026-11-23T10:00:00ZZ",
        ] {
            assert_eq!(t(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_actor_must_be_a_short_printable_name() {
        assert_eq!(actor(Some(" alice ")).ok().as_deref(), Some("alice"));
        assert!(actor(Some("")).is_err());
        assert!(actor(Some("a\nb")).is_err());
        assert!(actor(Some(&"x".repeat(65))).is_err());
    }
}

//! `gatewayctl`: the operator CLI over the pricing database.
//!
//! ```text
//! gatewayctl keys create --client-id ID [--expires-in-days N] [--rate-limit-per-minute N] [--scope admin]
//! gatewayctl keys list [--client-id ID] [--json]
//! gatewayctl keys revoke KEY_ID
//! gatewayctl keys rotate KEY_ID [--grace-hours H]      (default grace: 24 h)
//! gatewayctl stocks list [--json]
//! gatewayctl stocks upsert --ticker T --base-rate D --volatility-index D --event-risk-factor D --min-rate D
//! gatewayctl clients list [--json]
//! gatewayctl clients upsert --client-id ID --markup-percentage D --fee-type FLAT|PERCENTAGE --fee-amount D
//! ```
//!
//! The database is `--database-url`, else `DATABASE_URL`, else
//! `sqlite://var/pricing.db` (the same default as the services).
//! `keys create` and `keys rotate` print the new key as the last line of
//! stdout; it is shown only then (only its hash is stored).
//!
//! Exit codes: 0 success, 1 operation failed (database, unknown key id),
//! 2 bad arguments (always a one-line message on stderr).

use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use pricing::{ClientId, ClientTerms, Decimal, FeeType, StockRisk, Ticker};
use store::{KeyStatus, NewApiKey, Store, StoreOptions};

/// Default time a rotated key keeps working after `keys rotate`.
const DEFAULT_ROTATE_GRACE_HOURS: u64 = 24;

#[derive(Debug, Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "Manage API keys, stocks and clients of the borrow-rate gateway"
)]
struct Cli {
    /// Database URL; default DATABASE_URL, else sqlite://var/pricing.db.
    #[arg(long, global = true, value_name = "URL")]
    database_url: Option<String>,
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
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key id (`key_…`) shown by `keys list`.
        key_id: String,
    },
    /// Replace a key by a new one; the old key keeps working for the grace
    /// period, then expires.
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
    List {
        #[arg(long)]
        json: bool,
    },
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
    List {
        #[arg(long)]
        json: bool,
    },
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
            code: 2,
            message: message.into(),
        }
    }
}

impl From<store::StoreError> for Failure {
    fn from(e: store::StoreError) -> Self {
        let code = if e.kind() == store::StoreErrorKind::Invalid {
            2
        } else {
            1
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
                return ExitCode::from(2);
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
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start runtime: {e}");
            return ExitCode::FAILURE;
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

async fn open(url: Option<String>) -> Result<Store, Failure> {
    let url = url.unwrap_or_else(store::database_url_from_env);
    let mut options = StoreOptions::new(url);
    options.max_connections = 2;
    Ok(Store::connect_with(options).await?)
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

fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

async fn run(cli: Cli) -> Result<(), Failure> {
    match cli.command {
        Command::Keys(cmd) => keys(cli.database_url, cmd).await,
        Command::Stocks(cmd) => stocks(cli.database_url, cmd).await,
        Command::Clients(cmd) => clients(cli.database_url, cmd).await,
    }
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

async fn keys(url: Option<String>, cmd: KeysCommand) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Create {
            client_id: raw_client,
            expires_in_days,
            rate_limit_per_minute,
            scopes,
        } => {
            let client = client_id(&raw_client)?;
            let scopes = scopes
                .iter()
                .map(|s| scope(s))
                .collect::<Result<Vec<_>, _>>()?;
            let expires_at = expires_in_days
                .map(|d| store::time::rfc3339(store::time::unix_now() + i64::from(d) * 86_400));
            let store = open(url).await?;
            let created = store
                .create_api_key(&NewApiKey {
                    client_id: client.to_string(),
                    scopes,
                    rate_limit_per_minute: rate_limit_per_minute.map(i64::from),
                    expires_at,
                })
                .await?;
            print_new_key(&created);
        }
        KeysCommand::List { client_id: c, json } => {
            if let Some(c) = &c {
                client_id(c)?;
            }
            let store = open(url).await?;
            let now = store::time::now_rfc3339();
            let list = store.list_api_keys(c.as_deref()).await?;
            if json {
                for k in &list {
                    let v = serde_json::json!({
                        "key_id": k.key_id,
                        "key_prefix": k.key_prefix,
                        "client_id": k.client_id,
                        "status": k.status_at(&now).as_str(),
                        "scopes": k.scopes,
                        "rate_limit_per_minute": k.rate_limit_per_minute,
                        "expires_at": k.expires_at,
                        "created_at": k.created_at,
                        "revoked_at": k.revoked_at,
                        "replaced_by": k.replaced_by,
                    });
                    println!("{v}");
                }
            } else {
                println!(
                    "{:<21} {:<9} {:<20} {:<8} {:<8} {:<6} {:<21} {:<21} REPLACED_BY",
                    "KEY_ID",
                    "PREFIX",
                    "CLIENT_ID",
                    "STATUS",
                    "SCOPES",
                    "RPM",
                    "EXPIRES_AT",
                    "CREATED_AT"
                );
                for k in &list {
                    let scopes = k.scopes.join(",");
                    println!(
                        "{:<21} {:<9} {:<20} {:<8} {:<8} {:<6} {:<21} {:<21} {}",
                        k.key_id,
                        k.key_prefix,
                        k.client_id,
                        k.status_at(&now).as_str(),
                        if scopes.is_empty() { "-" } else { &scopes },
                        k.rate_limit_per_minute
                            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        or_dash(k.expires_at.as_deref()),
                        k.created_at,
                        or_dash(k.replaced_by.as_deref()),
                    );
                }
            }
        }
        KeysCommand::Revoke { key_id } => {
            let store = open(url).await?;
            let k = store.revoke_api_key(&key_id).await?;
            println!(
                "{} ({}, client {}) is {}",
                k.key_id,
                k.key_prefix,
                k.client_id,
                k.status().as_str()
            );
        }
        KeysCommand::Rotate {
            key_id,
            grace_hours,
        } => {
            let store = open(url).await?;
            let created = store
                .rotate_api_key(&key_id, Duration::from_secs(grace_hours * 3600))
                .await?;
            let old = store.api_key(&key_id).await?;
            match old {
                Some(o) if o.status() == KeyStatus::Active => println!(
                    "old key {} stays valid until {}",
                    o.key_id,
                    or_dash(o.expires_at.as_deref())
                ),
                Some(o) => println!("old key {} is {}", o.key_id, o.status().as_str()),
                None => {}
            }
            print_new_key(&created);
        }
    }
    Ok(())
}

async fn stocks(url: Option<String>, cmd: StocksCommand) -> Result<(), Failure> {
    match cmd {
        StocksCommand::List { json } => {
            let store = open(url).await?;
            let list = store.list_stocks().await?;
            if !json {
                println!(
                    "{:<8} {:<10} {:<10} {:<8} {:<10} {:<14} {:<7} UPDATED_AT",
                    "TICKER", "BASE_RATE", "VOLATILITY", "EVENT", "MIN_RATE", "RATE", "STATUS"
                );
            }
            for s in &list {
                let rate = s.borrow_rate()?;
                if json {
                    let v = serde_json::json!({
                        "ticker": s.ticker,
                        "base_rate": s.risk.base_rate.to_string(),
                        "volatility_index": s.risk.volatility_index.to_string(),
                        "event_risk_factor": s.risk.event_risk_factor.to_string(),
                        "min_rate": s.risk.min_rate.to_string(),
                        "current_rate": rate.to_string(),
                        "borrow_status": rate.status().as_str(),
                        "updated_at": s.updated_at,
                    });
                    println!("{v}");
                } else {
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
            let store = open(url).await?;
            let s = store.upsert_stock(ticker.as_str(), &risk).await?;
            println!(
                "{} saved: rate {} ({}), served within 5 s",
                s.ticker,
                rate,
                rate.status().as_str()
            );
        }
    }
    Ok(())
}

async fn clients(url: Option<String>, cmd: ClientsCommand) -> Result<(), Failure> {
    match cmd {
        ClientsCommand::List { json } => {
            let store = open(url).await?;
            let list = store.list_clients().await?;
            if !json {
                println!(
                    "{:<20} {:<8} {:<11} {:<10} UPDATED_AT",
                    "CLIENT_ID", "MARKUP%", "FEE_TYPE", "FEE_AMOUNT"
                );
            }
            for c in &list {
                if json {
                    let v = serde_json::json!({
                        "client_id": c.client_id,
                        "markup_percentage": c.terms.markup_percentage.to_string(),
                        "fee_type": c.terms.fee_type.as_str(),
                        "fee_amount": c.terms.fee_amount.to_string(),
                        "updated_at": c.updated_at,
                    });
                    println!("{v}");
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
            let store = open(url).await?;
            let c = store.upsert_client(id.as_str(), &terms).await?;
            println!(
                "{} saved: markup {} %, {} {}",
                c.client_id,
                c.terms.markup_percentage,
                c.terms.fee_type.as_str(),
                c.terms.fee_amount
            );
        }
    }
    Ok(())
}

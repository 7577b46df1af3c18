//! The command line: commands, subcommands and their arguments (clap derive).

use super::*;

#[derive(Debug, Parser)]
#[command(
    name = "gatewayctl",
    version,
    about = "Manage API keys, stocks and clients of the borrow-rate gateway",
    after_help = AFTER_HELP
)]
pub(crate) struct Cli {
    /// Database URL; default sqlite://var/pricing.db (an empty value counts
    /// as unset).
    #[arg(
        long,
        global = true,
        env = "DATABASE_URL",
        hide_env_values = true,
        value_name = "URL"
    )]
    pub(crate) database_url: Option<String>,
    /// Print JSON instead of text (one object per line for list/history).
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Who makes the change, recorded in the key history (default: USER,
    /// else LOGNAME, else "unknown").
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) actor: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// API keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Stocks and their risk inputs.
    #[command(subcommand)]
    Stocks(StocksCommand),
    /// Pricing clients and their terms.
    #[command(subcommand)]
    Clients(ClientsCommand),
    /// The public JWKS of ES256 (P-256) keys for the auth WasmPlugin: the
    /// overlays' auth-jwks.yaml patch, or {"keys":[...]} with --json. Each
    /// kid is the key's RFC 7638 thumbprint, as in the auth service's
    /// tokens. No database is opened.
    Jwks {
        /// PEM files: public keys, or PKCS#8 private keys of which only the
        /// public half is used (never printed). Several keys = several
        /// kids accepted (key rotation).
        #[arg(required = true, value_name = "PEM")]
        files: Vec<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
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
pub(crate) enum StocksCommand {
    /// List stocks with their current borrow rate.
    List,
    /// Insert or update a stock.
    Upsert(StockArgs),
}

#[derive(Debug, Args)]
pub(crate) struct StockArgs {
    #[arg(long)]
    pub(crate) ticker: String,
    /// Annual base rate as a fraction (0.0030 = 0.30 %).
    #[arg(long)]
    pub(crate) base_rate: String,
    #[arg(long)]
    pub(crate) volatility_index: String,
    #[arg(long)]
    pub(crate) event_risk_factor: String,
    /// Floor of the borrow rate, as a fraction.
    #[arg(long)]
    pub(crate) min_rate: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ClientsCommand {
    /// List clients and their terms.
    List,
    /// Insert or update a client.
    Upsert(ClientArgs),
}

#[derive(Debug, Args)]
pub(crate) struct ClientArgs {
    #[arg(long)]
    pub(crate) client_id: String,
    /// Percent added on top of the borrow cost (5.00 = 5 %).
    #[arg(long)]
    pub(crate) markup_percentage: String,
    /// FLAT (fee_amount per locate) or PERCENTAGE (of the position value).
    #[arg(long)]
    pub(crate) fee_type: String,
    #[arg(long)]
    pub(crate) fee_amount: String,
}

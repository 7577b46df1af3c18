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
//! gatewayctl jwks PEM...                                (the auth WasmPlugin's JWKS; see [`jwks`])
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

mod catalog;
mod cli;
mod jwks;
mod keys;
mod values;

use catalog::*;
use cli::*;
use keys::*;
use pricing::{ClientId, ClientTerms, Decimal, FeeType, StockRisk, Ticker};
use serde_json::{json, Value};
use store::{ApiKey, KeyEvent, KeyStatus, KeyUpdate, NewApiKey, Store, StoreOptions};
use values::*;

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
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| store::DEFAULT_DATABASE_URL.to_owned());
        let mut options = StoreOptions::new(url);
        options.max_connections = 2;
        Ok(Store::connect_with(options).await?)
    }
}

async fn run(cli: Cli) -> Result<(), Failure> {
    // The database commands share a context; `jwks` reads only its files.
    let ctx = || -> Result<Ctx, Failure> {
        Ok(Ctx {
            url: cli.database_url.clone(),
            json: cli.json,
            actor: actor(cli.actor.as_deref())?,
        })
    };
    match cli.command {
        Command::Keys(cmd) => keys(&ctx()?, cmd).await,
        Command::Stocks(cmd) => stocks(&ctx()?, cmd).await,
        Command::Clients(cmd) => clients(&ctx()?, cmd).await,
        Command::Jwks { ref files } => jwks::jwks(files, cli.json),
    }
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

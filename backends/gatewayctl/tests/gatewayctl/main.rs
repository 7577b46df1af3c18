//! `gatewayctl` as operators run it: the real binary against a real
//! database (SQLite always, PostgreSQL too when `DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use sqlx::Connection;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

mod cli;
mod jwks;
mod keys;
mod stocks_clients;
mod updates;

static COUNTER: AtomicU64 = AtomicU64::new(0);

struct Db {
    url: String,
    cleanup: Option<(String, String)>,
    dir: Option<std::path::PathBuf>,
}

fn unique() -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{}_{nanos:x}_{n}", std::process::id())
}

fn sqlite_db() -> Db {
    let dir = std::env::temp_dir().join(format!("gatewayctl-test-{}", unique()));
    Db {
        url: format!("sqlite://{}/pricing.db", dir.display()),
        cleanup: None,
        dir: Some(dir),
    }
}

async fn databases() -> Vec<Db> {
    let mut dbs = vec![sqlite_db()];
    match std::env::var("DATABASE_URL") {
        Ok(admin) if admin.starts_with("postgres") => {
            let name = format!("gatewayctl_test_{}", unique());
            let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .unwrap();
            conn.close().await.ok();
            let base = admin.split('?').next().unwrap();
            let cut = base
                .rfind('/')
                .filter(|&i| i > "postgres://".len())
                .unwrap_or(base.len());
            dbs.push(Db {
                url: format!("{}/{name}", &base[..cut]),
                cleanup: Some((admin, name)),
                dir: None,
            });
        }
        _ => eprintln!("DATABASE_URL unset: PostgreSQL path skipped (SQLite only)"),
    }
    dbs
}

impl Db {
    async fn drop_it(self) {
        if let Some((admin, name)) = self.cleanup {
            if let Ok(mut c) = sqlx::PgConnection::connect(&admin).await {
                let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut c)
                    .await;
            }
        }
        if let Some(dir) = self.dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }

    fn ctl(&self, args: &[&str]) -> Output {
        self.ctl_env(args, &[])
    }

    /// Runs with some environment variables set (`Some`) or removed (`None`).
    fn ctl_env(&self, args: &[&str], env: &[(&str, Option<&str>)]) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gatewayctl"));
        cmd.args(args)
            .env("DATABASE_URL", &self.url)
            .env_remove("LOG_LEVEL");
        for (name, value) in env {
            match value {
                Some(v) => cmd.env(name, v),
                None => cmd.env_remove(name),
            };
        }
        cmd.output().unwrap()
    }

    /// Runs and expects exit code `code` with a one-line error on stderr.
    fn fails(&self, args: &[&str], code: i32) -> String {
        let out = self.ctl(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?} printed to stdout");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
        stderr
    }

    /// One JSON object from a command run with `--json`.
    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        let out = self.ok(&args);
        assert_eq!(out.lines().count(), 1, "{args:?}: {out}");
        serde_json::from_str(&out).unwrap()
    }

    /// JSON lines from a command run with `--json`.
    fn json_lines(&self, args: &[&str]) -> Vec<Value> {
        let mut args = args.to_vec();
        args.push("--json");
        self.ok(&args)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }

    /// `keys create --json` for `client` with extra arguments: (key, key_id).
    fn create(&self, client: &str, extra: &[&str]) -> (String, String) {
        let v = self.json(&keys_create(client, extra));
        (
            v["key"].as_str().unwrap().to_owned(),
            v["key_id"].as_str().unwrap().to_owned(),
        )
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.ctl(args);
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn keys_json(&self) -> Vec<Value> {
        self.ok(&["keys", "list", "--json"])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

/// `keys create` for `client`, with `extra` arguments.
fn keys_create<'a>(client: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["keys", "create", "--client-id", client];
    args.extend_from_slice(extra);
    args
}

/// `stocks upsert` with its five fields: ticker, base rate, volatility
/// index, event risk factor and floor rate.
fn stock_upsert([ticker, base, volatility, event, min]: [&str; 5]) -> Vec<&str> {
    vec![
        "stocks",
        "upsert",
        "--ticker",
        ticker,
        "--base-rate",
        base,
        "--volatility-index",
        volatility,
        "--event-risk-factor",
        event,
        "--min-rate",
        min,
    ]
}

/// A stock the seed does not have; it prices to 0.033 (MEDIUM).
const RIVN: [&str; 5] = ["rivn", "0.0200", "50", "2", "0.0010"];

/// `clients upsert` with its four fields: client id, markup percentage,
/// fee type and fee amount.
fn client_upsert([client_id, markup, fee_type, fee_amount]: [&str; 4]) -> Vec<&str> {
    vec![
        "clients",
        "upsert",
        "--client-id",
        client_id,
        "--markup-percentage",
        markup,
        "--fee-type",
        fee_type,
        "--fee-amount",
        fee_amount,
    ]
}

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap()
}

fn key_of<'a>(list: &'a [Value], key_id: &str) -> &'a Value {
    list.iter().find(|k| k["key_id"] == key_id).unwrap()
}

/// The stored row of a key as the auth service sees it (by hash).
async fn stored(store: &store::Store, key: &str) -> store::ApiKey {
    store
        .api_key_by_hash(&store::keys::hash_key(key))
        .await
        .unwrap()
        .unwrap()
}

/// The actor recorded without `--actor` in this test process's environment.
fn db_actor_default() -> Value {
    let from_env = ["USER", "LOGNAME"].iter().find_map(|v| {
        std::env::var(v)
            .ok()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
    });
    Value::from(from_env.unwrap_or_else(|| "unknown".to_owned()))
}

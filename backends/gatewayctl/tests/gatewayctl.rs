//! `gatewayctl` as operators run it: the real binary against a real
//! database (SQLite always, PostgreSQL too when `DATABASE_URL` is set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;
use sqlx::Connection;

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
        Command::new(env!("CARGO_BIN_EXE_gatewayctl"))
            .args(args)
            .env("DATABASE_URL", &self.url)
            .env_remove("LOG_LEVEL")
            .output()
            .unwrap()
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

fn last_line(s: &str) -> &str {
    s.lines().last().unwrap()
}

fn key_of<'a>(list: &'a [Value], key_id: &str) -> &'a Value {
    list.iter().find(|k| k["key_id"] == key_id).unwrap()
}

#[tokio::test]
async fn create_then_list_shows_the_key_without_its_secret_then_revoke_marks_it_revoked() {
    for db in databases().await {
        let out = db.ok(&[
            "keys",
            "create",
            "--client-id",
            "test123",
            "--rate-limit-per-minute",
            "120",
            "--scope",
            "admin",
            "--expires-in-days",
            "30",
        ]);
        let key = last_line(&out).to_owned();
        assert!(store::keys::looks_like_key(&key), "last line {key:?}");
        let key_id = out
            .lines()
            .find_map(|l| l.strip_prefix("key_id: "))
            .unwrap()
            .to_owned();

        let table = db.ok(&["keys", "list"]);
        assert!(table.contains(&key_id));
        assert!(!table.contains(&key), "plain key printed by list");
        assert!(!table.contains(&key[8..]), "key secret printed by list");
        let list = db.keys_json();
        let k = key_of(&list, &key_id);
        assert_eq!(k["status"], "active");
        assert_eq!(k["client_id"], "test123");
        assert_eq!(k["key_prefix"], &key[..8]);
        assert_eq!(k["scopes"], serde_json::json!(["admin"]));
        assert_eq!(k["rate_limit_per_minute"], 120);
        assert!(!serde_json::to_string(&list).unwrap().contains(&key));

        // Only the hash is stored, and it is what the auth service looks up.
        let store = store::Store::connect(&db.url).await.unwrap();
        let stored = store
            .api_key_by_hash(&store::keys::hash_key(&key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.key_id, key_id);
        assert_eq!(stored.status(), store::KeyStatus::Active);

        let revoked = db.ok(&["keys", "revoke", &key_id]);
        assert!(revoked.contains("revoked"), "{revoked}");
        assert_eq!(key_of(&db.keys_json(), &key_id)["status"], "revoked");
        let stored = store
            .api_key_by_hash(&store::keys::hash_key(&key))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.status(), store::KeyStatus::Revoked);
        store.close().await;
        db.drop_it().await;
    }
}

#[tokio::test]
async fn rotate_keeps_the_old_key_valid_for_the_grace_period_only() {
    for db in databases().await {
        let out = db.ok(&["keys", "create", "--client-id", "client123"]);
        let old_key = last_line(&out).to_owned();
        let old_id = out
            .lines()
            .find_map(|l| l.strip_prefix("key_id: "))
            .unwrap()
            .to_owned();

        let before = store::time::unix_now();
        let rotated = db.ok(&["keys", "rotate", &old_id]);
        let new_key = last_line(&rotated).to_owned();
        assert!(store::keys::looks_like_key(&new_key));
        assert_ne!(new_key, old_key);

        let list = db.keys_json();
        let old = key_of(&list, &old_id);
        assert_eq!(
            old["status"], "active",
            "old key must survive the grace period"
        );
        let new_id = old["replaced_by"].as_str().unwrap();
        assert_eq!(key_of(&list, new_id)["status"], "active");
        assert_eq!(key_of(&list, new_id)["client_id"], "client123");
        // Default grace: 24 hours from the rotation.
        let expires = store::time::parse_rfc3339(old["expires_at"].as_str().unwrap()).unwrap();
        let grace = expires - before;
        assert!(
            (24 * 3600 - 5..=24 * 3600 + 5).contains(&grace),
            "grace {grace}s"
        );

        // A zero grace retires the old key at once.
        let out = db.ok(&["keys", "rotate", new_id, "--grace-hours", "0"]);
        let newest = last_line(&out).to_owned();
        assert!(store::keys::looks_like_key(&newest));
        assert_eq!(key_of(&db.keys_json(), new_id)["status"], "revoked");

        // A retired key cannot be rotated again.
        let again = db.ctl(&["keys", "rotate", new_id]);
        assert_eq!(again.status.code(), Some(2));
        db.drop_it().await;
    }
}

#[tokio::test]
async fn an_expired_key_is_listed_as_expired() {
    let db = sqlite_db();
    let store = store::Store::connect(&db.url).await.unwrap();
    let created = store
        .create_api_key(&store::NewApiKey {
            client_id: "test123".into(),
            expires_at: Some("2000-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(created.record.status(), store::KeyStatus::Expired);
    assert_eq!(
        key_of(&db.keys_json(), &created.record.key_id)["status"],
        "expired"
    );
    store.close().await;
    db.drop_it().await;
}

#[tokio::test]
async fn stocks_and_clients_can_be_listed_and_upserted() {
    for db in databases().await {
        let stocks = db.ok(&["stocks", "list", "--json"]);
        assert_eq!(stocks.lines().count(), 8);
        assert!(stocks.contains(r#""current_rate":"0.6475""#), "{stocks}");
        let out = db.ok(&[
            "stocks",
            "upsert",
            "--ticker",
            "rivn",
            "--base-rate",
            "0.0200",
            "--volatility-index",
            "50",
            "--event-risk-factor",
            "2",
            "--min-rate",
            "0.0010",
        ]);
        assert!(out.contains("RIVN saved: rate 0.033 (MEDIUM)"), "{out}");
        assert!(db.ok(&["stocks", "list"]).contains("RIVN"));

        db.ok(&[
            "clients",
            "upsert",
            "--client-id",
            "new_desk",
            "--markup-percentage",
            "3.25",
            "--fee-type",
            "PERCENTAGE",
            "--fee-amount",
            "0.02",
        ]);
        let clients = db.ok(&["clients", "list", "--json"]);
        assert_eq!(clients.lines().count(), 5);
        assert!(clients.contains(r#""client_id":"new_desk""#));
        assert!(clients.contains(r#""markup_percentage":"3.25""#));
        db.drop_it().await;
    }
}

#[tokio::test]
async fn bad_arguments_get_one_line_and_exit_code_2_never_a_panic() {
    let db = sqlite_db();
    let cases: &[&[&str]] = &[
        &[],
        &["keys"],
        &["keys", "create"],
        &["keys", "create", "--client-id", "bad id"],
        &[
            "keys",
            "create",
            "--client-id",
            "c",
            "--expires-in-days",
            "0",
        ],
        &[
            "keys",
            "create",
            "--client-id",
            "c",
            "--expires-in-days",
            "x",
        ],
        &[
            "keys",
            "create",
            "--client-id",
            "c",
            "--rate-limit-per-minute",
            "-1",
        ],
        &["keys", "create", "--client-id", "c", "--scope", "Admin!"],
        &["keys", "frobnicate"],
        &["keys", "rotate", "k", "--grace-hours", "99999"],
        &[
            "stocks",
            "upsert",
            "--ticker",
            "TOOLONG",
            "--base-rate",
            "1",
            "--volatility-index",
            "1",
            "--event-risk-factor",
            "1",
            "--min-rate",
            "1",
        ],
        &[
            "stocks",
            "upsert",
            "--ticker",
            "AB",
            "--base-rate",
            "abc",
            "--volatility-index",
            "1",
            "--event-risk-factor",
            "1",
            "--min-rate",
            "1",
        ],
        &[
            "clients",
            "upsert",
            "--client-id",
            "c",
            "--markup-percentage",
            "1",
            "--fee-type",
            "WEIRD",
            "--fee-amount",
            "1",
        ],
        &[
            "clients",
            "upsert",
            "--client-id",
            "c",
            "--markup-percentage",
            "-1",
            "--fee-type",
            "FLAT",
            "--fee-amount",
            "1",
        ],
        &["--database-url", "mysql://x", "keys", "list"],
    ];
    for args in cases {
        let out = db.ctl(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if !args.is_empty() && args != &["keys"] {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
        }
    }
    // An unknown key id is an operation failure, not a usage error.
    let out = db.ctl(&["keys", "revoke", "key_doesnotexist"]);
    assert_eq!(out.status.code(), Some(1));
    db.drop_it().await;
}

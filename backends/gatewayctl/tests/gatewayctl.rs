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
        let mut args = vec!["keys", "create", "--client-id", client];
        args.extend_from_slice(extra);
        let v = self.json(&args);
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

        // A retired key cannot be rotated again: refused, exit 3.
        db.fails(&["keys", "rotate", new_id], 3);
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
async fn bad_arguments_get_one_line_and_exit_code_1_never_a_panic() {
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
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        if !args.is_empty() && args != &["keys"] {
            assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr}");
            assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
        }
    }
    // An unknown key id is "not found", not a usage error.
    db.fails(&["keys", "revoke", "key_doesnotexist"], 2);
    db.drop_it().await;
}

/// The stored row of a key as the auth service sees it (by hash).
async fn stored(store: &store::Store, key: &str) -> store::ApiKey {
    store
        .api_key_by_hash(&store::keys::hash_key(key))
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn show_prints_everything_stored_about_a_key_but_its_hash_with_its_history() {
    for db in databases().await {
        let (key, id) = db.create(
            "test123",
            &[
                "--actor",
                "alice",
                "--scope",
                "admin",
                "--expires-in-days",
                "7",
            ],
        );
        let store = store::Store::connect(&db.url).await.unwrap();
        let hash = stored(&store, &key).await.key_hash;
        store
            .record_api_key_use(&id, "2030-01-02T03:04:05Z")
            .await
            .unwrap();

        let v = db.json(&["keys", "show", &id]);
        let fields: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(
            fields,
            [
                "client_id",
                "created_at",
                "expires_at",
                "history",
                "key_id",
                "key_prefix",
                "last_used_at",
                "rate_limit_per_minute",
                "replaced_by",
                "revoked_at",
                "scopes",
                "status",
            ]
        );
        assert_eq!(v["key_id"], id.as_str());
        assert_eq!(v["key_prefix"], &key[..8]);
        assert_eq!(v["client_id"], "test123");
        assert_eq!(v["status"], "active");
        assert_eq!(v["scopes"], serde_json::json!(["admin"]));
        assert_eq!(v["rate_limit_per_minute"], Value::Null);
        assert!(v["expires_at"].as_str().unwrap().ends_with('Z'));
        assert_eq!(v["revoked_at"], Value::Null);
        assert_eq!(v["last_used_at"], "2030-01-02T03:04:05Z");
        let history = v["history"].as_array().unwrap();
        assert_eq!(history.len(), 1);
        assert_eq!(history[0]["action"], "create");
        assert_eq!(history[0]["actor"], "alice");
        assert_eq!(history[0]["seq"], 1);
        assert_eq!(history[0]["details"]["client_id"], "test123");
        assert_eq!(
            history[0]["details"]["scopes"],
            serde_json::json!(["admin"])
        );
        // list shows last use too.
        assert_eq!(
            key_of(&db.keys_json(), &id)["last_used_at"],
            "2030-01-02T03:04:05Z"
        );

        let text = db.ok(&["keys", "show", &id]);
        for line in [
            format!("key_id: {id}"),
            "status: active".to_owned(),
            "scopes: admin".to_owned(),
            "rate_limit_per_minute: default".to_owned(),
            "last_used_at: 2030-01-02T03:04:05Z".to_owned(),
            "replaced_by: -".to_owned(),
            "history:".to_owned(),
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in\n{text}");
        }
        assert!(text.contains("create  alice"), "{text}");
        for out in [text, v.to_string(), db.ok(&["keys", "list"])] {
            assert!(!out.contains(&hash), "hash printed");
            assert!(!out.contains(&key), "key printed");
        }
        db.fails(&["keys", "show", "key_doesnotexist"], 2);
        db.fails(&["keys", "history", "key_doesnotexist"], 2);
        store.close().await;
        db.drop_it().await;
    }
}

#[tokio::test]
async fn updating_a_keys_limit_is_recorded_in_its_history() {
    for db in databases().await {
        let (key, id) = db.create("test123", &["--rate-limit-per-minute", "120"]);
        let v = db.json(&[
            "keys",
            "update",
            &id,
            "--rate-limit-per-minute",
            "60",
            "--actor",
            "bob",
        ]);
        assert_eq!(v["rate_limit_per_minute"], 60);
        assert_eq!(
            v["changes"],
            serde_json::json!({"rate_limit_per_minute": {"from": 120, "to": 60}})
        );
        // Same key, same secret: the auth service now sees the new limit.
        let store = store::Store::connect(&db.url).await.unwrap();
        let row = stored(&store, &key).await;
        assert_eq!(row.key_id, id);
        assert_eq!(row.rate_limit_per_minute, Some(60));
        assert_eq!(db.keys_json().len(), 1, "update must not create a key");

        let history = db.json_lines(&["keys", "history", &id]);
        assert_eq!(history.len(), 2);
        assert_eq!(history[1]["action"], "update");
        assert_eq!(history[1]["actor"], "bob");
        assert_eq!(history[1]["seq"], 2);
        assert_eq!(
            history[1]["details"]["rate_limit_per_minute"],
            serde_json::json!({"from": 120, "to": 60})
        );
        let text = db.ok(&["keys", "history", &id]);
        assert!(text.contains("update  bob"), "{text}");
        db.drop_it().await;
        store.close().await;
    }
}

#[tokio::test]
async fn update_changes_expiry_and_scopes_in_place_and_can_clear_them() {
    for db in databases().await {
        let (key, id) = db.create("test123", &["--expires-in-days", "1", "--scope", "admin"]);
        let text = db.ok(&[
            "keys",
            "update",
            &id,
            "--expires-at",
            "2090-06-01T12:00:00+02:00",
            "--scope",
            "reports",
            "--scope",
            "admin",
            "--no-rate-limit",
        ]);
        assert!(text.contains(&format!("{id} updated:")), "{text}");
        assert!(text.contains("-> 2090-06-01T10:00:00Z"), "{text}");
        assert!(text.contains("scopes: admin -> reports,admin"), "{text}");
        // --no-rate-limit asked for what it already was: not a change.
        assert!(!text.contains("rate_limit_per_minute"), "{text}");
        let store = store::Store::connect(&db.url).await.unwrap();
        let row = stored(&store, &key).await;
        assert_eq!(row.expires_at.as_deref(), Some("2090-06-01T10:00:00Z"));
        assert_eq!(row.scopes, ["reports", "admin"]);

        let v = db.json(&["keys", "update", &id, "--no-expiry", "--no-scopes"]);
        assert_eq!(v["expires_at"], Value::Null);
        assert_eq!(v["scopes"], serde_json::json!([]));
        assert_eq!(
            v["changes"]["expires_at"],
            serde_json::json!({"from": "2090-06-01T10:00:00Z", "to": null})
        );
        // Asking again changes nothing and records nothing.
        let same = db.json(&["keys", "update", &id, "--no-expiry"]);
        assert_eq!(same["changes"], serde_json::json!({}));
        assert!(db
            .ok(&["keys", "update", &id, "--no-expiry"])
            .contains("unchanged"));
        let actions: Vec<Value> = db
            .json_lines(&["keys", "history", &id])
            .iter()
            .map(|e| e["action"].clone())
            .collect();
        assert_eq!(actions, ["create", "update", "update"]);
        store.close().await;
        db.drop_it().await;
    }
}

#[tokio::test]
async fn update_validates_its_values_like_create_and_refuses_revoked_keys() {
    let db = sqlite_db();
    let (_, id) = db.create("test123", &[]);
    for args in [
        vec!["keys", "update", &id],
        vec!["keys", "update", &id, "--rate-limit-per-minute", "0"],
        vec!["keys", "update", &id, "--rate-limit-per-minute", "1000001"],
        vec![
            "keys",
            "update",
            &id,
            "--rate-limit-per-minute",
            "5",
            "--no-rate-limit",
        ],
        vec!["keys", "update", &id, "--expires-at", "tomorrow"],
        vec![
            "keys",
            "update",
            &id,
            "--expires-at",
            "2026-02-30T00:00:00Z",
        ],
        vec![
            "keys",
            "update",
            &id,
            "--expires-at",
            "2001-01-01T00:00:00Z",
        ],
        vec![
            "keys",
            "update",
            &id,
            "--expires-at",
            "2999-01-01T00:00:00Z",
        ],
        vec![
            "keys",
            "update",
            &id,
            "--expires-at",
            "2090-01-01T00:00:00Z",
            "--no-expiry",
        ],
        vec!["keys", "update", &id, "--scope", "Admin!"],
        vec!["keys", "update", &id, "--scope", "admin", "--no-scopes"],
        vec!["keys", "update", &id, "--no-expiry", "--actor", ""],
    ] {
        db.fails(&args, 1);
    }
    let past = db.fails(
        &[
            "keys",
            "update",
            &id,
            "--expires-at",
            "2001-01-01T00:00:00Z",
        ],
        1,
    );
    assert!(past.contains("not in the future"), "{past}");
    // Nothing was written by the refused updates.
    assert_eq!(db.json_lines(&["keys", "history", &id]).len(), 1);
    db.fails(&["keys", "update", "key_doesnotexist", "--no-expiry"], 2);
    db.ok(&["keys", "revoke", &id]);
    let refused = db.fails(&["keys", "update", &id, "--no-expiry"], 3);
    assert!(refused.contains("revoked"), "{refused}");
    db.drop_it().await;
}

#[tokio::test]
async fn refused_operations_exit_3_and_write_nothing() {
    for db in databases().await {
        let (_, id) = db.create("test123", &[]);
        db.ok(&["keys", "revoke", &id, "--actor", "carol"]);
        let again = db.fails(&["keys", "revoke", &id], 3);
        assert!(again.contains("already revoked"), "{again}");
        db.fails(&["keys", "rotate", &id], 3);

        // A key already rotated (in its grace period) is not rotated again
        // nor updated: the chain goes on from its replacement.
        let (_, old) = db.create("test123", &[]);
        let rotated = db.json(&["keys", "rotate", &old]);
        let new_id = rotated["new_key"]["key_id"].as_str().unwrap();
        let msg = db.fails(&["keys", "rotate", &old], 3);
        assert!(msg.contains(new_id), "{msg}");
        db.fails(&["keys", "update", &old, "--no-expiry"], 3);

        let actions: Vec<(Value, Value)> = db
            .json_lines(&["keys", "history", &id])
            .iter()
            .map(|e| (e["action"].clone(), e["actor"].clone()))
            .collect();
        assert_eq!(
            actions,
            [
                (Value::from("create"), db_actor_default()),
                (Value::from("revoke"), Value::from("carol")),
            ]
        );
        assert_eq!(db.json_lines(&["keys", "history", &old]).len(), 2);
        assert_eq!(db.keys_json().len(), 3);
        db.drop_it().await;
    }
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

#[tokio::test]
async fn the_actor_is_the_option_else_user_else_logname_else_unknown() {
    let db = sqlite_db();
    let (_, id) = db.create("test123", &[]);
    type Env<'a> = &'a [(&'a str, Option<&'a str>)];
    let cases: [(Env, &str); 4] = [
        (
            &[("USER", Some("ops_bob")), ("LOGNAME", Some("x"))],
            "ops_bob",
        ),
        (&[("USER", None), ("LOGNAME", Some("ops_eve"))], "ops_eve"),
        (&[("USER", Some(" ")), ("LOGNAME", None)], "unknown"),
        (&[("USER", None), ("LOGNAME", None)], "unknown"),
    ];
    for (i, (env, expected)) in cases.iter().enumerate() {
        let limit = (10 + i).to_string();
        let out = db.ctl_env(
            &["keys", "update", &id, "--rate-limit-per-minute", &limit],
            env,
        );
        assert!(out.status.success(), "{env:?}");
        let history = db.json_lines(&["keys", "history", &id]);
        assert_eq!(history.last().unwrap()["actor"], *expected, "{env:?}");
    }
    // --actor wins over the environment.
    let out = db.ctl_env(
        &[
            "keys",
            "update",
            &id,
            "--no-rate-limit",
            "--actor",
            "deploy-bot",
        ],
        &[("USER", Some("ops_bob"))],
    );
    assert!(out.status.success());
    let history = db.json_lines(&["keys", "history", &id]);
    assert_eq!(history.last().unwrap()["actor"], "deploy-bot");
    db.drop_it().await;
}

#[tokio::test]
async fn an_old_key_is_valid_inside_its_grace_and_refused_after_it() {
    for db in databases().await {
        let store = store::Store::connect(&db.url).await.unwrap();

        // Grace 0: the old key is refused at once, the new one works.
        let (old_key, old_id) = db.create("test123", &[]);
        let rotated = db.json(&["keys", "rotate", &old_id, "--grace-hours", "0"]);
        let new_key = rotated["key"].as_str().unwrap().to_owned();
        assert_eq!(rotated["old_key"]["status"], "revoked");
        assert_eq!(
            rotated["old_key"]["replaced_by"],
            rotated["new_key"]["key_id"]
        );
        assert_eq!(
            stored(&store, &old_key).await.status(),
            store::KeyStatus::Revoked
        );
        assert_eq!(
            stored(&store, &new_key).await.status(),
            store::KeyStatus::Active
        );

        // Grace 2 h: valid now and up to the end of the grace, refused after.
        let (old_key, old_id) = db.create("client123", &[]);
        let before = store::time::unix_now();
        let rotated = db.json(&["keys", "rotate", &old_id, "--grace-hours", "2"]);
        let after = store::time::unix_now();
        let old = stored(&store, &old_key).await;
        assert_eq!(old.status(), store::KeyStatus::Active);
        let end = store::time::parse_rfc3339(old.expires_at.as_deref().unwrap()).unwrap();
        assert!(
            (before + 7200..=after + 7200).contains(&end),
            "grace end {end}"
        );
        let at = |t: i64| store::time::rfc3339(t);
        assert_eq!(old.status_at(&at(end - 1)), store::KeyStatus::Active);
        assert_eq!(old.status_at(&at(end)), store::KeyStatus::Expired);
        // The new key is not bound by the old key's grace.
        let new_key = rotated["key"].as_str().unwrap();
        let new = stored(&store, new_key).await;
        assert_eq!(new.status_at(&at(end + 86_400)), store::KeyStatus::Active);

        // Once the stored grace end has passed, the old key is refused.
        sqlx::query("UPDATE api_keys SET expires_at = $1 WHERE key_id = $2")
            .bind(at(store::time::unix_now() - 1))
            .bind(&old_id)
            .execute(store.pool())
            .await
            .unwrap();
        assert_eq!(
            stored(&store, &old_key).await.status(),
            store::KeyStatus::Expired
        );
        assert_eq!(key_of(&db.keys_json(), &old_id)["status"], "expired");
        // The rotation is in the old key's history with its grace.
        let history = db.json_lines(&["keys", "history", &old_id]);
        assert_eq!(history[1]["action"], "rotate");
        assert_eq!(history[1]["details"]["grace_seconds"], 7200);
        assert_eq!(history[1]["details"]["expires_at"]["from"], Value::Null);
        store.close().await;
        db.drop_it().await;
    }
}

#[tokio::test]
async fn list_filters_by_client_and_by_active_expired_or_revoked() {
    for db in databases().await {
        let store = store::Store::connect(&db.url).await.unwrap();
        let (_, active) = db.create("desk_a", &[]);
        let (_, revoked) = db.create("desk_a", &[]);
        db.ok(&["keys", "revoke", &revoked]);
        let expired = store
            .create_api_key(&store::NewApiKey {
                client_id: "desk_b".into(),
                expires_at: Some("2000-01-01T00:00:00Z".into()),
                ..Default::default()
            })
            .await
            .unwrap()
            .record
            .key_id;
        let (_, other) = db.create("desk_b", &["--expires-in-days", "3"]);
        let ids = |args: &[&str]| -> Vec<String> {
            let mut all = vec!["keys", "list"];
            all.extend_from_slice(args);
            db.json_lines(&all)
                .iter()
                .map(|k| k["key_id"].as_str().unwrap().to_owned())
                .collect()
        };
        let mut want = vec![active.clone(), other.clone()];
        want.sort();
        let mut got = ids(&["--active"]);
        got.sort();
        assert_eq!(got, want);
        assert_eq!(ids(&["--expired"]), [expired.as_str()]);
        assert_eq!(ids(&["--revoked"]), [revoked.as_str()]);
        assert_eq!(
            ids(&["--client-id", "desk_a", "--active"]),
            [active.as_str()]
        );
        assert_eq!(ids(&["--client-id", "desk_b", "--expired"]), [expired]);
        assert_eq!(ids(&["--client-id", "desk_a"]).len(), 2);
        assert!(ids(&["--client-id", "nobody"]).is_empty());
        let table = db.ok(&["keys", "list", "--active"]);
        assert!(
            table.contains(&active) && !table.contains(&revoked),
            "{table}"
        );
        db.fails(&["keys", "list", "--active", "--expired"], 1);
        db.fails(&["keys", "list", "--client-id", "bad id"], 1);
        store.close().await;
        db.drop_it().await;
    }
}

#[tokio::test]
async fn every_command_prints_json_with_the_documented_fields() {
    for db in databases().await {
        // create: the key object plus the secret, once.
        let created = db.json(&[
            "keys",
            "create",
            "--client-id",
            "test123",
            "--rate-limit-per-minute",
            "30",
        ]);
        let key = created["key"].as_str().unwrap();
        assert!(store::keys::looks_like_key(key));
        assert_eq!(created["status"], "active");
        assert_eq!(created["rate_limit_per_minute"], 30);
        assert_eq!(created["last_used_at"], Value::Null);
        let id = created["key_id"].as_str().unwrap();
        let store = store::Store::connect(&db.url).await.unwrap();
        assert_eq!(stored(&store, key).await.key_id, id);

        // rotate: the new secret, the new key and the old key.
        let rotated = db.json(&["keys", "rotate", id, "--grace-hours", "1"]);
        let new_key = rotated["key"].as_str().unwrap();
        assert_ne!(new_key, key);
        assert_eq!(rotated["old_key"]["key_id"], id);
        assert_eq!(rotated["old_key"]["status"], "active");
        let new_id = rotated["new_key"]["key_id"].as_str().unwrap();
        assert_eq!(rotated["old_key"]["replaced_by"], new_id);
        assert_eq!(rotated["new_key"]["rate_limit_per_minute"], 30);
        assert_eq!(stored(&store, new_key).await.key_id, new_id);

        // update, revoke, show, history, list.
        let updated = db.json(&["keys", "update", new_id, "--scope", "admin"]);
        assert_eq!(updated["scopes"], serde_json::json!(["admin"]));
        let revoked = db.json(&["keys", "revoke", new_id]);
        assert_eq!(revoked["status"], "revoked");
        assert!(revoked["revoked_at"].as_str().unwrap().ends_with('Z'));
        let shown = db.json(&["keys", "show", new_id]);
        let actions: Vec<&str> = shown["history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect();
        assert_eq!(actions, ["create", "update", "revoke"]);
        assert_eq!(
            shown["history"][0]["details"]["rotated_from"],
            Value::from(id)
        );
        let event = &db.json_lines(&["keys", "history", new_id])[0];
        let mut fields: Vec<&str> = event
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            ["action", "actor", "at", "details", "event_id", "key_id", "seq"]
        );
        assert_eq!(db.json_lines(&["keys", "list"]).len(), 2);

        // stocks and clients: upserts print the object the lists print.
        let stock = db.json(&[
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
        assert_eq!(stock["ticker"], "RIVN");
        assert_eq!(stock["current_rate"], "0.033");
        assert_eq!(stock["borrow_status"], "MEDIUM");
        let listed = db.json_lines(&["stocks", "list"]);
        assert!(listed.contains(&stock), "{stock} not in the list");
        let client = db.json(&[
            "clients",
            "upsert",
            "--client-id",
            "desk7",
            "--markup-percentage",
            "3.5",
            "--fee-type",
            "flat",
            "--fee-amount",
            "2",
        ]);
        assert_eq!(client["fee_type"], "FLAT");
        assert!(db.json_lines(&["clients", "list"]).contains(&client));

        // --json before the subcommand works too; errors stay on stderr.
        let out = db.ok(&["--json", "keys", "show", id]);
        assert_eq!(
            serde_json::from_str::<Value>(&out).unwrap()["key_id"],
            Value::from(id)
        );
        db.fails(&["keys", "show", "key_doesnotexist", "--json"], 2);
        store.close().await;
        db.drop_it().await;
    }
}

#[tokio::test]
async fn help_documents_the_exit_codes() {
    let db = sqlite_db();
    let help = db.ok(&["--help"]);
    for text in [
        "0 success",
        "1 usage error",
        "2 not found",
        "3 refused",
        "4 database",
    ] {
        assert!(help.contains(text), "{text:?} in\n{help}");
    }
    let update = db.ok(&["keys", "update", "--help"]);
    assert!(update.contains("--no-expiry") && update.contains("--expires-at"));
    db.drop_it().await;
}

#[test]
fn an_unreachable_database_exits_4_with_a_one_line_error() {
    // A closed port: PostgreSQL cannot be reached at all.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let out = Command::new(env!("CARGO_BIN_EXE_gatewayctl"))
        .args([
            "--database-url",
            &format!("postgres://nobody@127.0.0.1:{port}/none"),
            "keys",
            "list",
        ])
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(4), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}

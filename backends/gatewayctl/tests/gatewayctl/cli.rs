//! The command line itself: bad arguments, --json output, --help and the exit codes.

use super::*;

#[tokio::test]
async fn bad_arguments_get_one_line_and_exit_code_1_never_a_panic() {
    let db = sqlite_db();
    let cases: &[&[&str]] = &[
        &[],
        &["keys"],
        &["keys", "create"],
        &keys_create("bad id", &[]),
        &keys_create("c", &["--expires-in-days", "0"]),
        &keys_create("c", &["--expires-in-days", "x"]),
        &keys_create("c", &["--rate-limit-per-minute", "-1"]),
        &keys_create("c", &["--scope", "Admin!"]),
        &["keys", "frobnicate"],
        &["keys", "rotate", "k", "--grace-hours", "99999"],
        &stock_upsert(["TOOLONG", "1", "1", "1", "1"]),
        &stock_upsert(["AB", "abc", "1", "1", "1"]),
        &client_upsert(["c", "1", "WEIRD", "1"]),
        &client_upsert(["c", "-1", "FLAT", "1"]),
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

#[tokio::test]
async fn every_command_prints_json_with_the_documented_fields() {
    for db in databases().await {
        // create: the key object plus the secret, once.
        let created = db.json(&keys_create("test123", &["--rate-limit-per-minute", "30"]));
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
        let stock = db.json(&stock_upsert(RIVN));
        assert_eq!(stock["ticker"], "RIVN");
        assert_eq!(stock["current_rate"], "0.033");
        assert_eq!(stock["borrow_status"], "MEDIUM");
        let listed = db.json_lines(&["stocks", "list"]);
        assert!(listed.contains(&stock), "{stock} not in the list");
        let client = db.json(&client_upsert(["desk7", "3.5", "flat", "2"]));
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

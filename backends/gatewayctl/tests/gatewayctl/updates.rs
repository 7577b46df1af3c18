//! keys update and the key history: limits, expiry, scopes, refusals and the recorded actor.

use super::*;

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

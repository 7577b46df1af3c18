//! API keys: create, list, show, rotate, expiry and the listing filters.

use super::*;

#[tokio::test]
async fn create_then_list_shows_the_key_without_its_secret_then_revoke_marks_it_revoked() {
    for db in databases().await {
        let out = db.ok(&keys_create(
            "test123",
            &[
                "--rate-limit-per-minute",
                "120",
                "--scope",
                "admin",
                "--expires-in-days",
                "30",
            ],
        ));
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
        let out = db.ok(&keys_create("client123", &[]));
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
    let created = create_expired(&store, "test123").await;
    assert_eq!(created.record.status(), store::KeyStatus::Expired);
    assert_eq!(
        key_of(&db.keys_json(), &created.record.key_id)["status"],
        "expired"
    );
    store.close().await;
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
        assert_stored_status(&store, &old_key, store::KeyStatus::Revoked).await;
        assert_stored_status(&store, &new_key, store::KeyStatus::Active).await;

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
        assert_stored_status(&store, &old_key, store::KeyStatus::Expired).await;
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
        let expired = create_expired(&store, "desk_b").await.record.key_id;
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

/// A key of `client_id` that expired in 2000, written straight to the store
/// (the command line refuses an expiry in the past).
async fn create_expired(store: &store::Store, client_id: &str) -> store::CreatedApiKey {
    store
        .create_api_key(&store::NewApiKey {
            client_id: client_id.into(),
            expires_at: Some("2000-01-01T00:00:00Z".into()),
            ..Default::default()
        })
        .await
        .unwrap()
}

/// Asserts that the key whose secret is `key` has the status `expected`
/// in the store, judged now (as the auth service judges it).
async fn assert_stored_status(store: &store::Store, key: &str, expected: store::KeyStatus) {
    assert_eq!(stored(store, key).await.status(), expected);
}

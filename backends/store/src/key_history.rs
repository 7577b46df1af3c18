//! Key operations with their history.
//!
//! Every change to a key (`create`, `update`, `rotate`, `revoke`) appends
//! one row to `api_key_events` in the same transaction as the change: the
//! key id, a per-key sequence number (1, 2, ...), the action, who did it
//! (the actor, e.g. the operator's user name), when (RFC 3339 UTC) and a
//! JSON object of what changed (`{"field": {"from": old, "to": new}}` for
//! updates). Nothing in this crate updates or deletes an event.
//!
//! Each operation first takes the key's row lock (a no-op `UPDATE`, which on
//! SQLite also takes the write lock), then reads the row, so the checks and
//! the change see the same state even with concurrent operators.
//!
//! `last_used_at` is written by [`Store::record_api_key_use`] (the auth
//! service, at most once a minute per key); it is not an event.

use std::time::Duration;

use sqlx::{Any, Row, Transaction};

use crate::{
    keys, time, ApiKey, CreatedApiKey, KeyStatus, NewApiKey, Result, Store, StoreError,
    StoreErrorKind, KEY_SELECT,
};

/// The actor recorded when none is given (the plain `Store` methods, or a
/// `gatewayctl` run without `--actor`, `USER` or `LOGNAME`).
pub const UNKNOWN_ACTOR: &str = "unknown";

/// What an event records.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyAction {
    Create,
    Update,
    Rotate,
    Revoke,
}

impl KeyAction {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Rotate => "rotate",
            Self::Revoke => "revoke",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "create" => Ok(Self::Create),
            "update" => Ok(Self::Update),
            "rotate" => Ok(Self::Rotate),
            "revoke" => Ok(Self::Revoke),
            other => Err(StoreError::new(
                StoreErrorKind::Other,
                format!("stored key event action {other:?} is unknown"),
            )),
        }
    }
}

/// One row of `api_key_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEvent {
    /// `evt_` + 16 base62 characters.
    pub event_id: String,
    pub key_id: String,
    /// 1 for the key's first event, then 2, 3, ...
    pub seq: i64,
    pub action: KeyAction,
    pub actor: String,
    /// RFC 3339 UTC.
    pub at: String,
    /// A JSON object: what the operation set or changed.
    pub details: String,
}

/// What `keys update` changes; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeyUpdate {
    /// `Some(None)` removes the key's own limit (the global default applies).
    pub rate_limit_per_minute: Option<Option<i64>>,
    /// `Some(None)` makes the key never expire.
    pub expires_at: Option<Option<String>>,
    /// Replaces the key's scopes.
    pub scopes: Option<Vec<String>>,
}

impl KeyUpdate {
    /// Whether the update names no field at all.
    pub fn is_empty(&self) -> bool {
        self.rate_limit_per_minute.is_none() && self.expires_at.is_none() && self.scopes.is_none()
    }
}

/// The outcome of [`Store::update_api_key_by`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpdatedApiKey {
    /// The key as it is now.
    pub record: ApiKey,
    /// The `update` event, `None` when every value was already as asked
    /// (nothing written).
    pub event: Option<KeyEvent>,
}

/// A JSON value of an event's details (strings, integers, string lists and
/// objects are all the details need).
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Str(String),
    Int(i64),
    Strs(Vec<String>),
    Obj(Vec<(&'static str, Json)>),
}

impl From<&str> for Json {
    fn from(s: &str) -> Self {
        Self::Str(s.to_owned())
    }
}

impl From<Option<&str>> for Json {
    fn from(s: Option<&str>) -> Self {
        s.map_or(Self::Null, Self::from)
    }
}

impl From<Option<i64>> for Json {
    fn from(n: Option<i64>) -> Self {
        n.map_or(Self::Null, Self::Int)
    }
}

impl Json {
    fn change(from: impl Into<Json>, to: impl Into<Json>) -> Self {
        Self::Obj(vec![("from", from.into()), ("to", to.into())])
    }

    fn render(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        match self {
            Self::Null => out.push_str("null"),
            Self::Str(s) => write_str(s, out),
            Self::Int(n) => out.push_str(&n.to_string()),
            Self::Strs(items) => {
                out.push('[');
                for (i, s) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(s, out);
                }
                out.push(']');
            }
            Self::Obj(fields) => {
                out.push('{');
                for (i, (name, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write_str(name, out);
                    out.push(':');
                    value.write(out);
                }
                out.push('}');
            }
        }
    }
}

fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

fn not_found(key_id: &str) -> StoreError {
    StoreError::new(StoreErrorKind::NotFound, format!("no key with id {key_id}"))
}

fn conflict(message: String) -> StoreError {
    StoreError::new(StoreErrorKind::Conflict, message)
}

/// Takes the key's row lock and reads the row (`NotFound` if there is none).
async fn lock_key(tx: &mut Transaction<'static, Any>, key_id: &str) -> Result<ApiKey> {
    let locked = sqlx::query("UPDATE api_keys SET status = status WHERE key_id = $1")
        .bind(key_id)
        .execute(&mut **tx)
        .await?;
    if locked.rows_affected() == 0 {
        return Err(not_found(key_id));
    }
    let row = sqlx::query(&format!("{KEY_SELECT} WHERE key_id = $1"))
        .bind(key_id)
        .fetch_one(&mut **tx)
        .await?;
    ApiKey::from_row(&row)
}

/// Appends the key's next event (its row lock is held, or it was just
/// inserted in this transaction).
async fn append_event(
    tx: &mut Transaction<'static, Any>,
    key_id: &str,
    action: KeyAction,
    actor: &str,
    at: &str,
    details: &Json,
) -> Result<KeyEvent> {
    let last: i64 =
        sqlx::query_scalar("SELECT COALESCE(MAX(seq), 0) FROM api_key_events WHERE key_id = $1")
            .bind(key_id)
            .fetch_one(&mut **tx)
            .await?;
    let event = KeyEvent {
        event_id: format!("evt_{}", keys::generate_key_id().trim_start_matches("key_")),
        key_id: key_id.to_owned(),
        seq: last + 1,
        action,
        actor: actor.to_owned(),
        at: at.to_owned(),
        details: details.render(),
    };
    sqlx::query(
        "INSERT INTO api_key_events (event_id, key_id, seq, action, actor, at, details) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(&event.event_id)
    .bind(&event.key_id)
    .bind(event.seq)
    .bind(event.action.as_str())
    .bind(&event.actor)
    .bind(&event.at)
    .bind(&event.details)
    .execute(&mut **tx)
    .await?;
    Ok(event)
}

/// Inserts a new key and its `create` event.
async fn insert_key(
    tx: &mut Transaction<'static, Any>,
    new: &NewApiKey,
    now: &str,
    actor: &str,
    rotated_from: Option<&str>,
) -> Result<CreatedApiKey> {
    let key = keys::generate_key();
    let record = ApiKey {
        key_id: keys::generate_key_id(),
        key_hash: keys::hash_key(&key),
        key_prefix: keys::display_prefix(&key),
        client_id: new.client_id.clone(),
        revoked: false,
        scopes: new.scopes.clone(),
        rate_limit_per_minute: new.rate_limit_per_minute,
        expires_at: new.expires_at.clone(),
        created_at: now.to_owned(),
        revoked_at: None,
        replaced_by: None,
        last_used_at: None,
    };
    sqlx::query(
        "INSERT INTO api_keys (key_id, key_hash, key_prefix, client_id, status, scopes, \
         rate_limit_per_minute, expires_at, created_at) \
         VALUES ($1, $2, $3, $4, 'active', $5, $6, $7, $8)",
    )
    .bind(&record.key_id)
    .bind(&record.key_hash)
    .bind(&record.key_prefix)
    .bind(&record.client_id)
    .bind(record.scopes.join(" "))
    .bind(record.rate_limit_per_minute)
    .bind(&record.expires_at)
    .bind(&record.created_at)
    .execute(&mut **tx)
    .await?;
    let mut details = vec![
        ("client_id", Json::from(record.client_id.as_str())),
        ("scopes", Json::Strs(record.scopes.clone())),
        (
            "rate_limit_per_minute",
            Json::from(record.rate_limit_per_minute),
        ),
        ("expires_at", Json::from(record.expires_at.as_deref())),
    ];
    if let Some(old) = rotated_from {
        details.push(("rotated_from", Json::from(old)));
    }
    append_event(
        tx,
        &record.key_id,
        KeyAction::Create,
        actor,
        now,
        &Json::Obj(details),
    )
    .await?;
    Ok(CreatedApiKey { key, record })
}

impl Store {
    /// Creates a key and records its `create` event by `actor`: returns
    /// the plain key once; only its hash is stored.
    pub async fn create_api_key_by(&self, new: &NewApiKey, actor: &str) -> Result<CreatedApiKey> {
        let now = time::now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let created = insert_key(&mut tx, new, &now, actor, None).await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Revokes a key at once and records the `revoke` event. A key already
    /// revoked is a [`StoreErrorKind::Conflict`] (nothing written); an
    /// expired key can still be revoked.
    pub async fn revoke_api_key_by(&self, key_id: &str, actor: &str) -> Result<ApiKey> {
        let now = time::now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut key = lock_key(&mut tx, key_id).await?;
        if key.revoked {
            return Err(conflict(format!(
                "key {key_id} is already revoked (since {})",
                key.revoked_at.as_deref().unwrap_or("an unknown time")
            )));
        }
        let before = key.status_at(&now);
        sqlx::query("UPDATE api_keys SET status = 'revoked', revoked_at = $1 WHERE key_id = $2")
            .bind(&now)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        let details = Json::Obj(vec![("status", Json::change(before.as_str(), "revoked"))]);
        append_event(&mut tx, key_id, KeyAction::Revoke, actor, &now, &details).await?;
        tx.commit().await?;
        key.revoked = true;
        key.revoked_at = Some(now);
        Ok(key)
    }

    /// Replaces a key by a new one with the same client, scopes, rate limit
    /// and expiry, in one transaction with two events: `create` on the new
    /// key (`rotated_from`) and `rotate` on the old one (`replaced_by`, the
    /// grace and its new expiry or revocation).
    ///
    /// The old key stays valid for `grace`: its expiry becomes the earlier
    /// of its own and now + `grace`; a zero grace revokes it at once. Only
    /// an active key not already replaced can be rotated
    /// ([`StoreErrorKind::Conflict`] otherwise).
    pub async fn rotate_api_key_by(
        &self,
        key_id: &str,
        grace: Duration,
        actor: &str,
    ) -> Result<CreatedApiKey> {
        let now_secs = time::unix_now();
        let now = time::rfc3339(now_secs);
        let mut tx = self.pool.begin().await?;
        let old = lock_key(&mut tx, key_id).await?;
        let status = old.status_at(&now);
        if status != KeyStatus::Active {
            return Err(conflict(format!(
                "key {key_id} is {} and cannot be rotated",
                status.as_str()
            )));
        }
        if let Some(by) = &old.replaced_by {
            return Err(conflict(format!(
                "key {key_id} was already replaced by {by}; rotate {by} instead"
            )));
        }
        let new = NewApiKey {
            client_id: old.client_id.clone(),
            scopes: old.scopes.clone(),
            rate_limit_per_minute: old.rate_limit_per_minute,
            expires_at: old.expires_at.clone(),
        };
        let created = insert_key(&mut tx, &new, &now, actor, Some(key_id)).await?;
        let new_id = created.record.key_id.as_str();
        let grace_secs = i64::try_from(grace.as_secs()).unwrap_or(i64::MAX / 2);
        let mut details = vec![
            ("replaced_by", Json::from(new_id)),
            ("grace_seconds", Json::Int(grace_secs)),
        ];
        if grace_secs == 0 {
            sqlx::query(
                "UPDATE api_keys SET status = 'revoked', revoked_at = $1, replaced_by = $2 \
                 WHERE key_id = $3",
            )
            .bind(&now)
            .bind(new_id)
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
            details.push(("status", Json::change("active", "revoked")));
        } else {
            let grace_end = time::rfc3339(now_secs.saturating_add(grace_secs));
            let expires = match &old.expires_at {
                Some(e) if *e < grace_end => e.clone(),
                _ => grace_end,
            };
            sqlx::query("UPDATE api_keys SET expires_at = $1, replaced_by = $2 WHERE key_id = $3")
                .bind(&expires)
                .bind(new_id)
                .bind(key_id)
                .execute(&mut *tx)
                .await?;
            details.push((
                "expires_at",
                Json::change(old.expires_at.as_deref(), expires.as_str()),
            ));
        }
        append_event(
            &mut tx,
            key_id,
            KeyAction::Rotate,
            actor,
            &now,
            &Json::Obj(details),
        )
        .await?;
        tx.commit().await?;
        Ok(created)
    }

    /// Changes a key in place (same secret) and records the `update` event
    /// with each changed field's old and new value. A revoked key, or one
    /// already replaced by rotation, cannot be updated
    /// ([`StoreErrorKind::Conflict`]); an empty update is
    /// [`StoreErrorKind::Invalid`]. Values equal to the stored ones write
    /// nothing.
    pub async fn update_api_key_by(
        &self,
        key_id: &str,
        update: &KeyUpdate,
        actor: &str,
    ) -> Result<UpdatedApiKey> {
        if update.is_empty() {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                "nothing to update: give a rate limit, an expiry or scopes",
            ));
        }
        let now = time::now_rfc3339();
        let mut tx = self.pool.begin().await?;
        let mut key = lock_key(&mut tx, key_id).await?;
        if key.revoked {
            return Err(conflict(format!(
                "key {key_id} is revoked and cannot be updated"
            )));
        }
        if let Some(by) = &key.replaced_by {
            return Err(conflict(format!(
                "key {key_id} was replaced by {by} and cannot be updated (update {by}, or revoke {key_id})"
            )));
        }
        let mut changes = Vec::new();
        if let Some(limit) = update.rate_limit_per_minute {
            if limit != key.rate_limit_per_minute {
                changes.push((
                    "rate_limit_per_minute",
                    Json::change(key.rate_limit_per_minute, limit),
                ));
                key.rate_limit_per_minute = limit;
            }
        }
        if let Some(expires) = &update.expires_at {
            if *expires != key.expires_at {
                changes.push((
                    "expires_at",
                    Json::change(key.expires_at.as_deref(), expires.as_deref()),
                ));
                key.expires_at = expires.clone();
            }
        }
        if let Some(scopes) = &update.scopes {
            if *scopes != key.scopes {
                changes.push((
                    "scopes",
                    Json::Obj(vec![
                        ("from", Json::Strs(key.scopes.clone())),
                        ("to", Json::Strs(scopes.clone())),
                    ]),
                ));
                key.scopes = scopes.clone();
            }
        }
        if changes.is_empty() {
            tx.commit().await?;
            return Ok(UpdatedApiKey {
                record: key,
                event: None,
            });
        }
        sqlx::query(
            "UPDATE api_keys SET rate_limit_per_minute = $1, expires_at = $2, scopes = $3 \
             WHERE key_id = $4",
        )
        .bind(key.rate_limit_per_minute)
        .bind(&key.expires_at)
        .bind(key.scopes.join(" "))
        .bind(key_id)
        .execute(&mut *tx)
        .await?;
        let event = append_event(
            &mut tx,
            key_id,
            KeyAction::Update,
            actor,
            &now,
            &Json::Obj(changes),
        )
        .await?;
        tx.commit().await?;
        Ok(UpdatedApiKey {
            record: key,
            event: Some(event),
        })
    }

    /// The key's history, oldest first.
    pub async fn api_key_events(&self, key_id: &str) -> Result<Vec<KeyEvent>> {
        let rows = sqlx::query(
            "SELECT event_id, key_id, seq, action, actor, at, details FROM api_key_events \
             WHERE key_id = $1 ORDER BY seq",
        )
        .bind(key_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let action: String = r.try_get("action")?;
                Ok(KeyEvent {
                    event_id: r.try_get("event_id")?,
                    key_id: r.try_get("key_id")?,
                    seq: r.try_get("seq")?,
                    action: KeyAction::parse(&action)?,
                    actor: r.try_get("actor")?,
                    at: r.try_get("at")?,
                    details: r.try_get("details")?,
                })
            })
            .collect()
    }

    /// Records that the key was accepted at `at` (RFC 3339 UTC): sets
    /// `last_used_at` unless it is already as late. Returns whether a row
    /// changed. Not an event; callers throttle it (the auth service writes
    /// at most once a minute per key).
    pub async fn record_api_key_use(&self, key_id: &str, at: &str) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE api_keys SET last_used_at = $1 \
             WHERE key_id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
        )
        .bind(at)
        .bind(key_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_render_as_json_with_escaped_strings() {
        let details = Json::Obj(vec![
            ("scopes", Json::Strs(vec!["admin".into(), "a\"b".into()])),
            (
                "rate_limit_per_minute",
                Json::change(Some(120), None::<i64>),
            ),
            ("actor", Json::from("tab\there\u{1}")),
        ]);
        assert_eq!(
            details.render(),
            r#"{"scopes":["admin","a\"b"],"rate_limit_per_minute":{"from":120,"to":null},"actor":"tab\there\u0001"}"#
        );
    }

    async fn memory_store() -> Store {
        Store::connect("sqlite::memory:").await.unwrap()
    }

    /// A memory store holding one key of client `test123`, created by the
    /// unknown actor.
    async fn store_with_a_key() -> (Store, CreatedApiKey) {
        let store = memory_store().await;
        let created = store
            .create_api_key(&NewApiKey {
                client_id: "test123".into(),
                ..NewApiKey::default()
            })
            .await
            .unwrap();
        (store, created)
    }

    #[tokio::test]
    async fn every_key_operation_appends_one_numbered_event_by_its_actor() {
        let store = memory_store().await;
        let created = store
            .create_api_key_by(
                &NewApiKey {
                    client_id: "test123".into(),
                    rate_limit_per_minute: Some(120),
                    ..NewApiKey::default()
                },
                "alice",
            )
            .await
            .unwrap();
        let id = created.record.key_id.clone();
        let updated = store
            .update_api_key_by(
                &id,
                &KeyUpdate {
                    rate_limit_per_minute: Some(Some(60)),
                    scopes: Some(vec!["admin".into()]),
                    ..KeyUpdate::default()
                },
                "bob",
            )
            .await
            .unwrap();
        assert_eq!(updated.record.rate_limit_per_minute, Some(60));
        // Asking for the values it already has writes nothing.
        let same = store
            .update_api_key_by(
                &id,
                &KeyUpdate {
                    rate_limit_per_minute: Some(Some(60)),
                    ..KeyUpdate::default()
                },
                "bob",
            )
            .await
            .unwrap();
        assert_eq!(same.event, None);
        store.revoke_api_key_by(&id, "carol").await.unwrap();
        let again = store.revoke_api_key_by(&id, "carol").await.unwrap_err();
        assert_eq!(again.kind(), StoreErrorKind::Conflict);
        // The plain method keeps its old contract: a second revoke is a no-op.
        assert!(store.revoke_api_key(&id).await.unwrap().revoked);

        let events = store.api_key_events(&id).await.unwrap();
        let summary: Vec<(i64, KeyAction, &str)> = events
            .iter()
            .map(|e| (e.seq, e.action, e.actor.as_str()))
            .collect();
        assert_eq!(
            summary,
            [
                (1, KeyAction::Create, "alice"),
                (2, KeyAction::Update, "bob"),
                (3, KeyAction::Revoke, "carol"),
            ]
        );
        assert_eq!(
            events[1].details,
            r#"{"rate_limit_per_minute":{"from":120,"to":60},"scopes":{"from":[],"to":["admin"]}}"#
        );
        let update = store
            .update_api_key_by(
                &id,
                &KeyUpdate {
                    expires_at: Some(None),
                    ..KeyUpdate::default()
                },
                "bob",
            )
            .await
            .unwrap_err();
        assert_eq!(update.kind(), StoreErrorKind::Conflict);
        assert_eq!(
            store
                .update_api_key_by(&id, &KeyUpdate::default(), "bob")
                .await
                .unwrap_err()
                .kind(),
            StoreErrorKind::Invalid
        );
        assert_eq!(
            store
                .revoke_api_key_by("key_nope", "x")
                .await
                .unwrap_err()
                .kind(),
            StoreErrorKind::NotFound
        );
    }

    #[tokio::test]
    async fn a_refused_rotation_writes_nothing() {
        let (store, created) = store_with_a_key().await;
        let id = created.record.key_id;
        let next = store
            .rotate_api_key_by(&id, Duration::from_secs(3600), "ops")
            .await
            .unwrap();
        let err = store
            .rotate_api_key_by(&id, Duration::from_secs(3600), "ops")
            .await
            .unwrap_err();
        assert_eq!(err.kind(), StoreErrorKind::Conflict);
        assert!(err.to_string().contains(&next.record.key_id), "{err}");
        assert_eq!(store.list_api_keys(None).await.unwrap().len(), 2);
        let events = store.api_key_events(&id).await.unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(events[0].actor, UNKNOWN_ACTOR);
        assert_eq!(events[1].action, KeyAction::Rotate);
        let new_events = store.api_key_events(&next.record.key_id).await.unwrap();
        assert!(new_events[0]
            .details
            .contains(&format!(r#""rotated_from":"{id}""#)));
    }

    #[tokio::test]
    async fn use_is_recorded_only_forward_in_time() {
        let (store, created) = store_with_a_key().await;
        let id = &created.record.key_id;
        assert!(store
            .record_api_key_use(id, "2030-01-01T00:01:00Z")
            .await
            .unwrap());
        assert!(!store
            .record_api_key_use(id, "2030-01-01T00:00:00Z")
            .await
            .unwrap());
        let key = store.api_key(id).await.unwrap().unwrap();
        assert_eq!(key.last_used_at.as_deref(), Some("2030-01-01T00:01:00Z"));
        assert!(!store
            .record_api_key_use("key_nope", "2030-01-01T00:00:00Z")
            .await
            .unwrap());
    }
}

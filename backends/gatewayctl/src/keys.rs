//! `keys …`: the commands over API keys and how a key and its history print.

use super::*;

pub(crate) fn or_dash(v: Option<&str>) -> &str {
    v.unwrap_or("-")
}

/// The JSON form of a key (docs/backends.md, "gatewayctl JSON"): every
/// stored field but the hash, with the status at `now`.
pub(crate) fn key_json(k: &ApiKey, now: &str) -> Value {
    json!({
        "key_id": k.key_id,
        "key_prefix": k.key_prefix,
        "client_id": k.client_id,
        "status": k.status_at(now).as_str(),
        "scopes": k.scopes,
        "rate_limit_per_minute": k.rate_limit_per_minute,
        "expires_at": k.expires_at,
        "created_at": k.created_at,
        "revoked_at": k.revoked_at,
        "replaced_by": k.replaced_by,
        "last_used_at": k.last_used_at,
    })
}

/// An event's details as JSON (the stored text, parsed).
pub(crate) fn details_json(e: &KeyEvent) -> Value {
    serde_json::from_str(&e.details).unwrap_or_else(|_| Value::String(e.details.clone()))
}

pub(crate) fn event_json(e: &KeyEvent) -> Value {
    json!({
        "event_id": e.event_id,
        "key_id": e.key_id,
        "seq": e.seq,
        "action": e.action.as_str(),
        "actor": e.actor,
        "at": e.at,
        "details": details_json(e),
    })
}

pub(crate) fn event_line(e: &KeyEvent) -> String {
    format!(
        "{:>3}  {}  {:<6}  {}  {}",
        e.seq,
        e.at,
        e.action.as_str(),
        e.actor,
        e.details
    )
}

pub(crate) fn show_value(v: &Value) -> String {
    match v {
        Value::Null => "-".to_owned(),
        Value::String(s) => s.clone(),
        Value::Array(items) if items.is_empty() => "-".to_owned(),
        Value::Array(items) => items.iter().map(show_value).collect::<Vec<_>>().join(","),
        other => other.to_string(),
    }
}

pub(crate) fn print_key_fields(k: &ApiKey, now: &str) {
    println!("key_id: {}", k.key_id);
    println!("key_prefix: {}", k.key_prefix);
    println!("client_id: {}", k.client_id);
    println!("status: {}", k.status_at(now).as_str());
    print_grant(k);
    println!("created_at: {}", k.created_at);
    println!("revoked_at: {}", or_dash(k.revoked_at.as_deref()));
    println!("replaced_by: {}", or_dash(k.replaced_by.as_deref()));
    println!(
        "last_used_at: {}",
        k.last_used_at.as_deref().unwrap_or("never")
    );
}

/// The lines of what a key grants: its scopes, its own per-minute limit
/// and its expiry.
fn print_grant(k: &ApiKey) {
    println!(
        "scopes: {}",
        if k.scopes.is_empty() {
            "-".to_owned()
        } else {
            k.scopes.join(" ")
        }
    );
    println!(
        "rate_limit_per_minute: {}",
        k.rate_limit_per_minute
            .map_or_else(|| "default".to_owned(), |n| n.to_string())
    );
    println!("expires_at: {}", k.expires_at.as_deref().unwrap_or("never"));
}

pub(crate) fn print_new_key(created: &store::CreatedApiKey) {
    let r = &created.record;
    println!("key_id: {}", r.key_id);
    println!("client_id: {}", r.client_id);
    print_grant(r);
    println!("The key below is shown only once; store it securely.");
    println!("{}", created.key);
}

/// Which keys `keys list` shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ListFilter {
    All,
    Only(KeyStatus),
}

pub(crate) async fn keys(ctx: &Ctx, cmd: KeysCommand) -> Result<(), Failure> {
    match cmd {
        KeysCommand::Create {
            client_id: raw_client,
            expires_in_days,
            rate_limit_per_minute,
            scopes: raw_scopes,
        } => {
            let client = client_id(&raw_client)?;
            let scopes = scopes(&raw_scopes)?;
            let expires_at = expires_in_days
                .map(|d| store::time::rfc3339(store::time::unix_now() + i64::from(d) * 86_400));
            let store = ctx.open().await?;
            let created = store
                .create_api_key_by(
                    &NewApiKey {
                        client_id: client.to_string(),
                        scopes,
                        rate_limit_per_minute: rate_limit_per_minute.map(i64::from),
                        expires_at,
                    },
                    &ctx.actor,
                )
                .await?;
            if ctx.json {
                let mut v = key_json(&created.record, &store::time::now_rfc3339());
                v["key"] = Value::String(created.key.clone());
                println!("{v}");
            } else {
                print_new_key(&created);
            }
        }
        KeysCommand::List {
            client_id: c,
            active,
            expired,
            revoked,
        } => {
            if let Some(c) = &c {
                client_id(c)?;
            }
            let filter = match (active, expired, revoked) {
                (true, _, _) => ListFilter::Only(KeyStatus::Active),
                (_, true, _) => ListFilter::Only(KeyStatus::Expired),
                (_, _, true) => ListFilter::Only(KeyStatus::Revoked),
                _ => ListFilter::All,
            };
            let store = ctx.open().await?;
            let now = store::time::now_rfc3339();
            let list: Vec<ApiKey> = store
                .list_api_keys(c.as_deref())
                .await?
                .into_iter()
                .filter(|k| match filter {
                    ListFilter::All => true,
                    ListFilter::Only(s) => k.status_at(&now) == s,
                })
                .collect();
            if ctx.json {
                for k in &list {
                    println!("{}", key_json(k, &now));
                }
            } else {
                println!(
                    "{:<21} {:<9} {:<20} {:<8} {:<8} {:<6} {:<21} {:<21} {:<21} REPLACED_BY",
                    "KEY_ID",
                    "PREFIX",
                    "CLIENT_ID",
                    "STATUS",
                    "SCOPES",
                    "RPM",
                    "EXPIRES_AT",
                    "CREATED_AT",
                    "LAST_USED_AT"
                );
                for k in &list {
                    let scopes = k.scopes.join(",");
                    println!(
                        "{:<21} {:<9} {:<20} {:<8} {:<8} {:<6} {:<21} {:<21} {:<21} {}",
                        k.key_id,
                        k.key_prefix,
                        k.client_id,
                        k.status_at(&now).as_str(),
                        if scopes.is_empty() { "-" } else { &scopes },
                        k.rate_limit_per_minute
                            .map_or_else(|| "-".to_owned(), |n| n.to_string()),
                        or_dash(k.expires_at.as_deref()),
                        k.created_at,
                        or_dash(k.last_used_at.as_deref()),
                        or_dash(k.replaced_by.as_deref()),
                    );
                }
            }
        }
        KeysCommand::Show { key_id } => {
            let store = ctx.open().await?;
            let key = store.api_key(&key_id).await?.ok_or_else(|| Failure {
                code: EXIT_NOT_FOUND,
                message: format!("no key with id {key_id}"),
            })?;
            let events = store.api_key_events(&key_id).await?;
            let now = store::time::now_rfc3339();
            if ctx.json {
                let mut v = key_json(&key, &now);
                v["history"] = events.iter().map(event_json).collect();
                println!("{v}");
            } else {
                print_key_fields(&key, &now);
                println!("history:");
                for e in &events {
                    println!("  {}", event_line(e));
                }
            }
        }
        KeysCommand::History { key_id } => {
            let store = ctx.open().await?;
            if store.api_key(&key_id).await?.is_none() {
                return Err(Failure {
                    code: EXIT_NOT_FOUND,
                    message: format!("no key with id {key_id}"),
                });
            }
            let events = store.api_key_events(&key_id).await?;
            if ctx.json {
                for e in &events {
                    println!("{}", event_json(e));
                }
            } else {
                println!(
                    "{:>3}  {:<20}  {:<6}  ACTOR  DETAILS",
                    "SEQ", "AT", "ACTION"
                );
                for e in &events {
                    println!("{}", event_line(e));
                }
            }
        }
        KeysCommand::Update {
            key_id,
            rate_limit_per_minute,
            no_rate_limit,
            expires_at: raw_expires,
            no_expiry,
            scopes: raw_scopes,
            no_scopes,
        } => {
            let update = KeyUpdate {
                rate_limit_per_minute: if no_rate_limit {
                    Some(None)
                } else {
                    rate_limit_per_minute.map(|n| Some(i64::from(n)))
                },
                expires_at: if no_expiry {
                    Some(None)
                } else {
                    raw_expires
                        .as_deref()
                        .map(expires_at)
                        .transpose()?
                        .map(Some)
                },
                scopes: if no_scopes {
                    Some(Vec::new())
                } else if raw_scopes.is_empty() {
                    None
                } else {
                    Some(scopes(&raw_scopes)?)
                },
            };
            if update.is_empty() {
                return Err(Failure::usage(
                    "nothing to update: give --rate-limit-per-minute/--no-rate-limit, \
                     --expires-at/--no-expiry or --scope/--no-scopes",
                ));
            }
            let store = ctx.open().await?;
            let updated = store
                .update_api_key_by(&key_id, &update, &ctx.actor)
                .await?;
            let now = store::time::now_rfc3339();
            let changes = updated
                .event
                .as_ref()
                .map_or_else(|| json!({}), details_json);
            if ctx.json {
                let mut v = key_json(&updated.record, &now);
                v["changes"] = changes;
                println!("{v}");
            } else if let Some(fields) = changes.as_object().filter(|f| !f.is_empty()) {
                println!("{key_id} updated:");
                for (field, change) in fields {
                    println!(
                        "  {field}: {} -> {}",
                        show_value(&change["from"]),
                        show_value(&change["to"])
                    );
                }
            } else {
                println!("{key_id} unchanged: it already has these values");
            }
        }
        KeysCommand::Revoke { key_id } => {
            let store = ctx.open().await?;
            let k = store.revoke_api_key_by(&key_id, &ctx.actor).await?;
            let now = store::time::now_rfc3339();
            if ctx.json {
                println!("{}", key_json(&k, &now));
            } else {
                println!(
                    "{} ({}, client {}) is {}",
                    k.key_id,
                    k.key_prefix,
                    k.client_id,
                    k.status_at(&now).as_str()
                );
            }
        }
        KeysCommand::Rotate {
            key_id,
            grace_hours,
        } => {
            let store = ctx.open().await?;
            let created = store
                .rotate_api_key_by(&key_id, Duration::from_secs(grace_hours * 3600), &ctx.actor)
                .await?;
            let old = store.api_key(&key_id).await?;
            let now = store::time::now_rfc3339();
            if ctx.json {
                let v = json!({
                    "key": created.key,
                    "new_key": key_json(&created.record, &now),
                    "old_key": old.as_ref().map(|o| key_json(o, &now)),
                });
                println!("{v}");
                return Ok(());
            }
            match old {
                Some(o) if o.status_at(&now) == KeyStatus::Active => println!(
                    "old key {} stays valid until {}",
                    o.key_id,
                    or_dash(o.expires_at.as_deref())
                ),
                Some(o) => println!("old key {} is {}", o.key_id, o.status_at(&now).as_str()),
                None => {}
            }
            print_new_key(&created);
        }
    }
    Ok(())
}

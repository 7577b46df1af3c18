//! The pricing database as the benchmarks read and seed it (the store
//! crate, without migrations: the services made the schema).

use std::time::Duration;

use anyhow::{Context, Result};
use store::{Store, StoreOptions};

fn block_on<T>(f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(f)
}

async fn open(url: &str) -> Result<Store> {
    let mut o = StoreOptions::new(url);
    o.migrate = false;
    o.max_connections = 1;
    o.acquire_timeout = Duration::from_secs(30);
    Store::connect_with(o)
        .await
        .with_context(|| format!("cannot open {url}"))
}

/// Rows of the audit log.
pub fn audit_rows(url: &str) -> Result<i64> {
    block_on(async {
        let store = open(url).await?;
        let n = store.audit_count().await?;
        store.close().await;
        Ok(n)
    })
}

/// `n` new API keys, for clients `bench<n>_<i>`, each with a
/// 1 000 000/min limit, written in one transaction (SHA-256 hex, as the
/// store keeps them): the keys and their clients, in order.
pub fn insert_clients(url: &str, n: usize) -> Result<Vec<(String, String)>> {
    block_on(async {
        let store = open(url).await?;
        let now = store::time::now_rfc3339();
        let mut tx = store.pool().begin().await?;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let key = store::keys::generate_key();
            let client = format!("bench{n}_{i}");
            sqlx::query(
                "INSERT INTO api_keys (key_id, key_hash, key_prefix, client_id, status, scopes, \
                 rate_limit_per_minute, created_at) VALUES ($1, $2, $3, $4, 'active', '', 1000000, $5)",
            )
            .bind(format!("key_bench{n}_{i}"))
            .bind(store::keys::hash_key(&key))
            .bind(store::keys::display_prefix(&key))
            .bind(&client)
            .bind(&now)
            .execute(&mut *tx)
            .await?;
            out.push((key, client));
        }
        tx.commit().await?;
        store.close().await;
        Ok(out)
    })
}

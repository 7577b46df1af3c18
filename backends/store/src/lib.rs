//! The pricing database.
//!
//! One [`Store`] over SQLite (default, `sqlite://var/pricing.db`) or
//! PostgreSQL (`postgres://…`), through sqlx's `Any` driver so that every
//! query and the one set of migrations (`migrations/`) serve both engines.
//! Decimals are stored as TEXT and parsed with `rust_decimal`; timestamps
//! are RFC 3339 UTC TEXT (see [`time`]).
//!
//! Tables: `stocks`, `clients`, `api_keys` (hash only, see [`keys`]),
//! `api_key_events` (append-only key history, see [`key_history`]) and
//! `audit_log`. On first start the SPEC §5 seed stocks and clients are
//! inserted. Stock lookups go through an in-process cache whose entries
//! live at most [`StoreOptions::rate_cache_ttl`] (5 s by default).

mod api_keys;
mod audit;
mod cache;
mod clients;
mod error;
pub mod key_history;
pub mod keys;
mod stocks;
pub mod time;

pub use api_keys::{ApiKey, CreatedApiKey, KeyStatus, NewApiKey};
pub use audit::{AuditEntry, AuditRecord};
pub use clients::Client;
pub use error::{parse_decimal, StoreError, StoreErrorKind};
pub use key_history::{KeyAction, KeyEvent, KeyUpdate, UpdatedApiKey, UNKNOWN_ACTOR};
pub use stocks::Stock;

use api_keys::KEY_SELECT;
use audit::{audit_writer, AuditJob, AUDIT_BATCH, READER_CACHE_PRAGMA};
use cache::TtlCache;
use error::{decimal, Result};

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pricing::{BorrowRate, ClientTerms, Decimal, FeeType, LocateFee, StockRisk};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection, Row};
use tokio::sync::{mpsc, oneshot};

/// The database used when `DATABASE_URL` is unset, relative to the working
/// directory (`make run` and `gatewayctl` run from the repository root).
pub const DEFAULT_DATABASE_URL: &str = "sqlite://var/pricing.db";

/// Longest time a cached stock may be served without re-reading it.
pub const DEFAULT_RATE_CACHE_TTL: Duration = Duration::from_secs(5);

/// Migrations only add, so a binary older than the database's schema keeps
/// working: migrations it does not know are ignored, not an error.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate::Migrator {
    ignore_missing: true,
    ..sqlx::migrate!("./migrations")
};

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

// ---------------------------------------------------------------------------
// Store
// ---------------------------------------------------------------------------

/// How to open a [`Store`].
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// `sqlite://path` (file created with its directory) or `postgres://…`.
    pub url: String,
    /// Most pooled connections.
    pub max_connections: u32,
    /// How long a query waits for a connection before the database counts
    /// as unavailable.
    pub acquire_timeout: Duration,
    /// Longest a cached stock is served without re-reading it (≤ 5 s).
    pub rate_cache_ttl: Duration,
    /// Run migrations and seed on connect.
    pub migrate: bool,
}

impl StoreOptions {
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
            rate_cache_ttl: DEFAULT_RATE_CACHE_TTL,
            migrate: true,
        }
    }
}

/// The pricing database. Cheap to clone (shared pool and cache).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    engine: Engine,
    stocks: Arc<Mutex<TtlCache<Stock>>>,
    clients: Arc<Mutex<TtlCache<Client>>>,
    cache_ttl: Duration,
    audit: mpsc::Sender<AuditJob>,
}

impl Store {
    /// Connects with default options, migrates and seeds.
    pub async fn connect(url: &str) -> Result<Self> {
        Self::connect_with(StoreOptions::new(url)).await
    }

    /// Connects, and (unless `options.migrate` is false) runs the
    /// migrations and seeds the SPEC §5 data into empty tables.
    pub async fn connect_with(options: StoreOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let (engine, url) = prepare_url(&options.url)?;
        let in_memory = url.contains(":memory:");
        let file_sqlite = engine == Engine::Sqlite && !in_memory;
        let mut pool = AnyPoolOptions::new()
            .max_connections(if in_memory {
                1
            } else {
                options.max_connections.max(1)
            })
            .acquire_timeout(options.acquire_timeout);
        if engine == Engine::Sqlite || in_memory {
            // SQLite connections are kept for the life of the process: an
            // in-memory database lives only as long as its one connection,
            // and a file database's pool is opened in full below.
            pool = pool.idle_timeout(None).max_lifetime(None);
        }
        if in_memory {
            pool = pool.min_connections(1);
        }
        if engine == Engine::Sqlite {
            pool = pool.after_connect(|conn, _| {
                Box::pin(async move {
                    use sqlx::Executor;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    // A reader's page cache; the audit writer raises its own.
                    conn.execute(READER_CACHE_PRAGMA).await?;
                    Ok(())
                })
            });
        }
        let pool = pool.connect(&url).await?;
        if file_sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .fetch_optional(&pool)
                .await?;
        }
        let (audit, audit_rx) = mpsc::channel(4 * AUDIT_BATCH);
        let keep_connection = pool.options().get_max_connections() >= 2;
        tokio::spawn(audit_writer(
            pool.clone(),
            keep_connection,
            engine == Engine::Sqlite,
            audit_rx,
        ));
        let store = Self {
            audit,
            pool,
            engine,
            stocks: Arc::default(),
            clients: Arc::default(),
            cache_ttl: options.rate_cache_ttl.min(DEFAULT_RATE_CACHE_TTL),
        };
        if options.migrate {
            store.migrate().await?;
            store.seed().await?;
        }
        if file_sqlite {
            // Every connection is opened now, once the schema is in place,
            // not on the first burst that needs it: each SQLite connection
            // carries its own cache and worker thread, so a pool that grows
            // on demand makes the service's memory step up long into a
            // run. Opened up front (and never closed for idleness), the
            // memory is what it will stay.
            let mut held = Vec::new();
            for _ in 0..options.max_connections.max(1) {
                held.push(store.pool.acquire().await?);
            }
        }
        Ok(store)
    }

    /// Applies pending migrations.
    ///
    /// Two processes starting together on a fresh SQLite file can race
    /// (SQLite has no migration lock); the loser retries and then finds the
    /// migrations applied. The schema statements are idempotent.
    pub async fn migrate(&self) -> Result<()> {
        let mut attempt = 0;
        loop {
            match MIGRATOR.run(&self.pool).await {
                Ok(()) => return Ok(()),
                Err(e) if attempt < 5 => {
                    attempt += 1;
                    tracing::debug!(error = %e, attempt, "Migration raced, retrying");
                    tokio::time::sleep(Duration::from_millis(50 * attempt)).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Inserts the SPEC §5 seed stocks and clients when their table is empty.
    pub async fn seed(&self) -> Result<()> {
        let now = time::now_rfc3339();
        let stocks = pricing::rate::SEED_STOCKS.map(|(t, b, v, e, m)| [t, b, v, e, m]);
        self.seed_table(
            "stocks",
            "INSERT INTO stocks (ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticker) DO NOTHING",
            &stocks,
            &now,
        )
        .await?;
        let clients = pricing::fee::SEED_CLIENTS.map(|(id, m, t, a)| [id, m, t, a]);
        self.seed_table(
            "clients",
            "INSERT INTO clients (client_id, markup_percentage, fee_type, fee_amount, updated_at) \
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO NOTHING",
            &clients,
            &now,
        )
        .await
    }

    /// When `table` is empty, runs `insert` for each row with its values
    /// and `now` bound in that order.
    async fn seed_table<const N: usize>(
        &self,
        table: &str,
        insert: &str,
        rows: &[[&str; N]],
        now: &str,
    ) -> Result<()> {
        let count: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await?;
        if count == 0 {
            for row in rows {
                let mut query = sqlx::query(insert);
                for value in row {
                    query = query.bind(*value);
                }
                query.bind(now).execute(&self.pool).await?;
            }
            tracing::info!(count = rows.len(), "Seeded {table}");
        }
        Ok(())
    }

    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The underlying pool, for tests and tools that need raw SQL.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// One round trip to the database (`SELECT 1`).
    pub async fn ping(&self) -> Result<()> {
        let _: i64 = sqlx::query_scalar("SELECT CAST(1 AS BIGINT)")
            .fetch_one(&self.pool)
            .await?;
        Ok(())
    }

    /// The row `sql` selects with `$1` bound to `key` (at most one: a
    /// unique column), read by `from_row`.
    async fn fetch_row<T>(
        &self,
        sql: &str,
        key: &str,
        from_row: fn(&AnyRow) -> Result<T>,
    ) -> Result<Option<T>> {
        let row = sqlx::query(sql)
            .bind(key)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(from_row).transpose()
    }

    /// Every row `sql` selects (with `$1` bound to `key` when given), read
    /// by `from_row`.
    async fn fetch_rows<T>(
        &self,
        sql: &str,
        key: Option<&str>,
        from_row: fn(&AnyRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let mut query = sqlx::query(sql);
        if let Some(key) = key {
            query = query.bind(key);
        }
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(from_row).collect()
    }
}

/// The certificate files a PostgreSQL URL names (`sslrootcert`, `sslcert`,
/// `sslkey`) must be readable: the driver's own error for a missing file
/// does not name it.
fn check_tls_files(url: &str) -> Result<()> {
    let Some((_, query)) = url.split_once('?') else {
        return Ok(());
    };
    for pair in query.split('&') {
        let Some((key, value)) = pair.split_once('=') else {
            continue;
        };
        if !matches!(
            key,
            "sslrootcert"
                | "ssl-root-cert"
                | "ssl-ca"
                | "sslcert"
                | "ssl-cert"
                | "sslkey"
                | "ssl-key"
        ) {
            continue;
        }
        let path = percent_decode(value);
        if let Err(e) = std::fs::File::open(&path) {
            return Err(StoreError::new(
                StoreErrorKind::Invalid,
                format!("DATABASE_URL: {key} {path}: {e}"),
            ));
        }
    }
    Ok(())
}

/// `%XX` escapes of a URL query value decoded (`+` kept as is).
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let (Some(h), Some(l)) = (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Checks the URL scheme and, for SQLite files, creates the directory and
/// asks for the file to be created.
fn prepare_url(url: &str) -> Result<(Engine, String)> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        check_tls_files(url)?;
        return Ok((Engine::Postgres, url.to_owned()));
    }
    let Some(rest) = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
    else {
        return Err(StoreError::new(
            StoreErrorKind::Invalid,
            format!(
                "DATABASE_URL must start with sqlite:// or postgres:// (got {:?})",
                url.split(':').next().unwrap_or("")
            ),
        ));
    };
    if rest.contains(":memory:") {
        return Ok((Engine::Sqlite, url.to_owned()));
    }
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(StoreError::new(
            StoreErrorKind::Invalid,
            "DATABASE_URL: the sqlite file path is empty",
        ));
    }
    if let Some(dir) = std::path::Path::new(path).parent() {
        if !dir.as_os_str().is_empty() {
            std::fs::create_dir_all(dir).map_err(|e| {
                StoreError::new(
                    StoreErrorKind::Unavailable,
                    format!("cannot create {}: {e}", dir.display()),
                )
            })?;
        }
    }
    let url = match query {
        Some(q) if q.contains("mode=") => url.to_owned(),
        Some(_) => format!("{url}&mode=rwc"),
        None => format!("{url}?mode=rwc"),
    };
    Ok((Engine::Sqlite, url))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::audit_insert_sql;

    /// A fresh SQLite file in its own temporary directory.
    fn sqlite_url(name: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!(
            "store-test-{name}-{}-{}",
            std::process::id(),
            time::now_rfc3339().replace([':', '.'], "")
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}", dir.join("pricing.db").display());
        (dir, url)
    }

    async fn calculation(store: &Store, request_id: &str) -> AuditEntry {
        let req = pricing::parse_locate_request(
            br#"{"ticker":"AAPL","position_value":100000,"loan_days":30,"client_id":"test123"}"#,
        )
        .unwrap();
        let stock = store.stock_cached("AAPL").await.unwrap().unwrap();
        let client = store.client_cached("test123").await.unwrap().unwrap();
        let fee = LocateFee::compute(
            req.position_value,
            stock.borrow_rate().unwrap(),
            req.loan_days,
            &client.terms,
        )
        .unwrap();
        AuditEntry {
            request_id: request_id.to_owned(),
            caller: Some("test123".to_owned()),
            client_id: "test123".to_owned(),
            ticker: "AAPL".to_owned(),
            position_value: req.position_value.value(),
            loan_days: req.loan_days.get(),
            fee,
        }
    }

    #[tokio::test]
    async fn the_audit_writer_keeps_one_connection_and_leaves_the_others_to_readers() {
        let (dir, url) = sqlite_url("writer");
        let mut options = StoreOptions::new(&url);
        options.max_connections = 3;
        let store = Store::connect_with(options).await.unwrap();
        for i in 0..3 {
            let entry = calculation(&store, &format!("writer-{i}")).await;
            let writes: Vec<_> = (0..40).map(|_| store.insert_audit(&entry)).collect();
            for w in writes {
                w.await.unwrap();
            }
            // Reads in between take pooled connections and give them back.
            assert_eq!(store.audit_count().await.unwrap(), 40 * (i + 1));
        }
        // A released connection goes back to the pool on a task of its own.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.pool.size(), 3);
        assert_eq!(
            store.pool.num_idle(),
            2,
            "the writer holds one connection between batches"
        );
        // The two left are readers, with the small page cache.
        let mut readers = Vec::new();
        for _ in 0..2 {
            let mut conn = store.pool.acquire().await.unwrap();
            let pages: i64 = sqlx::query_scalar("PRAGMA cache_size")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
            assert_eq!(pages, -64);
            readers.push(conn);
        }
        drop(readers);
        drop(store);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn a_missing_certificate_file_in_a_postgres_url_is_named() {
        let url = "postgres://u@db:5432/p?sslmode=verify-full&sslrootcert=%2Fnonexistent%2Fca.pem";
        let e = prepare_url(url).unwrap_err();
        assert_eq!(e.kind(), StoreErrorKind::Invalid);
        assert!(
            e.to_string()
                .starts_with("DATABASE_URL: sslrootcert /nonexistent/ca.pem: "),
            "{e}"
        );
        let (engine, same) = prepare_url("postgres://u@db/p?sslmode=require").unwrap();
        assert_eq!(
            (engine, same.as_str()),
            (Engine::Postgres, "postgres://u@db/p?sslmode=require")
        );
        assert_eq!(percent_decode("a%20b%2"), "a b%2");
    }

    #[test]
    fn the_insert_statement_numbers_every_parameter_of_every_row() {
        let sql = audit_insert_sql(2);
        assert!(sql.starts_with("INSERT INTO audit_log (audit_id, request_id, caller, "));
        assert!(sql.ends_with("($14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26)"));
        assert_eq!(sql.matches('$').count(), 26);
    }

    #[tokio::test]
    async fn a_burst_of_85_calculations_writes_85_rows_through_every_statement_shape() {
        let (dir, url) = sqlite_url("burst");
        let store = Store::connect(&url).await.unwrap();
        let entry = calculation(&store, "burst").await;
        // Queued before the writer runs, so they share batches that need
        // the 64-, 16-, 4- and 1-row statements.
        let writes: Vec<_> = (0..85)
            .map(|_| {
                let (store, entry) = (store.clone(), entry.clone());
                tokio::spawn(async move { store.insert_audit(&entry).await })
            })
            .collect();
        let mut ids = std::collections::HashSet::new();
        for w in writes {
            ids.insert(w.await.unwrap().unwrap());
        }
        assert_eq!(ids.len(), 85);
        assert_eq!(store.audit_count().await.unwrap(), 85);
        assert_eq!(store.audit_by_request_id("burst").await.unwrap().len(), 85);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_database_migrated_by_a_newer_binary_still_opens() {
        let (dir, url) = sqlite_url("newer-schema");
        let store = Store::connect(&url).await.unwrap();
        // A migration this binary does not know, as a newer release leaves it.
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (9999, 'from the future', TRUE, X'00', 0)",
        )
        .execute(store.pool())
        .await
        .unwrap();
        store.close().await;
        let again = Store::connect(&url).await.unwrap();
        assert!(again.stock("AAPL").await.unwrap().is_some());
        again.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_one_connection_pool_shares_its_connection_between_writer_and_readers() {
        let store = Store::connect("sqlite::memory:").await.unwrap();
        let entry = calculation(&store, "memory-1").await;
        for _ in 0..5 {
            store.insert_audit(&entry).await.unwrap();
            assert!(store.stock_cached("MSFT").await.unwrap().is_some());
        }
        assert_eq!(store.audit_count().await.unwrap(), 5);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(store.pool.num_idle(), 1);
    }
}

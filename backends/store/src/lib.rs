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

pub mod key_history;
pub mod keys;
pub mod time;

pub use key_history::{KeyAction, KeyEvent, KeyUpdate, UpdatedApiKey, UNKNOWN_ACTOR};

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

/// `DATABASE_URL` from the environment, else [`DEFAULT_DATABASE_URL`].
pub fn database_url_from_env() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned())
}

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// A database failure.
#[derive(Debug, Clone)]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
}

/// What kind of failure a [`StoreError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreErrorKind {
    /// The database cannot be reached or is overloaded: retrying later may
    /// work (HTTP 503).
    Unavailable,
    /// A row the operation needs does not exist.
    NotFound,
    /// The input is not acceptable (bad decimal, bad url, ...).
    Invalid,
    /// The row is in a state that refuses the operation (revoking a revoked
    /// key, rotating a key already replaced, ...).
    Conflict,
    /// Stored data is corrupt or a query failed for another reason.
    Other,
}

impl StoreError {
    fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }

    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// Whether the database is unreachable (answer 503, retry later).
    pub fn is_unavailable(&self) -> bool {
        self.kind == StoreErrorKind::Unavailable
    }

    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }

    pub fn is_conflict(&self) -> bool {
        self.kind == StoreErrorKind::Conflict
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for StoreError {}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        use sqlx::Error as E;
        let kind = match &e {
            E::PoolTimedOut | E::PoolClosed | E::Io(_) | E::Tls(_) | E::WorkerCrashed => {
                StoreErrorKind::Unavailable
            }
            E::Protocol(_) => StoreErrorKind::Unavailable,
            E::Database(db) => {
                let msg = db.message().to_ascii_lowercase();
                // SQLite busy/locked and PostgreSQL shutdown/too-many-connections.
                if msg.contains("locked")
                    || msg.contains("busy")
                    || msg.contains("shutting down")
                    || msg.contains("too many")
                    || db
                        .code()
                        .is_some_and(|c| c.starts_with("57") || c.starts_with("08"))
                {
                    StoreErrorKind::Unavailable
                } else {
                    StoreErrorKind::Other
                }
            }
            E::RowNotFound => StoreErrorKind::NotFound,
            E::Configuration(_) => StoreErrorKind::Invalid,
            _ => StoreErrorKind::Other,
        };
        Self::new(kind, format!("database error: {e}"))
    }
}

impl From<sqlx::migrate::MigrateError> for StoreError {
    fn from(e: sqlx::migrate::MigrateError) -> Self {
        match e {
            sqlx::migrate::MigrateError::Execute(inner) => inner.into(),
            other => Self::new(StoreErrorKind::Other, format!("migration failed: {other}")),
        }
    }
}

type Result<T, E = StoreError> = std::result::Result<T, E>;

fn decimal(column: &str, raw: &str) -> Result<Decimal> {
    Decimal::from_str(raw.trim()).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Other,
            format!("stored {column} {raw:?} is not a decimal"),
        )
    })
}

/// Parses an operator-supplied decimal, naming the field when it is bad.
pub fn parse_decimal(field: &str, raw: &str) -> Result<Decimal> {
    Decimal::from_str(raw.trim()).map_err(|_| {
        StoreError::new(
            StoreErrorKind::Invalid,
            format!("{field}: {raw:?} is not a decimal number"),
        )
    })
}

// ---------------------------------------------------------------------------
// Records
// ---------------------------------------------------------------------------

/// The database engine behind a [`Store`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One row of `stocks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stock {
    /// Upper-case ticker (`BRK.B`).
    pub ticker: String,
    pub risk: StockRisk,
    /// When the row was last written (RFC 3339 UTC).
    pub updated_at: String,
}

impl Stock {
    /// The SPEC §5 borrow rate of this stock.
    pub fn borrow_rate(&self) -> Result<BorrowRate> {
        self.risk.borrow_rate().map_err(|_| {
            StoreError::new(
                StoreErrorKind::Other,
                format!("stored risk inputs of {} overflow", self.ticker),
            )
        })
    }
}

/// One row of `clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub terms: ClientTerms,
    /// When the row was last written (RFC 3339 UTC).
    pub updated_at: String,
}

/// The status of an API key as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyStatus {
    Active,
    Revoked,
    /// Active in the table but past its `expires_at`.
    Expired,
}

impl KeyStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }
}

/// One row of `api_keys`. Holds the hash, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Public id (`key_…`), used by `gatewayctl keys revoke|rotate`.
    pub key_id: String,
    /// Lower-case hex SHA-256 of the key.
    pub key_hash: String,
    /// First 8 characters of the key (`brl_AbCd`), for display.
    pub key_prefix: String,
    pub client_id: String,
    /// `active` or `revoked` as stored; see [`ApiKey::status_at`].
    pub revoked: bool,
    /// Scopes, e.g. `["admin"]`.
    pub scopes: Vec<String>,
    /// The key's own per-minute limit, `None` for the global default.
    pub rate_limit_per_minute: Option<i64>,
    /// RFC 3339 UTC expiry, `None` for never.
    pub expires_at: Option<String>,
    pub created_at: String,
    pub revoked_at: Option<String>,
    /// The key id that replaced this one (set by rotation).
    pub replaced_by: Option<String>,
    /// When the auth service last accepted the key (RFC 3339 UTC, recorded
    /// at most once a minute), `None` if never.
    pub last_used_at: Option<String>,
}

impl ApiKey {
    /// `revoked` if revoked, `expired` if `expires_at` ≤ `now` (RFC 3339),
    /// else `active`.
    pub fn status_at(&self, now: &str) -> KeyStatus {
        if self.revoked {
            KeyStatus::Revoked
        } else if self.expires_at.as_deref().is_some_and(|e| e <= now) {
            KeyStatus::Expired
        } else {
            KeyStatus::Active
        }
    }

    /// [`ApiKey::status_at`] the current time.
    pub fn status(&self) -> KeyStatus {
        self.status_at(&time::now_rfc3339())
    }

    fn from_row(row: &AnyRow) -> Result<Self> {
        let scopes: String = row.try_get("scopes")?;
        let status: String = row.try_get("status")?;
        Ok(Self {
            key_id: row.try_get("key_id")?,
            key_hash: row.try_get("key_hash")?,
            key_prefix: row.try_get("key_prefix")?,
            client_id: row.try_get("client_id")?,
            revoked: status == "revoked",
            scopes: scopes.split_whitespace().map(str::to_owned).collect(),
            rate_limit_per_minute: row.try_get("rate_limit_per_minute")?,
            expires_at: row.try_get("expires_at")?,
            created_at: row.try_get("created_at")?,
            revoked_at: row.try_get("revoked_at")?,
            replaced_by: row.try_get("replaced_by")?,
            last_used_at: row.try_get("last_used_at")?,
        })
    }
}

/// What `keys create` needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewApiKey {
    pub client_id: String,
    pub scopes: Vec<String>,
    pub rate_limit_per_minute: Option<i64>,
    /// RFC 3339 UTC expiry, `None` for never.
    pub expires_at: Option<String>,
}

/// A key just created: the plain key (shown once, never stored) and its row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedApiKey {
    pub key: String,
    pub record: ApiKey,
}

/// One calculation to record in `audit_log`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// The request id the response carries.
    pub request_id: String,
    /// The authenticated caller (`x-client-id`), `None` for a direct
    /// internal call.
    pub caller: Option<String>,
    pub client_id: String,
    pub ticker: String,
    pub position_value: Decimal,
    pub loan_days: u16,
    pub fee: LocateFee,
}

/// One stored audit row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub audit_id: String,
    pub request_id: String,
    pub caller: Option<String>,
    pub client_id: String,
    pub ticker: String,
    pub position_value: String,
    pub loan_days: i64,
    pub borrow_rate_used: String,
    pub borrow_cost: String,
    pub markup: String,
    pub transaction_fees: String,
    pub total_fee: String,
    pub created_at: String,
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

/// Entries younger than the TTL are served without a query.
#[derive(Debug)]
struct TtlCache<T> {
    entries: HashMap<String, (Instant, T)>,
}

impl<T> Default for TtlCache<T> {
    fn default() -> Self {
        Self {
            entries: HashMap::new(),
        }
    }
}

impl<T: Clone> TtlCache<T> {
    fn get(cache: &Mutex<Self>, key: &str, ttl: Duration) -> Option<T> {
        let c = cache.lock().ok()?;
        let (at, v) = c.entries.get(key)?;
        (at.elapsed() < ttl).then(|| v.clone())
    }

    fn put(cache: &Mutex<Self>, key: &str, fetched_at: Instant, value: T) {
        if let Ok(mut c) = cache.lock() {
            if c.entries.len() > 10_000 {
                c.entries.clear();
            }
            c.entries.insert(key.to_owned(), (fetched_at, value));
        }
    }

    fn forget(cache: &Mutex<Self>, key: &str) {
        if let Ok(mut c) = cache.lock() {
            c.entries.remove(key);
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

/// One audit row waiting for the writer, and who to tell once committed.
#[derive(Debug)]
struct AuditJob {
    row: AuditRecord,
    done: oneshot::Sender<Result<()>>,
}

/// Most audit rows taken from the queue at once (one transaction).
const AUDIT_BATCH: usize = 256;

/// Rows per multi-row `INSERT`, largest first: a batch is written with as
/// many 64-row statements as fit, then 16-row ones, and so on. Four
/// statement shapes in all (13 parameters a row, well under SQLite's and
/// PostgreSQL's parameter limits), so each is prepared once per connection
/// and the prepared-statement cache stays small and fixed.
const AUDIT_STATEMENT_ROWS: [usize; 4] = [64, 16, 4, 1];

/// Columns of an audit row, in the order [`bind_audit_rows`] binds them.
const AUDIT_COLUMNS: [&str; 13] = [
    "audit_id",
    "request_id",
    "caller",
    "client_id",
    "ticker",
    "position_value",
    "loan_days",
    "borrow_rate_used",
    "borrow_cost",
    "markup",
    "transaction_fees",
    "total_fee",
    "created_at",
];

/// `INSERT INTO audit_log (...) VALUES ($1, ...), (...)` for `rows` rows.
fn audit_insert_sql(rows: usize) -> String {
    let n = AUDIT_COLUMNS.len();
    let mut sql = format!(
        "INSERT INTO audit_log ({}) VALUES ",
        AUDIT_COLUMNS.join(", ")
    );
    for row in 0..rows {
        if row > 0 {
            sql.push_str(", ");
        }
        let params: Vec<String> = (1..=n).map(|c| format!("${}", row * n + c)).collect();
        sql.push('(');
        sql.push_str(&params.join(", "));
        sql.push(')');
    }
    sql
}

/// The audit writer: takes every row queued so far (up to
/// [`AUDIT_BATCH`]) and writes them in one transaction, then tells each
/// request the outcome. Concurrent calculations therefore share a commit
/// instead of queueing for the write lock (SQLite) or an fsync
/// (PostgreSQL) one by one, and each still gets its answer only after its
/// own row is committed. A failed transaction leaves none of its rows, and
/// every request in it gets the error.
///
/// With `keep_connection` (every pool of two or more connections) the
/// writer keeps one connection for itself and only gives it up when a
/// write fails (the next batch then takes a fresh one). The audit table's
/// pages then fill the page cache of that one SQLite connection rather
/// than, in turn, the cache of every pooled connection. A kept connection
/// idle for [`AUDIT_IDLE_PING`] is pinged before use (as the pool checks a
/// connection it hands out), so a database restarted while no calculation
/// ran costs no failed write; under load no batch waits for a ping.
///
/// On SQLite the kept connection gets the larger page cache
/// ([`WRITER_CACHE_PRAGMA`]): the audit indexes take random keys, and the
/// readers need far less (see [`READER_CACHE_PRAGMA`]).
async fn audit_writer(
    pool: AnyPool,
    keep_connection: bool,
    sqlite: bool,
    mut rx: mpsc::Receiver<AuditJob>,
) {
    let writer_cache = keep_connection && sqlite;
    let statements: Vec<(usize, String)> = AUDIT_STATEMENT_ROWS
        .iter()
        .map(|&rows| (rows, audit_insert_sql(rows)))
        .collect();
    let mut batch = Vec::with_capacity(AUDIT_BATCH);
    let mut kept: Option<(PoolConnection<Any>, Instant)> = None;
    while rx.recv_many(&mut batch, AUDIT_BATCH).await > 0 {
        let conn = match kept.take() {
            Some((mut conn, used)) if used.elapsed() >= AUDIT_IDLE_PING => {
                match conn.ping().await {
                    Ok(()) => Ok(conn),
                    Err(_) => writer_connection(&pool, writer_cache).await,
                }
            }
            Some((conn, _)) => Ok(conn),
            None => writer_connection(&pool, writer_cache).await,
        };
        let result = match conn {
            Ok(mut conn) => {
                let written = write_audit_batch(&mut conn, &statements, &batch).await;
                if keep_connection && written.is_ok() {
                    kept = Some((conn, Instant::now()));
                }
                written
            }
            Err(e) => Err(e),
        };
        for job in batch.drain(..) {
            let _ = job.done.send(result.clone());
        }
    }
}

/// A pooled connection for the audit writer, given the writer's page cache
/// when `writer_cache`.
async fn writer_connection(pool: &AnyPool, writer_cache: bool) -> Result<PoolConnection<Any>> {
    let mut conn = pool.acquire().await?;
    if writer_cache {
        sqlx::Executor::execute(&mut *conn, WRITER_CACHE_PRAGMA).await?;
    }
    Ok(conn)
}

/// Page cache of a SQLite connection that only reads (every pooled
/// connection but the audit writer's): 64 KiB, enough for the key lookups
/// of stocks, clients and API keys, which the services cache besides.
/// SQLite keeps every page it has read up to this size, and in WAL mode a
/// reader re-reads its pages after each commit of the writer, so each
/// reader's cache fills to its limit over time; with 512 KiB for each of
/// ten connections the calculation service's memory kept climbing for
/// many minutes of load.
const READER_CACHE_PRAGMA: &str = "PRAGMA cache_size = -64";

/// Page cache of the audit writer's connection: 512 KiB (SQLite's default
/// is 2 MiB).
const WRITER_CACHE_PRAGMA: &str = "PRAGMA cache_size = -512";

/// How long the audit writer's kept connection may sit unused before it is
/// pinged ahead of the next write.
const AUDIT_IDLE_PING: Duration = Duration::from_secs(1);

/// Writes `jobs` in one transaction with the fixed statement shapes.
async fn write_audit_batch(
    conn: &mut AnyConnection,
    statements: &[(usize, String)],
    jobs: &[AuditJob],
) -> Result<()> {
    let mut tx = conn.begin().await?;
    let mut rest = jobs;
    for (rows, sql) in statements {
        while rest.len() >= *rows {
            let (now, later) = rest.split_at(*rows);
            bind_audit_rows(sqlx::query(sql), now)
                .execute(&mut *tx)
                .await?;
            rest = later;
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Binds the [`AUDIT_COLUMNS`] of each row, in order.
fn bind_audit_rows<'q>(
    mut query: sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>>,
    jobs: &[AuditJob],
) -> sqlx::query::Query<'q, Any, sqlx::any::AnyArguments<'q>> {
    for job in jobs {
        let r = &job.row;
        query = query
            .bind(r.audit_id.clone())
            .bind(r.request_id.clone())
            .bind(r.caller.clone())
            .bind(r.client_id.clone())
            .bind(r.ticker.clone())
            .bind(r.position_value.clone())
            .bind(r.loan_days)
            .bind(r.borrow_rate_used.clone())
            .bind(r.borrow_cost.clone())
            .bind(r.markup.clone())
            .bind(r.transaction_fees.clone())
            .bind(r.total_fee.clone())
            .bind(r.created_at.clone());
    }
    query
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
        let stocks: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM stocks")
            .fetch_one(&self.pool)
            .await?;
        if stocks == 0 {
            for (ticker, base, vol, event, min) in pricing::rate::SEED_STOCKS {
                sqlx::query(
                    "INSERT INTO stocks (ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at) \
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (ticker) DO NOTHING",
                )
                .bind(ticker)
                .bind(base)
                .bind(vol)
                .bind(event)
                .bind(min)
                .bind(&now)
                .execute(&self.pool)
                .await?;
            }
            tracing::info!(count = pricing::rate::SEED_STOCKS.len(), "Seeded stocks");
        }
        let clients: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM clients")
            .fetch_one(&self.pool)
            .await?;
        if clients == 0 {
            for (id, markup, fee_type, amount) in pricing::fee::SEED_CLIENTS {
                sqlx::query(
                    "INSERT INTO clients (client_id, markup_percentage, fee_type, fee_amount, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (client_id) DO NOTHING",
                )
                .bind(id)
                .bind(markup)
                .bind(fee_type)
                .bind(amount)
                .bind(&now)
                .execute(&self.pool)
                .await?;
            }
            tracing::info!(count = pricing::fee::SEED_CLIENTS.len(), "Seeded clients");
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

    // --- stocks ----------------------------------------------------------

    /// A stock by (upper-case) ticker, straight from the database.
    pub async fn stock(&self, ticker: &str) -> Result<Option<Stock>> {
        let row = sqlx::query(
            "SELECT ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at \
             FROM stocks WHERE ticker = $1",
        )
        .bind(ticker)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(stock_from_row).transpose()
    }

    /// A stock through the in-process cache (entries at most
    /// [`StoreOptions::rate_cache_ttl`] old). Unknown tickers are not cached.
    pub async fn stock_cached(&self, ticker: &str) -> Result<Option<Stock>> {
        if let Some(s) = TtlCache::get(&self.stocks, ticker, self.cache_ttl) {
            return Ok(Some(s));
        }
        let fetched_at = Instant::now();
        let stock = self.stock(ticker).await?;
        if let Some(s) = &stock {
            TtlCache::put(&self.stocks, ticker, fetched_at, s.clone());
        }
        Ok(stock)
    }

    /// All stocks, by ticker.
    pub async fn list_stocks(&self) -> Result<Vec<Stock>> {
        let rows = sqlx::query(
            "SELECT ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at \
             FROM stocks ORDER BY ticker",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(stock_from_row).collect()
    }

    /// Inserts or replaces a stock (ticker upper-cased by the caller).
    pub async fn upsert_stock(&self, ticker: &str, risk: &StockRisk) -> Result<Stock> {
        let now = time::now_rfc3339();
        sqlx::query(
            "INSERT INTO stocks (ticker, base_rate, volatility_index, event_risk_factor, min_rate, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (ticker) DO UPDATE SET base_rate = excluded.base_rate, \
             volatility_index = excluded.volatility_index, event_risk_factor = excluded.event_risk_factor, \
             min_rate = excluded.min_rate, updated_at = excluded.updated_at",
        )
        .bind(ticker)
        .bind(risk.base_rate.to_string())
        .bind(risk.volatility_index.to_string())
        .bind(risk.event_risk_factor.to_string())
        .bind(risk.min_rate.to_string())
        .bind(&now)
        .execute(&self.pool)
        .await?;
        TtlCache::forget(&self.stocks, ticker);
        Ok(Stock {
            ticker: ticker.to_owned(),
            risk: risk.clone(),
            updated_at: now,
        })
    }

    // --- clients ---------------------------------------------------------

    /// A client's terms by id.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        let row = sqlx::query(
            "SELECT client_id, markup_percentage, fee_type, fee_amount, updated_at \
             FROM clients WHERE client_id = $1",
        )
        .bind(client_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(client_from_row).transpose()
    }

    /// A client through the in-process cache (same staleness bound as
    /// stocks). Unknown clients are not cached.
    pub async fn client_cached(&self, client_id: &str) -> Result<Option<Client>> {
        if let Some(c) = TtlCache::get(&self.clients, client_id, self.cache_ttl) {
            return Ok(Some(c));
        }
        let fetched_at = Instant::now();
        let client = self.client(client_id).await?;
        if let Some(c) = &client {
            TtlCache::put(&self.clients, client_id, fetched_at, c.clone());
        }
        Ok(client)
    }

    /// All clients, by id.
    pub async fn list_clients(&self) -> Result<Vec<Client>> {
        let rows = sqlx::query(
            "SELECT client_id, markup_percentage, fee_type, fee_amount, updated_at \
             FROM clients ORDER BY client_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(client_from_row).collect()
    }

    /// Inserts or replaces a client's terms.
    pub async fn upsert_client(&self, client_id: &str, terms: &ClientTerms) -> Result<Client> {
        let now = time::now_rfc3339();
        sqlx::query(
            "INSERT INTO clients (client_id, markup_percentage, fee_type, fee_amount, updated_at) \
             VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (client_id) DO UPDATE SET markup_percentage = excluded.markup_percentage, \
             fee_type = excluded.fee_type, fee_amount = excluded.fee_amount, updated_at = excluded.updated_at",
        )
        .bind(client_id)
        .bind(terms.markup_percentage.to_string())
        .bind(terms.fee_type.as_str())
        .bind(terms.fee_amount.to_string())
        .bind(&now)
        .execute(&self.pool)
        .await?;
        TtlCache::forget(&self.clients, client_id);
        Ok(Client {
            client_id: client_id.to_owned(),
            terms: terms.clone(),
            updated_at: now,
        })
    }

    // --- API keys --------------------------------------------------------

    /// Creates a key: returns the plain key once; only its hash is stored.
    /// The `create` event is recorded with the actor [`UNKNOWN_ACTOR`]; see
    /// [`Store::create_api_key_by`].
    pub async fn create_api_key(&self, new: &NewApiKey) -> Result<CreatedApiKey> {
        self.create_api_key_by(new, UNKNOWN_ACTOR).await
    }

    /// The key whose SHA-256 hex is `key_hash` (what the auth service
    /// verifies), whatever its status.
    pub async fn api_key_by_hash(&self, key_hash: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE key_hash = $1"))
            .bind(key_hash)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ApiKey::from_row).transpose()
    }

    /// A key by its public id.
    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>> {
        let row = sqlx::query(&format!("{KEY_SELECT} WHERE key_id = $1"))
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(ApiKey::from_row).transpose()
    }

    /// All keys (optionally of one client), oldest first.
    pub async fn list_api_keys(&self, client_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let rows = match client_id {
            Some(c) => {
                sqlx::query(&format!(
                    "{KEY_SELECT} WHERE client_id = $1 ORDER BY created_at, key_id"
                ))
                .bind(c)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query(&format!("{KEY_SELECT} ORDER BY created_at, key_id"))
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        rows.iter().map(ApiKey::from_row).collect()
    }

    /// Revokes a key at once. Revoking a revoked key is a no-op that
    /// returns it unchanged. See [`Store::revoke_api_key_by`], which
    /// reports the second revocation as a conflict.
    pub async fn revoke_api_key(&self, key_id: &str) -> Result<ApiKey> {
        match self.revoke_api_key_by(key_id, UNKNOWN_ACTOR).await {
            Err(e) if e.is_conflict() => self.api_key(key_id).await?.ok_or_else(|| {
                StoreError::new(StoreErrorKind::NotFound, format!("no key with id {key_id}"))
            }),
            other => other,
        }
    }

    /// Replaces a key by a new one; see [`Store::rotate_api_key_by`].
    pub async fn rotate_api_key(&self, key_id: &str, grace: Duration) -> Result<CreatedApiKey> {
        self.rotate_api_key_by(key_id, grace, UNKNOWN_ACTOR).await
    }

    // --- audit log -------------------------------------------------------

    /// Writes one audit row; returns once it is committed (rows of
    /// concurrent requests share a transaction, see the audit writer).
    pub async fn insert_audit(&self, entry: &AuditEntry) -> Result<String> {
        let audit_id = format!("aud_{}", keys::generate_key_id().trim_start_matches("key_"));
        let fee = &entry.fee;
        let row = AuditRecord {
            audit_id: audit_id.clone(),
            request_id: entry.request_id.clone(),
            caller: entry.caller.clone(),
            client_id: entry.client_id.clone(),
            ticker: entry.ticker.clone(),
            position_value: entry.position_value.to_string(),
            loan_days: i64::from(entry.loan_days),
            borrow_rate_used: fee.borrow_rate_used.to_string(),
            borrow_cost: fee.borrow_cost.to_string(),
            markup: fee.markup.to_string(),
            transaction_fees: fee.transaction_fees.to_string(),
            total_fee: fee.total_fee.to_string(),
            created_at: time::now_rfc3339(),
        };
        let (done, committed) = oneshot::channel();
        let gone = || StoreError::new(StoreErrorKind::Unavailable, "audit writer stopped");
        self.audit
            .send(AuditJob { row, done })
            .await
            .map_err(|_| gone())?;
        committed.await.map_err(|_| gone())??;
        Ok(audit_id)
    }

    /// Number of audit rows.
    pub async fn audit_count(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT COUNT(*) FROM audit_log")
            .fetch_one(&self.pool)
            .await?)
    }

    /// Audit rows of one request id.
    pub async fn audit_by_request_id(&self, request_id: &str) -> Result<Vec<AuditRecord>> {
        let rows = sqlx::query(
            "SELECT audit_id, request_id, caller, client_id, ticker, position_value, loan_days, \
             borrow_rate_used, borrow_cost, markup, transaction_fees, total_fee, created_at \
             FROM audit_log WHERE request_id = $1 ORDER BY created_at",
        )
        .bind(request_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(AuditRecord {
                    audit_id: r.try_get("audit_id")?,
                    request_id: r.try_get("request_id")?,
                    caller: r.try_get("caller")?,
                    client_id: r.try_get("client_id")?,
                    ticker: r.try_get("ticker")?,
                    position_value: r.try_get("position_value")?,
                    loan_days: r.try_get("loan_days")?,
                    borrow_rate_used: r.try_get("borrow_rate_used")?,
                    borrow_cost: r.try_get("borrow_cost")?,
                    markup: r.try_get("markup")?,
                    transaction_fees: r.try_get("transaction_fees")?,
                    total_fee: r.try_get("total_fee")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}

const KEY_SELECT: &str = "SELECT key_id, key_hash, key_prefix, client_id, status, scopes, \
     rate_limit_per_minute, expires_at, created_at, revoked_at, replaced_by, last_used_at \
     FROM api_keys";

fn stock_from_row(row: &AnyRow) -> Result<Stock> {
    let get = |c: &str| -> Result<Decimal> {
        let raw: String = row.try_get(c)?;
        decimal(c, &raw)
    };
    Ok(Stock {
        ticker: row.try_get("ticker")?,
        risk: StockRisk {
            base_rate: get("base_rate")?,
            volatility_index: get("volatility_index")?,
            event_risk_factor: get("event_risk_factor")?,
            min_rate: get("min_rate")?,
        },
        updated_at: row.try_get("updated_at")?,
    })
}

fn client_from_row(row: &AnyRow) -> Result<Client> {
    let get = |c: &str| -> Result<Decimal> {
        let raw: String = row.try_get(c)?;
        decimal(c, &raw)
    };
    let fee_type: String = row.try_get("fee_type")?;
    Ok(Client {
        client_id: row.try_get("client_id")?,
        terms: ClientTerms {
            markup_percentage: get("markup_percentage")?,
            fee_type: FeeType::from_str(&fee_type)
                .map_err(|e| StoreError::new(StoreErrorKind::Other, e))?,
            fee_amount: get("fee_amount")?,
        },
        updated_at: row.try_get("updated_at")?,
    })
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

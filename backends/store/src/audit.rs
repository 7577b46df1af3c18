//! The `audit_log` aggregate: one row per calculation, written in batches
//! by one writer task, and read back by request id.

use super::*;

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

/// One audit row waiting for the writer, and who to tell once committed.
#[derive(Debug)]
pub(crate) struct AuditJob {
    row: AuditRecord,
    done: oneshot::Sender<Result<()>>,
}

/// Most audit rows taken from the queue at once (one transaction).
pub(crate) const AUDIT_BATCH: usize = 256;

/// Rows per multi-row `INSERT`, largest first: a batch is written with as
/// many 64-row statements as fit, then 16-row ones, and so on. Four
/// statement shapes in all (13 parameters a row, well under SQLite's and
/// PostgreSQL's parameter limits), so each is prepared once per connection
/// and the prepared-statement cache stays small and fixed.
pub(crate) const AUDIT_STATEMENT_ROWS: [usize; 4] = [64, 16, 4, 1];

/// Columns of an audit row, in the order [`bind_audit_rows`] binds them.
pub(crate) const AUDIT_COLUMNS: [&str; 13] = [
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
pub(crate) fn audit_insert_sql(rows: usize) -> String {
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
pub(crate) async fn audit_writer(
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
pub(crate) const READER_CACHE_PRAGMA: &str = "PRAGMA cache_size = -64";

/// Page cache of the audit writer's connection: 512 KiB (SQLite's default
/// is 2 MiB).
pub(crate) const WRITER_CACHE_PRAGMA: &str = "PRAGMA cache_size = -512";

/// How long the audit writer's kept connection may sit unused before it is
/// pinged ahead of the next write.
pub(crate) const AUDIT_IDLE_PING: Duration = Duration::from_secs(1);

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

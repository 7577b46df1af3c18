//! The store's one error type and the decimal parsing that reports it.

use super::*;

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
    pub(crate) fn new(kind: StoreErrorKind, message: impl Into<String>) -> Self {
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

pub(crate) type Result<T, E = StoreError> = std::result::Result<T, E>;

pub(crate) fn decimal(column: &str, raw: &str) -> Result<Decimal> {
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

//! The `api_keys` aggregate: key rows (hash only), their status, creation,
//! lookup, listing, revocation and rotation (history in [`crate::key_history`]).

use super::*;

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

    pub(crate) fn from_row(row: &AnyRow) -> Result<Self> {
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

impl Store {
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
        self.api_key_where("key_hash", key_hash).await
    }

    /// A key by its public id.
    pub async fn api_key(&self, key_id: &str) -> Result<Option<ApiKey>> {
        self.api_key_where("key_id", key_id).await
    }

    /// The key whose unique `column` (`key_id`, `key_hash`) is `value`.
    async fn api_key_where(&self, column: &str, value: &str) -> Result<Option<ApiKey>> {
        self.fetch_row(
            &format!("{KEY_SELECT} WHERE {column} = $1"),
            value,
            ApiKey::from_row,
        )
        .await
    }

    /// All keys (optionally of one client), oldest first.
    pub async fn list_api_keys(&self, client_id: Option<&str>) -> Result<Vec<ApiKey>> {
        let filter = if client_id.is_some() {
            "WHERE client_id = $1 "
        } else {
            ""
        };
        self.fetch_rows(
            &format!("{KEY_SELECT} {filter}ORDER BY created_at, key_id"),
            client_id,
            ApiKey::from_row,
        )
        .await
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
}

pub(crate) const KEY_SELECT: &str =
    "SELECT key_id, key_hash, key_prefix, client_id, status, scopes, \
     rate_limit_per_minute, expires_at, created_at, revoked_at, replaced_by, last_used_at \
     FROM api_keys";

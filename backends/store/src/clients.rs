//! The `clients` aggregate: a pricing client's terms, read (cached) and upserted.

use super::*;

/// One row of `clients`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub terms: ClientTerms,
    /// When the row was last written (RFC 3339 UTC).
    pub updated_at: String,
}

impl Store {
    // --- clients ---------------------------------------------------------

    /// A client's terms by id.
    pub async fn client(&self, client_id: &str) -> Result<Option<Client>> {
        self.fetch_row(
            "SELECT client_id, markup_percentage, fee_type, fee_amount, updated_at \
             FROM clients WHERE client_id = $1",
            client_id,
            client_from_row,
        )
        .await
    }

    /// A client through the in-process cache (same staleness bound as
    /// stocks). Unknown clients are not cached.
    pub async fn client_cached(&self, client_id: &str) -> Result<Option<Client>> {
        TtlCache::read_through(
            &self.clients,
            client_id,
            self.cache_ttl,
            self.client(client_id),
        )
        .await
    }

    /// All clients, by id.
    pub async fn list_clients(&self) -> Result<Vec<Client>> {
        self.fetch_rows(
            "SELECT client_id, markup_percentage, fee_type, fee_amount, updated_at \
             FROM clients ORDER BY client_id",
            None,
            client_from_row,
        )
        .await
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

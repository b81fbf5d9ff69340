//! Registered clients: RFC 7591 registrations and cached client ID metadata documents.

use super::{hash, int, list, list_text, opt_int, opt_text, text, Store, StoreError};

/// How a client authenticates at the token endpoint.
pub(crate) const AUTH_NONE: &str = "none";
pub(crate) const AUTH_POST: &str = "client_secret_post";
pub(crate) const AUTH_BASIC: &str = "client_secret_basic";

/// Where a client came from.
pub(crate) const SOURCE_REGISTERED: &str = "registered";
pub(crate) const SOURCE_DOCUMENT: &str = "document";

/// One client.
#[derive(Debug, Clone)]
pub(crate) struct Client {
    pub client_id: String,
    /// SHA-256 of the secret (confidential clients).
    pub secret_hash: Option<String>,
    pub auth_method: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    /// The registration response as JSON (RFC 7591 §3.2.1).
    pub metadata: String,
    pub source: String,
    pub created: i64,
    /// When a cached metadata document must be fetched again.
    pub expires: Option<i64>,
}

impl Client {
    /// Whether `secret` is this client's (constant time over the hashes).
    pub(crate) fn secret_matches(&self, secret: &str) -> bool {
        use subtle::ConstantTimeEq;
        match &self.secret_hash {
            Some(h) => bool::from(h.as_bytes().ct_eq(hash(secret).as_bytes())),
            None => false,
        }
    }
}

fn client(row: &sqlx::any::AnyRow) -> Client {
    Client {
        client_id: text(row, "client_id"),
        secret_hash: opt_text(row, "secret_hash"),
        auth_method: text(row, "auth_method"),
        name: text(row, "name"),
        redirect_uris: list(row, "redirect_uris"),
        metadata: text(row, "metadata"),
        source: text(row, "source"),
        created: int(row, "created"),
        expires: opt_int(row, "expires"),
    }
}

const COLUMNS: &str =
    "client_id, secret_hash, auth_method, name, redirect_uris, metadata, source, created, expires";

impl Store {
    /// Stores a client (a document's client replaces its previous copy).
    pub(crate) async fn put_client(&self, c: &Client) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(&c.client_id)
            .execute(self.pool())
            .await?;
        sqlx::query(&format!(
            "INSERT INTO oauth_clients ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
        ))
        .bind(&c.client_id)
        .bind(c.secret_hash.clone())
        .bind(&c.auth_method)
        .bind(&c.name)
        .bind(list_text(&c.redirect_uris))
        .bind(&c.metadata)
        .bind(&c.source)
        .bind(c.created)
        .bind(c.expires)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<Client>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM oauth_clients WHERE client_id = $1"
        ))
        .bind(client_id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(client))
    }

    pub(crate) async fn clients(&self) -> Result<Vec<Client>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {COLUMNS} FROM oauth_clients ORDER BY created"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(client).collect())
    }

    /// Removes a client and revokes every grant it holds. False when it did not exist.
    pub(crate) async fn delete_client(
        &self,
        client_id: &str,
        now: i64,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_clients WHERE client_id = $1")
            .bind(client_id)
            .execute(self.pool())
            .await?;
        self.revoke_where("client_id = $2", client_id, now, "client_removed")
            .await?;
        sqlx::query("DELETE FROM oauth_consents WHERE client_id = $1")
            .bind(client_id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }
}

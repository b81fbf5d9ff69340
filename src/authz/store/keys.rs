//! Signing keys as stored: the private key (PKCS#8, base64) and its public JWK.

use super::{int, opt_int, text, Store, StoreError};

/// One stored signing key.
#[derive(Debug, Clone)]
pub(crate) struct StoredKey {
    pub kid: String,
    pub private_key: String,
    pub public_jwk: String,
    pub created: i64,
    pub retired: Option<i64>,
}

impl Store {
    /// Keys still published: not retired, or retired after `since`.
    pub(crate) async fn keys(&self, since: i64) -> Result<Vec<StoredKey>, StoreError> {
        let rows = sqlx::query("SELECT kid, private_key, public_jwk, created, retired FROM oauth_keys WHERE retired IS NULL OR retired >= $1 ORDER BY created DESC, kid")
            .bind(since)
            .fetch_all(self.pool())
            .await?;
        Ok(rows
            .iter()
            .map(|r| StoredKey {
                kid: text(r, "kid"),
                private_key: text(r, "private_key"),
                public_jwk: text(r, "public_jwk"),
                created: int(r, "created"),
                retired: opt_int(r, "retired"),
            })
            .collect())
    }

    /// Adds a new signing key and retires the ones before it, in one transaction.
    pub(crate) async fn rotate_to(&self, k: &StoredKey) -> Result<(), StoreError> {
        let mut tx = self.pool().begin().await?;
        sqlx::query("UPDATE oauth_keys SET retired = $1 WHERE retired IS NULL")
            .bind(k.created)
            .execute(&mut *tx)
            .await?;
        sqlx::query("INSERT INTO oauth_keys (kid, private_key, public_jwk, created, retired) VALUES ($1, $2, $3, $4, NULL)")
            .bind(&k.kid)
            .bind(&k.private_key)
            .bind(&k.public_jwk)
            .bind(k.created)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Deletes keys retired before `before` (their last token has expired).
    pub(crate) async fn drop_keys(&self, before: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_keys WHERE retired IS NOT NULL AND retired < $1")
            .bind(before)
            .execute(self.pool())
            .await?;
        Ok(())
    }
}

//! Grants: a refresh-token family per redeemed code (RFC 9700 §4.14.2 rotation), its tokens,
//! revocation (by token, family, user or client), and users the operator disabled.

use super::flow::Subject;
use super::{hash, int, list, list_text, opt_int, opt_text, text, Store, StoreError};

/// One grant (a refresh-token family) as listed.
#[derive(Debug, Clone)]
pub(crate) struct Family {
    pub id: String,
    pub client_id: String,
    pub subject: Subject,
    pub resource: String,
    pub scope: String,
    pub created: i64,
    pub last_used: i64,
    pub revoked: Option<i64>,
    pub revoked_reason: Option<String>,
}

/// What presenting a refresh token found.
#[derive(Debug)]
pub(crate) enum Presented {
    /// Live: it is now used; the family continues with a new token.
    Live(Family),
    /// Already used (or its family revoked): a reuse. The family is revoked now.
    Reused(Family),
    /// Unknown or expired.
    Unknown,
}

const FAMILY_COLUMNS: &str =
    "id, client_id, subject, roles, method, resource, scope, created, last_used, revoked, revoked_reason";

fn family(r: &sqlx::any::AnyRow) -> Family {
    Family {
        id: text(r, "id"),
        client_id: text(r, "client_id"),
        subject: Subject {
            name: text(r, "subject"),
            roles: list(r, "roles"),
            method: text(r, "method"),
        },
        resource: text(r, "resource"),
        scope: text(r, "scope"),
        created: int(r, "created"),
        last_used: int(r, "last_used"),
        revoked: opt_int(r, "revoked"),
        revoked_reason: opt_text(r, "revoked_reason"),
    }
}

impl Store {
    /// Starts a family (a redeemed code).
    pub(crate) async fn put_family(&self, f: &Family) -> Result<(), StoreError> {
        sqlx::query(&format!("INSERT INTO oauth_families ({FAMILY_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULL, NULL)"))
            .bind(&f.id)
            .bind(&f.client_id)
            .bind(&f.subject.name)
            .bind(list_text(&f.subject.roles))
            .bind(&f.subject.method)
            .bind(&f.resource)
            .bind(&f.scope)
            .bind(f.created)
            .bind(f.last_used)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(crate) async fn family(&self, id: &str) -> Result<Option<Family>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {FAMILY_COLUMNS} FROM oauth_families WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(self.pool())
        .await?;
        Ok(row.as_ref().map(family))
    }

    /// Adds a refresh token to a live family.
    pub(crate) async fn put_refresh(
        &self,
        token: &str,
        family: &str,
        expires: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO oauth_refresh_tokens (token_hash, family, expires, used) VALUES ($1, $2, $3, NULL)")
            .bind(hash(token))
            .bind(family)
            .bind(expires)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Presents a refresh token: marks it used (atomically, so two concurrent uses cannot both
    /// win); a token used before, or of a revoked family, is a reuse and revokes the family.
    pub(crate) async fn present_refresh(
        &self,
        token: &str,
        now: i64,
    ) -> Result<Presented, StoreError> {
        let h = hash(token);
        let won = sqlx::query("UPDATE oauth_refresh_tokens SET used = $1 WHERE token_hash = $2 AND used IS NULL AND expires >= $1")
            .bind(now)
            .bind(&h)
            .execute(self.pool())
            .await?
            .rows_affected()
            == 1;
        let row = sqlx::query(
            "SELECT family, expires, used FROM oauth_refresh_tokens WHERE token_hash = $1",
        )
        .bind(&h)
        .fetch_optional(self.pool())
        .await?;
        let Some(row) = row else {
            return Ok(Presented::Unknown);
        };
        let Some(f) = self.family(&text(&row, "family")).await? else {
            return Ok(Presented::Unknown);
        };
        if won && f.revoked.is_none() {
            sqlx::query("UPDATE oauth_families SET last_used = $1 WHERE id = $2")
                .bind(now)
                .bind(&f.id)
                .execute(self.pool())
                .await?;
            return Ok(Presented::Live(f));
        }
        if !won && opt_int(&row, "used").is_none() {
            // Not used, not won: expired.
            return Ok(Presented::Unknown);
        }
        self.revoke_family(&f.id, now, "refresh_reuse").await?;
        Ok(Presented::Reused(f))
    }

    /// Revokes one family (idempotent; the first reason stays).
    pub(crate) async fn revoke_family(
        &self,
        id: &str,
        now: i64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.revoke_where("id = $2", id, now, reason)
            .await
            .map(|_| ())
    }

    /// Revokes the families matching `clause` (with `$2` bound to `value`) and deletes their
    /// tokens; returns how many were live.
    pub(crate) async fn revoke_where(
        &self,
        clause: &str,
        value: &str,
        now: i64,
        reason: &str,
    ) -> Result<u64, StoreError> {
        let done = sqlx::query(&format!("UPDATE oauth_families SET revoked = $1, revoked_reason = $3 WHERE {clause} AND revoked IS NULL"))
            .bind(now)
            .bind(value)
            .bind(reason)
            .execute(self.pool())
            .await?;
        sqlx::query(&format!("DELETE FROM oauth_refresh_tokens WHERE family IN (SELECT id FROM oauth_families WHERE {clause} AND revoked IS NOT NULL)").replace("$2", "$1"))
            .bind(value)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected())
    }

    /// The family of a refresh token, without using it (checks before rotation, RFC 7009).
    pub(crate) async fn refresh_family(&self, token: &str) -> Result<Option<Family>, StoreError> {
        let row = sqlx::query("SELECT family FROM oauth_refresh_tokens WHERE token_hash = $1")
            .bind(hash(token))
            .fetch_optional(self.pool())
            .await?;
        match row {
            Some(r) => self.family(&text(&r, "family")).await,
            None => Ok(None),
        }
    }

    /// Grants (families), newest first; `live` only those not revoked.
    pub(crate) async fn families(&self, live: bool) -> Result<Vec<Family>, StoreError> {
        let filter = if live { "WHERE revoked IS NULL" } else { "" };
        let rows = sqlx::query(&format!(
            "SELECT {FAMILY_COLUMNS} FROM oauth_families {filter} ORDER BY created DESC"
        ))
        .fetch_all(self.pool())
        .await?;
        Ok(rows.iter().map(family).collect())
    }

    /// Revokes a user's grants (all, or one client's) and forgets their consents.
    pub(crate) async fn revoke_grants(
        &self,
        subject: &str,
        client_id: Option<&str>,
        now: i64,
    ) -> Result<u64, StoreError> {
        let n = match client_id {
            Some(c) => {
                sqlx::query("DELETE FROM oauth_consents WHERE subject = $1 AND client_id = $2")
                    .bind(subject)
                    .bind(c)
                    .execute(self.pool())
                    .await?;
                let ids = sqlx::query("SELECT id FROM oauth_families WHERE subject = $1 AND client_id = $2 AND revoked IS NULL")
                    .bind(subject)
                    .bind(c)
                    .fetch_all(self.pool())
                    .await?;
                for r in &ids {
                    self.revoke_family(&text(r, "id"), now, "revoked_by_operator")
                        .await?;
                }
                ids.len() as u64
            }
            None => {
                sqlx::query("DELETE FROM oauth_consents WHERE subject = $1")
                    .bind(subject)
                    .execute(self.pool())
                    .await?;
                self.revoke_where("subject = $2", subject, now, "revoked_by_operator")
                    .await?
            }
        };
        Ok(n)
    }

    /// Disables or enables a user; disabling ends their sessions and revokes their grants.
    pub(crate) async fn set_disabled(
        &self,
        subject: &str,
        disabled: bool,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_disabled_users WHERE subject = $1")
            .bind(subject)
            .execute(self.pool())
            .await?;
        if disabled {
            sqlx::query("INSERT INTO oauth_disabled_users (subject, disabled) VALUES ($1, $2)")
                .bind(subject)
                .bind(now)
                .execute(self.pool())
                .await?;
            self.delete_sessions_of(subject).await?;
            self.revoke_where("subject = $2", subject, now, "user_disabled")
                .await?;
        }
        Ok(())
    }

    pub(crate) async fn is_disabled(&self, subject: &str) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT subject FROM oauth_disabled_users WHERE subject = $1")
            .bind(subject)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some())
    }

    pub(crate) async fn disabled_users(&self) -> Result<Vec<(String, i64)>, StoreError> {
        let rows =
            sqlx::query("SELECT subject, disabled FROM oauth_disabled_users ORDER BY subject")
                .fetch_all(self.pool())
                .await?;
        Ok(rows
            .iter()
            .map(|r| (text(r, "subject"), int(r, "disabled")))
            .collect())
    }
}

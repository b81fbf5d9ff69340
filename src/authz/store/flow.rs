//! The interactive part of a grant: authorization requests waiting for login and consent,
//! browser login sessions, single-use codes, and remembered consents.

use serde::{Deserialize, Serialize};

use super::{hash, int, list, list_text, opt_int, opt_text, text, Store, StoreError};

/// A validated authorization request (`/oauth/authorize`), kept until its code is issued.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct AuthRequest {
    pub client_id: String,
    pub redirect_uri: String,
    pub state: Option<String>,
    /// The S256 PKCE challenge.
    pub challenge: String,
    /// The resource (RFC 8707) the token will be for.
    pub resource: String,
    /// Granted scopes, space-separated.
    pub scope: String,
}

/// A pending request as stored: its id (in the pages' forms), the CSRF token its forms carry,
/// and the company-IdP leg when one is under way (JSON, `authz/upstream.rs`).
#[derive(Debug, Clone)]
pub(crate) struct Pending {
    pub id: String,
    pub request: AuthRequest,
    pub csrf: String,
    pub upstream: Option<String>,
    pub expires: i64,
}

/// Who a login session (or a code, a grant) is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Subject {
    pub name: String,
    pub roles: Vec<String>,
    /// `password` or `upstream`.
    pub method: String,
}

/// A code as redeemed.
#[derive(Debug, Clone)]
pub(crate) struct Code {
    pub family: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub challenge: String,
    pub resource: String,
    pub scope: String,
    pub subject: Subject,
    pub expires: i64,
    /// Set when it was already redeemed (a replay).
    pub used: Option<i64>,
}

impl Store {
    pub(crate) async fn put_request(&self, p: &Pending) -> Result<(), StoreError> {
        let params = serde_json::to_string(&p.request).unwrap_or_default();
        sqlx::query("INSERT INTO oauth_requests (id, params, csrf, upstream, expires) VALUES ($1, $2, $3, $4, $5)")
            .bind(&p.id)
            .bind(params)
            .bind(&p.csrf)
            .bind(p.upstream.clone())
            .bind(p.expires)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// A pending request that has not expired.
    pub(crate) async fn request(&self, id: &str, now: i64) -> Result<Option<Pending>, StoreError> {
        let row = sqlx::query("SELECT id, params, csrf, upstream, expires FROM oauth_requests WHERE id = $1 AND expires >= $2")
            .bind(id)
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.and_then(|r| {
            Some(Pending {
                id: text(&r, "id"),
                request: serde_json::from_str(&text(&r, "params")).ok()?,
                csrf: text(&r, "csrf"),
                upstream: opt_text(&r, "upstream"),
                expires: int(&r, "expires"),
            })
        }))
    }

    /// Records the company-IdP leg of a request (state, nonce, verifier as JSON).
    pub(crate) async fn set_upstream(&self, id: &str, upstream: &str) -> Result<(), StoreError> {
        sqlx::query("UPDATE oauth_requests SET upstream = $1 WHERE id = $2")
            .bind(upstream)
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Removes the company-IdP leg of a request if it is still `upstream` (single use: of two
    /// concurrent callbacks only one gets `true`).
    pub(crate) async fn take_upstream(&self, id: &str, upstream: &str) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE oauth_requests SET upstream = NULL WHERE id = $1 AND upstream = $2",
        )
        .bind(id)
        .bind(upstream)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends a request (its code was issued, or it was denied): its forms stop working.
    pub(crate) async fn delete_request(&self, id: &str) -> Result<bool, StoreError> {
        let done = sqlx::query("DELETE FROM oauth_requests WHERE id = $1")
            .bind(id)
            .execute(self.pool())
            .await?;
        Ok(done.rows_affected() > 0)
    }

    pub(crate) async fn put_session(
        &self,
        id: &str,
        s: &Subject,
        now: i64,
        expires: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO oauth_sessions (id_hash, subject, roles, method, created, expires) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(hash(id))
            .bind(&s.name)
            .bind(list_text(&s.roles))
            .bind(&s.method)
            .bind(now)
            .bind(expires)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// The subject of a live login session.
    pub(crate) async fn session(&self, id: &str, now: i64) -> Result<Option<Subject>, StoreError> {
        let row = sqlx::query("SELECT subject, roles, method FROM oauth_sessions WHERE id_hash = $1 AND expires >= $2")
            .bind(hash(id))
            .bind(now)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| Subject {
            name: text(&r, "subject"),
            roles: list(&r, "roles"),
            method: text(&r, "method"),
        }))
    }

    pub(crate) async fn delete_session(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_sessions WHERE id_hash = $1")
            .bind(hash(id))
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Ends every login session of `subject` (disabled user).
    pub(crate) async fn delete_sessions_of(&self, subject: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM oauth_sessions WHERE subject = $1")
            .bind(subject)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    pub(crate) async fn put_code(&self, code: &str, c: &Code) -> Result<(), StoreError> {
        sqlx::query("INSERT INTO oauth_codes (code_hash, family, client_id, redirect_uri, challenge, resource, scope, subject, roles, method, expires, used) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, NULL)")
            .bind(hash(code))
            .bind(&c.family)
            .bind(&c.client_id)
            .bind(&c.redirect_uri)
            .bind(&c.challenge)
            .bind(&c.resource)
            .bind(&c.scope)
            .bind(&c.subject.name)
            .bind(list_text(&c.subject.roles))
            .bind(&c.subject.method)
            .bind(c.expires)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Redeems a code for `client_id`: marks it used in the same statement that checks it was
    /// not (so two concurrent redemptions cannot both win) and returns it. A code already used
    /// comes back with `used` set: the caller treats that as a replay. Another client's
    /// attempt leaves the code unused (it comes back with another `client_id`), so whoever
    /// intercepted a code cannot spend it for its client.
    pub(crate) async fn redeem_code(
        &self,
        code: &str,
        client_id: &str,
        now: i64,
    ) -> Result<Option<Code>, StoreError> {
        let h = hash(code);
        let won = sqlx::query(
            "UPDATE oauth_codes SET used = $1 WHERE code_hash = $2 AND used IS NULL AND client_id = $3",
        )
                .bind(now)
                .bind(&h)
                .bind(client_id)
                .execute(self.pool())
                .await?
                .rows_affected()
                == 1;
        let row = sqlx::query("SELECT family, client_id, redirect_uri, challenge, resource, scope, subject, roles, method, expires, used FROM oauth_codes WHERE code_hash = $1")
            .bind(&h)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.map(|r| Code {
            family: text(&r, "family"),
            client_id: text(&r, "client_id"),
            redirect_uri: text(&r, "redirect_uri"),
            challenge: text(&r, "challenge"),
            resource: text(&r, "resource"),
            scope: text(&r, "scope"),
            subject: Subject {
                name: text(&r, "subject"),
                roles: list(&r, "roles"),
                method: text(&r, "method"),
            },
            expires: int(&r, "expires"),
            used: if won { None } else { opt_int(&r, "used") },
        }))
    }

    pub(crate) async fn put_consent(
        &self,
        subject: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "DELETE FROM oauth_consents WHERE subject = $1 AND client_id = $2 AND resource = $3",
        )
        .bind(subject)
        .bind(client_id)
        .bind(resource)
        .execute(self.pool())
        .await?;
        sqlx::query("INSERT INTO oauth_consents (subject, client_id, resource, scope, created) VALUES ($1, $2, $3, $4, $5)")
            .bind(subject)
            .bind(client_id)
            .bind(resource)
            .bind(scope)
            .bind(now)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Whether `subject` already approved `client_id` for `resource` with at least `scope`.
    pub(crate) async fn has_consent(
        &self,
        subject: &str,
        client_id: &str,
        resource: &str,
        scope: &str,
    ) -> Result<bool, StoreError> {
        let row = sqlx::query("SELECT scope FROM oauth_consents WHERE subject = $1 AND client_id = $2 AND resource = $3")
            .bind(subject)
            .bind(client_id)
            .bind(resource)
            .fetch_optional(self.pool())
            .await?;
        Ok(row.is_some_and(|r| {
            let granted = text(&r, "scope");
            scope
                .split_whitespace()
                .all(|s| granted.split_whitespace().any(|g| g == s))
        }))
    }
}

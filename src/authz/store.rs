//! The authorization server's state: one storage layer (sqlx `Any`) over an embedded SQLite
//! file (default, `oauth.db` in the state directory, created 0600 in a 0700 directory) or
//! PostgreSQL (`database_url`, what several replicas share). Migrations are
//! `migrations/oauth/`, run at every start. The SQL is portable (`$N` placeholders, `TEXT`
//! and `BIGINT`), so both backends run the same queries and give the same results.
//!
//! Tables by concern, each in its own file: `store/clients.rs` (registered clients),
//! `store/flow.rs` (authorization requests, login sessions, codes, consents),
//! `store/grants.rs` (refresh-token families and tokens, revocation), `store/keys.rs`
//! (signing keys). Secrets (codes, refresh tokens, session ids, client secrets) are stored as
//! SHA-256 hashes. The signing keys are stored in the clear (as a key file would be): a copy
//! of the database can mint tokens, so it is protected like one.

pub(crate) mod clients;
pub(crate) mod flow;
pub(crate) mod grants;
pub(crate) mod keys;

use std::path::Path;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::AnyPool;

use crate::config::oauth_server::Storage;

/// Why the state could not be read or written.
#[derive(Debug, thiserror::Error)]
pub(crate) enum StoreError {
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    #[error("database migration: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("cannot generate a signing key")]
    Key,
    #[error("state directory {0}: {1}")]
    Dir(String, std::io::Error),
}

/// The connection pool.
#[derive(Debug, Clone)]
pub(crate) struct Store {
    pool: AnyPool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/oauth");

impl Store {
    /// Opens (creating when needed) the state and brings its schema up to date.
    pub(crate) async fn open(storage: &Storage) -> Result<Store, StoreError> {
        sqlx::any::install_default_drivers();
        let (url, max) = match storage {
            Storage::Sqlite(dir) => (sqlite_url(dir)?, 4),
            Storage::Postgres(url) => (url.clone(), 8),
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&url)
            .await?;
        if matches!(storage, Storage::Sqlite(_)) {
            // Several connections write: wait for the lock instead of failing at once.
            sqlx::query("PRAGMA busy_timeout = 5000")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Store { pool })
    }

    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Deletes what has expired (requests, sessions, codes, tokens) — run now and then.
    pub(crate) async fn sweep(&self, now: i64) -> Result<(), StoreError> {
        for table in [
            "oauth_requests",
            "oauth_sessions",
            "oauth_codes",
            "oauth_refresh_tokens",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE expires < $1"))
                .bind(now)
                .execute(&self.pool)
                .await?;
        }
        sqlx::query("DELETE FROM oauth_clients WHERE expires IS NOT NULL AND expires < $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// `sqlite://DIR/oauth.db?mode=rwc`, the directory made 0700 and the file 0600 at creation.
fn sqlite_url(dir: &Path) -> Result<String, StoreError> {
    let shown = dir.display().to_string();
    let err = |e| StoreError::Dir(shown.clone(), e);
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    crate::os::fs::private_dir(&mut builder)
        .create(dir)
        .map_err(err)?;
    let file = dir.join("oauth.db");
    let mut open = std::fs::OpenOptions::new();
    open.create(true).append(true);
    crate::os::fs::private_file(&mut open)
        .open(&file)
        .map_err(err)?;
    Ok(format!("sqlite://{}?mode=rwc", file.display()))
}

/// Unix seconds now.
pub(crate) fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// SHA-256 of a secret, hex: how codes, tokens, session ids and client secrets are stored.
pub(crate) fn hash(secret: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// A string column.
pub(crate) fn text(row: &AnyRow, col: &str) -> String {
    sqlx::Row::try_get::<String, _>(row, col).unwrap_or_default()
}

/// A nullable string column.
pub(crate) fn opt_text(row: &AnyRow, col: &str) -> Option<String> {
    sqlx::Row::try_get::<Option<String>, _>(row, col)
        .ok()
        .flatten()
}

/// An integer column.
pub(crate) fn int(row: &AnyRow, col: &str) -> i64 {
    sqlx::Row::try_get::<i64, _>(row, col).unwrap_or_default()
}

/// A nullable integer column.
pub(crate) fn opt_int(row: &AnyRow, col: &str) -> Option<i64> {
    sqlx::Row::try_get::<Option<i64>, _>(row, col)
        .ok()
        .flatten()
}

/// A JSON list of strings stored as text.
pub(crate) fn list(row: &AnyRow, col: &str) -> Vec<String> {
    serde_json::from_str(&text(row, col)).unwrap_or_default()
}

/// A list of strings as stored.
pub(crate) fn list_text(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".into())
}

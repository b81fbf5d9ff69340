//! The bridge's secret store (SECURITY.md §6): one JSON record per (server canonical URL,
//! AS issuer) holding the client registration and the tokens, in a 0700 directory, files
//! created 0600 at open time (written to a fresh temporary file, then renamed; never
//! chmod-after-write). On Windows, files and directory inherit the ACL of the user's profile
//! instead (`os/fs.rs`). A pointer file per server names the issuer last used, so tokens are
//! found at start. An exclusive lock file per record (`File::lock`) serializes refreshes
//! between concurrent bridges; the holder re-reads the record after locking. Nothing secret
//! reaches a log: the `Debug` impls redact. The OAuth flow that uses it is `oauth.rs`.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Cap on a record file.
const MAX_RECORD: u64 = 1 << 20;

/// Why the store failed (paths and contents are never part of the message).
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("token store directory unusable")]
    Dir(#[source] std::io::Error),
    #[error("token store directory is accessible to other users")]
    DirMode,
    #[error("token store file unusable")]
    File(#[source] std::io::Error),
    #[error("token store record unreadable")]
    Corrupt,
    #[error("token store lock failed")]
    Lock(#[source] std::io::Error),
}

/// A client registration at one AS.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredClient {
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// The redirect URI it was registered with (DCR), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub redirect_uri: Option<String>,
    /// `client_secret_basic`, `client_secret_post` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_method: Option<String>,
}

impl std::fmt::Debug for StoredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("redirect_uri", &self.redirect_uri)
            .field("auth_method", &self.auth_method)
            .finish()
    }
}

/// Tokens from one AS for one server.
#[derive(Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct StoredTokens {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Unix seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for StoredTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

/// Everything kept for one (server, issuer).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub(crate) struct Record {
    pub server: String,
    pub issuer: String,
    /// Where refreshes go (from the AS metadata, checked when it was fetched).
    #[serde(default)]
    pub token_endpoint: String,
    /// The RFC 8707 `resource` sent with the grant, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<StoredClient>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<StoredTokens>,
}

/// The store for one server.
#[derive(Debug, Clone)]
pub(crate) struct TokenStore {
    dir: PathBuf,
    server: String,
}

/// An exclusive lock on one record; released on drop.
#[derive(Debug)]
pub(crate) struct StoreLock {
    _file: File,
}

impl TokenStore {
    /// Opens (creating it 0700 if missing) the directory for `server` (its canonical URL).
    /// An existing directory readable or writable by others is refused.
    pub(crate) fn open(dir: &Path, server: &str) -> Result<TokenStore, Error> {
        crate::os::fs::private_dir(DirBuilder::new().recursive(true))
            .create(dir)
            .map_err(Error::Dir)?;
        let meta = std::fs::metadata(dir).map_err(Error::Dir)?;
        if !crate::os::fs::is_private_dir(&meta) {
            return Err(Error::DirMode);
        }
        Ok(TokenStore {
            dir: dir.to_owned(),
            server: server.to_owned(),
        })
    }

    /// The default directory: `$XDG_CONFIG_HOME` (else `%APPDATA%`, which only Windows sets,
    /// else `~/.config`) + `/mcp-relay/oauth`.
    pub(crate) fn default_dir() -> Option<PathBuf> {
        let var = |name| std::env::var_os(name).filter(|v| !v.is_empty());
        let base = var("XDG_CONFIG_HOME")
            .or_else(|| var("APPDATA"))
            .map(PathBuf::from)
            .or_else(|| var("HOME").map(|h| PathBuf::from(h).join(".config")))?;
        Some(base.join("mcp-relay").join("oauth"))
    }

    /// The file stem for (server, issuer): hex SHA-256 of both.
    fn stem(&self, issuer: &str) -> String {
        hash(&format!("{}\n{}", self.server, issuer))
    }

    pub(crate) fn record_path(&self, issuer: &str) -> PathBuf {
        self.dir.join(format!("{}.json", self.stem(issuer)))
    }

    fn pointer_path(&self) -> PathBuf {
        self.dir.join(format!("{}.issuer", hash(&self.server)))
    }

    /// The issuer whose tokens this server last used.
    pub(crate) fn current_issuer(&self) -> Option<String> {
        let bytes = read_small(&self.pointer_path()).ok()??;
        String::from_utf8(bytes).ok().filter(|s| !s.is_empty())
    }

    /// The record for `issuer`, if any.
    pub(crate) fn load(&self, issuer: &str) -> Result<Option<Record>, Error> {
        let Some(bytes) = read_small(&self.record_path(issuer)).map_err(Error::File)? else {
            return Ok(None);
        };
        let rec: Record = serde_json::from_slice(&bytes).map_err(|_| Error::Corrupt)?;
        if rec.server != self.server || rec.issuer != issuer {
            return Err(Error::Corrupt);
        }
        Ok(Some(rec))
    }

    /// Writes `rec` (0600 from creation, atomically replacing the old file) and makes its
    /// issuer the current one.
    pub(crate) fn save(&self, rec: &Record) -> Result<(), Error> {
        let body = serde_json::to_vec_pretty(rec).map_err(|_| Error::Corrupt)?;
        write_private(&self.record_path(&rec.issuer), &body)?;
        write_private(&self.pointer_path(), rec.issuer.as_bytes())
    }

    /// Takes the exclusive lock on the record for `issuer` (waiting in a blocking thread).
    pub(crate) async fn lock(&self, issuer: &str) -> Result<StoreLock, Error> {
        let path = self.dir.join(format!("{}.lock", self.stem(issuer)));
        tokio::task::spawn_blocking(move || {
            let file = crate::os::fs::private_file(
                OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(false),
            )
            .open(&path)
            .map_err(Error::Lock)?;
            file.lock().map_err(Error::Lock)?;
            Ok(StoreLock { _file: file })
        })
        .await
        .map_err(|e| Error::Lock(std::io::Error::other(e)))?
    }
}

fn hash(s: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a file of at most [`MAX_RECORD`] bytes; `None` when it does not exist.
fn read_small(path: &Path) -> std::io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut buf = Vec::new();
    file.take(MAX_RECORD + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_RECORD {
        return Err(std::io::Error::other("record too large"));
    }
    Ok(Some(buf))
}

/// Writes `body` to a new 0600 temporary file beside `path`, then renames it over `path`.
fn write_private(path: &Path, body: &[u8]) -> Result<(), Error> {
    let tmp = path.with_extension(format!("tmp{}", random_suffix()));
    let mut file = crate::os::fs::private_file(OpenOptions::new().write(true).create_new(true))
        .open(&tmp)
        .map_err(Error::File)?;
    let written = file
        .write_all(body)
        .and_then(|()| file.sync_all())
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::File(e));
    }
    Ok(())
}

/// A short random suffix for temporary file names.
pub(crate) fn random_suffix() -> String {
    use rand::distr::{Alphanumeric, SampleString as _};
    Alphanumeric.sample_string(&mut rand::rng(), 12)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn f5_store_files_are_0600_in_a_0700_dir() {
        let base = std::env::temp_dir().join(format!("mcp-relay-ts-{}", random_suffix()));
        let dir = base.join("oauth");
        let store = TokenStore::open(&dir, "https://mcp.example.com/mcp").unwrap();
        let native = !crate::os::PORTABLE;
        let mode = crate::os::fs::mode;
        assert_eq!(mode(&dir), native.then_some(0o700));
        let rec = Record {
            server: "https://mcp.example.com/mcp".into(),
            issuer: "https://as.example.com".into(),
            tokens: Some(StoredTokens {
                access_token: "SECRET-A".into(),
                refresh_token: Some("SECRET-R".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        store.save(&rec).unwrap();
        assert_eq!(
            mode(&store.record_path(&rec.issuer)),
            native.then_some(0o600)
        );
        assert_eq!(
            store.current_issuer().as_deref(),
            Some("https://as.example.com")
        );
        assert_eq!(store.load(&rec.issuer).unwrap(), Some(rec.clone()));
        let dbg = format!("{rec:?}");
        assert!(!dbg.contains("SECRET"), "{dbg}");
        let _ = std::fs::remove_dir_all(base);
    }

    #[test]
    #[cfg(all(unix, not(feature = "portable")))]
    fn store_dir_open_to_others_is_refused() {
        let dir = std::env::temp_dir().join(format!("mcp-relay-ts-{}", random_suffix()));
        std::fs::create_dir_all(&dir).unwrap();
        crate::os::fs::set_mode(&dir, 0o755);
        assert!(matches!(TokenStore::open(&dir, "s"), Err(Error::DirMode)));
        let _ = std::fs::remove_dir_all(dir);
    }
}

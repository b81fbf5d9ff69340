//! API keys (SECURITY.md §5): the `[[auth.api_keys]]` file form, the runtime key table, and
//! key generation.
//!
//! Owns hashing (SHA-256, ring), the constant-time lookup (subtle) and key expiry. It does not
//! read headers (where a key may come from is `authn.rs`'s business) and does not map failures
//! to the wire (`error.rs`). Neighbours: `caller.rs` ([`Principal`], [`AuthFailure`]), `jwt.rs`
//! (the other bearer credential), `token.rs` (`mcp-relay token key` prints a config block made
//! with [`ApiKeys::generate`] and [`ApiKeys::hash`]).

use std::collections::HashSet;
use std::time::SystemTime;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::caller::{AuthFailure, AuthMethod, Principal};
use crate::secret::strength::{self, Weakness};

/// Every generated key starts with this, so a leaked key is easy to grep for.
pub(crate) const KEY_PREFIX: &str = "mcpr_";

/// One `[[auth.api_keys]]` entry. The key itself never appears in the config, only its hash.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ApiKeyConfig {
    /// Key id, unique; recorded in audit (never the key). Required.
    pub id: String,
    /// The principal this key authenticates as; several keys may share one (rotation). Required.
    pub principal: String,
    /// Roles granted to the principal when it uses this key. Default: none.
    #[serde(default)]
    pub roles: Vec<String>,
    /// Lowercase hex of SHA-256(key), 64 characters (`mcp-relay token key` prints it). Required.
    pub sha256: String,
    /// RFC 3339 instant after which the key is refused. Default: never expires.
    #[serde(default)]
    pub expires: Option<String>,
}

/// Why the `[[auth.api_keys]]` table is invalid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("api key {id}: sha256 must be 64 hex characters (SHA-256 of the key)")]
    BadHash { id: String },
    #[error(
        "api key {id}: sha256 {reason}; use the hash `mcp-relay token key` prints for a new key"
    )]
    WeakHash {
        id: String,
        #[source]
        reason: Weakness,
    },
    #[error("api key id {0} is used more than once")]
    DuplicateId(String),
    #[error("api key {id}: the same key hash is already used by api key {other}")]
    DuplicateHash { id: String, other: String },
    #[error("api key {id}: expires is not an RFC 3339 date-time ({reason})")]
    BadExpiry { id: String, reason: String },
    #[error("api key: id must not be empty")]
    EmptyId,
    #[error("api key {0}: principal must not be empty")]
    EmptyPrincipal(String),
}

/// One validated key entry.
#[derive(Debug, Clone)]
struct Entry {
    id: String,
    principal: String,
    roles: Vec<String>,
    sha256: [u8; 32],
    expires_at: Option<SystemTime>,
}

/// The runtime key table, built from the config entries.
#[derive(Debug, Clone, Default)]
pub(crate) struct ApiKeys {
    entries: Vec<Entry>,
}

// === impl ApiKeys ===

impl ApiKeys {
    /// Validates every entry: non-empty id and principal, unique ids, unique hashes, 64 hex
    /// characters, RFC 3339 expiry.
    pub(crate) fn new(entries: Vec<ApiKeyConfig>) -> Result<ApiKeys, Error> {
        let mut ids = HashSet::new();
        let mut out: Vec<Entry> = Vec::with_capacity(entries.len());
        for c in entries {
            if c.id.is_empty() {
                return Err(Error::EmptyId);
            }
            if c.principal.is_empty() {
                return Err(Error::EmptyPrincipal(c.id));
            }
            if !ids.insert(c.id.clone()) {
                return Err(Error::DuplicateId(c.id));
            }
            let sha256 =
                decode_hash(&c.sha256).ok_or_else(|| Error::BadHash { id: c.id.clone() })?;
            // A placeholder hash (zeros, the hash of a sample key) is refused (issue 14).
            strength::check_key_hash(&sha256).map_err(|reason| Error::WeakHash {
                id: c.id.clone(),
                reason,
            })?;
            if let Some(other) = out.iter().find(|e| e.sha256 == sha256) {
                return Err(Error::DuplicateHash {
                    id: c.id,
                    other: other.id.clone(),
                });
            }
            let expires_at = match &c.expires {
                None => None,
                Some(s) => Some(parse_rfc3339(s).map_err(|reason| Error::BadExpiry {
                    id: c.id.clone(),
                    reason,
                })?),
            };
            out.push(Entry {
                id: c.id,
                principal: c.principal,
                roles: c.roles,
                sha256,
                expires_at,
            });
        }
        Ok(ApiKeys { entries: out })
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Hashes the presented key and compares it, in constant time, with every entry (no early
    /// exit on a match, so timing says nothing about which entry or how many there are).
    pub(crate) fn verify(
        &self,
        presented: &str,
        now: SystemTime,
    ) -> Result<Principal, AuthFailure> {
        let digest = sha256(presented);
        let mut hit: Option<&Entry> = None;
        for entry in &self.entries {
            let equal: bool = entry.sha256.ct_eq(&digest).into();
            if equal && hit.is_none() {
                hit = Some(entry);
            }
        }
        let entry = hit.ok_or(AuthFailure::Invalid("unknown_api_key"))?;
        if entry.expires_at.is_some_and(|at| at <= now) {
            return Err(AuthFailure::Expired);
        }
        Ok(Principal {
            name: entry.principal.clone(),
            method: AuthMethod::ApiKey,
            roles: entry.roles.clone(),
            scopes: Vec::new(),
            key_id: Some(entry.id.clone()),
            expires_at: entry.expires_at,
        })
    }

    /// A new key: `mcpr_` + base64url (no padding) of 32 random bytes.
    pub(crate) fn generate() -> String {
        let bytes: [u8; 32] = rand::random();
        format!("{KEY_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Lowercase hex of SHA-256(key): the `sha256` value of a config entry.
    pub(crate) fn hash(key: &str) -> String {
        sha256(key).iter().map(|b| format!("{b:02x}")).collect()
    }
}

fn sha256(key: &str) -> [u8; 32] {
    let d = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn decode_hash(hex: &str) -> Option<[u8; 32]> {
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks_exact(2).enumerate() {
        let hi = hex_digit(pair[0])?;
        let lo = hex_digit(pair[1])?;
        out[i] = (hi << 4) | lo;
    }
    Some(out)
}

fn hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Parses an RFC 3339 date-time into a `SystemTime`.
pub(crate) fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests;

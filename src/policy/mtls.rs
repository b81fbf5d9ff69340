//! Mapping a verified client certificate to a [`Principal`] (`[auth.mtls] clients`): exact
//! matches only, SANs in certificate order before the common name.
//!
//! The handshake-time check and reading a certificate's names live in `tls/client.rs`; running
//! this mapping per request, beside API keys and JWTs, is `authn.rs`'s job.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::caller::{AuthFailure, AuthMethod, Principal};
use crate::tls::client::{CertIdentity, Error, MtlsClient};

/// The reason given when a verified certificate maps to no configured client.
pub(crate) const UNMAPPED: &str = "unmapped_certificate";

/// Normalizes a `kind:value` name; `Err` says why it is not one.
fn normalize(name: &str) -> Result<String, &'static str> {
    let (kind, value) = name.split_once(':').ok_or("missing kind: prefix")?;
    if value.is_empty() {
        return Err("empty value");
    }
    if value.trim() != value || value.chars().any(char::is_control) {
        return Err("surrounding whitespace or control character in value");
    }
    match kind {
        "dns" => Ok(format!("dns:{}", value.to_ascii_lowercase())),
        "email" | "uri" | "cn" => Ok(name.to_owned()),
        "ip" => value
            .parse::<IpAddr>()
            .map(|ip| format!("ip:{ip}"))
            .map_err(|_| "not an IP address"),
        _ => Err("unknown kind (dns, email, uri, ip, cn)"),
    }
}

/// Who a certificate name stands for.
#[derive(Debug, Clone)]
struct Mapped {
    principal: String,
    roles: Vec<String>,
}

/// The configured clients, keyed by normalized `kind:value`; lookups are exact (DNS names
/// ignore ASCII case), never prefix, suffix or substring matches.
#[derive(Debug, Clone, Default)]
pub(crate) struct MtlsMap {
    by_name: HashMap<String, Mapped>,
}

// === impl MtlsMap ===

impl MtlsMap {
    /// Checks every entry (known `kind:` prefix, parseable IP, non-empty principal, no
    /// duplicates after normalization).
    pub(crate) fn new(clients: &[MtlsClient]) -> Result<MtlsMap, Error> {
        let mut by_name = HashMap::with_capacity(clients.len());
        for c in clients {
            let bad = |reason| Error::Mapping {
                entry: c.r#match.clone(),
                reason,
            };
            let key = normalize(&c.r#match).map_err(bad)?;
            if c.principal.trim().is_empty() {
                return Err(bad("empty principal"));
            }
            let mapped = Mapped {
                principal: c.principal.clone(),
                roles: c.roles.clone(),
            };
            if by_name.insert(key, mapped).is_some() {
                return Err(bad("duplicate match"));
            }
        }
        Ok(MtlsMap { by_name })
    }

    /// The principal for a verified certificate: the first SAN (in certificate order) that is
    /// configured, else the `cn:`; otherwise 403 `unmapped_certificate`.
    pub(crate) fn principal(&self, id: &CertIdentity) -> Result<Principal, AuthFailure> {
        // Only SAN kinds count as SANs: a `cn:` among them matches nothing.
        let sans = id
            .sans
            .iter()
            .filter(|s| !s.starts_with("cn:"))
            .filter_map(|s| normalize(s).ok());
        let cn = id.cn.as_ref().map(|cn| format!("cn:{cn}"));
        for key in sans.chain(cn) {
            if let Some(m) = self.by_name.get(&key) {
                return Ok(Principal {
                    name: m.principal.clone(),
                    method: AuthMethod::Mtls,
                    roles: m.roles.clone(),
                    scopes: Vec::new(),
                    key_id: Some(key),
                    expires_at: id.not_after,
                });
            }
        }
        Err(AuthFailure::Forbidden(UNMAPPED))
    }

    #[cfg(test)]
    /// [`Self::principal`] for a connection's peer chain (leaf first, as rustls gives it):
    /// no certificate → `Missing`; one that does not parse → `Invalid("bad_certificate")`.
    pub(crate) fn authenticate(
        &self,
        peer: Option<&[rustls_pki_types::CertificateDer<'_>]>,
    ) -> Result<Principal, AuthFailure> {
        let leaf = peer.and_then(<[_]>::first).ok_or(AuthFailure::Missing)?;
        let id =
            crate::tls::client::identity(leaf).ok_or(AuthFailure::Invalid("bad_certificate"))?;
        self.principal(&id)
    }
}

#[cfg(test)]
pub(crate) mod tests;

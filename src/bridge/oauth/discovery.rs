//! Discovery (PROTOCOL.md §7.2): the `WWW-Authenticate` challenge, Protected Resource
//! Metadata (RFC 9728: the challenge's `resource_metadata`, else path-inserted, then root) and
//! Authorization Server Metadata (RFC 8414 then OpenID discovery, in the §7.2 order), with
//! the mix-up checks (`issuer` equal to the one used, PRM `resource` matching the server).
//! Every fetch goes through `url_guard::checked_fetch`. Errors never quote fetched bodies.

use reqwest::header::ACCEPT;
use reqwest::Url;
use serde::Deserialize;

use super::{Error, Flow};
use crate::bridge::url_guard;

/// Cap on any metadata document.
const MAX_METADATA: usize = 1 << 20;

/// The parameters of a `Bearer` challenge that the flow uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Challenge {
    pub(crate) resource_metadata: Option<String>,
    pub(crate) scope: Option<String>,
    pub(crate) error: Option<String>,
}

impl Challenge {
    /// Parses the auth-params of the `Bearer` challenge (RFC 9110 §11.6.1: token or
    /// quoted-string values, case-insensitive names). Other schemes are skipped.
    pub(crate) fn parse(header: Option<&str>) -> Challenge {
        let mut out = Challenge::default();
        let Some(h) = header else { return out };
        let mut in_bearer = false;
        let mut rest = h.trim();
        while !rest.is_empty() {
            rest = rest.trim_start_matches([' ', ',', '\t']);
            let name_end = rest.find(['=', ' ', ',', '\t']).unwrap_or(rest.len());
            let name = &rest[..name_end];
            let after = rest[name_end..].trim_start_matches([' ', '\t']);
            if let Some(v) = after.strip_prefix('=') {
                let v = v.trim_start_matches([' ', '\t']);
                let (value, remaining) = param_value(v);
                if in_bearer {
                    match name.to_ascii_lowercase().as_str() {
                        "resource_metadata" => out.resource_metadata = Some(value),
                        "scope" => out.scope = Some(value),
                        "error" => out.error = Some(value),
                        _ => {}
                    }
                }
                rest = remaining;
            } else {
                // A scheme name starts a new challenge.
                in_bearer = name.eq_ignore_ascii_case("bearer");
                rest = &rest[name_end..];
                if name.is_empty() {
                    break;
                }
            }
        }
        out
    }

    pub(crate) fn insufficient_scope(&self) -> bool {
        self.error.as_deref() == Some("insufficient_scope")
    }
}

/// One auth-param value (quoted-string with `\` escapes, or a token) and what follows it.
fn param_value(v: &str) -> (String, &str) {
    if let Some(q) = v.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = q.char_indices();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        out.push(e);
                    }
                }
                '"' => return (out, &q[i + 1..]),
                c => out.push(c),
            }
        }
        (out, "")
    } else {
        let end = v.find([',', ' ', '\t']).unwrap_or(v.len());
        (v[..end].to_owned(), &v[end..])
    }
}

/// Protected Resource Metadata (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct ResourceMetadata {
    pub(crate) resource: String,
    #[serde(default)]
    pub(crate) authorization_servers: Vec<String>,
    #[serde(default)]
    pub(crate) scopes_supported: Option<Vec<String>>,
}

/// Authorization Server Metadata (the fields used).
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct AsMetadata {
    pub(crate) issuer: String,
    pub(crate) authorization_endpoint: String,
    pub(crate) token_endpoint: String,
    #[serde(default)]
    pub(crate) registration_endpoint: Option<String>,
    #[serde(default)]
    pub(crate) code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) token_endpoint_auth_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub(crate) client_id_metadata_document_supported: bool,
    #[serde(default)]
    pub(crate) authorization_response_iss_parameter_supported: bool,
}

/// The PRM URLs to try: the challenge's, else path-inserted then root.
pub(crate) fn prm_candidates(server: &Url, challenge: &Challenge) -> Result<Vec<Url>, Error> {
    if let Some(rm) = &challenge.resource_metadata {
        let url = server
            .join(rm)
            .map_err(|_| Error::Discovery("resource_metadata url"))?;
        return Ok(vec![url]);
    }
    let mut out = Vec::new();
    let path = server.path().trim_end_matches('/');
    let origin = origin_url(server)?;
    if !path.is_empty() {
        let u = origin
            .join(&format!("/.well-known/oauth-protected-resource{path}"))
            .map_err(|_| Error::Discovery("protected resource metadata url"))?;
        out.push(u);
    }
    let root = origin
        .join("/.well-known/oauth-protected-resource")
        .map_err(|_| Error::Discovery("protected resource metadata url"))?;
    out.push(root);
    Ok(out)
}

/// The AS metadata URLs for `issuer`, in the §7.2 order.
pub(crate) fn as_candidates(issuer: &Url) -> Result<Vec<Url>, Error> {
    let origin = origin_url(issuer)?;
    let path = issuer.path().trim_end_matches('/');
    let bad = |_| Error::Discovery("authorization server metadata url");
    if path.is_empty() {
        Ok(vec![
            origin
                .join("/.well-known/oauth-authorization-server")
                .map_err(bad)?,
            origin
                .join("/.well-known/openid-configuration")
                .map_err(bad)?,
        ])
    } else {
        Ok(vec![
            origin
                .join(&format!("/.well-known/oauth-authorization-server{path}"))
                .map_err(bad)?,
            origin
                .join(&format!("/.well-known/openid-configuration{path}"))
                .map_err(bad)?,
            origin
                .join(&format!("{path}/.well-known/openid-configuration"))
                .map_err(bad)?,
        ])
    }
}

fn origin_url(u: &Url) -> Result<Url, Error> {
    Url::parse(&u.origin().ascii_serialization())
        .map_err(|_| Error::Discovery("url without an origin"))
}

impl Flow<'_> {
    /// Fetches the first PRM candidate that answers 200 with a document.
    pub(crate) async fn resource_metadata(
        &self,
        challenge: &Challenge,
    ) -> Result<ResourceMetadata, Error> {
        for url in prm_candidates(&self.client.server, challenge)? {
            if let Some(doc) = self.fetch_json::<ResourceMetadata>(&url).await? {
                return Ok(doc);
            }
        }
        Err(Error::NoResourceMetadata)
    }

    /// Fetches the AS metadata for `issuer` and checks that it names that issuer.
    pub(crate) async fn as_metadata(&self, issuer: &str) -> Result<AsMetadata, Error> {
        let issuer_url = Url::parse(issuer).map_err(|_| Error::Discovery("issuer url"))?;
        for url in as_candidates(&issuer_url)? {
            if let Some(doc) = self.fetch_json::<AsMetadata>(&url).await? {
                if !same_issuer(&doc.issuer, issuer) {
                    return Err(Error::IssuerMismatch);
                }
                return Ok(doc);
            }
        }
        Err(Error::NoAsMetadata)
    }

    /// GET a JSON document under the SSRF rules: `None` when the server has none there
    /// (4xx), an error for a blocked URL, a redirect, a 5xx or an unreadable document.
    async fn fetch_json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
    ) -> Result<Option<T>, Error> {
        let c = self.client;
        let res = url_guard::checked_fetch(url, c.cfg.allow_private, Some(&c.server), |h, u| {
            h.get(u).header(ACCEPT, "application/json")
        })
        .await;
        let res = match res {
            Ok(r) => r,
            // An unreachable candidate is skipped; a refused one stops discovery.
            Err(url_guard::Error::Network(_) | url_guard::Error::Timeout) => return Ok(None),
            Err(e) => return Err(Error::Guard(e)),
        };
        let status = res.status();
        if status.is_redirection() {
            return Err(Error::Guard(url_guard::Error::Redirect));
        }
        if status.is_client_error() {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(Error::Status(status.as_u16()));
        }
        let body = url_guard::read_capped(res, MAX_METADATA).await?;
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|_| Error::Discovery("unreadable metadata document"))
    }
}

/// A 2025-03-26 server without metadata: the AS is the server's origin, its endpoints the
/// defaults (`/authorize`, `/token`, `/register`); that era requires PKCE S256 of every AS.
pub(crate) fn legacy_as(server: &Url) -> Result<AsMetadata, Error> {
    let origin = origin_url(server)?;
    let at = |p: &str| {
        origin
            .join(p)
            .map(|u| u.to_string())
            .map_err(|_| Error::Discovery("default endpoint url"))
    };
    Ok(AsMetadata {
        issuer: origin.origin().ascii_serialization(),
        authorization_endpoint: at("/authorize")?,
        token_endpoint: at("/token")?,
        registration_endpoint: Some(at("/register")?),
        code_challenge_methods_supported: Some(vec!["S256".into()]),
        token_endpoint_auth_methods_supported: None,
        client_id_metadata_document_supported: false,
        authorization_response_iss_parameter_supported: false,
    })
}

/// Issuer identifiers compare exactly, except for the trailing `/` URL serialization adds.
pub(crate) fn same_issuer(a: &str, b: &str) -> bool {
    a == b || a.trim_end_matches('/') == b.trim_end_matches('/')
}

/// The PRM `resource` matches the server: same origin, and its path equal to or a
/// path-segment prefix of the server's.
pub(crate) fn resource_matches(resource: &str, server: &Url) -> bool {
    let Ok(r) = Url::parse(resource) else {
        return false;
    };
    if r.origin() != server.origin() || r.query().is_some() || r.fragment().is_some() {
        return false;
    }
    let rp = r.path().trim_end_matches('/');
    let sp = server.path().trim_end_matches('/');
    sp == rp || sp.starts_with(&format!("{rp}/"))
}

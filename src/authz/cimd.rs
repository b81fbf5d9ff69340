//! Finding a client by its `client_id`: a registered one (`register.rs`), or a client ID
//! metadata document — an https `client_id` with a path names a JSON document the relay
//! fetches through the bridge's SSRF guard (`bridge/url_guard.rs`: no loopback, private or
//! link-local address, no redirects, bounded time), at most 5 KiB, whose `client_id` must be
//! that URL. A document is cached in `oauth_clients` (`source = "document"`) for an hour, then
//! fetched again. Off when `client_metadata_documents = false`. Auditing is the caller's.

use reqwest::header::ACCEPT;
use serde::Deserialize;
use url::Url;

use super::redirect::{is_allowed_redirect, MAX_REDIRECT_URIS};
use super::store::clients::{Client, AUTH_NONE, SOURCE_DOCUMENT};
use super::store::now;
use super::AuthServer;
use crate::bridge::url_guard::{self, checked_fetch, read_capped};

/// The largest document read.
const MAX_DOCUMENT: usize = 5 * 1024;

/// How long a fetched document is used before it is fetched again.
const CACHE_SECS: i64 = 3600;

/// The fields of a document the relay reads (others are ignored).
#[derive(Deserialize)]
struct Document {
    client_id: String,
    redirect_uris: Vec<String>,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

/// The client `client_id` names, or why there is none (a fixed audit reason).
pub(super) async fn client(s: &AuthServer, client_id: &str) -> Result<Client, &'static str> {
    let cached = s.store.client(client_id).await.map_err(|_| "state_error")?;
    let documents = s.cfg().client_metadata_documents;
    match cached {
        Some(c) if c.source != SOURCE_DOCUMENT => return Ok(c),
        Some(_) if !documents => return Err("client_documents_off"),
        Some(c) if c.expires.is_some_and(|e| e > now()) => return Ok(c),
        _ => {}
    }
    let url = document_url(client_id).ok_or("unknown_client")?;
    if !documents {
        return Err("client_documents_off");
    }
    let c = fetch(&url, client_id).await?;
    s.store.put_client(&c).await.map_err(|_| "state_error")?;
    Ok(c)
}

/// A `client_id` that names a document: https, a host, a path other than `/`, no query,
/// fragment or credentials, written exactly as it parses (no dot segments, no case games).
fn document_url(client_id: &str) -> Option<Url> {
    let url = Url::parse(client_id).ok()?;
    let ok = url.scheme() == "https"
        && url.host_str().is_some()
        && url.path() != "/"
        && url.query().is_none()
        && url.fragment().is_none()
        && url.username().is_empty()
        && url.password().is_none()
        && url.as_str() == client_id;
    ok.then_some(url)
}

/// Fetches and checks one document.
async fn fetch(url: &Url, client_id: &str) -> Result<Client, &'static str> {
    let res = checked_fetch(url, false, None, |h, u| {
        h.get(u).header(ACCEPT, "application/json")
    })
    .await
    .map_err(|e| match e {
        url_guard::Error::Blocked
        | url_guard::Error::Scheme
        | url_guard::Error::Credentials
        | url_guard::Error::NoHost
        | url_guard::Error::Parse
        | url_guard::Error::Characters => "client_document_blocked",
        _ => "client_document_unreachable",
    })?;
    if !res.status().is_success() {
        return Err("client_document_unreachable");
    }
    let bytes = read_capped(res, MAX_DOCUMENT)
        .await
        .map_err(|_| "client_document_invalid")?;
    let doc: Document = serde_json::from_slice(&bytes).map_err(|_| "client_document_invalid")?;
    check(&doc, client_id)?;
    let now = now();
    let metadata = serde_json::json!({
        "client_id": client_id,
        "client_name": doc.client_name,
        "redirect_uris": doc.redirect_uris,
        "token_endpoint_auth_method": AUTH_NONE,
    });
    Ok(Client {
        client_id: client_id.to_owned(),
        secret_hash: None,
        auth_method: AUTH_NONE.to_owned(),
        name: doc.client_name.unwrap_or_default(),
        redirect_uris: doc.redirect_uris,
        metadata: metadata.to_string(),
        source: SOURCE_DOCUMENT.to_owned(),
        created: now,
        expires: Some(now + CACHE_SECS),
    })
}

/// A document is for this URL, names 1 to 10 allowed redirect URIs and a short name, and
/// asks for no secret (a public document cannot hold one).
fn check(doc: &Document, client_id: &str) -> Result<(), &'static str> {
    if doc.client_id != client_id {
        return Err("client_document_mismatch");
    }
    if doc.redirect_uris.is_empty() || doc.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err("client_document_invalid");
    }
    if doc
        .redirect_uris
        .iter()
        .any(|u| is_allowed_redirect(u).is_err())
    {
        return Err("client_document_invalid");
    }
    if doc
        .client_name
        .as_deref()
        .is_some_and(|n| n.chars().count() > 200 || n.chars().any(char::is_control))
    {
        return Err("client_document_invalid");
    }
    if doc
        .token_endpoint_auth_method
        .as_deref()
        .is_some_and(|m| m != AUTH_NONE)
    {
        return Err("client_document_invalid");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_url_needs_https_and_a_canonical_path() {
        assert!(document_url("https://app.example.com/oauth/client.json").is_some());
        for id in [
            "http://app.example.com/client.json",
            "https://app.example.com/",
            "https://app.example.com",
            "https://app.example.com/a/../client.json",
            "https://APP.example.com/client.json",
            "https://app.example.com/client.json?x=1",
            "https://app.example.com/client.json#f",
            "https://u:p@app.example.com/client.json",
            "Jx8kq2LmN4pR7tVw",
        ] {
            assert!(document_url(id).is_none(), "{id}");
        }
    }

    #[test]
    fn check_refuses_foreign_or_unsafe_documents() {
        let id = "https://app.example.com/client.json";
        let doc = |client_id: &str, uris: &[&str], method: Option<&str>| Document {
            client_id: client_id.into(),
            redirect_uris: uris.iter().map(|u| (*u).to_owned()).collect(),
            client_name: Some("App".into()),
            token_endpoint_auth_method: method.map(str::to_owned),
        };
        assert_eq!(
            check(&doc(id, &["https://app.example.com/cb"], None), id),
            Ok(())
        );
        assert_eq!(
            check(
                &doc(
                    "https://other.example/c.json",
                    &["https://a.example/cb"],
                    None
                ),
                id
            ),
            Err("client_document_mismatch")
        );
        for d in [
            doc(id, &[], None),
            doc(id, &["javascript:alert(1)"], None),
            doc(id, &["https://a.example/cb#x"], None),
            doc(id, &["https://a.example/cb"], Some("client_secret_post")),
        ] {
            assert_eq!(check(&d, id), Err("client_document_invalid"));
        }
    }
}

//! Which client the bridge is at an AS (PROTOCOL.md §7.2, order [11-25]): a pre-registered
//! client, else a Client ID Metadata Document (when the AS says
//! `client_id_metadata_document_supported` and a metadata URL is configured), else the
//! registration stored for this (server, issuer) if it names the current redirect URI, else
//! Dynamic Client Registration (RFC 7591, `application_type: "native"`, public client).
//! Registrations are keyed by issuer (the store record) and never reused across ASes.

use reqwest::header::ACCEPT;
use reqwest::Url;
use serde::Deserialize;

use super::discovery::AsMetadata;
use super::{Error, Flow};
use crate::bridge::token_store::StoredClient;
use crate::bridge::url_guard;

const MAX_REGISTRATION: usize = 1 << 20;

#[derive(Deserialize)]
struct Registered {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

impl Flow<'_> {
    pub(super) async fn register(
        &mut self,
        meta: &AsMetadata,
        redirect_uri: &str,
        stored: Option<&StoredClient>,
        scope: Option<&str>,
    ) -> Result<StoredClient, Error> {
        let cfg = &self.client.cfg;
        if let Some(id) = &cfg.client_id {
            return Ok(StoredClient {
                client_id: id.clone(),
                client_secret: cfg.client_secret.clone(),
                redirect_uri: None,
                auth_method: Some(secret_method(meta, cfg.client_secret.is_some())),
            });
        }
        if let (true, Some(doc)) = (
            meta.client_id_metadata_document_supported,
            &cfg.client_metadata_url,
        ) {
            let url = Url::parse(doc).map_err(|_| Error::Config("client metadata url"))?;
            if url.scheme() != "https" || url.path() == "/" || url.path().is_empty() {
                return Err(Error::Config(
                    "client metadata url must be https with a path",
                ));
            }
            return Ok(StoredClient {
                client_id: url.to_string(),
                client_secret: None,
                redirect_uri: None,
                auth_method: Some("none".into()),
            });
        }
        if let Some(s) = stored {
            if s.redirect_uri.as_deref() == Some(redirect_uri) {
                return Ok(s.clone());
            }
        }
        let Some(endpoint) = &meta.registration_endpoint else {
            return Err(Error::NoRegistration);
        };
        self.dynamic(endpoint, redirect_uri, scope).await
    }

    /// RFC 7591 registration of a native public client.
    async fn dynamic(
        &mut self,
        endpoint: &str,
        redirect_uri: &str,
        scope: Option<&str>,
    ) -> Result<StoredClient, Error> {
        let c = self.client;
        let url = Url::parse(endpoint).map_err(|_| Error::Registration("endpoint url"))?;
        let mut body = serde_json::json!({
            "client_name": "mcp-relay",
            "redirect_uris": [redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": "none",
            "application_type": "native",
        });
        if let (Some(s), Some(obj)) = (scope, body.as_object_mut()) {
            obj.insert("scope".into(), s.into());
        }
        let res = url_guard::checked_fetch(&url, c.cfg.allow_private, Some(&c.server), |h, u| {
            h.post(u).header(ACCEPT, "application/json").json(&body)
        })
        .await?;
        let status = res.status();
        if !status.is_success() {
            return Err(Error::Status(status.as_u16()));
        }
        let bytes = url_guard::read_capped(res, MAX_REGISTRATION).await?;
        let r: Registered =
            serde_json::from_slice(&bytes).map_err(|_| Error::Registration("unreadable answer"))?;
        if r.client_id.is_empty() {
            return Err(Error::Registration("empty client id"));
        }
        let auth_method = r.token_endpoint_auth_method.or_else(|| {
            Some(
                if r.client_secret.is_some() {
                    "client_secret_basic"
                } else {
                    "none"
                }
                .into(),
            )
        });
        Ok(StoredClient {
            client_id: r.client_id,
            client_secret: r.client_secret,
            redirect_uri: Some(redirect_uri.to_owned()),
            auth_method,
        })
    }
}

/// How a pre-registered client authenticates: `none` without a secret; with one, Basic
/// unless the AS lists only `client_secret_post`.
fn secret_method(meta: &AsMetadata, secret: bool) -> String {
    if !secret {
        return "none".into();
    }
    let methods = meta
        .token_endpoint_auth_methods_supported
        .as_deref()
        .unwrap_or_default();
    let basic = methods.is_empty() || methods.iter().any(|m| m == "client_secret_basic");
    if basic {
        "client_secret_basic"
    } else {
        "client_secret_post"
    }
    .into()
}

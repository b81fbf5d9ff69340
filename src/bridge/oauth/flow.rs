//! One renewal ([`Flow`]): what a 401 or a 403 `insufficient_scope` leads to (refresh, the
//! whole authorization-code flow, a scope step-up) and the loop guards; discovery, registration
//! and the token endpoint are its siblings. The client and its state are in `oauth.rs`.

use std::time::{Duration, Instant};

use reqwest::Url;
use tracing::{info, warn};

use super::discovery::{self, AsMetadata, Challenge};
use super::{
    pkce, union_scope, Error, Flow, BROWSER_WAIT, FRESH_TOKEN, MAX_LAUNCHES, MAX_STEP_UPS,
};
use crate::bridge::browser::{self, Callback};
use crate::bridge::token_store::{self, Record, StoredTokens};
use crate::bridge::url_guard;

// === impl Flow ===

impl Flow<'_> {
    /// 401: refresh when that can help, else the whole flow.
    pub(super) async fn unauthorized(
        &mut self,
        ch: &Challenge,
        refused: Option<String>,
    ) -> Result<bool, Error> {
        let c = self.client;
        let (after_refresh, fresh, can_refresh) = {
            let cur = c.current();
            let after_refresh = refused.is_some() && cur.refreshed == refused;
            let fresh = matches!((&cur.full, &refused), (Some((t, at)), Some(r))
                if t == r && at.elapsed() < FRESH_TOKEN);
            let can_refresh = cur.record.as_ref().is_some_and(|r| {
                !r.token_endpoint.is_empty()
                    && r.client.is_some()
                    && r.tokens.as_ref().is_some_and(|t| t.refresh_token.is_some())
            });
            (after_refresh, fresh, can_refresh)
        };
        if fresh {
            warn!("server refuses the token it just authorized; not retrying");
            return Ok(false);
        }
        if can_refresh && !after_refresh {
            match self.refresh(refused.as_deref()).await {
                Ok(true) => return Ok(true),
                Ok(false) => {}
                Err(e) => warn!(error = %e, "token refresh failed; authorizing again"),
            }
        }
        // The configured scope overrides; else the challenge's (else PRM's, in `full`).
        let scope = c.cfg.scope.clone().or_else(|| ch.scope.clone());
        self.full(ch, scope).await?;
        Ok(true)
    }

    /// 403 `insufficient_scope`: authorize again with the scope asked for added.
    pub(super) async fn step_up(
        &mut self,
        ch: &Challenge,
        refused: Option<String>,
    ) -> Result<bool, Error> {
        let c = self.client;
        let chain = {
            let cur = c.current();
            match (&cur.stepped, &refused) {
                (Some((t, n)), Some(r)) if t == r => n + 1,
                _ => 1,
            }
        };
        if chain > MAX_STEP_UPS {
            warn!("scope step-up limit reached; not retrying");
            return Ok(false);
        }
        let previous = c.current().scope.clone();
        let scope = union_scope(previous.as_deref(), ch.scope.as_deref());
        info!(
            scope = scope.as_deref().unwrap_or(""),
            "stepping up oauth scope"
        );
        let token = self.full(ch, scope).await?;
        c.current().stepped = Some((token, chain));
        Ok(true)
    }

    /// The whole authorization-code flow; returns the new access token.
    async fn full(&mut self, ch: &Challenge, scope: Option<String>) -> Result<String, Error> {
        let c = self.client;
        let (issuer, meta, resource, scopes) = self.discover(ch).await?;
        let s256 = meta
            .code_challenge_methods_supported
            .as_ref()
            .is_some_and(|m| m.iter().any(|m| m == "S256"));
        if !s256 {
            return Err(Error::NoS256);
        }
        // Checked before any launch or registration: the endpoint the browser would open.
        url_guard::browser_url(&meta.authorization_endpoint)?;
        let scope = scope.or_else(|| scopes.map(|s| s.join(" ")));
        let resource = c.cfg.send_resource.then_some(resource);
        let tokens = self
            .authorize(&meta, &issuer, scope.clone(), resource)
            .await?;
        let access = tokens.access_token.clone();
        let mut cur = c.current();
        cur.scope = scope;
        cur.full = Some((access.clone(), Instant::now()));
        Ok(access)
    }

    /// PRM then AS metadata, checked: the issuer, its metadata, the `resource` and the
    /// PRM's scopes. A server without PRM (and not naming one) is a 2025-03-26 server: its
    /// origin is the AS, with default endpoints when that has no metadata either.
    async fn discover(
        &mut self,
        ch: &Challenge,
    ) -> Result<(String, AsMetadata, String, Option<Vec<String>>), Error> {
        let c = self.client;
        let prm = match self.resource_metadata(ch).await {
            Ok(prm) => Some(prm),
            Err(Error::NoResourceMetadata) if ch.resource_metadata.is_none() => None,
            Err(e) => return Err(e),
        };
        let Some(prm) = prm else {
            let issuer = c.server.origin().ascii_serialization();
            let meta = match self.as_metadata(&issuer).await {
                Ok(meta) => meta,
                Err(Error::NoAsMetadata) => discovery::legacy_as(&c.server)?,
                Err(e) => return Err(e),
            };
            return Ok((issuer, meta, c.server.to_string(), None));
        };
        if !discovery::resource_matches(&prm.resource, &c.server) {
            return Err(Error::ResourceMismatch);
        }
        let issuer = prm
            .authorization_servers
            .first()
            .cloned()
            .ok_or(Error::Discovery("no authorization server"))?;
        let meta = self.as_metadata(&issuer).await?;
        Ok((issuer, meta, prm.resource, prm.scopes_supported))
    }

    /// Registration, PKCE, the browser (or headless) step, the code exchange, and saving.
    async fn authorize(
        &mut self,
        meta: &AsMetadata,
        issuer: &str,
        scope: Option<String>,
        resource: Option<String>,
    ) -> Result<StoredTokens, Error> {
        let c = self.client;
        let stored = c.store.load(issuer)?;
        let stored_client = stored.as_ref().and_then(|r| r.client.clone());
        let mut callback = self.bind_callback(stored_client.as_ref()).await?;
        let redirect_uri = callback.redirect_uri();
        let client = self
            .register(
                meta,
                &redirect_uri,
                stored_client.as_ref(),
                scope.as_deref(),
            )
            .await?;
        let pkce = pkce::Pkce::new();
        let state = pkce::random_token();
        let url = authorization_url(
            &meta.authorization_endpoint,
            &[
                ("response_type", Some("code")),
                ("client_id", Some(&client.client_id)),
                ("redirect_uri", Some(&redirect_uri)),
                ("code_challenge", Some(&pkce.challenge)),
                ("code_challenge_method", Some("S256")),
                ("state", Some(&state)),
                ("scope", scope.as_deref()),
                ("resource", resource.as_deref()),
            ],
        )?;
        callback.expect(&state);
        let answer = self.visit(&url, &mut callback).await?;
        check_iss(meta, issuer, answer.iss.as_deref())?;
        let mut params = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", answer.code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", pkce.verifier.clone()),
        ];
        if let Some(r) = &resource {
            params.push(("resource", r.clone()));
        }
        let tokens = self
            .token_request(&meta.token_endpoint, &client, params, None)
            .await?;
        let record = Record {
            server: c.server.to_string(),
            issuer: issuer.to_owned(),
            token_endpoint: meta.token_endpoint.clone(),
            resource,
            client: Some(client),
            tokens: Some(tokens.clone()),
        };
        self.save(record)?;
        Ok(tokens)
    }

    /// The configured port, else the port a stored registration names, else any.
    async fn bind_callback(
        &self,
        stored: Option<&token_store::StoredClient>,
    ) -> Result<Callback, Error> {
        let cfg = &self.client.cfg;
        if cfg.callback_port != 0 {
            return Ok(Callback::bind(cfg.callback_port).await?);
        }
        let port = stored
            .and_then(|s| s.redirect_uri.as_deref())
            .and_then(|u| Url::parse(u).ok())
            .and_then(|u| u.port());
        if let Some(port) = port {
            if let Ok(cb) = Callback::bind(port).await {
                return Ok(cb);
            }
        }
        Ok(Callback::bind(0).await?)
    }

    /// Opens the authorization URL (or follows it headlessly) and waits for the redirect.
    async fn visit(
        &mut self,
        url: &Url,
        callback: &mut Callback,
    ) -> Result<browser::Answer, Error> {
        let c = self.client;
        if c.cfg.headless {
            let res =
                url_guard::checked_fetch(url, c.cfg.allow_private, Some(&c.server), |h, u| {
                    h.get(u)
                })
                .await?;
            if !res.status().is_redirection() {
                return Err(Error::Status(res.status().as_u16()));
            }
            let location = res
                .headers()
                .get(reqwest::header::LOCATION)
                .and_then(|l| l.to_str().ok())
                .and_then(|l| url.join(l).ok())
                .ok_or(Error::Discovery("authorization redirect without location"))?;
            let status = callback.deliver(&location);
            if status != reqwest::StatusCode::OK {
                return Err(Error::Status(status.as_u16()));
            }
            return Ok(callback.wait(Duration::from_secs(1)).await?);
        }
        if self.launches >= MAX_LAUNCHES {
            return Err(Error::TooManyLaunches);
        }
        self.launches += 1;
        browser::open(url, &c.launcher);
        Ok(callback.wait(BROWSER_WAIT).await?)
    }

    /// Saves `record` (a new grant: nothing to merge) and makes it current.
    fn save(&self, record: Record) -> Result<(), Error> {
        let c = self.client;
        c.store.save(&record)?;
        c.current().record = Some(record);
        Ok(())
    }
}

/// The authorization request URL: the endpoint with the parameters that are set added to
/// its query, then validated as a browser URL.
fn authorization_url(endpoint: &str, params: &[(&str, Option<&str>)]) -> Result<Url, Error> {
    let mut url = Url::parse(endpoint).map_err(|_| Error::Discovery("authorization endpoint"))?;
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in params {
            if let Some(v) = v {
                q.append_pair(k, v);
            }
        }
    }
    Ok(url_guard::browser_url(url.as_str())?)
}

/// RFC 9207: `iss` compared exactly when present; required when the AS advertises it.
fn check_iss(meta: &AsMetadata, issuer: &str, iss: Option<&str>) -> Result<(), Error> {
    match iss {
        Some(i) if i == meta.issuer || i == issuer => Ok(()),
        Some(_) => Err(Error::IssMismatch),
        None if meta.authorization_response_iss_parameter_supported => Err(Error::IssMismatch),
        None => Ok(()),
    }
}

//! The token endpoint (RFC 6749 §4.1.3, §6): the code exchange and the refresh, with client
//! authentication (`none`, `client_secret_basic`, `client_secret_post`), at most
//! `MAX_TOKEN_REQUESTS` per renewal, through the SSRF guard. A refresh runs under the store
//! lock and first re-reads the record, since another bridge may have refreshed already.

use reqwest::header::ACCEPT;
use reqwest::Url;
use serde::Deserialize;

use super::{Error, Flow, MAX_TOKEN_REQUESTS};
use crate::bridge::token_store::{StoredClient, StoredTokens};
use crate::bridge::url_guard;

const MAX_TOKEN_RESPONSE: usize = 1 << 20;

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
}

impl Flow<'_> {
    /// POSTs a grant; `previous` supplies the refresh token and scope the answer may omit.
    pub(super) async fn token_request(
        &mut self,
        endpoint: &str,
        client: &StoredClient,
        mut params: Vec<(&'static str, String)>,
        previous: Option<&StoredTokens>,
    ) -> Result<StoredTokens, Error> {
        if self.token_requests >= MAX_TOKEN_REQUESTS {
            return Err(Error::TooManyTokenRequests);
        }
        self.token_requests += 1;
        let c = self.client;
        let url = Url::parse(endpoint).map_err(|_| Error::Discovery("token endpoint"))?;
        let method = client.auth_method.as_deref().unwrap_or("none");
        let basic = client.client_secret.is_some() && method != "client_secret_post";
        if !basic {
            params.push(("client_id", client.client_id.clone()));
            if let Some(secret) = &client.client_secret {
                params.push(("client_secret", secret.clone()));
            }
        }
        let res = url_guard::checked_fetch(&url, c.cfg.allow_private, Some(&c.server), |h, u| {
            let mut b = h.post(u).header(ACCEPT, "application/json").form(&params);
            if basic {
                b = b.basic_auth(
                    form_encode(&client.client_id),
                    client.client_secret.as_deref().map(form_encode),
                );
            }
            b
        })
        .await?;
        let status = res.status();
        if status.is_redirection() {
            return Err(Error::Guard(url_guard::Error::Redirect));
        }
        let body = url_guard::read_capped(res, MAX_TOKEN_RESPONSE).await?;
        if !status.is_success() {
            let code = serde_json::from_slice::<ErrorResponse>(&body)
                .map(|e| safe_code(&e.error))
                .unwrap_or_else(|_| format!("status {}", status.as_u16()));
            return Err(Error::Token(code));
        }
        let tr: TokenResponse = serde_json::from_slice(&body)
            .map_err(|_| Error::TokenResponse("not a token response"))?;
        if !tr
            .token_type
            .as_deref()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer"))
        {
            return Err(Error::TokenResponse("token type is not bearer"));
        }
        if tr.access_token.is_empty()
            || tr.access_token.bytes().any(|b| !(0x21..=0x7e).contains(&b))
        {
            return Err(Error::TokenResponse("access token is not a header value"));
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or_default();
        Ok(StoredTokens {
            access_token: tr.access_token,
            refresh_token: tr
                .refresh_token
                .or_else(|| previous.and_then(|p| p.refresh_token.clone())),
            expires_at: tr.expires_in.map(|s| now.saturating_add(s)),
            scope: tr.scope.or_else(|| previous.and_then(|p| p.scope.clone())),
        })
    }

    /// Refreshes under the store lock. `Ok(true)`: new tokens in use (ours or another
    /// bridge's); `Ok(false)`: the refresh token is no good, authorize again.
    pub(super) async fn refresh(&mut self, refused: Option<&str>) -> Result<bool, Error> {
        let c = self.client;
        let Some(rec) = c.current().record.clone() else {
            return Ok(false);
        };
        let _lock = c.store.lock(&rec.issuer).await?;
        let rec = c.store.load(&rec.issuer)?.unwrap_or(rec);
        let stored = rec.tokens.as_ref().map(|t| t.access_token.as_str());
        if stored.is_some() && stored != refused {
            c.current().record = Some(rec);
            return Ok(true);
        }
        let (Some(client), Some(tokens)) = (rec.client.clone(), rec.tokens.clone()) else {
            return Ok(false);
        };
        let Some(refresh) = tokens.refresh_token.clone() else {
            return Ok(false);
        };
        let mut params = vec![
            ("grant_type", "refresh_token".to_owned()),
            ("refresh_token", refresh),
        ];
        if let Some(r) = &rec.resource {
            params.push(("resource", r.clone()));
        }
        let endpoint = rec.token_endpoint.clone();
        match self
            .token_request(&endpoint, &client, params, Some(&tokens))
            .await
        {
            Ok(new) => {
                let access = new.access_token.clone();
                let mut rec = rec;
                rec.tokens = Some(new);
                c.store.save(&rec)?;
                let mut cur = c.current();
                cur.record = Some(rec);
                cur.refreshed = Some(access);
                Ok(true)
            }
            Err(Error::Token(code)) => {
                tracing::info!(error = %code, "refresh token refused");
                let mut rec = rec;
                rec.tokens = None;
                c.store.save(&rec)?;
                c.current().record = Some(rec);
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}

/// An OAuth error code as it may be logged: RFC 6749 charset, capped.
pub(super) fn safe_code(s: &str) -> String {
    s.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .take(64)
        .collect()
}

/// `application/x-www-form-urlencoded` of one value (RFC 6749 §2.3.1 for Basic).
fn form_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(char::from(b))
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

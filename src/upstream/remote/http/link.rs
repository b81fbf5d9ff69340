//! The state every task of an HTTP link shares ([`Link`]): the client, the target, the
//! session id and protocol version learnt from `initialize`, the configured headers, and the
//! way back to the relay (delivery of messages and batches, answers for lost requests). Plus
//! the body helpers. The driver is in `http.rs`, the stream readers in `http/stream.rs`.

use std::sync::{Mutex, MutexGuard};

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue, ACCEPT, CONTENT_TYPE};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::{
    Error, Pending, ACCEPT_BOTH, CONNECT_TIMEOUT, EVENT_STREAM, SESSION_HEADER, VERSION_HEADER,
};
use crate::jsonrpc::{Frame, Kind};
use crate::upstream::remote::Access;
use crate::upstream::remote::TlsClient;
use crate::upstream::stdio::{Cause, LinkEnds};

/// What every task of a link shares: the client, the target, the session's headers and the
/// way back to the relay.
#[derive(Debug)]
pub(super) struct Link {
    pub(super) http: reqwest::Client,
    pub(super) url: Url,
    /// The URL for logs.
    pub(super) name: String,
    /// Static headers from configuration (credentials), sent with every request.
    pub(super) headers: HeaderMap,
    /// Where `Authorization` comes from (a static header or a credential source).
    pub(super) access: Access,
    pub(super) max_message: usize,
    incoming: mpsc::Sender<Bytes>,
    /// Where the link says, in words, why the server refused it (`remote/cause.rs`).
    cause: Cause,
    session: Mutex<Option<HeaderValue>>,
    version: Mutex<Option<HeaderValue>>,
}

impl Link {
    pub(super) fn new(
        url: &str,
        name: &str,
        max_message: usize,
        tls: Option<&TlsClient>,
        access: &Access,
        ends: &LinkEnds,
    ) -> Result<Link, Error> {
        let url = Url::parse(url).map_err(|_| Error::Url)?;
        let mut static_headers = HeaderMap::new();
        for (k, v) in access.other_headers() {
            let k = HeaderName::try_from(k.as_str()).map_err(|_| Error::Header)?;
            let mut v = HeaderValue::try_from(v.as_str()).map_err(|_| Error::Header)?;
            v.set_sensitive(true);
            static_headers.append(k, v);
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mcp-relay/", env!("CARGO_PKG_VERSION")));
        if !access.proxy_from_env {
            builder = builder.no_proxy();
        }
        if let Some(tls) = tls {
            // The spec's own trust and ALPN, never reqwest's built-in roots.
            builder = builder
                .use_preconfigured_tls(rustls::ClientConfig::clone(&tls.config()))
                .https_only(true);
        }
        let http = builder
            .build()
            .map_err(|e| Error::Client(e.without_url()))?;
        Ok(Link {
            http,
            url,
            name: name.to_owned(),
            headers: static_headers,
            access: access.clone(),
            max_message,
            incoming: ends.incoming.clone(),
            cause: ends.cause.clone(),
            session: Mutex::new(None),
            version: Mutex::new(None),
        })
    }

    pub(super) fn session(&self) -> Option<HeaderValue> {
        lock(&self.session).clone()
    }

    /// A request to `url` with the configured headers and `Authorization` (a static one or
    /// the credential source's): every request of the link, legacy SSE ones included, is
    /// built here.
    pub(super) fn authorized(&self, method: Method, url: &Url) -> RequestBuilder {
        let mut b = self
            .http
            .request(method, url.clone())
            .headers(self.headers.clone());
        if let Some(a) = self.access.authorization() {
            if let Ok(mut v) = HeaderValue::try_from(a) {
                v.set_sensitive(true);
                b = b.header(reqwest::header::AUTHORIZATION, v);
            }
        }
        b
    }

    /// Sends what `build` makes, and once more when the credential source renewed refused
    /// credentials.
    pub(super) async fn send_renewing(
        &self,
        build: impl Fn() -> RequestBuilder,
    ) -> reqwest::Result<Response> {
        let res = build().send().await?;
        if !self.renewed(&res).await {
            return Ok(res);
        }
        build().send().await
    }

    /// A request to `url` with the configured headers and the session's.
    pub(super) fn request(&self, method: Method, url: &Url) -> RequestBuilder {
        let mut b = self.authorized(method, url);
        if let Some(s) = self.session() {
            b = b.header(SESSION_HEADER, s);
        }
        if let Some(v) = lock(&self.version).clone() {
            b = b.header(VERSION_HEADER, v);
        }
        b
    }

    /// POSTs one message; `modern` headers replace the session's version header.
    pub(super) async fn post(
        &self,
        msg: Bytes,
        modern: Option<HeaderMap>,
    ) -> reqwest::Result<Response> {
        let send = || {
            let mut b = self
                .request(Method::POST, &self.url)
                .header(CONTENT_TYPE, "application/json")
                .header(ACCEPT, ACCEPT_BOTH);
            if let Some(h) = modern.clone() {
                b = b.headers(h);
            }
            b.body(msg.clone()).send()
        };
        let res = send().await?;
        if !self.renewed(&res).await {
            return Ok(res);
        }
        send().await
    }

    /// The server refused the credentials (401, or 403 `insufficient_scope`) and the
    /// credential source renewed them: the request may be sent once more.
    pub(super) async fn renewed(&self, res: &Response) -> bool {
        let Some(source) = &self.access.credentials else {
            return false;
        };
        let status = res.status();
        let challenge = challenge(res);
        let scope = status == StatusCode::FORBIDDEN
            && challenge.is_some_and(|c| c.contains("insufficient_scope"));
        if status != StatusCode::UNAUTHORIZED && !scope || !self.renewable(challenge) {
            return false;
        }
        source.0.refused(status.as_u16(), challenge).await
    }

    /// Whether the credential source may answer a refusal: always, unless a static key or
    /// token was configured and the server offers no OAuth (then that key was refused, and
    /// an OAuth flow would only hide it).
    fn renewable(&self, challenge: Option<&str>) -> bool {
        let has_static = self.access.headers.iter().any(|(k, _)| {
            k.eq_ignore_ascii_case("authorization") || k.eq_ignore_ascii_case("x-api-key")
        });
        !has_static || challenge.is_some_and(|c| c.contains("resource_metadata"))
    }

    /// The server refused a request with `res`: says why, in words, for the logs and (for
    /// `connect`) the host.
    pub(super) fn refused(&self, res: &Response) {
        let challenge = challenge(res);
        let tried = self.access.credentials.is_some()
            && res.status() == StatusCode::UNAUTHORIZED
            && self.renewable(challenge);
        let why = crate::upstream::remote::cause::refused(
            res.status().as_u16(),
            &self.name,
            &self.access,
            challenge,
            tried,
        );
        warn!(upstream = %self.name, status = res.status().as_u16(), cause = %why, "upstream refused a request");
        self.cause.set(why);
    }

    /// Ends the session on the server (DELETE), renewing refused credentials once.
    pub(super) async fn delete(&self) -> reqwest::Result<Response> {
        let res = self.request(Method::DELETE, &self.url).send().await?;
        if !self.renewed(&res).await {
            return Ok(res);
        }
        self.request(Method::DELETE, &self.url).send().await
    }

    /// Opens (or, after `last_event_id`, resumes) an SSE stream with GET.
    pub(super) async fn get(&self, last_event_id: Option<&str>) -> reqwest::Result<Response> {
        let send = || {
            let mut b = self
                .request(Method::GET, &self.url)
                .header(ACCEPT, EVENT_STREAM);
            if let Some(id) = last_event_id {
                b = b.header("last-event-id", id);
            }
            b.send()
        };
        let res = send().await?;
        if !self.renewed(&res).await {
            return Ok(res);
        }
        send().await
    }

    /// 404 while a session exists: the server ended it.
    pub(super) fn check(&self, status: StatusCode) -> Result<(), Error> {
        if status == StatusCode::NOT_FOUND && self.session().is_some() {
            return Err(Error::SessionGone);
        }
        Ok(())
    }

    /// Keeps the `Mcp-Session-Id` of the `initialize` answer (visible ASCII only).
    pub(super) fn learn_session(&self, headers: &HeaderMap) {
        let Some(v) = headers.get(SESSION_HEADER) else {
            return;
        };
        let b = v.as_bytes();
        if !b.is_empty() && b.iter().all(|c| (0x21..=0x7e).contains(c)) {
            *lock(&self.session) = Some(v.clone());
        } else {
            warn!(upstream = %self.name, "upstream session id not visible ascii; ignored");
        }
    }

    /// Keeps the protocol version named by the `initialize` result.
    pub(super) fn learn_version(&self, frame: &Frame) {
        #[derive(Deserialize)]
        struct Init<'a> {
            #[serde(borrow, rename = "protocolVersion")]
            version: Option<&'a str>,
        }
        let version = frame
            .result()
            .and_then(|r| serde_json::from_str::<Init<'_>>(r).ok())
            .and_then(|i| i.version)
            .and_then(|v| HeaderValue::from_str(v).ok());
        if let Some(v) = version {
            *lock(&self.version) = Some(v);
        }
    }

    /// Hands one message to the relay; false once the relay is gone.
    pub(super) async fn deliver(&self, msg: Bytes) -> bool {
        self.incoming.send(msg).await.is_ok()
    }

    /// Hands a body or event data (a message or a batch) to the relay, crossing answered
    /// requests off `pending` (only then is a message parsed; the relay reads it anyway).
    pub(super) async fn deliver_all(&self, data: Bytes, pending: &mut Pending) -> bool {
        for msg in split(data) {
            // A refusal's body may be an HTTP API error (`{"error":"invalid_token"}`), not a
            // message: it stays here (the request gets the relay's error instead).
            if Frame::parse_upstream(msg.clone()).is_err() {
                debug!(upstream = %self.name, "upstream body that is not JSON-RPC dropped");
                continue;
            }
            if !pending.ids.is_empty() {
                self.cross_off(&msg, pending);
            }
            if !self.deliver(msg).await {
                return false;
            }
        }
        true
    }

    /// Removes the request `msg` answers from `pending`; the `initialize` answer names the
    /// protocol version.
    fn cross_off(&self, msg: &Bytes, pending: &mut Pending) {
        let Ok(frame) = Frame::parse_upstream(msg.clone()) else {
            return;
        };
        let (Kind::Response, Some(id)) = (frame.kind(), frame.id()) else {
            return;
        };
        if pending.init && !frame.is_error() {
            self.learn_version(&frame);
        }
        pending.ids.retain(|p| *p != id);
    }

    /// Requests whose answer will not come: each gets the relay's -31006.
    pub(super) async fn lost(&self, pending: &mut Pending) {
        for id in pending.ids.drain(..) {
            let msg = crate::error::Error::ChildUnavailable.to_jsonrpc(&id);
            if !self.deliver(msg).await {
                return;
            }
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// One message, or each element of a batch array (what does not parse goes as it is: the
/// relay drops and counts it).
pub(super) fn split(data: Bytes) -> Vec<Bytes> {
    let start = data.iter().position(|b| !b.is_ascii_whitespace());
    let Some(start) = start else {
        return Vec::new();
    };
    if data[start] != b'[' {
        return vec![data];
    }
    match serde_json::from_slice::<Vec<&RawValue>>(&data) {
        Ok(items) => items
            .iter()
            .map(|raw| Bytes::copy_from_slice(raw.get().as_bytes()))
            .collect(),
        Err(_) => vec![data],
    }
}

pub(super) fn media_type(res: &Response) -> Option<&str> {
    let ct = res.headers().get(CONTENT_TYPE)?.to_str().ok()?;
    Some(ct.split(';').next().unwrap_or_default().trim())
}

fn challenge(res: &Response) -> Option<&str> {
    res.headers()
        .get(reqwest::header::WWW_AUTHENTICATE)
        .and_then(|v| v.to_str().ok())
}

pub(super) fn is_sse(res: &Response) -> bool {
    media_type(res).is_some_and(|m| m.eq_ignore_ascii_case(EVENT_STREAM))
}

/// A whole JSON body, refused past `max` bytes.
pub(super) async fn body(res: Response, max: usize) -> Result<Bytes, Error> {
    if res.content_length().is_some_and(|n| n > max as u64) {
        return Err(Error::TooLarge);
    }
    let mut buf = BytesMut::new();
    let mut chunks = res.bytes_stream();
    while let Some(chunk) = chunks.next().await {
        let chunk = chunk.map_err(Error::network)?;
        if buf.len() + chunk.len() > max {
            return Err(Error::TooLarge);
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

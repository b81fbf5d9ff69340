//! The load generator's Streamable HTTP client: one hyper HTTP/1.1 keep-alive connection per
//! worker (no pool, no proxy logic), `initialize` + `notifications/initialized`, `tools/call`
//! and `DELETE`, every answer parsed and verified (see `msg.rs`). A 2026-07-28 client has no
//! session: each `tools/call` carries its `_meta` and the `MCP-Protocol-Version`,
//! `Mcp-Method` and `Mcp-Name` headers. An authenticated system's bearer token goes on every
//! request.

use std::net::SocketAddr;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::header::{HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::msg;

/// Where a system under test listens: address, MCP path, and the echo tool's call there.
#[derive(Clone, Debug)]
pub(crate) struct Endpoint {
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) call: msg::ToolCall,
    /// Whether the client speaks 2026-07-28 (stateless calls, no sessions).
    pub(crate) modern: bool,
    /// `Authorization: Bearer …`, sent on every request (the authenticated relays).
    pub(crate) bearer: Option<HeaderValue>,
    /// Where sessions are opened, when not at `addr` (`relay-forwarded`: the home replica;
    /// every later request goes to `addr`, which forwards it there).
    pub(crate) home: Option<SocketAddr>,
}

/// A session opened by `initialize`.
#[derive(Clone, Debug)]
pub(crate) struct Session {
    pub(crate) id: HeaderValue,
    pub(crate) protocol: HeaderValue,
}

/// Who a request is sent as: no session (`initialize`), a legacy session, or a 2026-07-28
/// client (the `Mcp-Name` of its call).
#[derive(Clone, Copy)]
enum As<'a> {
    Nobody,
    Session(&'a Session),
    Modern(&'a HeaderValue),
}

/// One HTTP/1.1 connection, reopened if the server closed it between requests.
pub(crate) struct Conn {
    ep: Endpoint,
    host: HeaderValue,
    send: SendRequest<Full<Bytes>>,
}

async fn handshake(addr: SocketAddr) -> Result<SendRequest<Full<Bytes>>> {
    let tcp = TcpStream::connect(addr).await.context("connect")?;
    tcp.set_nodelay(true)?;
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(send)
}

/// A response: status, whether it is SSE, the session header, the whole body.
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) sse: bool,
    pub(crate) session: Option<HeaderValue>,
    pub(crate) body: Bytes,
}

impl Conn {
    pub(crate) async fn open(ep: &Endpoint) -> Result<Self> {
        let host = HeaderValue::from_str(&ep.addr.to_string())?;
        Ok(Self {
            ep: ep.clone(),
            host,
            send: handshake(ep.addr).await?,
        })
    }

    async fn send(&mut self, method: Method, s: Option<&Session>, body: Vec<u8>) -> Result<Answer> {
        self.send_as(method, s.map_or(As::Nobody, As::Session), body)
            .await
    }

    async fn send_as(&mut self, method: Method, who: As<'_>, body: Vec<u8>) -> Result<Answer> {
        if self.send.is_closed() || self.send.ready().await.is_err() {
            self.send = handshake(self.ep.addr).await?;
        }
        let mut req = Request::builder()
            .method(method)
            .uri(self.ep.path.as_str())
            .header(HOST, self.host.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT, "application/json, text/event-stream");
        if let Some(bearer) = &self.ep.bearer {
            req = req.header(AUTHORIZATION, bearer.clone());
        }
        match who {
            As::Nobody => {}
            As::Session(s) => {
                req = req
                    .header("mcp-session-id", s.id.clone())
                    .header("mcp-protocol-version", s.protocol.clone());
            }
            As::Modern(name) => {
                req = req
                    .header("mcp-protocol-version", msg::MODERN)
                    .header("mcp-method", "tools/call")
                    .header("mcp-name", name.clone());
            }
        }
        let resp = self
            .send
            .send_request(req.body(Full::new(Bytes::from(body)))?)
            .await?;
        let status = resp.status();
        let sse = resp
            .headers()
            .get(CONTENT_TYPE)
            .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
        let session = resp.headers().get("mcp-session-id").cloned();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok(Answer {
            status,
            sse,
            session,
            body,
        })
    }

    /// `initialize` then `notifications/initialized`; returns the new session.
    pub(crate) async fn initialize(&mut self, protocol: &str) -> Result<Session> {
        let a = match self.ep.home {
            Some(home) => {
                let ep = Endpoint {
                    addr: home,
                    home: None,
                    ..self.ep.clone()
                };
                let mut at_home = Conn::open(&ep).await?;
                at_home
                    .send(Method::POST, None, msg::initialize(protocol))
                    .await?
            }
            None => {
                self.send(Method::POST, None, msg::initialize(protocol))
                    .await?
            }
        };
        if a.status != StatusCode::OK {
            bail!(
                "initialize: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        let version = msg::verify_init(a.sse, &a.body)?;
        let id = a
            .session
            .context("initialize answer without Mcp-Session-Id")?;
        let s = Session {
            id,
            protocol: HeaderValue::from_str(&version)?,
        };
        let n = self
            .send(Method::POST, Some(&s), msg::INITIALIZED.to_vec())
            .await?;
        if !n.status.is_success() {
            bail!("notifications/initialized: HTTP {}", n.status);
        }
        Ok(s)
    }

    /// `tools/call` of the endpoint's echo tool with `text`, verified.
    pub(crate) async fn echo(&mut self, s: &Session, id: u64, text: &str) -> Result<()> {
        let body = self.ep.call.request(id, text);
        let a = self.send(Method::POST, Some(s), body).await?;
        if a.status != StatusCode::OK {
            bail!(
                "tools/call: HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        msg::verify_echo(a.sse, &a.body, id, text)
    }

    /// A 2026-07-28 `tools/call` of the endpoint's echo tool with `text` (no session),
    /// verified like `echo`.
    pub(crate) async fn echo_modern(
        &mut self,
        name: &HeaderValue,
        id: u64,
        text: &str,
    ) -> Result<()> {
        let body = self.ep.call.request(id, text);
        let a = self.send_as(Method::POST, As::Modern(name), body).await?;
        if a.status != StatusCode::OK {
            bail!(
                "tools/call (2026-07-28): HTTP {}: {}",
                a.status,
                String::from_utf8_lossy(&a.body)
            );
        }
        msg::verify_echo(a.sse, &a.body, id, text)
    }

    /// `DELETE` the session; any 2xx is success.
    pub(crate) async fn delete(&mut self, s: &Session) -> Result<()> {
        let a = self.send(Method::DELETE, Some(s), Vec::new()).await?;
        if !a.status.is_success() {
            bail!("DELETE: HTTP {}", a.status);
        }
        Ok(())
    }
}

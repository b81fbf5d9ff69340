//! Remote upstreams (`serve --upstream tcp://… | ws://… | http://…`): a server that is already
//! on the network, driven like a child.
//!
//! A connection task fills the far ends of a channel-backed child ([`stdio::link`]): messages
//! for the server leave as one line (TCP), one text frame (WebSocket, subprotocol `mcp`) or
//! one POST (Streamable HTTP with legacy SSE fallback, `remote/http.rs`), what the server
//! sends comes back the same way, and the end of the connection (or of the HTTP session) is
//! the child's exit, so supervision (restart, backoff, circuit) and id multiplexing work
//! unchanged. Per-session mode opens one connection per session. Credentials for the upstream
//! come from configuration, never from a client. `https://` and `wss://` need TLS and come
//! later.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{FramedRead, LinesCodec};
use tracing::{info, warn};

use super::stdio::{self, ChildHandle, ChildOutput, ExitInfo, LinkEnds};

mod http;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a remote link ended; logged once by [`drive`] (with its causes), never shown to clients.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("connect failed")]
    Connect(#[source] std::io::Error),
    #[error("write failed")]
    Write(#[source] std::io::Error),
    #[error("read failed")]
    Read(#[source] tokio_util::codec::LinesCodecError),
    #[error("invalid websocket url")]
    WsUrl(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("websocket connect failed")]
    WsConnect(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    #[error("websocket failed")]
    Ws(#[source] Box<tokio_tungstenite::tungstenite::Error>),
    #[error(transparent)]
    Http(#[from] http::Error),
}

/// A remote server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSpec {
    /// `tcp://host:port`: newline-delimited JSON-RPC.
    Tcp { addr: String, max_line: usize },
    /// `ws://host:port/path`: one message per text frame.
    WebSocket { url: String, max_message: usize },
    /// `http://host:port/path`: Streamable HTTP, falling back to legacy HTTP+SSE.
    Http {
        url: String,
        max_message: usize,
        /// Static headers sent with every request to the upstream (its credentials). Filled
        /// only from the relay's own configuration (none yet: issues 6/8), never from a
        /// client's request; secret values must become `SecretString`s when they arrive.
        headers: Vec<(String, String)>,
    },
}

impl RemoteSpec {
    /// Parses `--upstream`; `max` caps one incoming message.
    pub fn parse(url: &str, max: usize) -> Result<RemoteSpec, String> {
        if let Some(addr) = url.strip_prefix("tcp://") {
            if addr.is_empty() || addr.contains('/') {
                return Err(format!("--upstream `{url}`: expected tcp://host:port"));
            }
            return Ok(RemoteSpec::Tcp {
                addr: addr.to_owned(),
                max_line: max,
            });
        }
        if url.starts_with("ws://") {
            return Ok(RemoteSpec::WebSocket {
                url: url.to_owned(),
                max_message: max,
            });
        }
        if url.starts_with("http://") {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("--upstream `{url}`: not a valid URL: {e}"))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "--upstream `{url}`: expected http://host[:port]/path"
                ));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // The URL is not echoed: it holds the credentials.
                return Err(
                    "--upstream: credentials in the URL are not supported (they would be logged and sent in clear)".to_owned(),
                );
            }
            return Ok(RemoteSpec::Http {
                url: url.to_owned(),
                max_message: max,
                headers: Vec::new(),
            });
        }
        Err(format!(
            "--upstream `{url}`: supported schemes are tcp://, ws:// and http:// (https:// and wss:// need TLS, which arrives later)"
        ))
    }

    /// The address for logs (an HTTP URL without its query, which may hold secrets).
    pub fn url(&self) -> String {
        match self {
            RemoteSpec::Tcp { addr, .. } => format!("tcp://{addr}"),
            RemoteSpec::WebSocket { url, .. } => url.clone(),
            RemoteSpec::Http { url, .. } => http::log_name(url),
        }
    }

    /// Largest message accepted from the server.
    pub fn max_message(&self) -> usize {
        match self {
            RemoteSpec::Tcp { max_line, .. } => *max_line,
            RemoteSpec::WebSocket { max_message, .. } | RemoteSpec::Http { max_message, .. } => {
                *max_message
            }
        }
    }
}

/// Starts connecting; the returned child "exits" when the connection fails or ends.
pub fn connect(spec: &RemoteSpec) -> (ChildHandle, ChildOutput) {
    let (handle, output, ends) = stdio::link();
    tokio::spawn(drive(spec.clone(), ends));
    (handle, output)
}

async fn drive(spec: RemoteSpec, mut ends: LinkEnds) {
    let url = spec.url();
    let result = match &spec {
        RemoteSpec::Tcp { addr, max_line } => tcp(addr, *max_line, &mut ends).await,
        RemoteSpec::WebSocket { url, max_message } => ws(url, *max_message, &mut ends).await,
        RemoteSpec::Http {
            url: target,
            max_message,
            headers,
        } => http::run(target, &url, *max_message, headers, &mut ends)
            .await
            .map_err(Error::from),
    };
    let code = match result {
        Ok(()) => {
            info!(upstream = %url, "upstream connection closed");
            0
        }
        Err(e) => {
            warn!(upstream = %url, error = %chain(&e), "upstream connection failed");
            1
        }
    };
    ends.exit.send_replace(Some(ExitInfo {
        code: Some(code),
        signal: None,
    }));
}

/// An error with its causes, for the one log line (`a: b: c`).
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        out.push_str(": ");
        out.push_str(&c.to_string());
        cause = c.source();
    }
    out
}

async fn tcp(addr: &str, max_line: usize, ends: &mut LinkEnds) -> Result<(), Error> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| Error::ConnectTimeout)?
        .map_err(Error::Connect)?;
    let _ = tcp.set_nodelay(true);
    info!(upstream = %format!("tcp://{addr}"), "upstream connected");
    let (read, mut write) = tcp.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(max_line));
    loop {
        tokio::select! {
            out = ends.outgoing.recv() => {
                let Some(msg) = out else { break };
                write.write_all(&msg).await.map_err(Error::Write)?;
                write.write_all(b"\n").await.map_err(Error::Write)?;
            }
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    if ends.incoming.send(Bytes::from(line)).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => return Err(Error::Read(e)),
                None => break,
            },
            () = ends.stop.cancelled() => break,
        }
    }
    let _ = write.shutdown().await;
    Ok(())
}

async fn ws(url: &str, max_message: usize, ends: &mut LinkEnds) -> Result<(), Error> {
    let mut req = url
        .into_client_request()
        .map_err(|e| Error::WsUrl(Box::new(e)))?;
    if let Ok(v) = "mcp".parse() {
        req.headers_mut().insert("sec-websocket-protocol", v);
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_message));
    let (socket, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_with_config(req, Some(config), true),
    )
    .await
    .map_err(|_| Error::ConnectTimeout)?
    .map_err(|e| Error::WsConnect(Box::new(e)))?;
    info!(upstream = %url, "upstream connected");
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = ends.outgoing.recv() => {
                let Some(msg) = out else { break };
                let text = String::from_utf8_lossy(&msg).into_owned();
                sink.send(Message::text(text)).await.map_err(|e| Error::Ws(Box::new(e)))?;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if ends.incoming.send(Bytes::copy_from_slice(t.as_bytes())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(Error::Ws(Box::new(e))),
            },
            () = ends.stop.cancelled() => break,
        }
    }
    let _ = sink.send(Message::Close(None)).await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upstream_urls_parse_or_say_what_is_supported() {
        assert!(matches!(
            RemoteSpec::parse("tcp://127.0.0.1:9000", 10),
            Ok(RemoteSpec::Tcp { .. })
        ));
        assert!(matches!(
            RemoteSpec::parse("ws://h:1/ws", 10),
            Ok(RemoteSpec::WebSocket { .. })
        ));
        assert!(RemoteSpec::parse("https://h/mcp", 10)
            .unwrap_err()
            .contains("supported schemes"));
        assert!(RemoteSpec::parse("tcp://h:1/x", 10).is_err());
        assert!(matches!(
            RemoteSpec::parse("http://127.0.0.1:8080/mcp", 10),
            Ok(RemoteSpec::Http { ref headers, .. }) if headers.is_empty()
        ));
        let tls = RemoteSpec::parse("wss://h/ws", 10).unwrap_err();
        assert!(
            tls.contains("supported schemes") && tls.contains("TLS"),
            "{tls}"
        );
        assert!(RemoteSpec::parse("http://user:pw@h/mcp", 10)
            .unwrap_err()
            .contains("credentials"));
    }

    #[test]
    fn http_upstreams_are_logged_without_their_query() {
        let spec = RemoteSpec::parse("http://h:1/mcp?key=secret", 10).unwrap();
        assert_eq!(spec.url(), "http://h:1/mcp");
        assert_eq!(spec.max_message(), 10);
    }
}

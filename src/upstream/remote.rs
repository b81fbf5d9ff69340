//! Remote upstreams (`serve --upstream tcp://… | ws://…`): a server that is already on the
//! network, driven like a child.
//!
//! A connection task fills the far ends of a channel-backed child ([`stdio::link`]): messages
//! for the server leave as one line (TCP) or one text frame (WebSocket, subprotocol `mcp`),
//! what the server sends comes back the same way, and the end of the connection is the
//! child's exit, so supervision (restart, backoff, circuit) and id multiplexing work
//! unchanged. Per-session mode opens one connection per session. Credentials for the upstream
//! come from configuration, never from a client. Streamable HTTP and legacy SSE upstreams need
//! the HTTP client of `connect` and come with it.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{FramedRead, LinesCodec};
use tracing::{info, warn};

use super::stdio::{self, ChildHandle, ChildOutput, ExitInfo, LinkEnds};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A remote server's address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSpec {
    /// `tcp://host:port`: newline-delimited JSON-RPC.
    Tcp { addr: String, max_line: usize },
    /// `ws://host:port/path`: one message per text frame.
    WebSocket { url: String, max_message: usize },
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
        Err(format!(
            "--upstream `{url}`: supported schemes are tcp:// and ws:// (http(s):// and wss:// arrive with the client side of `connect`)"
        ))
    }

    pub fn url(&self) -> String {
        match self {
            RemoteSpec::Tcp { addr, .. } => format!("tcp://{addr}"),
            RemoteSpec::WebSocket { url, .. } => url.clone(),
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
    };
    let code = match result {
        Ok(()) => {
            info!(upstream = %url, "upstream connection closed");
            0
        }
        Err(e) => {
            warn!(upstream = %url, error = %e, "upstream connection failed");
            1
        }
    };
    ends.exit.send_replace(Some(ExitInfo {
        code: Some(code),
        signal: None,
    }));
}

async fn tcp(addr: &str, max_line: usize, ends: &mut LinkEnds) -> Result<(), String> {
    let tcp = tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("connect failed: {e}"))?;
    let _ = tcp.set_nodelay(true);
    info!(upstream = %format!("tcp://{addr}"), "upstream connected");
    let (read, mut write) = tcp.into_split();
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(max_line));
    loop {
        tokio::select! {
            out = ends.outgoing.recv() => {
                let Some(msg) = out else { break };
                write.write_all(&msg).await.map_err(|e| e.to_string())?;
                write.write_all(b"\n").await.map_err(|e| e.to_string())?;
            }
            line = lines.next() => match line {
                Some(Ok(line)) => {
                    if ends.incoming.send(Bytes::from(line)).await.is_err() {
                        break;
                    }
                }
                Some(Err(e)) => return Err(format!("read failed: {e}")),
                None => break,
            },
            () = ends.stop.cancelled() => break,
        }
    }
    let _ = write.shutdown().await;
    Ok(())
}

async fn ws(url: &str, max_message: usize, ends: &mut LinkEnds) -> Result<(), String> {
    let mut req = url.into_client_request().map_err(|e| e.to_string())?;
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
    .map_err(|_| "connect timed out".to_owned())?
    .map_err(|e| format!("connect failed: {e}"))?;
    info!(upstream = %url, "upstream connected");
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = ends.outgoing.recv() => {
                let Some(msg) = out else { break };
                let text = String::from_utf8_lossy(&msg).into_owned();
                sink.send(Message::text(text)).await.map_err(|e| e.to_string())?;
            }
            msg = stream.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    if ends.incoming.send(Bytes::copy_from_slice(t.as_bytes())).await.is_err() {
                        break;
                    }
                }
                Some(Ok(Message::Close(_))) | None => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(format!("read failed: {e}")),
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
    }
}

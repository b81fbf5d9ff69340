//! A WebSocket connection to the relay's `/ws` front with the `mcp` subprotocol: one JSON-RPC
//! message per text frame. The raw stream stays reachable for close codes and binary frames.
//! The shared message handling is `conn::Conn`.

use std::collections::VecDeque;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message;

use super::conn::Conn;

pub type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An upgrade request for `url` asking for the `mcp` subprotocol, with `headers` (e.g. a
/// credential).
pub fn ws_request(url: &str, headers: &[(&str, String)]) -> Request {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut()
        .insert("sec-websocket-protocol", "mcp".parse().unwrap());
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes()).unwrap();
        req.headers_mut().insert(name, v.parse().unwrap());
    }
    req
}

/// One WebSocket connection.
pub struct Ws {
    pub stream: WsStream,
    backlog: VecDeque<Value>,
}

impl From<WsStream> for Ws {
    fn from(stream: WsStream) -> Ws {
        Ws {
            stream,
            backlog: VecDeque::new(),
        }
    }
}

impl Ws {
    /// Connects to `url` (no credentials); the relay must agree to `mcp`.
    pub async fn connect(url: &str) -> Ws {
        Ws::connect_with(url, &[]).await
    }

    /// Connects to `url` with `headers` on the upgrade; the relay must agree to `mcp`.
    pub async fn connect_with(url: &str, headers: &[(&str, String)]) -> Ws {
        let (ws, res) = tokio_tungstenite::connect_async(ws_request(url, headers))
            .await
            .unwrap();
        assert_eq!(res.headers()["sec-websocket-protocol"], "mcp");
        Ws::from(ws)
    }
}

impl Conn for Ws {
    async fn send_raw(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.unwrap();
    }

    /// The next text frame as JSON (pings and pongs skipped); `None` once the connection
    /// closed or sent anything else.
    async fn read(&mut self) -> Option<Value> {
        loop {
            match self.stream.next().await {
                Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => return None,
            }
        }
    }

    fn backlog(&mut self) -> &mut VecDeque<Value> {
        &mut self.backlog
    }
}

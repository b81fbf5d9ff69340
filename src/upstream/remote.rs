//! Remote upstreams (`serve --upstream tcp://… | tls://… | ws://… | wss://… | http://… |
//! https://…`): a server that is already on the network, driven like a child.
//!
//! A connection task fills the far ends of a channel-backed child ([`stdio::link`]): messages
//! for the server leave as one line (TCP), one text frame (WebSocket, subprotocol `mcp`) or
//! one POST (Streamable HTTP with legacy SSE fallback, `remote/http.rs`), what the server
//! sends comes back the same way, and the end of the connection (or of the HTTP session) is
//! the child's exit, so supervision (restart, backoff, circuit) and id multiplexing work
//! unchanged. Per-session mode opens one connection per session. Credentials for the upstream
//! come from configuration, never from a client. `tls://`, `wss://` and `https://` are the
//! same over TLS, verified against the Mozilla roots or only `--upstream-ca` (`remote/tls.rs`);
//! a certificate that does not verify fails the connection like any other connect error.

use std::path::Path;

pub(crate) use access::{Access, CredentialSource, Credentials};
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::codec::{FramedRead, LinesCodec};
use tracing::{info, warn};

use super::stdio::{self, ChildHandle, ChildOutput, ExitInfo, LinkEnds};
pub use tls::{Alpn, Roots, TlsClient, TlsOptions, Trust};

pub(crate) mod access;
pub(crate) mod cause;
mod client_credentials;
mod http;
mod tls;
pub(crate) mod upstream_access;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a remote link ended; logged once by [`drive`] (with its causes), never shown to clients.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("connect timed out")]
    ConnectTimeout,
    #[error("connect failed")]
    Connect(#[source] std::io::Error),
    #[error("tls handshake failed")]
    Tls(#[source] std::io::Error),
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
    #[error("invalid header in the configuration")]
    Header,
}

/// A remote server's address. `tls` is set for `tls://`, `wss://` and `https://`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteSpec {
    /// `tcp://host:port` (or `tls://host:port`): newline-delimited JSON-RPC.
    Tcp {
        addr: String,
        max_line: usize,
        tls: Option<TlsClient>,
        access: Access,
    },
    /// `ws://host:port/path` (or `wss://`): one message per text frame.
    WebSocket {
        url: String,
        max_message: usize,
        tls: Option<TlsClient>,
        access: Access,
    },
    /// `http://host:port/path` (or `https://`): Streamable HTTP, falling back to legacy
    /// HTTP+SSE.
    Http {
        url: String,
        max_message: usize,
        tls: Option<TlsClient>,
        /// Credentials from the operator's configuration (`connect --header`, OAuth), never
        /// from a client's request.
        access: Access,
    },
}

impl RemoteSpec {
    /// What the link sends to authenticate itself.
    pub fn access(&self) -> &Access {
        match self {
            RemoteSpec::Tcp { access, .. }
            | RemoteSpec::WebSocket { access, .. }
            | RemoteSpec::Http { access, .. } => access,
        }
    }

    /// Parses `--upstream`; `max` caps one incoming message; `ca` (`--upstream-ca`, a PEM
    /// bundle) replaces the Mozilla roots for a TLS upstream and is refused for the others.
    pub fn parse(url: &str, max: usize, ca: Option<&Path>) -> Result<RemoteSpec, String> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        if ca.is_some() && !matches!(scheme, "tls" | "wss" | "https") {
            return Err(
                "--upstream-ca applies only to https://, wss:// and tls:// upstreams".to_owned(),
            );
        }
        // The only file is the CA bundle: its errors name the flag.
        Self::parse_with(url, max, &TlsOptions::with_ca(ca)).map_err(|e| {
            if e.starts_with("CA bundle ") {
                format!("--upstream-ca: {e}")
            } else {
                e
            }
        })
    }

    /// [`parse`](Self::parse) with every TLS option (`connect URL`: system roots, client
    /// certificate, `--insecure`); the options are checked for any scheme and refused, but for
    /// the roots, when the scheme is not a TLS one.
    pub fn parse_with(url: &str, max: usize, opts: &TlsOptions) -> Result<RemoteSpec, String> {
        let scheme = url.split_once("://").map_or("", |(s, _)| s);
        let secure = matches!(scheme, "tls" | "wss" | "https");
        opts.check()?;
        if opts.is_tls_only() && !secure {
            return Err(
                "TLS options (CA bundle, client certificate, --insecure) apply only to \
                 https://, wss:// and tls:// upstreams"
                    .to_owned(),
            );
        }
        let tls = |alpn| {
            secure
                .then(|| TlsClient::with_options(opts, alpn))
                .transpose()
        };
        if let Some(addr) = url
            .strip_prefix("tcp://")
            .or_else(|| url.strip_prefix("tls://"))
        {
            // TLS needs a name to verify: a host and a port.
            let named = || {
                addr.rsplit_once(':')
                    .filter(|(_, p)| p.parse::<u16>().is_ok())
                    .is_some_and(|(h, _)| tls::server_name(h).is_ok())
            };
            if addr.is_empty() || addr.contains('/') || (secure && !named()) {
                return Err(format!("--upstream `{url}`: expected {scheme}://host:port"));
            }
            return Ok(RemoteSpec::Tcp {
                addr: addr.to_owned(),
                max_line: max,
                tls: tls(Alpn::None)?,
                access: Access::default(),
            });
        }
        if matches!(scheme, "ws" | "wss") {
            return Ok(RemoteSpec::WebSocket {
                url: url.to_owned(),
                max_message: max,
                tls: tls(Alpn::WebSocket)?,
                access: Access::default(),
            });
        }
        if matches!(scheme, "http" | "https") {
            let parsed = reqwest::Url::parse(url)
                .map_err(|e| format!("--upstream `{url}`: not a valid URL: {e}"))?;
            if parsed.host_str().is_none_or(str::is_empty) {
                return Err(format!(
                    "--upstream `{url}`: expected {scheme}://host[:port]/path"
                ));
            }
            if !parsed.username().is_empty() || parsed.password().is_some() {
                // The URL is not echoed: it holds the credentials.
                return Err(
                    "--upstream: credentials in the URL are not supported (they would be logged and sent with every request)".to_owned(),
                );
            }
            return Ok(RemoteSpec::Http {
                url: url.to_owned(),
                max_message: max,
                tls: tls(Alpn::Http)?,
                access: Access::default(),
            });
        }
        Err(format!(
            "--upstream `{url}`: supported schemes are http://, https://, ws://, wss://, tcp:// and tls://"
        ))
    }

    /// The address for logs (an HTTP URL without its query, which may hold secrets).
    pub fn url(&self) -> String {
        match self {
            RemoteSpec::Tcp { addr, tls, .. } => {
                let scheme = if tls.is_some() { "tls" } else { "tcp" };
                format!("{scheme}://{addr}")
            }
            RemoteSpec::WebSocket { url, .. } => url.clone(),
            RemoteSpec::Http { url, .. } => http::log_name(url),
        }
    }

    /// Replaces how the link authenticates itself (`serve`'s upstream credentials, the
    /// bridge's flags).
    pub fn set_access(&mut self, a: Access) {
        match self {
            RemoteSpec::Tcp { access, .. }
            | RemoteSpec::WebSocket { access, .. }
            | RemoteSpec::Http { access, .. } => *access = a,
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
pub(crate) fn connect(spec: &RemoteSpec) -> (ChildHandle, ChildOutput) {
    let (handle, output, ends) = stdio::link();
    tokio::spawn(drive(spec.clone(), ends));
    (handle, output)
}

async fn drive(spec: RemoteSpec, mut ends: LinkEnds) {
    let url = spec.url();
    let result = match &spec {
        RemoteSpec::Tcp {
            addr,
            max_line,
            tls,
            access,
        } => tcp(addr, &url, *max_line, tls.as_ref(), access, &mut ends).await,
        RemoteSpec::WebSocket {
            url,
            max_message,
            tls,
            access,
        } => ws(url, *max_message, tls.as_ref(), access, &mut ends).await,
        RemoteSpec::Http {
            url: target,
            max_message,
            tls,
            access,
        } => http::run(target, &url, *max_message, tls.as_ref(), access, &mut ends)
            .await
            .map_err(Error::from),
    };
    let code = match result {
        Ok(()) => {
            info!(upstream = %url, "upstream connection closed");
            0
        }
        Err(e) => {
            // Said before the exit, so whoever sees the exit finds the cause.
            let why = cause::of_link(&spec, &e);
            warn!(upstream = %url, cause = %why, error = %crate::error::with_causes(&e), "upstream connection failed");
            ends.cause.set(why);
            1
        }
    };
    ends.exit.send_replace(Some(ExitInfo {
        code: Some(code),
        signal: None,
    }));
}

async fn tcp(
    addr: &str,
    name: &str,
    max_line: usize,
    tls: Option<&TlsClient>,
    access: &Access,
    ends: &mut LinkEnds,
) -> Result<(), Error> {
    let connect = async {
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(Error::Connect)?;
        let _ = tcp.set_nodelay(true);
        let Some(tls) = tls else {
            return Ok::<_, Error>(Stream::Plain(tcp));
        };
        let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
        let server = tls::server_name(host).map_err(Error::Tls)?;
        let tls = tokio_rustls::TlsConnector::from(tls.config())
            .connect(server, tcp)
            .await
            .map_err(Error::Tls)?;
        Ok(Stream::Tls(Box::new(tls)))
    };
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
        .await
        .map_err(|_| Error::ConnectTimeout)??;
    info!(upstream = %name, "upstream connected");
    let first = access.tcp_line();
    match stream {
        Stream::Plain(s) => lines(s, max_line, first, ends).await,
        Stream::Tls(s) => lines(*s, max_line, first, ends).await,
    }
}

/// A TCP upstream's connection.
enum Stream {
    Plain(tokio::net::TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
}

/// Newline-delimited JSON-RPC over `stream` until either side ends it.
async fn lines<S>(
    stream: S,
    max_line: usize,
    first: Option<String>,
    ends: &mut LinkEnds,
) -> Result<(), Error>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (read, mut write) = tokio::io::split(stream);
    // The credential line of an mcp-relay TCP front, before any message.
    if let Some(line) = first {
        write
            .write_all(line.as_bytes())
            .await
            .map_err(Error::Write)?;
        write.write_all(b"\n").await.map_err(Error::Write)?;
    }
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

async fn ws(
    url: &str,
    max_message: usize,
    tls: Option<&TlsClient>,
    access: &Access,
    ends: &mut LinkEnds,
) -> Result<(), Error> {
    let mut req = url
        .into_client_request()
        .map_err(|e| Error::WsUrl(Box::new(e)))?;
    if let Ok(v) = "mcp".parse() {
        req.headers_mut().insert("sec-websocket-protocol", v);
    }
    let auth = access
        .authorization()
        .map(|a| ("authorization".to_owned(), a));
    for (k, v) in access.other_headers().cloned().chain(auth) {
        let name = axum::http::HeaderName::try_from(k.as_str()).map_err(|_| Error::Header)?;
        let mut value = axum::http::HeaderValue::try_from(v.as_str()).map_err(|_| Error::Header)?;
        value.set_sensitive(true);
        req.headers_mut().append(name, value);
    }
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .max_message_size(Some(max_message));
    let (socket, _) = tokio::time::timeout(
        CONNECT_TIMEOUT,
        tokio_tungstenite::connect_async_tls_with_config(
            req,
            Some(config),
            true,
            tls.map(|t| tokio_tungstenite::Connector::Rustls(t.config())),
        ),
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
            RemoteSpec::parse("tcp://127.0.0.1:9000", 10, None),
            Ok(RemoteSpec::Tcp { tls: None, .. })
        ));
        assert!(matches!(
            RemoteSpec::parse("ws://h:1/ws", 10, None),
            Ok(RemoteSpec::WebSocket { tls: None, .. })
        ));
        assert!(RemoteSpec::parse("ftp://h/mcp", 10, None)
            .unwrap_err()
            .contains("supported schemes"));
        assert!(RemoteSpec::parse("tcp://h:1/x", 10, None).is_err());
        assert!(matches!(
            RemoteSpec::parse("http://127.0.0.1:8080/mcp", 10, None),
            Ok(RemoteSpec::Http { ref access, tls: None, .. }) if access.headers.is_empty()
        ));
        assert!(RemoteSpec::parse("http://user:pw@h/mcp", 10, None)
            .unwrap_err()
            .contains("credentials"));
        assert!(RemoteSpec::parse("https://user:pw@h/mcp", 10, None)
            .unwrap_err()
            .contains("credentials"));
    }

    #[test]
    fn tls_upstreams_parse_with_the_default_roots() {
        assert!(matches!(
            RemoteSpec::parse("https://h.example/mcp", 10, None),
            Ok(RemoteSpec::Http { tls: Some(_), .. })
        ));
        assert!(matches!(
            RemoteSpec::parse("wss://h.example/ws", 10, None),
            Ok(RemoteSpec::WebSocket { tls: Some(_), .. })
        ));
        let spec = RemoteSpec::parse("tls://127.0.0.1:9000", 10, None).unwrap();
        assert!(matches!(spec, RemoteSpec::Tcp { tls: Some(_), .. }));
        assert_eq!(spec.url(), "tls://127.0.0.1:9000");
        assert!(RemoteSpec::parse("tls://[::1]:9000", 10, None).is_ok());
        assert!(RemoteSpec::parse("tls://h.example:443", 10, None).is_ok());
        // TLS needs a host name to verify and a port.
        for bad in [
            "tls://h.example",
            "tls://:1",
            "tls://h/x:1",
            "tls://",
            "https://:443/mcp",
        ] {
            assert!(RemoteSpec::parse(bad, 10, None).is_err(), "{bad}");
        }
        // Same spec, same trust: equal.
        assert_eq!(
            RemoteSpec::parse("https://h/mcp", 10, None),
            RemoteSpec::parse("https://h/mcp", 10, None)
        );
        let spec = RemoteSpec::parse("https://h:1/mcp?key=secret", 10, None).unwrap();
        assert_eq!(spec.url(), "https://h:1/mcp");
    }

    #[test]
    fn upstream_ca_is_read_and_only_for_tls_upstreams() {
        let dir = std::env::temp_dir().join(format!("mcp-relay-upca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let written = crate::cert::generate(&dir, &[], 1).unwrap();
        let ca = Some(written.cert.as_path());
        for url in [
            "https://127.0.0.1:1/mcp",
            "wss://127.0.0.1:1/ws",
            "tls://127.0.0.1:1",
        ] {
            let spec = RemoteSpec::parse(url, 10, ca).unwrap();
            assert_ne!(spec, RemoteSpec::parse(url, 10, None).unwrap(), "{url}");
        }
        for url in ["http://h/mcp", "ws://h/ws", "tcp://h:1"] {
            let err = RemoteSpec::parse(url, 10, ca).unwrap_err();
            assert!(err.contains("--upstream-ca applies only"), "{url}: {err}");
        }
        let missing = dir.join("none.pem");
        let err = RemoteSpec::parse("https://h/mcp", 10, Some(&missing)).unwrap_err();
        assert!(
            err.contains("--upstream-ca") && err.contains("none.pem"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn http_upstreams_are_logged_without_their_query() {
        let spec = RemoteSpec::parse("http://h:1/mcp?key=secret", 10, None).unwrap();
        assert_eq!(spec.url(), "http://h:1/mcp");
        assert_eq!(spec.max_message(), 10);
    }
}

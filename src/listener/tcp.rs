//! The TCP front (`--tcp-listen`): newline-delimited JSON-RPC, one session per connection.
//!
//! Each line is one JSON-RPC message (or batch) handed to the connection's [`Duplex`]; every
//! message for the client is written as one line. Lines are capped (`--tcp-max-line`, 4 MiB):
//! a longer one gets a -31009 error line and the connection is closed, since the stream can no
//! longer be trusted to be in sync. A connection silent for `--tcp-idle` (5 min) is closed, as
//! is every connection when the relay drains. OS keep-alive is on. The first line is where
//! authentication is read (`policy::phases::on_request`). A client address the connection
//! phases refuse (`on_connection`: `[network]` denies it, the relay is shedding, it is over its
//! per-IP rate) is closed at once on accept. With `--tls-cert` every connection is TLS (handshake
//! off the accept loop, 10 s limit).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::duplex::{Duplex, OUT_QUEUE};
use crate::caller::{ClientAddr, Transport};
use crate::error::Error;
use crate::policy::{Admitted, Incoming, Source, Stop};
use crate::relay::Relay;
use crate::tls::client::CertIdentity;
use axum::http::HeaderMap;

/// Accepts connections until `stop` is cancelled, each served by the relay `current` names
/// when it arrives (a named server's front follows its relay across reloads); none (the
/// server was removed): the connection is closed at once.
pub(crate) async fn serve(
    current: impl Fn() -> Option<Arc<Relay>>,
    max_connections: usize,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    let permits = Arc::new(tokio::sync::Semaphore::new(max_connections));
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        let relay = match (accepted, current()) {
            (Ok((tcp, peer)), Some(relay)) => Ok((tcp, peer, relay)),
            (Ok((_, peer)), None) => {
                debug!(%peer, "tcp connection to a server no longer configured: closed");
                continue;
            }
            (Err(e), _) => Err(e),
        };
        match relay {
            Ok((tcp, peer, relay)) => {
                // The connection phases, before the connection cap, TLS and any byte read: a
                // refused client is closed at once. No proxy headers on this front.
                let client = relay
                    .policy()
                    .on_connection(relay.audit(), peer, Transport::Tcp);
                let Ok(client) = client else {
                    debug!(%peer, "tcp connection refused by policy");
                    drop(tcp);
                    continue;
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    warn!(%peer, "connection cap reached: tcp connection refused");
                    crate::telemetry::metrics::connection_refused("tcp");
                    continue;
                };
                let permit = (permit, crate::telemetry::metrics::connection_opened("tcp"));
                debug!(%peer, "tcp connection");
                let _ = tcp.set_nodelay(true);
                let _ = socket_keepalive(&tcp);
                match tls.clone() {
                    None => {
                        tokio::spawn(async move {
                            let _permit = permit;
                            connection(relay, tcp, client, None).await;
                        });
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            let _permit = permit;
                            if let Some(tls) = crate::tls::handshake(&acceptor, tcp).await {
                                let cert = super::peer_identity(&tls);
                                connection(relay, tls, client, cert).await;
                            }
                        });
                    }
                }
            }
            Err(e) => {
                warn!(error = %e, "tcp accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn connection<S>(
    relay: Arc<Relay>,
    io: S,
    client: ClientAddr,
    cert: Option<Arc<CertIdentity>>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let cfg = relay.config();
    let (max_line, idle) = (cfg.tcp_max_line, cfg.tcp_idle);
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_lines(write, rx));
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(max_line));
    let admitted = authenticate(&relay, &mut lines, client, cert.as_deref()).await;
    let Admitted { caller, slot } = match admitted {
        Ok(a) => a,
        Err(e) => {
            let _ = tx.send(e.message(None)).await;
            drop(tx);
            let _ = tokio::time::timeout(Duration::from_secs(5), writer).await;
            return;
        }
    };
    // A transport whose messages do not each hold a slot would hold this one for its life.
    let _slot = slot;
    let mut duplex = Duplex::new(relay.clone(), tx.clone(), caller);
    let draining = relay.draining().clone();
    loop {
        let ended = duplex.ended();
        let next = tokio::select! {
            n = tokio::time::timeout(idle, lines.next()) => n,
            () = draining.cancelled() => break,
            () = ended.cancelled() => break,
        };
        match next {
            Ok(Some(Ok(line))) if line.trim().is_empty() => {}
            Ok(Some(Ok(line))) => {
                duplex.handle(Bytes::from(line)).await;
            }
            Ok(Some(Err(LinesCodecError::MaxLineLengthExceeded))) => {
                let e = Error::BodyTooLarge(max_line as u64);
                let _ = tx.send(e.message(None)).await;
                break;
            }
            Ok(Some(Err(LinesCodecError::Io(e)))) => {
                debug!(error = %e, "tcp read failed");
                break;
            }
            Ok(None) => break,
            Err(_) => {
                info!("tcp connection idle: closed");
                break;
            }
        }
    }
    duplex.close();
    drop(tx);
    // The writer ends once every pump let go of the channel; bounded so a reader that never
    // reads cannot keep it forever.
    let mut writer = writer;
    if tokio::time::timeout(Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        // A peer that stopped reading holds the write forever: drop the connection.
        writer.abort();
    }
}

/// The request phases for the connection (`on_request`), against one policy snapshot, the
/// wait for the first line included. With authentication on and no mapped client certificate,
/// the first line carries the credential as a JSON object of header fields, e.g.
/// `{"authorization":"Bearer <token>"}` or `{"x-api-key":"<key>"}`. Refusals are audited there.
async fn authenticate<R>(
    relay: &Relay,
    lines: &mut FramedRead<R, LinesCodec>,
    client: ClientAddr,
    cert: Option<&CertIdentity>,
) -> Result<Admitted, Error>
where
    R: AsyncRead + Unpin,
{
    let policy = relay.policy();
    let credential = if policy.wants_credential_line(cert) {
        match tokio::time::timeout(relay.config().tcp_idle, lines.next()).await {
            Ok(Some(Ok(line))) => auth_line(&line),
            _ => None,
        }
    } else {
        Some(HeaderMap::new())
    };
    let incoming = Incoming {
        source: Source::Connection(client),
        credential: credential.as_ref(),
        query: None,
        cert,
        transport: Transport::Tcp,
    };
    match policy.on_request(relay.audit(), incoming).await {
        Ok(admitted) => Ok(admitted),
        Err(Stop::Refused(e)) => Err(e),
        // Preflights, metadata, the authorization server and forwarding are HTTP routes: a
        // connection never reaches them.
        Err(Stop::Preflight(_) | Stop::Metadata | Stop::AuthServer(_) | Stop::Forward(_)) => {
            Err(Error::Internal)
        }
    }
}

/// The header fields of an authentication line; `None` when it is not one, or when it names
/// a field twice (in any case: two credentials are refused, as over HTTP).
fn auth_line(line: &str) -> Option<HeaderMap> {
    if line.len() > 2 * crate::policy::authn::MAX_CREDENTIAL {
        return None;
    }
    let fields: Fields = serde_json::from_str(line).ok()?;
    let mut headers = HeaderMap::new();
    for (name, value) in fields.0 {
        let name = axum::http::HeaderName::from_bytes(name.to_ascii_lowercase().as_bytes()).ok()?;
        if name != axum::http::header::AUTHORIZATION && name.as_str() != "x-api-key" {
            return None;
        }
        if headers.contains_key(&name) {
            return None;
        }
        headers.insert(name, axum::http::HeaderValue::from_str(&value).ok()?);
    }
    Some(headers)
}

/// A JSON object of string fields in order, duplicates kept (a map would keep the last).
struct Fields(Vec<(String, String)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object of header fields")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut m: A) -> Result<Fields, A::Error> {
                let mut out = Vec::new();
                while let Some(entry) = m.next_entry::<String, String>()? {
                    out.push(entry);
                }
                Ok(Fields(out))
            }
        }
        d.deserialize_map(Visit)
    }
}

async fn write_lines(write: impl AsyncWrite + Unpin, mut rx: mpsc::Receiver<Bytes>) {
    let mut w = BufWriter::new(write);
    while let Some(msg) = rx.recv().await {
        if w.write_all(&msg).await.is_err() || w.write_all(b"\n").await.is_err() {
            return;
        }
        // Write out when nothing else is queued.
        if rx.is_empty() && w.flush().await.is_err() {
            return;
        }
    }
    let _ = w.flush().await;
    let _ = w.shutdown().await;
}

fn socket_keepalive(tcp: &TcpStream) -> std::io::Result<()> {
    let sock = socket2::SockRef::from(tcp);
    sock.set_tcp_keepalive(
        &socket2::TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(15)),
    )
}

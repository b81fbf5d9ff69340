//! The TCP front (`--tcp-listen`): newline-delimited JSON-RPC, one session per connection.
//!
//! Each line is one JSON-RPC message (or batch) handed to the connection's [`Duplex`]; every
//! message for the client is written as one line. Lines are capped (`--tcp-max-line`, 4 MiB):
//! a longer one gets a -31009 error line and the connection is closed, since the stream can no
//! longer be trusted to be in sync. A connection silent for `--tcp-idle` (5 min) is closed, as
//! is every connection when the relay drains. OS keep-alive is on. The first line is where
//! authentication will be read once it exists. With `--tls-cert` every connection is TLS
//! (handshake off the accept loop, 10 s limit).

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
use crate::error::Error;
use crate::relay::Relay;

/// Accepts connections until `stop` is cancelled.
pub async fn serve(
    relay: Arc<Relay>,
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    stop: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            () = stop.cancelled() => return,
        };
        match accepted {
            Ok((tcp, peer)) => {
                debug!(%peer, "tcp connection");
                let _ = tcp.set_nodelay(true);
                let _ = socket_keepalive(&tcp);
                let relay = relay.clone();
                match tls.clone() {
                    None => {
                        tokio::spawn(connection(relay, tcp));
                    }
                    Some(acceptor) => {
                        tokio::spawn(async move {
                            if let Some(tls) = crate::tls::handshake(&acceptor, tcp).await {
                                connection(relay, tls).await;
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

async fn connection<S>(relay: Arc<Relay>, io: S)
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(io);
    let cfg = relay.config();
    let (max_line, idle) = (cfg.tcp_max_line, cfg.tcp_idle);
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_lines(write, rx));
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(max_line));
    let mut duplex = Duplex::new(relay.clone(), tx.clone(), None);
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

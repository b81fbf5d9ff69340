//! The stdio front (`mcp-relay stdio -- COMMAND`): the relay's own stdin/stdout as one session.
//!
//! For a local host or an SSH forced command: each stdin line is one JSON-RPC message handed to
//! the [`Duplex`], each message for the client one stdout line, so the child runs behind the
//! same core (policy, limits, audit, supervision) as on the network. Lines are capped like the
//! child's (`--max-line`); an over-long line gets a -31009 error and ends the session. At stdin
//! EOF the requests already sent still get their answers (for `--shutdown-grace` at most: a
//! script that pipes its requests in and closes its end reads every answer), then the session
//! ends and the relay exits after stopping the child. Logs go to stderr.

use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::duplex::{Duplex, OUT_QUEUE};
use crate::caller::{Caller, Principal, Transport};
use crate::error::Error;
use crate::relay::Relay;

/// Runs the session until stdin ends or `stop` is cancelled.
pub(crate) async fn run(relay: Arc<Relay>, stop: CancellationToken) {
    let max_line = relay.config().child.max_line();
    let (tx, rx) = mpsc::channel(OUT_QUEUE);
    let writer = tokio::spawn(write_lines(rx));
    let mut lines = FramedRead::new(
        tokio::io::stdin(),
        LinesCodec::new_with_max_length(max_line),
    );
    // The local operator's own pipe: no credential to check.
    let principal = Principal {
        roles: relay.config().stdio_roles.clone(),
        ..Principal::anonymous()
    };
    let caller = Caller::new(principal, None::<std::net::SocketAddr>, Transport::Stdio);
    let mut duplex = Duplex::new(relay.clone(), tx.clone(), caller);
    loop {
        let ended = duplex.ended();
        let next = tokio::select! {
            n = lines.next() => n,
            () = stop.cancelled() => break,
            () = ended.cancelled() => break,
        };
        match next {
            Some(Ok(line)) if line.trim().is_empty() => {}
            Some(Ok(line)) => {
                duplex.handle(Bytes::from(line)).await;
            }
            Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                let e = Error::BodyTooLarge(max_line as u64);
                let _ = tx.send(e.message(None)).await;
                break;
            }
            Some(Err(LinesCodecError::Io(_))) | None => {
                let grace = relay.config().shutdown_grace;
                tokio::select! {
                    () = duplex.answers_written(grace) => {}
                    () = stop.cancelled() => {}
                }
                break;
            }
        }
    }
    duplex.close();
    drop(tx);
    let mut writer = writer;
    if tokio::time::timeout(std::time::Duration::from_secs(5), &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
}

async fn write_lines(mut rx: mpsc::Receiver<Bytes>) {
    let mut out = tokio::io::stdout();
    while let Some(msg) = rx.recv().await {
        if out.write_all(&msg).await.is_err() || out.write_all(b"\n").await.is_err() {
            return;
        }
        if rx.is_empty() && out.flush().await.is_err() {
            return;
        }
    }
    let _ = out.flush().await;
}

//! `relay-console` (issue 20): the relay with its admin listener (`--admin-listen`, loopback,
//! no admin token: the console is open there) and three of the console's live streams held
//! open for the whole run, as three browser tabs on the servers, sessions and traffic pages
//! would: `GET /ui/events?view=servers|sessions|traffic`, each read to the end as it comes.
//!
//! Owns: the admin port's flag and the streams' readers. Does not own: starting the relay
//! (`systems.rs`) or the load (`load.rs`). A relay without the console (an older
//! `BENCH_RELAY`, or one that answers the stream with anything but SSE) fails at start.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::header::{HeaderValue, ACCEPT, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// The live views the three open pages subscribe to.
pub(crate) const VIEWS: [&str; 3] = ["servers", "sessions", "traffic"];

/// How long a stream may take to send its first event.
const FIRST_EVENT: Duration = Duration::from_secs(10);

/// The relay's flags for an admin listener on `port`.
pub(crate) fn args(port: u16) -> [String; 2] {
    ["--admin-listen".into(), format!("127.0.0.1:{port}")]
}

/// The open streams: their readers are stopped when this is dropped (with the system).
pub(crate) struct Streams {
    readers: Vec<JoinHandle<()>>,
    /// Bytes read over every stream, for the log line at the end.
    bytes: Arc<AtomicU64>,
}

impl Drop for Streams {
    fn drop(&mut self) {
        for r in &self.readers {
            r.abort();
        }
        eprintln!(
            "bench: relay-console: {} bytes read over {} console streams",
            self.bytes.load(Ordering::Relaxed),
            self.readers.len()
        );
    }
}

/// The report's version line of `relay-console`.
pub(crate) fn version() -> String {
    format!(
        "mcp-relay {}, as relay-sse with `--admin-listen` and {} console streams open \
         (`/ui/events?view={}`)",
        env!("CARGO_PKG_VERSION"),
        VIEWS.len(),
        VIEWS.join("|")
    )
}

/// With an admin listener on `admin` (`relay-console`): opens one stream per view there,
/// waits for each one's first event, then keeps reading them in the background.
pub(crate) async fn open(admin: Option<u16>) -> Result<Option<Streams>> {
    let Some(port) = admin else {
        return Ok(None);
    };
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let bytes = Arc::new(AtomicU64::new(0));
    let mut streams = Streams {
        readers: Vec::new(),
        bytes: bytes.clone(),
    };
    for view in VIEWS {
        let body = tokio::time::timeout(FIRST_EVENT, subscribe(addr, view))
            .await
            .with_context(|| format!("relay-console: no event on view {view} within 10 s"))??;
        let bytes = bytes.clone();
        streams.readers.push(tokio::spawn(drain(body, bytes)));
    }
    Ok(Some(streams))
}

type Body = hyper::body::Incoming;

/// `GET /ui/events?view=VIEW` on a connection of its own; the body once its first data frame
/// has arrived (so the stream is known to be live).
async fn subscribe(addr: SocketAddr, view: &str) -> Result<(Body, Bytes)> {
    let tcp = TcpStream::connect(addr)
        .await
        .context("relay-console: connect to the admin listener")?;
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req = Request::get(format!("/ui/events?view={view}"))
        .header(HOST, HeaderValue::from_str(&addr.to_string())?)
        .header(ACCEPT, "text/event-stream")
        .body(Empty::<Bytes>::new())?;
    let resp = send.send_request(req).await?;
    let sse = resp
        .headers()
        .get(CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"text/event-stream"));
    if resp.status() != StatusCode::OK || !sse {
        bail!(
            "relay-console: /ui/events?view={view} answered {} ({:?}), not an event stream \
             (a relay without the console?)",
            resp.status(),
            resp.headers().get(CONTENT_TYPE)
        );
    }
    let mut body = resp.into_body();
    loop {
        match body.frame().await {
            Some(frame) => {
                if let Ok(data) = frame?.into_data() {
                    if !data.is_empty() {
                        return Ok((body, data));
                    }
                }
            }
            None => bail!("relay-console: /ui/events?view={view} ended before its first event"),
        }
    }
}

/// Reads a stream to its end, counting what arrives.
async fn drain((mut body, first): (Body, Bytes), bytes: Arc<AtomicU64>) {
    bytes.fetch_add(first.len() as u64, Ordering::Relaxed);
    while let Some(Ok(frame)) = body.frame().await {
        if let Ok(data) = frame.into_data() {
            bytes.fetch_add(data.len() as u64, Ordering::Relaxed);
        }
    }
}

//! The relay floor: the smallest correct relay one process can be, run as a separate process
//! (the bench binary re-executed with `MCP_BENCH_FLOOR_RELAY=ADDR` and the fixture's path in
//! `MCP_BENCH_FLOOR_FIXTURE`). The relay's own stack (tokio + axum), HTTP in on `/mcp`, ONE
//! fixture child spawned and initialized at start, spoken to over its pipes. Each request's id
//! is replaced by a counter (spliced into the request's bytes: the body is parsed borrowed,
//! `RawValue` for the id, no value trees) and the frame queued to one writer task, which
//! writes whatever is queued in one `write` (as the relay's child writer does; a request's
//! own future never writes, so a client that goes away cannot cut a frame in half); the answer
//! is routed back by a map (counter → oneshot) and the original id spliced back in. JSON answers only: no SSE, no streams, no
//! policy, no audit, no session table. The client's `initialize` is answered here (with a
//! session id header), notifications get 202 (nothing is forwarded), `DELETE` 200.
//! Not here: the HTTP floor without a child (`floor.rs`), the harness's own stdio client
//! (`stdio.rs`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, Result};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{ChildStdin, ChildStdout, Command};
use tokio::sync::{mpsc, oneshot};

/// The env var that turns the bench binary into the relay floor listening on its value.
pub(crate) const ROLE_ENV: &str = "MCP_BENCH_FLOOR_RELAY";
/// The fixture the relay floor starts (its path).
pub(crate) const FIXTURE_ENV: &str = "MCP_BENCH_FLOOR_FIXTURE";

/// The protocol version of the floor's own handshake with the child.
const CHILD_PROTOCOL: &str = "2025-06-18";

/// A line from the child and where its id's text is in it.
struct Answer {
    line: Vec<u8>,
    id_at: (usize, usize),
}

type Routes = Arc<Mutex<HashMap<u64, oneshot::Sender<Answer>>>>;

/// The one child and what routes its answers.
struct Floor {
    stdin: mpsc::UnboundedSender<Vec<u8>>,
    routes: Routes,
    next_id: AtomicU64,
    next_session: AtomicU64,
}

#[derive(Deserialize)]
struct Req<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Cow<'a, str>,
    #[serde(borrow)]
    params: Option<InitParams<'a>>,
}

#[derive(Deserialize)]
struct InitParams<'a> {
    #[serde(borrow, rename = "protocolVersion")]
    protocol_version: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct Ans<'a> {
    #[serde(borrow)]
    id: Option<&'a RawValue>,
}

/// Where `part` (a slice of `whole`) starts and ends in `whole`.
fn span(whole: &[u8], part: &str) -> (usize, usize) {
    let start = part.as_ptr() as usize - whole.as_ptr() as usize;
    (start, start + part.len())
}

/// `bytes` with `at` replaced by `with`, plus `tail`.
fn splice(bytes: &[u8], at: (usize, usize), with: &[u8], tail: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + with.len() + tail.len());
    out.extend_from_slice(&bytes[..at.0]);
    out.extend_from_slice(with);
    out.extend_from_slice(&bytes[at.1..]);
    out.extend_from_slice(tail);
    out
}

impl Floor {
    /// Queues one frame (a newline-terminated line) for the child; false once it is gone.
    fn write(&self, frame: Vec<u8>) -> bool {
        self.stdin.send(frame).is_ok()
    }

    /// Sends `body` (whose id is at `id_at`) to the child under a fresh id; the answer line.
    async fn forward(&self, body: &[u8], id_at: (usize, usize)) -> Option<Answer> {
        let n = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut frame = splice(body, id_at, n.to_string().as_bytes(), b"\n");
        // A valid JSON text has newlines only as whitespace: a frame must be one line.
        let end = frame.len() - 1;
        for b in &mut frame[..end] {
            if matches!(*b, b'\n' | b'\r') {
                *b = b' ';
            }
        }
        let (tx, rx) = oneshot::channel();
        self.routes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(n, tx);
        if !self.write(frame) {
            self.routes
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&n);
            return None;
        }
        rx.await.ok()
    }
}

/// Writes every queued frame to the child's stdin, as many as are queued in one `write`.
async fn write_frames(mut stdin: ChildStdin, mut frames: mpsc::UnboundedReceiver<Vec<u8>>) {
    let mut buf = Vec::with_capacity(64 * 1024);
    while let Some(first) = frames.recv().await {
        buf.extend_from_slice(&first);
        while let Ok(more) = frames.try_recv() {
            buf.extend_from_slice(&more);
        }
        if stdin.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
    }
}

/// Reads the child's lines and hands each answer to the request waiting for its id; lines
/// without a known id (notifications, requests of the child) are dropped. When the child
/// closes its stdout every waiting request is released (it answers 502).
async fn route(stdout: ChildStdout, routes: Routes) {
    let mut lines = BufReader::with_capacity(256 * 1024, stdout);
    loop {
        let mut line = Vec::with_capacity(512);
        if !matches!(lines.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
            break;
        }
        let Ok(Ans { id: Some(id) }) = serde_json::from_slice::<Ans<'_>>(&line) else {
            continue;
        };
        let Ok(n) = id.get().parse::<u64>() else {
            continue;
        };
        let id_at = span(&line, id.get());
        let tx = routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&n);
        if let Some(tx) = tx {
            let _ = tx.send(Answer { line, id_at });
        }
    }
    routes.lock().unwrap_or_else(|e| e.into_inner()).clear();
}

fn json(body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// The client's `initialize`, answered by the floor with a new session id.
fn initialize(f: &Floor, id: &str, req: &Req<'_>) -> Response {
    let v = req
        .params
        .as_ref()
        .and_then(|p| p.protocol_version.as_deref())
        .unwrap_or(CHILD_PROTOCOL);
    let v = serde_json::Value::from(v);
    let mut r = json(format!(
        r#"{{"jsonrpc":"2.0","id":{id},"result":{{"protocolVersion":{v},"capabilities":{{"tools":{{}}}},"serverInfo":{{"name":"floor-relay","version":"1"}}}}}}"#
    ).into_bytes());
    let session = f.next_session.fetch_add(1, Ordering::Relaxed);
    if let Ok(h) = HeaderValue::from_str(&format!("floor-{session}")) {
        r.headers_mut().insert("mcp-session-id", h);
    }
    r
}

async fn handle(State(f): State<Arc<Floor>>, headers: HeaderMap, body: Bytes) -> Response {
    let Ok(req) = serde_json::from_slice::<Req<'_>>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let Some(id) = req.id else {
        return StatusCode::ACCEPTED.into_response();
    };
    if req.method == "initialize" {
        return initialize(&f, id.get(), &req);
    }
    if !headers.contains_key("mcp-session-id") {
        return StatusCode::BAD_REQUEST.into_response();
    }
    let Some(a) = f.forward(&body, span(&body, id.get())).await else {
        return StatusCode::BAD_GATEWAY.into_response();
    };
    json(splice(&a.line, a.id_at, id.get().as_bytes(), b""))
}

/// Spawns the fixture (in this process's group: stopped with it) and runs the handshake.
async fn start(fixture: &Path) -> Result<Arc<Floor>> {
    let mut child = Command::new(fixture)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("spawn fixture")?;
    let stdin = child.stdin.take().context("no stdin")?;
    let stdout = child.stdout.take().context("no stdout")?;
    // The child lives as long as this process; its stdin's EOF ends it otherwise.
    tokio::spawn(async move {
        let _ = child.wait().await;
    });
    let routes: Routes = Arc::default();
    tokio::spawn(route(stdout, routes.clone()));
    let (frames, queued) = mpsc::unbounded_channel();
    tokio::spawn(write_frames(stdin, queued));
    let f = Arc::new(Floor {
        stdin: frames,
        routes,
        next_id: AtomicU64::new(1),
        next_session: AtomicU64::new(1),
    });
    let init = format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{CHILD_PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"floor-relay","version":"1"}}}}}}"#
    );
    let at = init
        .find(r#""id":0"#)
        .map(|i| (i + 5, i + 6))
        .context("the id")?;
    let answer = tokio::time::timeout(Duration::from_secs(10), f.forward(init.as_bytes(), at))
        .await
        .context("the fixture's initialize answer within 10 s")?
        .context("the fixture closed before answering initialize")?;
    if !answer.line.windows(9).any(|w| w == b"\"result\":") {
        anyhow::bail!(
            "the fixture refused initialize: {}",
            String::from_utf8_lossy(&answer.line)
        );
    }
    let initialized = b"{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";
    if !f.write(initialized.to_vec()) {
        anyhow::bail!("the fixture closed before notifications/initialized");
    }
    Ok(f)
}

/// Serves until killed.
pub(crate) fn serve(listen: &str) -> Result<()> {
    let fixture = std::env::var_os(FIXTURE_ENV).context("MCP_BENCH_FLOOR_FIXTURE unset")?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let f = start(Path::new(&fixture)).await?;
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .context("bind")?;
        let app = Router::new()
            .route("/mcp", post(handle).delete(|| async { StatusCode::OK }))
            .with_state(f);
        axum::serve(listener, app).await.context("serve")
    })
}

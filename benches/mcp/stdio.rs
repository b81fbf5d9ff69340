//! The physical floor: the harness talks newline-delimited JSON-RPC straight to the fixture's
//! stdin/stdout, with the same verification as over HTTP. Several requests may be in flight on
//! one child (a reader task routes answers by id), like a relay session.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context as _, Result};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use crate::msg;

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<Vec<u8>>>>>;

/// One fixture child spoken to over its pipes.
pub(crate) struct StdioChild {
    child: Mutex<Option<Child>>,
    stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pending: Pending,
}

impl StdioChild {
    /// Spawns `fixture` (own process group, killed on drop) and runs the `initialize` handshake.
    pub(crate) async fn start(fixture: &Path, protocol: &str) -> Result<Arc<Self>> {
        let mut child = Command::new(fixture)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .context("spawn fixture")?;
        if let Some(pid) = child.id() {
            crate::guard::track(pid);
        }
        let stdin = child.stdin.take().context("no stdin")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let pending: Pending = Arc::default();
        let routes = pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::with_capacity(256 * 1024, stdout);
            let mut line = Vec::new();
            while matches!(lines.read_until(b'\n', &mut line).await, Ok(n) if n > 0) {
                if let Some(id) = msg::line_id(&line) {
                    let tx = routes.lock().unwrap_or_else(|e| e.into_inner()).remove(&id);
                    if let Some(tx) = tx {
                        let _ = tx.send(std::mem::take(&mut line));
                    }
                }
                line.clear();
            }
        });
        let me = Arc::new(Self {
            child: Mutex::new(Some(child)),
            stdin: tokio::sync::Mutex::new(Some(stdin)),
            pending,
        });
        let answer = me.request(0, msg::initialize(protocol)).await?;
        msg::verify_init(false, &answer)?;
        me.write(msg::INITIALIZED.to_vec()).await?;
        Ok(me)
    }

    async fn write(&self, mut line: Vec<u8>) -> Result<()> {
        line.push(b'\n');
        let mut stdin = self.stdin.lock().await;
        let w = stdin.as_mut().context("stdin closed")?;
        w.write_all(&line).await?;
        Ok(())
    }

    async fn request(&self, id: u64, line: Vec<u8>) -> Result<Vec<u8>> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, tx);
        self.write(line).await?;
        rx.await.context("fixture closed stdout")
    }

    /// `tools/call` `echo` with `text`, verified.
    pub(crate) async fn echo(&self, id: u64, text: &str) -> Result<()> {
        let answer = self.request(id, msg::echo_call(id, text)).await?;
        msg::verify_echo(false, &answer, id, text)
    }

    /// Closes stdin (the fixture exits on EOF) and reaps the child.
    pub(crate) async fn close(&self) -> Result<()> {
        drop(self.stdin.lock().await.take());
        let child = self.child.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(mut child) = child {
            let pid = child.id();
            let status = child.wait().await?;
            if let Some(pid) = pid {
                crate::guard::untrack(pid);
            }
            if !status.success() {
                bail!("fixture exited with {status}");
            }
        }
        Ok(())
    }
}

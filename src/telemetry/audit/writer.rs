//! The audit writer thread: drains the queue, writes one line per record to stdout or a file,
//! flushes once per burst and rotates the file by size (`log` → `log.1` …, new files 0600).
//! Does not own the record's shape or its sanitising (`audit.rs`, `audit/sanitize.rs`).

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tokio::sync::mpsc;

use super::sanitize::to_line;
use super::Msg;

pub(super) enum Sink {
    Stdout(BufWriter<io::Stdout>),
    File(FileSink),
}

pub(super) struct FileSink {
    pub(super) path: PathBuf,
    pub(super) file: BufWriter<File>,
    /// Bytes in the current file (existing length at open plus what we wrote).
    pub(super) size: u64,
    pub(super) max: u64,
    pub(super) keep: usize,
}

pub(super) fn spawn_writer(rx: mpsc::Receiver<Msg>, sink: Sink) -> io::Result<()> {
    std::thread::Builder::new()
        .name("audit-writer".to_owned())
        .spawn(move || run_writer(rx, sink))
        .map(drop)
}

/// Writer loop: ends when every [`Audit`] handle is gone, after a final flush.
fn run_writer(mut rx: mpsc::Receiver<Msg>, mut sink: Sink) {
    let mut failing = false;
    while let Some(first) = rx.blocking_recv() {
        let mut next = Some(first);
        // Write everything already queued, then flush once.
        while let Some(msg) = next.take() {
            let result = match msg {
                Msg::Record(record) => sink.write_line(&to_line(&record)),
                Msg::Flush(done) => {
                    let r = sink.flush();
                    let _ = done.send(());
                    r
                }
            };
            report(&mut failing, result);
            next = rx.try_recv().ok();
        }
        report(&mut failing, sink.flush());
    }
    report(&mut failing, sink.flush());
}

/// Logs the first failure of a run of failures, and the recovery.
fn report(failing: &mut bool, result: io::Result<()>) {
    match result {
        Err(e) if !*failing => {
            *failing = true;
            tracing::error!(target: "mcp_relay::audit", error = %e, "audit write failed");
        }
        Ok(()) if *failing => {
            *failing = false;
            tracing::warn!(target: "mcp_relay::audit", "audit writes recovered");
        }
        _ => {}
    }
}

impl Sink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.write_all(line.as_bytes()),
            Sink::File(f) => f.write_line(line),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Sink::Stdout(out) => out.flush(),
            Sink::File(f) => f.file.flush(),
        }
    }
}

impl FileSink {
    fn write_line(&mut self, line: &str) -> io::Result<()> {
        let len = line.len() as u64;
        // A failed rotation still writes the line (to the file still open) and reports.
        let rotated = if self.size > 0 && self.size.saturating_add(len) > self.max {
            self.rotate()
        } else {
            Ok(())
        };
        self.file.write_all(line.as_bytes())?;
        self.size = self.size.saturating_add(len);
        rotated
    }

    /// `log.{keep-1}` → `log.{keep}` … `log` → `log.1`, then a fresh 0600 file.
    fn rotate(&mut self) -> io::Result<()> {
        self.file.flush()?;
        for i in (1..self.keep).rev() {
            rename_if_exists(&numbered(&self.path, i), &numbered(&self.path, i + 1))?;
        }
        if self.keep == 0 {
            std::fs::remove_file(&self.path)?;
        } else {
            std::fs::rename(&self.path, numbered(&self.path, 1))?;
        }
        let (file, size) = open_log(&self.path)?;
        self.file = file;
        self.size = size;
        Ok(())
    }
}

pub(super) fn numbered(path: &Path, n: usize) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn rename_if_exists(from: &Path, to: &Path) -> io::Result<()> {
    match std::fs::rename(from, to) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

/// Opens for append, creating with mode 0600 (set at creation, never chmod afterwards).
pub(super) fn open_log(path: &Path) -> io::Result<(BufWriter<File>, u64)> {
    let file =
        crate::os::fs::private_file(OpenOptions::new().create(true).append(true)).open(path)?;
    let size = file.metadata()?.len();
    Ok((BufWriter::new(file), size))
}

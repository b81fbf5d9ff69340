//! The relay under test: `mcp-relay serve` on 127.0.0.1:0 around the fixture child, its logs,
//! the addresses it logged, its children, and signals to it. Clients for its fronts are in
//! the sibling files (`http`, `sse`, `lines`, `ws`).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde_json::Value;

use super::{eventually, patience, tempdir, Client, FIXTURE, RELAY};

/// A running relay process; killed (SIGKILL) on drop unless stopped first.
pub struct Relay {
    pub child: Child,
    pub url: String,
    pub base: String,
    pub logs: Arc<Logs>,
}

/// A process's stderr as a thread has read it so far, and whether that thread reached its end.
#[derive(Default)]
pub struct Logs {
    text: Mutex<String>,
    ended: AtomicBool,
}

impl Logs {
    /// What was read so far.
    pub fn text(&self) -> String {
        self.text.lock().unwrap().clone()
    }

    /// Everything the process wrote: for a process that has exited, whose last lines may still
    /// be in the pipe when its exit is seen. Waits (at most the patience) for the end.
    pub fn to_end(&self) -> String {
        let deadline = std::time::Instant::now() + patience();
        while !self.ended.load(Ordering::Acquire) && std::time::Instant::now() < deadline {
            // The poll interval of a wait for the reader, not a guess at how long it takes.
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        self.text()
    }
}

impl Relay {
    /// `mcp-relay serve --listen 127.0.0.1:0 <relay_args> -- <fixture> <child_args>`.
    pub fn start(relay_args: &[&str], child_args: &[&str]) -> Relay {
        let mut args: Vec<&str> = vec!["serve", "--listen", "127.0.0.1:0"];
        args.extend_from_slice(relay_args);
        args.push("--");
        args.push(FIXTURE);
        args.extend_from_slice(child_args);
        Relay::start_raw(&args)
    }

    /// Like [`Relay::start`], with the fixture recording its stdin; returns the record path.
    pub fn start_recorded(relay_args: &[&str], child_args: &[&str]) -> (Relay, PathBuf) {
        let record = tempdir().join("stdin.log");
        let path = record.to_str().unwrap().to_owned();
        let mut args = vec!["--record", path.as_str()];
        args.extend_from_slice(child_args);
        (Relay::start(relay_args, &args), record)
    }

    pub fn start_raw(args: &[&str]) -> Relay {
        Relay::start_env(args, &[])
    }

    /// Like [`Relay::start_raw`], with extra environment variables for the relay only (the
    /// test process's own environment is never changed).
    pub fn start_env(args: &[&str], env: &[(&str, &str)]) -> Relay {
        let mut cmd = Command::new(RELAY);
        cmd.args(args).envs(env.iter().copied());
        Relay::start_command(cmd)
    }

    /// A relay started by `cmd` (the relay binary, or a launcher such as `prlimit` that execs
    /// it, so the pid is the relay's), with info logs read until it listens.
    pub fn start_command(mut cmd: Command) -> Relay {
        let mut child = cmd
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn relay");
        let (logs, url) = listening(&mut child);
        let base = url.rsplit_once('/').map(|(b, _)| b.to_owned()).unwrap();
        Relay {
            child,
            url,
            base,
            logs,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn client(&self) -> Client {
        Client::new(&self.url)
    }

    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// All its logs, once it has exited (see [`Logs::to_end`]).
    pub fn final_logs(&self) -> String {
        self.logs.to_end()
    }

    /// Processes whose parent is the relay (its children).
    pub fn children(&self) -> Vec<u32> {
        children_of(self.pid())
    }

    /// Sends SIGTERM and waits for the exit code.
    #[cfg(unix)]
    pub fn terminate(&mut self) -> Option<i32> {
        use std::time::{Duration, Instant};
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + patience();
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            // The poll interval of a wait for the exit, not a guess at how long it takes.
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub async fn health(&self) -> Value {
        reqwest::get(format!("{}/health", self.base))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The admin listener's base URL (`--admin-listen`), once its `listening
    /// transport="admin"` line is logged.
    pub async fn admin_base(&self) -> String {
        let mut base = None;
        eventually("the admin listener is logged", || {
            base = self.logs().lines().find_map(|l| {
                l.contains("transport=\"admin\"").then_some(())?;
                let url = l.split("url=").nth(1)?.split_whitespace().next()?;
                Some(url.trim_end_matches("/metrics").to_owned())
            });
            base.is_some()
        })
        .await;
        base.unwrap()
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `host:port` of the relay's TCP front (`--tcp-listen`), from its `url=tcp://` log line.
pub fn tcp_addr(relay: &Relay) -> String {
    let logs = relay.logs();
    let at = logs.find("url=tcp://").expect("no tcp listener logged") + 10;
    logs[at..].split_whitespace().next().unwrap().to_owned()
}

/// [`tcp_addr`], once the TCP front is logged.
pub async fn tcp_listening(relay: &Relay) -> String {
    eventually("tcp listening", || relay.logs().contains("url=tcp://")).await;
    tcp_addr(relay)
}

/// `ws://…/ws`: the relay's WebSocket front.
pub fn ws_url(relay: &Relay) -> String {
    relay.base.replacen("http://", "ws://", 1) + "/ws"
}

/// SIGHUP to the relay: reload its policy.
#[cfg(unix)]
pub fn hangup(relay: &Relay) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(relay.pid() as i32),
        nix::sys::signal::Signal::SIGHUP,
    )
    .unwrap();
}

/// Pids whose parent is `pid`, from /proc (Linux; empty elsewhere).
pub fn children_of(pid: u32) -> Vec<u32> {
    let mut out = Vec::new();
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return out;
    };
    for entry in dir.flatten() {
        let Ok(p) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // Fields after the command (which may hold spaces) start after the last ')'.
        let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(1).and_then(|f| f.parse::<u32>().ok()) == Some(pid) {
            out.push(p);
        }
    }
    out
}

/// True while a process exists and is not a zombie.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start())
                .unwrap_or("");
            !state.starts_with('Z')
        }
        Err(_) => false,
    }
}

/// Collects a relay's stderr (its logs) on a thread and waits for the first
/// `url=http(s)://…` it logs: the (logs, url) of a relay that is listening.
pub fn listening(child: &mut Child) -> (Arc<Logs>, String) {
    let stderr = child.stderr.take().expect("stderr piped");
    let logs = Arc::new(Logs::default());
    let (tx, rx) = std::sync::mpsc::channel();
    let sink = logs.clone();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let at = line.find("url=http://");
            if let Some(i) = at.or_else(|| line.find("url=https://")) {
                if let Some(t) = tx.take() {
                    let url = line[i + 4..].split_whitespace().next().unwrap_or("");
                    let _ = t.send(url.to_owned());
                }
            }
            let mut l = sink.text.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
        sink.ended.store(true, Ordering::Release);
    });
    let url = rx
        .recv_timeout(patience())
        .unwrap_or_else(|_| panic!("relay did not start: {}", logs.text()));
    (logs, url)
}

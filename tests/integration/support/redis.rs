//! A throwaway Redis server for the fleet's shared limits: Debian's `redis-server` on a free
//! loopback port, no persistence (`--save '' --appendonly no`), its directory a temporary one;
//! stopped, paused (SIGSTOP/SIGCONT), killed and restarted by pid, never by name.
//!
//! Not installed: the test prints a `skip - …` line and does not run, unless `CI=true`, where
//! a missing redis-server fails the test (CI installs it: `.ci/run`).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::fleet::free_ports;
use super::{patience, tempdir};

/// A running redis-server; killed on drop.
pub struct Redis {
    child: Option<Child>,
    bin: PathBuf,
    dir: PathBuf,
    pub port: u16,
    /// `redis://127.0.0.1:PORT/0`.
    pub url: String,
}

impl Redis {
    /// Starts a server for `test`; `None` (after a `skip - test: …` line) when redis-server
    /// is not installed and `CI` is not `true`.
    pub fn start(test: &str) -> Option<Redis> {
        let Some(bin) = binary() else {
            let why = "redis-server is not installed (not on PATH nor /usr/bin/redis-server)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {why}; CI installs it (.ci/run)"
            );
            println!("skip - {test}: {why}");
            return None;
        };
        let port = free_ports(1)[0];
        let mut redis = Redis {
            child: None,
            bin,
            dir: tempdir(),
            port,
            url: format!("redis://127.0.0.1:{port}/0"),
        };
        redis.restart();
        Some(redis)
    }

    /// The server's pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is running").id()
    }

    /// Sends `signal` (`-STOP`, `-CONT`, `-KILL`) to the server.
    pub fn signal(&self, signal: &str) {
        let ok = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(ok.success(), "kill {signal} redis-server");
    }

    /// Kills the server (SIGKILL) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server (again) on its port, empty, and waits until it answers PING.
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + patience();
        while !self.pings() {
            assert!(
                Instant::now() < deadline,
                "redis-server never answered PING"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the server answers `PING` now.
    pub fn pings(&self) -> bool {
        self.command("PING").is_some_and(|a| a.starts_with("+PONG"))
    }

    /// One inline command and the first reply line (`None`: no answer within a second).
    pub fn command(&self, line: &str) -> Option<String> {
        let addr = format!("127.0.0.1:{}", self.port).parse().ok()?;
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(1))).ok()?;
        s.write_all(format!("{line}\r\n").as_bytes()).ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }
}

/// A Sentinel (`redis-server --sentinel`) watching one [`Redis`] as `mymaster`; killed on drop.
pub struct Sentinel {
    child: Child,
    /// `redis+sentinel://127.0.0.1:PORT/mymaster`.
    pub url: String,
}

impl Redis {
    /// A Sentinel for this server, answering once it names the master.
    pub fn sentinel(&self) -> Sentinel {
        let port = free_ports(1)[0];
        let conf = self.dir.join("sentinel.conf");
        std::fs::write(
            &conf,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {}\nsentinel monitor mymaster 127.0.0.1 {} 1\n",
                self.dir.display(),
                self.port
            ),
        )
        .unwrap();
        let child = Command::new(&self.bin)
            .arg(&conf)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server --sentinel");
        let sentinel = Sentinel {
            child,
            url: format!("redis+sentinel://127.0.0.1:{port}/mymaster"),
        };
        let probe = Redis {
            child: None,
            bin: self.bin.clone(),
            dir: self.dir.clone(),
            port,
            url: String::new(),
        };
        let deadline = Instant::now() + patience();
        while !probe
            .command("SENTINEL get-master-addr-by-name mymaster")
            .is_some_and(|a| a.contains(&self.port.to_string()))
        {
            assert!(
                Instant::now() < deadline,
                "the sentinel never named the master"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        sentinel
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn binary() -> Option<PathBuf> {
    which_on_path("redis-server").or_else(|| {
        let p = PathBuf::from("/usr/bin/redis-server");
        p.exists().then_some(p)
    })
}

fn which_on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    })
}

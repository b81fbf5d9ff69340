//! A throwaway `redis-server` on a free loopback port (no persistence), stopped by pid on
//! drop. Kept small; the shared harness's Redis helper replaces it once there. Not installed:
//! the test prints a `skip - …` line, unless `CI=true` (CI installs it).

use std::process::{Child, Command, Stdio};

use crate::support::fleet::free_ports;
use crate::support::patience;

pub struct Redis {
    child: Child,
    /// `redis://127.0.0.1:PORT`.
    pub url: String,
}

impl Redis {
    pub fn start(test: &str) -> Option<Redis> {
        let bin = ["/usr/bin/redis-server", "/usr/local/bin/redis-server"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists());
        let Some(bin) = bin else {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: redis-server is not installed; CI installs it"
            );
            println!("skip - {test}: redis-server is not installed");
            return None;
        };
        let port = free_ports(1)[0];
        let child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + patience();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server did not start"
            );
            // The poll interval of a wait for the port, not a guess at how long it takes.
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Some(Redis {
            child,
            url: format!("redis://127.0.0.1:{port}"),
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

//! A throwaway PostgreSQL server for the tests that keep the authorization server's state in
//! PostgreSQL: Debian's binaries (`initdb`, `postgres`, `createdb`, found on PATH, then under
//! `/usr/lib/postgresql/*/bin`), a cluster initialised in a temporary directory, the server on
//! a free loopback port (its socket in that directory, no service started), one database,
//! and a `postgres://` URL for it. Killed by pid and its directory removed on drop.
//!
//! As root, PostgreSQL refuses to run: the directory is then given to the `postgres` user and
//! every command runs as that user through `setpriv` (which execs, so the pid is the server's).
//!
//! Not installed: the test prints a `skip - …` line and does not run, unless `CI=true`, where
//! a missing PostgreSQL fails the test (CI installs it: `.ci/run`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::{patience, tempdir};

/// A running PostgreSQL server with one database; stopped on drop.
pub struct Postgres {
    child: Child,
    dir: PathBuf,
    /// `postgres://postgres@127.0.0.1:PORT/DB`.
    pub url: String,
}

impl Postgres {
    /// Starts a server for `test`; `None` (after a `skip - test: …` line) when PostgreSQL is
    /// not installed and `CI` is not `true`.
    pub fn start(test: &str) -> Option<Postgres> {
        let Some(bin) = binaries() else {
            let why = "PostgreSQL is not installed (initdb and postgres not on PATH nor under /usr/lib/postgresql/*/bin)";
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "{test}: {why}; CI installs it (.ci/run)"
            );
            println!("skip - {test}: {why}");
            return None;
        };
        let dir = tempdir().join("postgres");
        std::fs::create_dir_all(dir.join("sock")).unwrap();
        if is_root() {
            let owned = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&dir)
                .status()
                .unwrap();
            assert!(owned.success(), "chown {} to postgres", dir.display());
        }
        let data = dir.join("data");
        let out = as_owner(&bin.join("initdb"), &dir)
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data)
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {out:?}");
        let port = free_port();
        let log = std::fs::File::create(dir.join("postgres.log")).unwrap();
        let child = as_owner(&bin.join("postgres"), &dir)
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.join("sock"))
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        let mut pg = Postgres {
            child,
            dir,
            url: String::new(),
        };
        pg.create_database(&bin, port, "relay");
        pg.url = format!("postgres://postgres@127.0.0.1:{port}/relay");
        Some(pg)
    }

    /// Runs `createdb` until the server accepts it (it refuses while starting up).
    fn create_database(&mut self, bin: &Path, port: u16, name: &str) {
        let deadline = Instant::now() + patience();
        loop {
            let out = as_owner(&bin.join("createdb"), &self.dir)
                .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .arg(name)
                .output()
                .unwrap();
            if out.status.success() {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("postgres exited ({status}): {}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "postgres not ready: {}; log: {}",
                String::from_utf8_lossy(&out.stderr),
                self.log()
            );
            // The poll interval of a wait for the server to accept connections.
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The server's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGQUIT: immediate shutdown, the server ends its own backends; SIGKILL if it lingers.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGQUIT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            // The poll interval of a wait for the exit.
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The directory holding `initdb`, `postgres` and `createdb`: `initdb`'s on PATH (links
/// followed) first, then the newest Debian version.
fn binaries() -> Option<PathBuf> {
    let complete = |d: &Path| {
        ["initdb", "postgres", "createdb"]
            .iter()
            .all(|b| d.join(b).is_file())
    };
    if let Some(dir) = which::which("initdb")
        .ok()
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| complete(d))
    {
        return Some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            Some((v, e.path().join("bin")))
        })
        .filter(|(_, d)| complete(d))
        .collect();
    versions.sort();
    versions.pop().map(|(_, d)| d)
}

/// Whether we run as root: a file we create belongs to uid 0.
fn is_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(tempdir()).is_ok_and(|m| m.uid() == 0)
}

/// `program`, run in `dir` as the `postgres` user when we are root, else as ourselves.
fn as_owner(program: &Path, dir: &Path) -> Command {
    let mut cmd = if is_root() {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--",
        ]);
        c.arg(program);
        c
    } else {
        Command::new(program)
    };
    cmd.current_dir(dir).env_remove("PGDATA");
    cmd
}

/// A loopback port nobody listens on now.
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

//! The systems under test: how each one is started on loopback around the same fixture, its
//! MCP endpoint, the bearer token it wants, and its version (what each `Kind` is, its name
//! and its traits: `kind.rs`).
//! The multi-server relay's config file is written by `servers.rs`; the authenticated relays'
//! credentials come from `auth.rs` (`relay-jwt`) and `oauth.rs` (`relay-oauth`).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _, Result};

use crate::guard::Proc;
use crate::http::Endpoint;
use crate::msg::ToolCall;
use crate::servers::{self, ConfigDir};
use crate::{agentgateway, auth, console, fleet, oauth};

pub(crate) use crate::kind::{Kind, ALL};

/// Paths the systems need.
#[derive(Clone, Debug)]
pub(crate) struct Paths {
    pub(crate) root: PathBuf,
    pub(crate) fixture: PathBuf,
    pub(crate) relay: PathBuf,
}

impl Paths {
    fn relay(&self) -> PathBuf {
        self.relay.clone()
    }
    fn npm_bin(&self, name: &str) -> PathBuf {
        self.root.join("bench/node_modules/.bin").join(name)
    }
    fn venv_bin(&self, name: &str) -> PathBuf {
        self.root.join("bench/.venv/bin").join(name)
    }
}

/// A started HTTP system: its process tree (stopped on drop), endpoint, and the config file
/// it reads, if any (removed after the process has stopped: fields drop in order).
pub(crate) struct Running {
    pub(crate) proc: Proc,
    pub(crate) ep: Endpoint,
    /// The other processes of a fleet system (the home replica, the store), stopped after.
    _others: Vec<Proc>,
    _streams: Option<console::Streams>, // `relay-console`'s open console streams
    _config: Option<ConfigDir>,
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// How a relay is started: one child per session (the default), or `--session-mode shared`
/// with one supervised child for every session (workloads (d) shared and (e)).
/// The spares `relay-spare` keeps started.
const SPARE_CHILDREN: &str = "2";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Default,
    Shared,
}

/// The command line that starts `kind` on `port` (None for the direct stdio floor); the
/// multi-server relay reads `config` (listen address and servers).
fn command(
    kind: Kind,
    mode: Mode,
    p: &Paths,
    port: u16,
    config: Option<&ConfigDir>,
    plan: &fleet::Plan,
) -> Result<Option<Command>> {
    let fx = p.fixture.to_str().context("fixture path not UTF-8")?;
    let listen = format!("127.0.0.1:{port}");
    let port_s = port.to_string();
    let cmd = match kind {
        Kind::FloorStdio => return Ok(None),
        Kind::RelaySse
        | Kind::RelayJson
        | Kind::RelayModern
        | Kind::RelayJwt
        | Kind::RelayOauth
        | Kind::RelayNode
        | Kind::RelayForwarded
        | Kind::RelayLimits
        | Kind::RelaySharedLimits
        | Kind::RelayConsole
        | Kind::RelaySpare => {
            let mut c = Command::new(p.relay());
            c.args(["serve", "--listen", &listen]);
            if let Some(admin) = plan.admin {
                c.args(console::args(admin));
            }
            if kind == Kind::RelayJson {
                c.args(["--response-mode", "json"]);
            }
            if kind.is_jwt() {
                c.arg("--jwt-secret")
                    .arg(format!("env:{}", auth::JWT_SECRET_ENV));
                c.args(["--jwt-issuer", auth::JWT_ISSUER]);
            }
            match kind {
                Kind::RelayNode => {
                    c.args(["--node", "r0"]);
                }
                Kind::RelayForwarded => {
                    c.args(plan.entry_args());
                }
                Kind::RelaySpare => {
                    c.args(["--spare-children", SPARE_CHILDREN]);
                }
                _ => {}
            }
            if kind.is_auth() {
                let file = config.context("an authenticated relay needs its config")?;
                c.arg("--config").arg(file.file());
                c.args(["--max-sessions-per-principal", auth::PRINCIPAL_CAP]);
            }
            if mode == Mode::Shared {
                c.args(["--session-mode", "shared", "--children", "1"]);
            }
            c.args(["--", fx]);
            c
        }
        Kind::RelayAggregate | Kind::RelayServer => {
            let mut c = Command::new(p.relay());
            c.arg("serve").arg("--config");
            c.arg(
                config
                    .context("the multi-server relay needs its config")?
                    .file(),
            );
            c
        }
        Kind::FloorHttp => {
            let mut c = Command::new(std::env::current_exe()?);
            c.env(crate::floor::ROLE_ENV, listen);
            c
        }
        Kind::FloorRelay => {
            let mut c = Command::new(std::env::current_exe()?);
            c.env(crate::floor_relay::ROLE_ENV, listen);
            c.env(crate::floor_relay::FIXTURE_ENV, fx);
            c
        }
        Kind::Supergateway => {
            let mut c = Command::new(p.npm_bin("supergateway"));
            c.args([
                "--stdio",
                fx,
                "--outputTransport",
                "streamableHttp",
                "--stateful",
            ]);
            c.args(["--port", &port_s, "--logLevel", "none"]);
            c
        }
        Kind::McpProxyNode => {
            let mut c = Command::new(p.npm_bin("mcp-proxy"));
            c.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port_s,
                "--server",
                "stream",
                "--",
                fx,
            ]);
            c
        }
        Kind::Agentgateway => agentgateway::command(config)?,
        Kind::McpProxyPy => {
            let mut c = Command::new(p.venv_bin("mcp-proxy"));
            c.args([
                "--host",
                "127.0.0.1",
                "--port",
                &port_s,
                "--log-level",
                "WARNING",
                fx,
            ]);
            c
        }
    };
    Ok(Some(cmd))
}

/// What an authenticated relay needs at start: `relay-jwt`'s secret (in the relay's
/// environment only) and the token minted with it, or `relay-oauth`'s local user's login,
/// used once the relay listens.
pub(crate) enum Credential {
    None,
    Jwt { secret: String, token: String },
    OAuth(oauth::Login),
}

/// The config file (the multi-server relay's, the authenticated relays') and the credential
/// of `kind`
/// on `port`.
fn prepare(
    kind: Kind,
    mode: Mode,
    p: &Paths,
    port: u16,
    plan: &fleet::Plan,
) -> Result<(Option<ConfigDir>, Credential)> {
    let listen = format!("127.0.0.1:{port}");
    Ok(match kind {
        Kind::RelayAggregate | Kind::RelayServer => (
            Some(servers::write_config(&p.fixture, mode, &listen, port)?),
            Credential::None,
        ),
        Kind::RelayOauth => {
            let (dir, login) = oauth::write_config(port)?;
            (Some(dir), Credential::OAuth(login))
        }
        Kind::RelayJwt | Kind::RelayLimits | Kind::RelaySharedLimits => {
            // The audience is the relay's default resource: `http://<listen>/mcp`.
            let secret = auth::jwt_secret();
            let token = auth::mint_jwt(&p.relay, &secret, &format!("http://{listen}/mcp"))?;
            let text = match kind {
                Kind::RelayJwt => auth::limits_section(),
                _ => plan.limits_text(),
            };
            let dir = servers::write_dir(port, &text)?;
            (Some(dir), Credential::Jwt { secret, token })
        }
        Kind::Agentgateway => (
            Some(agentgateway::write_config(&p.fixture, port)?),
            Credential::None,
        ),
        _ => (None, Credential::None),
    })
}

/// The last line of a log (at most 300 characters), to say why a system stopped.
fn last_line(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let line = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    line.trim().chars().take(300).collect()
}

/// Waits until `addr` accepts connections (30 s at most), failing with the last line of
/// `log` if the process exits.
pub(crate) async fn listening(
    kind: Kind,
    proc: &mut Proc,
    addr: SocketAddr,
    log: &Path,
) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        if let Some(status) = proc.exited() {
            let hint = match kind {
                Kind::RelayOauth => {
                    " (unsupported if the relay under test predates the built-in authorization \
                     server: it refuses `[oauth_server]`)"
                }
                _ => "",
            };
            bail!(
                "{} exited during startup ({status}): {:?}{hint}",
                kind.name(),
                last_line(log)
            );
        }
        if Instant::now() > deadline {
            bail!("{} did not listen within 30 s", kind.name());
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(())
}

/// Starts `kind` (stderr to `logs/NAME.log`, `logs/NAME-shared.log` in shared mode), waits
/// until its port accepts connections, and for `relay-oauth` gets its token. `Mode::Shared`
/// is for the relay only.
pub(crate) async fn start(
    kind: Kind,
    mode: Mode,
    p: &Paths,
    logs: &Path,
) -> Result<Option<Running>> {
    if mode == Mode::Shared && !kind.is_relay() {
        bail!("{} has no shared mode to select", kind.name());
    }
    let port = free_port()?;
    let plan = fleet::Plan::new(kind)?;
    let (config, credential) = prepare(kind, mode, p, port, &plan)?;
    // The fleet's other processes first: the store, or the home replica.
    let (others, home) = plan.start(p, logs).await?;
    let Some(mut cmd) = command(kind, mode, p, port, config.as_ref(), &plan)? else {
        return Ok(None);
    };
    if let Credential::Jwt { secret, .. } = &credential {
        cmd.env(auth::JWT_SECRET_ENV, secret);
    }
    std::fs::create_dir_all(logs)?;
    let suffix = if mode == Mode::Shared { "-shared" } else { "" };
    let log_path = logs.join(format!("{}{suffix}.log", kind.name()));
    let log = std::fs::File::create(&log_path)?;
    cmd.stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .process_group(0);
    let child = cmd
        .spawn()
        .with_context(|| format!("spawn {}", kind.name()))?;
    let mut proc = Proc::new(child);
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    listening(kind, &mut proc, addr, &log_path).await?;
    let bearer = match credential {
        Credential::None => None,
        Credential::Jwt { token, .. } => Some(auth::bearer(&token)?),
        Credential::OAuth(login) => {
            let token = oauth::token(addr, &login)
                .await
                .context("relay-oauth: a token from the relay's authorization server")?;
            Some(auth::bearer(&token)?)
        }
    };
    let (path, tool) = kind.endpoint();
    let ep = Endpoint {
        addr,
        path: path.to_owned(),
        call: if kind.is_modern() {
            ToolCall::modern(tool)
        } else {
            ToolCall::new(tool)
        },
        modern: kind.is_modern(),
        bearer,
        home,
    };
    Ok(Some(Running {
        proc,
        ep,
        _others: others,
        _streams: console::open(plan.admin).await?,
        _config: config,
    }))
}

/// A version string for the report.
pub(crate) fn version(kind: Kind, p: &Paths) -> String {
    let npm = |pkg: &str| {
        let f = p
            .root
            .join("bench/node_modules")
            .join(pkg)
            .join("package.json");
        std::fs::read_to_string(f)
            .ok()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(&s).ok())
            .and_then(|v| v.get("version")?.as_str().map(str::to_owned))
            .unwrap_or_else(|| "not installed".to_owned())
    };
    match kind {
        Kind::RelaySse | Kind::RelayJson => format!("mcp-relay {}", env!("CARGO_PKG_VERSION")),
        Kind::RelayModern => format!(
            "mcp-relay {}, a 2026-07-28 client (stateless `tools/call`), the legacy fixture \
             behind it (translated)",
            env!("CARGO_PKG_VERSION")
        ),
        Kind::RelayJwt => format!(
            "mcp-relay {}, `--jwt-secret` (HS256): a token from `token jwt` on every request",
            env!("CARGO_PKG_VERSION")
        ),
        Kind::RelayOauth => format!(
            "mcp-relay {}, `[oauth_server]`: the relay's own ES256 access token on every \
             request (registration, login, consent and code exchange once per start)",
            env!("CARGO_PKG_VERSION")
        ),
        Kind::RelayAggregate | Kind::RelayServer => {
            let (path, tool) = kind.endpoint();
            format!(
                "mcp-relay {}, `serve --config` with servers `a` and `b` (both the fixture); \
                 client on `{path}`, tool `{tool}`",
                env!("CARGO_PKG_VERSION")
            )
        }
        Kind::RelayNode | Kind::RelayForwarded | Kind::RelayLimits | Kind::RelaySharedLimits => {
            fleet::version(kind)
        }
        Kind::RelayConsole => console::version(),
        Kind::RelaySpare => format!(
            "mcp-relay {}, `--spare-children {SPARE_CHILDREN}`: per-session children started \
             ahead of their sessions",
            env!("CARGO_PKG_VERSION")
        ),
        Kind::FloorStdio => "harness ↔ fixture pipes".to_owned(),
        Kind::FloorHttp => "axum 0.8 (same HTTP stack as the relay), in-bench".to_owned(),
        Kind::FloorRelay => "axum 0.8, one shared fixture child over pipes, ids rewritten by a \
                             counter, JSON answers, in-bench"
            .to_owned(),
        Kind::Supergateway => format!("supergateway {} (npm)", npm("supergateway")),
        Kind::McpProxyNode => format!("mcp-proxy {} (npm, punkpeye)", npm("mcp-proxy")),
        Kind::Agentgateway => agentgateway::version(),
        Kind::McpProxyPy => {
            let out = Command::new(p.venv_bin("mcp-proxy"))
                .arg("--version")
                .output();
            match out {
                Ok(o) => format!(
                    "{} (PyPI, sparfenyuk)",
                    String::from_utf8_lossy(&o.stdout).trim()
                ),
                Err(_) => "mcp-proxy (PyPI): not installed".to_owned(),
            }
        }
    }
}

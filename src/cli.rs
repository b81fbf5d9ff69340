//! The command line: the subcommands and their clap types (what `--help` prints).
//!
//! Only parsing lives here. The flags of `serve` and `stdio` are the command-line form of the
//! serve configuration (`config/args.rs`), validated by `config::load`; `connect`'s flags are
//! in `bridge.rs`, `token`'s in `token.rs`, beside the commands that use them.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::args::ServeArgs;
use crate::telemetry::LogFormat;

/// Exit code of a usage or config problem (EX_USAGE).
pub(crate) const EX_USAGE: u8 = 64;

/// The command line, with the `[serve]` section of `serve --config FILE` spliced in. A usage
/// problem is printed and its exit code returned: 64, or 0 for `--help` and `--version`.
pub(crate) fn parse(argv: Vec<OsString>) -> Result<Cli, u8> {
    let argv = crate::config::file::expand_argv(argv).map_err(|errors| {
        for e in errors {
            eprintln!("mcp-relay: {e}");
        }
        EX_USAGE
    })?;
    Cli::try_parse_from(argv).map_err(|e| {
        let _ = e.print();
        if e.use_stderr() {
            EX_USAGE
        } else {
            0
        }
    })
}

/// Put MCP servers on the network, safely.
#[derive(Debug, Parser)]
#[command(name = "mcp-relay", version, about, long_about = None, args_override_self = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,mcp_relay=debug`); RUST_LOG wins.
    #[arg(long, global = true, default_value = "info")]
    pub log_level: String,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a stdio MCP server command and serve it over Streamable HTTP (plus WebSocket,
    /// legacy SSE and, with --tcp-listen, TCP).
    Serve(ServeArgs),
    /// Run a stdio MCP server command behind the relay's core, on the relay's own stdin/stdout
    /// (one session; for local hosts and SSH forced commands). Takes `serve`'s child, session
    /// and limit flags; its listener flags are ignored.
    Stdio(ServeArgs),
    /// The bridge for stdio-only hosts: MCP on stdin/stdout, relayed to a remote server over
    /// Streamable HTTP (or legacy SSE), WebSocket or TCP, with reconnects and OAuth.
    Connect(Box<crate::bridge::ConnectArgs>),
    /// Certificate helpers for `serve --tls-cert/--tls-key`.
    #[command(subcommand)]
    Cert(CertCommand),
    /// Validate a config file exactly as `serve --config FILE` would, report every problem,
    /// and exit 64 (problems) or 0.
    CheckConfig {
        /// The TOML file.
        file: std::path::PathBuf,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Credentials: API keys (`token key`), HMAC secrets (`token secret`), development
    /// JWTs (`token jwt`) and password hashes (`token password-hash`).
    #[command(subcommand)]
    Token(crate::token::TokenCommand),
    /// The built-in authorization server's state: `oauth clients list|revoke`, `oauth grants
    /// list|revoke`, `oauth users list|disable|enable` (with `--config FILE`, the relay's).
    #[command(name = "oauth")]
    OAuth(crate::oauth_cli::OAuthArgs),
    /// A small stdio MCP server to try the relay with: `time`, `echo` and a scratch key/value
    /// store (`kv_set`, `kv_get`, `kv_list`, `kv_delete`, in memory). Run it behind the
    /// relay: `mcp-relay serve -- mcp-relay demo-server`.
    DemoServer,
}

#[derive(Debug, Subcommand)]
pub(crate) enum CertCommand {
    /// Write a self-signed development certificate and key (`cert.pem`, `key.pem` with mode
    /// 0600) into a directory. Existing files are never overwritten.
    Generate(CertGenerateArgs),
}

#[derive(Debug, Args)]
pub(crate) struct CertGenerateArgs {
    /// Directory to write `cert.pem` and `key.pem` into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub out_dir: PathBuf,
    /// Subject alternative name, DNS name or IP address (repeatable). Default: localhost,
    /// 127.0.0.1 and ::1.
    #[arg(long = "san", value_name = "NAME")]
    pub sans: Vec<String>,
    /// Days the certificate is valid (1-3650).
    #[arg(long, default_value_t = 90)]
    pub days: u32,
}

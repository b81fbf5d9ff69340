//! The `mcp-relay` binary: parse, set up logging, dispatch, exit code.
//! Exit codes: 0 after a clean drain, 1 runtime failure, 64 bad usage or config.

use std::process::ExitCode;

use clap::Parser;
use mcp_relay::cli::{CertCommand, Cli, Command};
use mcp_relay::upstream::stdio::{exec_shim, EXEC_SHIM};
use mcp_relay::{app, bridge, cert, config, telemetry, token};

const EX_USAGE: u8 = 64;

fn main() -> ExitCode {
    if std::env::args_os().nth(1).as_deref() == Some(EXEC_SHIM.as_ref()) {
        return exec_shim(std::env::args_os().skip(2));
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { EX_USAGE } else { 0 });
        }
    };
    let log_file = match &cli.command {
        Command::Connect(args) => args.log_file.clone(),
        _ => None,
    };
    telemetry::init(cli.log_format, &cli.log_level, log_file.as_deref());
    match cli.command {
        Command::Serve(args) => run(args.into_config(), |cfg| Box::pin(app::serve(cfg))),
        Command::Stdio(args) => run(args.into_config(), |cfg| Box::pin(app::stdio(cfg))),
        Command::Connect(args) => run(bridge::config(&args), |cfg| Box::pin(app::stdio(cfg))),
        Command::Cert(CertCommand::Generate(args)) => ExitCode::from(cert::generate_command(&args)),
        Command::Token(cmd) => ExitCode::from(token::command(cmd)),
    }
}

type Job = std::pin::Pin<Box<dyn std::future::Future<Output = anyhow::Result<()>>>>;

/// Validated flags (exit 64 on a usage error) → `job` on a fresh runtime.
type Checked = Result<config::ServeConfig, Vec<String>>;

fn run(checked: Checked, job: impl FnOnce(config::ServeConfig) -> Job) -> ExitCode {
    let cfg = match checked {
        Ok(cfg) => cfg,
        Err(errors) => {
            for e in errors {
                eprintln!("mcp-relay: {e}");
            }
            return ExitCode::from(EX_USAGE);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("mcp-relay: cannot start runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(job(cfg)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mcp-relay: {e:#}");
            ExitCode::FAILURE
        }
    }
}

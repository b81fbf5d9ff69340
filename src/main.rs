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
    // Usage problems exit 64; `--help` and `--version` exit 0.
    let parsed = config::file::expand_argv(std::env::args_os().collect())
        .map_err(|e| {
            eprintln!("mcp-relay: {e}");
            EX_USAGE
        })
        .and_then(|argv| {
            Cli::try_parse_from(argv).map_err(|e| {
                let _ = e.print();
                if e.use_stderr() {
                    EX_USAGE
                } else {
                    0
                }
            })
        });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let log_file = match &cli.command {
        Command::Connect(args) => args.log_file.clone(),
        _ => None,
    };
    telemetry::init(cli.log_format, &cli.log_level, log_file.as_deref());
    match cli.command {
        Command::Serve(args) => app::run(args.into_config(), |cfg| Box::pin(app::serve(cfg))),
        Command::Stdio(args) => app::run(args.into_config(), |cfg| Box::pin(app::stdio(cfg))),
        Command::Connect(args) => app::run(bridge::config(&args), |cfg| Box::pin(app::stdio(cfg))),
        Command::Cert(CertCommand::Generate(args)) => ExitCode::from(cert::generate_command(&args)),
        Command::Token(cmd) => ExitCode::from(token::command(cmd)),
        Command::CheckConfig { file } => ExitCode::from(config::file::check(&file)),
        Command::DemoServer => ExitCode::from(mcp_relay::demo::run()),
        Command::Schema => {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{:#}", config::file::schema());
            ExitCode::SUCCESS
        }
    }
}

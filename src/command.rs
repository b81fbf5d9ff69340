//! The commands: parse the command line, set up logging, run the chosen command, and its exit
//! code (0 after a clean drain, 1 runtime failure, 64 bad usage or config; `oauth` adds 69
//! and 70 for its database). `main.rs` only calls [`main`].

use std::process::ExitCode;

use crate::cli::{self, CertCommand, Command};
use crate::{app, bridge, cert, config, telemetry, token};

/// The whole program: what `mcp-relay` does with its command line.
pub fn main() -> ExitCode {
    let argv: Vec<_> = std::env::args_os().collect();
    let cli = match cli::parse(argv.clone()) {
        Ok(cli) => cli,
        Err(code) => return ExitCode::from(code),
    };
    let log_file = match &cli.command {
        Command::Connect(args) => args.log_file.clone(),
        _ => None,
    };
    telemetry::init(cli.log_format, &cli.log_level, log_file.as_deref());
    // `serve` and `stdio` load their configuration from the command line, as reload and
    // `check-config` do.
    let load = || config::load(argv, &crate::secret::process_env);
    match cli.command {
        Command::Serve(_) => app::run(load(), |cfg| Box::pin(app::serve(cfg))),
        Command::Stdio(_) => app::run(load(), |cfg| Box::pin(app::stdio(cfg))),
        Command::Connect(args) => app::run(bridge::config(&args), |cfg| Box::pin(app::stdio(cfg))),
        Command::Cert(CertCommand::Generate(args)) => ExitCode::from(cert::generate_command(&args)),
        Command::Token(cmd) => ExitCode::from(token::command(cmd)),
        Command::OAuth(args) => ExitCode::from(crate::oauth_cli::command(args)),
        Command::CheckConfig { file } => ExitCode::from(config::file::check(&file)),
        Command::DemoServer => ExitCode::from(crate::demo::run()),
        Command::Schema => {
            use std::io::Write;
            let _ = writeln!(std::io::stdout(), "{:#}", config::file::schema());
            ExitCode::SUCCESS
        }
    }
}

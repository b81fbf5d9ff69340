//! Logging setup: `tracing` to stderr, text or JSON, filtered by `RUST_LOG` or `--log-level`.
//! Child stderr arrives under the target `mcp_relay::child_stderr`. Optional OpenTelemetry
//! trace export is in `telemetry/otel.rs`.

pub(crate) mod audit;
pub(crate) mod live;
pub(crate) mod metrics;
pub(crate) mod otel;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::Mutex;

use tracing_subscriber::fmt::writer::BoxMakeWriter;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    Text,
    Json,
}

/// Installs the global subscriber (once, at startup).
/// `file` (appended to, created 0600) replaces stderr: `connect --log-file`. A file that
/// cannot be opened falls back to stderr with a warning.
pub(crate) fn init(format: LogFormat, level: &str, file: Option<&Path>) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let opened = file.map(|f| {
        crate::os::fs::private_file(std::fs::OpenOptions::new().create(true).append(true)).open(f)
    });
    let (writer, ansi) = match opened {
        Some(Ok(f)) => (BoxMakeWriter::new(Mutex::new(f)), false),
        _ => (
            BoxMakeWriter::new(std::io::stderr),
            std::io::stderr().is_terminal(),
        ),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.with_ansi(ansi).try_init(),
    };
    if let (Some(f), Some(Err(e))) = (file, file.map(std::fs::metadata)) {
        tracing::warn!(file = %f.display(), error = %e, "log file not usable; logging to stderr");
    }
}

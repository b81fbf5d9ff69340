//! Requests from the operator: shut down, and reload the configuration.
//!
//! - Native (Unix, macOS included): SIGTERM or SIGINT shut down; SIGHUP reloads (`app.rs`:
//!   the policy, `tls.rs`: the certificate).
//! - Portable (Windows, or `--features portable`): Ctrl-C shuts down (`tokio::signal::ctrl_c`:
//!   SIGINT on Unix, Ctrl-C in a Windows console); there is no reload request (the
//!   certificate files are still watched for changes by `tls.rs`), so [`Hangup::recv`] never
//!   returns.

/// Waits for the first shutdown request; returns its name for the log.
pub(crate) async fn shutdown() -> &'static str {
    imp::shutdown().await
}

/// Reload requests (SIGHUP), from the moment it is created.
#[derive(Debug)]
pub(crate) struct Hangup(imp::Hangup);

impl Hangup {
    pub(crate) fn new() -> Hangup {
        Hangup(imp::Hangup::new())
    }

    /// Waits for the next request; pending forever where there are none.
    pub(crate) async fn recv(&mut self) {
        self.0.recv().await;
    }
}

#[cfg(all(unix, not(feature = "portable")))]
mod imp {
    use tokio::signal::unix::{signal, Signal, SignalKind};

    pub(super) async fn shutdown() -> &'static str {
        let (Ok(mut term), Ok(mut int)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) else {
            return std::future::pending().await;
        };
        tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        }
    }

    #[derive(Debug)]
    pub(super) struct Hangup(Option<Signal>);

    impl Hangup {
        pub(super) fn new() -> Hangup {
            Hangup(signal(SignalKind::hangup()).ok())
        }

        pub(super) async fn recv(&mut self) {
            let got = match self.0.as_mut() {
                Some(hup) => hup.recv().await,
                None => None,
            };
            if got.is_none() {
                std::future::pending::<()>().await;
            }
        }
    }
}

#[cfg(not(all(unix, not(feature = "portable"))))]
mod imp {
    pub(super) async fn shutdown() -> &'static str {
        match tokio::signal::ctrl_c().await {
            Ok(()) => "ctrl_c",
            Err(_) => std::future::pending().await,
        }
    }

    #[derive(Debug)]
    pub(super) struct Hangup;

    impl Hangup {
        pub(super) fn new() -> Hangup {
            Hangup
        }

        pub(super) async fn recv(&mut self) {
            std::future::pending::<()>().await;
        }
    }
}

//! The relay's own resource limits: at `serve` start the soft limit on open files
//! (`RLIMIT_NOFILE`) is raised to the hard limit, because every per-session child costs the
//! relay three descriptors (its stdin, stdout and stderr pipes) and every connection one, and
//! the common default soft limit (1,024) would stop a per-session relay at about 300 sessions
//! long before the machine runs out (docs/scale.md). The hard limit is the operator's
//! (systemd `LimitNOFILE=`, `ulimit -Hn`, a container's `--ulimit`); the relay never asks for
//! more. What happens when even that runs out is `relay/children.rs` (503, -31006).
//!
//! - Native (Unix): `getrlimit`/`setrlimit`. macOS reports an "unlimited" hard limit but
//!   refuses a soft limit above `OPEN_MAX` (10,240): the soft limit goes to that. Children get
//!   the limit the relay was started with back between fork and exec (`os/process.rs`).
//! - Portable (Windows, or `--features portable`): nothing to raise ([`OpenFiles::Unsupported`]).

/// What [`raise_open_files`] did (the portable path only ever says `Unsupported`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(not(all(unix, not(feature = "portable"))), allow(dead_code))]
pub(crate) enum OpenFiles {
    /// The soft limit already was the hard limit.
    AtHard(u64),
    /// Raised from the first value to the second (the hard limit).
    Raised(u64, u64),
    /// The soft limit (first) could not be raised to the hard limit (second).
    Refused(u64, u64, String),
    /// No such limit on this OS, or it cannot be read.
    Unsupported,
}

/// Raises the soft open-files limit to the hard limit; called once at `serve` start.
pub(crate) fn raise_open_files() -> OpenFiles {
    let done = imp::raise_open_files();
    if let OpenFiles::Raised(from, _) = done {
        if let Some(hard) = imp::hard_open_files() {
            let _ = STARTED_WITH.set((from, hard));
        }
    }
    done
}

/// The open-files limits (soft, hard) the relay was started with, when it raised its own:
/// what its children get back (`os/process.rs`, [`crate::os::process::prepare_exec`]).
#[cfg_attr(not(all(unix, not(feature = "portable"))), allow(dead_code))]
pub(crate) fn inherited_open_files() -> Option<(u64, u64)> {
    STARTED_WITH.get().copied()
}

static STARTED_WITH: std::sync::OnceLock<(u64, u64)> = std::sync::OnceLock::new();

/// [`raise_open_files`], logged: the limit the relay runs with, or why it stayed lower.
pub(crate) fn size_open_files() {
    match raise_open_files() {
        OpenFiles::AtHard(n) => tracing::info!(limit = n, "open-files limit"),
        OpenFiles::Raised(from, to) => {
            tracing::info!(
                from,
                limit = to,
                "open-files limit raised to the hard limit"
            );
        }
        OpenFiles::Refused(soft, hard, error) => tracing::warn!(
            limit = soft,
            hard,
            %error,
            "open-files limit could not be raised to the hard limit"
        ),
        OpenFiles::Unsupported => {}
    }
}

#[cfg(all(unix, not(feature = "portable")))]
mod imp {
    use super::OpenFiles;
    use nix::sys::resource::{getrlimit, setrlimit, Resource};

    pub(super) fn raise_open_files() -> OpenFiles {
        let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
            return OpenFiles::Unsupported;
        };
        // macOS reports an "unlimited" hard limit but refuses a soft one above OPEN_MAX.
        let target = if cfg!(target_os = "macos") {
            hard.min(MACOS_OPEN_MAX)
        } else {
            hard
        };
        if soft >= target {
            return OpenFiles::AtHard(soft);
        }
        match setrlimit(Resource::RLIMIT_NOFILE, target, hard) {
            Ok(()) => OpenFiles::Raised(soft, target),
            Err(e) => OpenFiles::Refused(soft, target, e.to_string()),
        }
    }

    /// `OPEN_MAX` of macOS's `<sys/syslimits.h>`.
    const MACOS_OPEN_MAX: u64 = 10_240;

    pub(super) fn hard_open_files() -> Option<u64> {
        getrlimit(Resource::RLIMIT_NOFILE)
            .ok()
            .map(|(_, hard)| hard)
    }
}

#[cfg(not(all(unix, not(feature = "portable"))))]
mod imp {
    use super::OpenFiles;

    pub(super) fn raise_open_files() -> OpenFiles {
        OpenFiles::Unsupported
    }

    pub(super) fn hard_open_files() -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Raising is idempotent: after the first call the soft limit is the hard limit (or it
    /// was refused, or there is no such limit), and a second call changes nothing.
    #[test]
    fn a_second_raise_finds_the_soft_limit_at_the_hard_one() {
        let first = raise_open_files();
        let second = raise_open_files();
        match first {
            OpenFiles::AtHard(n) | OpenFiles::Raised(_, n) => {
                assert_eq!(second, OpenFiles::AtHard(n));
            }
            OpenFiles::Refused(..) => assert!(matches!(second, OpenFiles::Refused(..))),
            OpenFiles::Unsupported => assert_eq!(second, OpenFiles::Unsupported),
        }
    }
}

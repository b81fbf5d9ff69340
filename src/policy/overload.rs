//! Overload shedding by memory (SECURITY.md §2 "Overload"): before memory runs out, the relay
//! stops keeping connections alive, then refuses new work.
//!
//! What is measured against what, children always included:
//!
//! - `[limits] memory_budget` (`--memory-budget`): the resident memory of the relay's process
//!   tree (the relay and every process below it: the servers it runs);
//! - else, in a cgroup v2 with a memory limit (a container, a systemd unit's `MemoryMax=`):
//!   the cgroup's working set (`memory.current` less inactive page cache, as the kubelet and
//!   the OOM killer count it) against that limit;
//! - else the machine's used memory (`MemTotal − MemAvailable`) against `MemTotal`.
//!
//! Levels:
//!
//! - below `memory_soft_percent` (90): normal;
//! - from it: HTTP/1.1 answers carry `Connection: close` (no keep-alive), so idle connections
//!   give their buffers back;
//! - from `memory_hard_percent` (95): new sessions, streams, WebSocket upgrades and TCP
//!   connections get 503 + `Retry-After` (-31005, `reason: overloaded`), and each request
//!   inside an existing session gets that JSON-RPC error; notifications, responses and
//!   `DELETE` still pass, because they finish work and free memory.
//!
//! A reading is taken at most every 200 ms, when a request asks. How it is taken (small
//! `/proc` reads on Linux, the `sysinfo` crate elsewhere; no cgroups off Linux) is
//! `os/memory.rs`'s job.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use crate::error::Error;
use crate::os::memory;

/// Percent of the budget from which keep-alive is off.
pub(crate) const DEFAULT_SOFT_PERCENT: u8 = 90;
/// Percent of the budget from which new work is refused.
pub(crate) const DEFAULT_HARD_PERCENT: u8 = 95;
/// How long one usage reading is trusted.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);

/// How loaded the relay is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Normal,
    /// No keep-alive.
    NoKeepAlive,
    /// New sessions and requests refused.
    Shed,
}

impl Level {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Level::Normal => "normal",
            Level::NoKeepAlive => "no_keep_alive",
            Level::Shed => "shedding",
        }
    }
}

/// What usage is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// The resident set of the relay and its descendants.
    Tree,
    /// The machine's used memory.
    Machine,
    /// A cgroup v2 directory's `memory.current`.
    Cgroup(PathBuf),
}

/// The memory gauge and its thresholds (off: [`Overload::off`]).
#[derive(Debug)]
pub(crate) struct Overload {
    /// `None`: shedding is off.
    budget: Option<u64>,
    source: Source,
    soft: u64,
    hard: u64,
    born: Instant,
    /// Last reading (bytes) and when it was taken (ms since `born`, +1 so 0 means never).
    used: AtomicU64,
    sampled_at: AtomicU64,
}

impl Overload {
    /// No shedding.
    pub(crate) fn off() -> Overload {
        Overload::with(None, Source::Tree, 100, 100)
    }

    /// Validates the `[limits]` settings. `budget`: `None` (find one), `"off"`, or a size
    /// (`"512MiB"`, `"2GB"`, bytes).
    pub(crate) fn build(
        budget: Option<&str>,
        soft: Option<u8>,
        hard: Option<u8>,
        errors: &mut Vec<String>,
    ) -> Overload {
        let soft = soft.unwrap_or(DEFAULT_SOFT_PERCENT);
        let hard = hard.unwrap_or(DEFAULT_HARD_PERCENT);
        let mut ok = true;
        if !(1..=100).contains(&soft) || !(1..=100).contains(&hard) || soft > hard {
            errors.push(format!(
                "limits.memory_soft_percent ({soft}) and limits.memory_hard_percent ({hard}) \
                 must be within 1..=100, soft ≤ hard"
            ));
            ok = false;
        }
        let (budget, source) = match budget.map(str::trim) {
            Some("off") => (None, Source::Tree),
            Some(text) => match text.parse::<bytesize::ByteSize>() {
                Ok(b) if b.as_u64() > 0 => (Some(b.as_u64()), Source::Tree),
                _ => {
                    errors.push(format!(
                        "limits.memory_budget: {text:?} is not a size such as \"512MiB\" or \"off\""
                    ));
                    (None, Source::Tree)
                }
            },
            None => match memory::cgroup_limit() {
                Some((limit, dir)) => (Some(limit), Source::Cgroup(dir)),
                None => (memory::machine().map(|(_, total)| total), Source::Machine),
            },
        };
        if !ok {
            return Overload::off();
        }
        Overload::with(budget, source, soft, hard)
    }

    fn with(budget: Option<u64>, source: Source, soft: u8, hard: u8) -> Overload {
        let at = |p: u8| {
            budget.map_or(u64::MAX, |b| {
                u64::try_from(u128::from(b) * u128::from(p) / 100).unwrap_or(u64::MAX)
            })
        };
        Overload {
            budget,
            source,
            soft: at(soft),
            hard: at(hard),
            born: Instant::now(),
            used: AtomicU64::new(0),
            sampled_at: AtomicU64::new(0),
        }
    }

    /// The current level (a reading at most 100 ms old).
    pub(crate) fn level(&self) -> Level {
        if self.budget.is_none() {
            return Level::Normal;
        }
        let used = self.used();
        if used >= self.hard {
            Level::Shed
        } else if used >= self.soft {
            Level::NoKeepAlive
        } else {
            Level::Normal
        }
    }

    /// `Err(Overloaded)` while shedding: for new sessions, streams and requests.
    pub(crate) fn admit(&self) -> Result<(), Error> {
        match self.level() {
            Level::Shed => {
                crate::telemetry::metrics::rate_limited("overload");
                Err(Error::Overloaded)
            }
            _ => Ok(()),
        }
    }

    /// Bytes in use and the budget, when shedding is on (for `/health` and `/metrics`).
    pub(crate) fn reading(&self) -> Option<(u64, u64)> {
        self.budget.map(|b| (self.used(), b))
    }

    fn used(&self) -> u64 {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1) + 1;
        let at = self.sampled_at.load(Relaxed);
        let fresh = at != 0 && now.saturating_sub(at) < SAMPLE_EVERY.as_millis() as u64;
        if fresh {
            return self.used.load(Relaxed);
        }
        let used = match &self.source {
            Source::Tree => memory::tree_rss(std::process::id()),
            Source::Machine => memory::machine().map(|(used, _)| used),
            Source::Cgroup(dir) => memory::cgroup_working_set(dir),
        }
        .unwrap_or(0);
        self.used.store(used, Relaxed);
        self.sampled_at.store(now, Relaxed);
        used
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_thresholds() {
        let o = Overload::with(Some(1000), Source::Tree, 90, 95);
        o.used.store(899, Relaxed);
        o.sampled_at.store(u64::MAX - 1, Relaxed);
        // A reading "from the future" stays fresh: the stored value is used.
        assert_eq!(o.level(), Level::Normal);
        o.used.store(900, Relaxed);
        assert_eq!(o.level(), Level::NoKeepAlive);
        o.used.store(950, Relaxed);
        assert_eq!(o.level(), Level::Shed);
        assert_eq!(o.admit(), Err(Error::Overloaded));
    }

    #[test]
    fn off_never_sheds() {
        let o = Overload::off();
        assert_eq!(o.level(), Level::Normal);
        assert!(o.reading().is_none());
        let mut errors = Vec::new();
        let o = Overload::build(Some("off"), None, None, &mut errors);
        assert!(errors.is_empty());
        assert_eq!(o.level(), Level::Normal);
    }

    #[test]
    fn a_tiny_budget_sheds_on_a_real_reading() {
        let mut errors = Vec::new();
        let o = Overload::build(Some("1KiB"), None, None, &mut errors);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(o.level(), Level::Shed);
        let (used, budget) = o.reading().unwrap();
        assert_eq!(budget, 1024);
        assert!(used > 1024);
    }

    #[test]
    fn bad_settings_are_reported() {
        let mut errors = Vec::new();
        Overload::build(Some("lots"), None, None, &mut errors);
        Overload::build(None, Some(96), Some(95), &mut errors);
        Overload::build(None, Some(0), None, &mut errors);
        Overload::build(Some("lots"), Some(0), None, &mut errors);
        assert_eq!(errors.len(), 5, "{errors:?}");
        let mut errors = Vec::new();
        let o = Overload::build(Some("2048"), None, None, &mut errors);
        assert_eq!(o.reading().map(|r| r.1), Some(2048), "{errors:?}");
    }

    #[test]
    fn the_default_budget_is_found() {
        let mut errors = Vec::new();
        let o = Overload::build(None, None, None, &mut errors);
        assert!(errors.is_empty());
        let (used, budget) = o.reading().expect("a cgroup limit or MemTotal");
        assert!(
            budget > 0 && used > 0 && used <= budget * 2,
            "{used} of {budget}"
        );
    }

    #[test]
    fn thresholds_do_not_truncate_small_budgets() {
        let o = Overload::with(Some(50), Source::Tree, 90, 95);
        assert_eq!((o.soft, o.hard), (45, 47));
    }
}

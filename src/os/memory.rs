//! Memory readings for overload shedding (`policy/overload.rs` decides what to compare with
//! what): the resident memory of a process tree, the machine's memory, a cgroup's limit and
//! working set.
//!
//! - Native (Linux): small `/proc` reads (`VmRSS` of each process, the tree from
//!   `/proc/<pid>/task/<tid>/children`, `/proc/meminfo`) and the cgroup v2 files under
//!   `/sys/fs/cgroup`.
//! - Portable (macOS, Windows, or `--features portable`): the `sysinfo` crate (one process
//!   table per reading; the tree from each process's parent). There are no cgroups, so the
//!   default budget is the machine's memory.

use std::path::PathBuf;

/// Processes read for one process-tree reading, at most.
const MAX_TREE: usize = 20_000;

/// The resident set of `root` and all its descendants, in bytes. Processes that exit
/// meanwhile count as 0. `None` when `root` cannot be read.
pub(crate) fn tree_rss(root: u32) -> Option<u64> {
    imp::tree_rss(root)
}

/// The machine's memory: (used, total) in bytes, used being total less available.
pub(crate) fn machine() -> Option<(u64, u64)> {
    imp::machine()
}

/// The memory limit of the relay's cgroup v2 and its directory (Linux, native; `None`
/// elsewhere or without a limit).
pub(crate) fn cgroup_limit() -> Option<(u64, PathBuf)> {
    imp::cgroup_limit()
}

/// A cgroup's working set, as the kubelet counts it: `memory.current` less the page cache
/// the kernel can drop at once (`inactive_file` of `memory.stat`).
pub(crate) fn cgroup_working_set(dir: &std::path::Path) -> Option<u64> {
    imp::cgroup_working_set(dir)
}

#[cfg(all(target_os = "linux", not(feature = "portable")))]
mod imp {
    use super::MAX_TREE;
    use std::path::{Path, PathBuf};

    pub(super) fn tree_rss(root: u32) -> Option<u64> {
        let mut total = rss(root)?;
        let mut todo = children(root);
        let mut seen = 1;
        while let Some(pid) = todo.pop() {
            seen += 1;
            if seen > MAX_TREE {
                break;
            }
            total += rss(pid).unwrap_or(0);
            todo.extend(children(pid));
        }
        Some(total)
    }

    fn rss(pid: u32) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        kib_field(&status, "VmRSS:")
    }

    /// The direct children of every thread of `pid`.
    fn children(pid: u32) -> Vec<u32> {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            return Vec::new();
        };
        tasks
            .flatten()
            .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
            .flat_map(|list| {
                list.split_whitespace()
                    .filter_map(|p| p.parse().ok())
                    .collect::<Vec<u32>>()
            })
            .collect()
    }

    pub(super) fn machine() -> Option<(u64, u64)> {
        let info = std::fs::read_to_string("/proc/meminfo").ok()?;
        let total = kib_field(&info, "MemTotal:")?;
        let free = kib_field(&info, "MemAvailable:")?;
        Some((total.saturating_sub(free), total))
    }

    /// A `Name:   1234 kB` line's value in bytes.
    pub(super) fn kib_field(text: &str, name: &str) -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        let kib: u64 = line[name.len()..].split_whitespace().next()?.parse().ok()?;
        Some(kib * 1024)
    }

    /// The one `/proc/self/cgroup` names, or the namespace root a container sees. `max` (no
    /// limit) is no budget.
    pub(super) fn cgroup_limit() -> Option<(u64, PathBuf)> {
        let root = Path::new("/sys/fs/cgroup");
        let own = std::fs::read_to_string("/proc/self/cgroup")
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("0::"))
                    .map(|p| root.join(p.trim().trim_start_matches('/')))
            });
        own.into_iter()
            .chain(std::iter::once(root.to_path_buf()))
            .find_map(|dir| read_u64(&dir.join("memory.max")).map(|limit| (limit, dir)))
    }

    pub(super) fn cgroup_working_set(dir: &Path) -> Option<u64> {
        let current = read_u64(&dir.join("memory.current"))?;
        let stat = std::fs::read_to_string(dir.join("memory.stat")).unwrap_or_default();
        let inactive = stat
            .lines()
            .find_map(|l| l.strip_prefix("inactive_file "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
        Some(current.saturating_sub(inactive))
    }

    /// A file holding one decimal number (`max` and anything else: `None`).
    fn read_u64(path: &Path) -> Option<u64> {
        std::fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    #[test]
    fn kib_fields_parse() {
        let text = "Name:\tx\nVmRSS:\t   2048 kB\n";
        assert_eq!(kib_field(text, "VmRSS:"), Some(2 * 1024 * 1024));
        assert_eq!(kib_field(text, "VmHWM:"), None);
    }
}

#[cfg(not(all(target_os = "linux", not(feature = "portable"))))]
mod imp {
    use super::MAX_TREE;
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};
    use sysinfo::{MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, System};

    pub(super) fn tree_rss(root: u32) -> Option<u64> {
        let mut sys = System::new();
        sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().with_memory(),
        );
        let procs = sys.processes();
        let root = Pid::from_u32(root);
        let mut total = procs.get(&root)?.memory();
        let mut children: HashMap<Pid, Vec<Pid>> = HashMap::new();
        for (pid, p) in procs {
            if let Some(parent) = p.parent().filter(|parent| parent != pid) {
                children.entry(parent).or_default().push(*pid);
            }
        }
        let mut todo = children.remove(&root).unwrap_or_default();
        let mut seen = 1;
        while let Some(pid) = todo.pop() {
            seen += 1;
            if seen > MAX_TREE {
                break;
            }
            total += procs.get(&pid).map_or(0, sysinfo::Process::memory);
            todo.extend(children.remove(&pid).unwrap_or_default());
        }
        Some(total)
    }

    pub(super) fn machine() -> Option<(u64, u64)> {
        let mut sys = System::new();
        sys.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram());
        let total = sys.total_memory();
        (total > 0).then(|| (total.saturating_sub(sys.available_memory()), total))
    }

    pub(super) fn cgroup_limit() -> Option<(u64, PathBuf)> {
        None
    }

    pub(super) fn cgroup_working_set(_dir: &Path) -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_machine_has_memory_in_use() {
        let (used, total) = machine().unwrap();
        assert!(used > 0 && used < total, "{used} of {total}");
    }

    #[test]
    fn the_process_tree_includes_children() {
        let me = std::process::id();
        let alone = tree_rss(me).unwrap();
        assert!(alone > 0);
        // The test binary itself, waiting on its stdin: a child that exists on every OS.
        let exe = std::env::current_exe().unwrap();
        let mut child = std::process::Command::new(exe)
            .args([
                "--exact",
                "os::process::tests::child_reads_stdin_to_eof",
                "--ignored",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // Once the child has started (a resident set of its own), the tree counts it.
        let mut own = 0;
        for _ in 0..500 {
            own = tree_rss(child.id()).unwrap_or(0);
            if own > 1024 * 1024 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let with = tree_rss(me).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(own > 1024 * 1024, "the child never started: {own}");
        assert!(with > alone + own / 2, "{with} vs {alone} + {own}");
    }
}

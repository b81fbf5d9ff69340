//! /proc readers: the descendants of a process, their resident memory, and CPU time.

use std::collections::HashMap;
use std::fs;

/// `pid` and all its descendants (by parent pid), `pid` first.
pub(crate) fn tree_pids(pid: u32) -> Vec<u32> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    if let Ok(dir) = fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            if let Some(pp) = ppid(p) {
                children.entry(pp).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(c) = children.get(&out[i]) {
            out.extend(c.iter().copied());
        }
        i += 1;
    }
    out
}

/// The parent pid, from /proc/PID/stat (field 4, after the parenthesised command name).
fn ppid(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(1)?.parse().ok()
}

/// True while /proc/PID exists and is not a zombie.
pub(crate) fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .and_then(|i| stat.get(i + 2..i + 3))
            .is_some_and(|state| state != "Z"),
        Err(_) => false,
    }
}

/// Resident set size of one process in KiB (VmRSS), 0 if it is gone.
pub(crate) fn rss_kib(pid: u32) -> u64 {
    let Ok(status) = fs::read_to_string(format!("/proc/{pid}/status")) else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Microseconds per clock tick of /proc/PID/stat's CPU times (`USER_HZ`, 100 on Linux).
pub(crate) const TICK_US: f64 = 10_000.0;

/// CPU time (user + system) of one process and all its threads so far, in clock ticks
/// (fields 14 and 15 of /proc/PID/stat; its children are not counted).
pub(crate) fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let mut fields = stat[stat.rfind(')')? + 2..].split(' ').skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Memory of a process tree: (sum of RSS over the tree, RSS of the root alone, processes).
pub(crate) fn tree_rss_kib(pid: u32) -> (u64, u64, usize) {
    let pids = tree_pids(pid);
    let total = pids.iter().map(|p| rss_kib(*p)).sum();
    (total, rss_kib(pid), pids.len())
}

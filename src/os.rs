//! Everything that differs between operating systems, one module per concern. Each has the
//! native implementation and a portable fallback written only with std and tokio APIs that
//! exist on every OS, so the code Windows runs is the code built and tested on Linux with
//! `--features portable` (docs/platforms.md says what is tested where).
//!
//! - `process`: a child's process tree, stopping it, exit statuses, tying it to the relay.
//! - `memory`: the readings overload shedding compares with its budget.
//! - `signals`: shutdown and reload requests.
//! - `fs`: files and directories only their owner may read.
//! - `limits`: the soft open-files limit raised to the hard one at `serve` start.
//!
//! Native code is under `#[cfg(all(unix, not(feature = "portable")))]` (Linux-only parts:
//! `target_os = "linux"`), the fallback under the complement. Nothing outside this module
//! names `std::os::unix`, `nix` or `/proc` (the test below checks). Callers (`upstream::stdio`,
//! `policy::overload`, `app`, `tls`, `bridge::token_store`, `telemetry`, `cert`) never branch
//! on the OS themselves.

pub(crate) mod fs;
pub(crate) mod limits;
pub(crate) mod memory;
pub(crate) mod process;
pub(crate) mod signals;

#[cfg(test)]
/// True when this build runs the portable fallbacks (not Unix, or `--features portable`).
pub(crate) const PORTABLE: bool = cfg!(any(not(unix), feature = "portable"));

#[cfg(test)]
mod tests {
    /// OS-specific APIs named outside `src/os/` (the fixture binary, a test tool that is not
    /// shipped, gates its own).
    #[test]
    fn os_specific_code_stays_in_the_os_module() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let needles = [
            "std::os::unix",
            "std::os::fd",
            "std::os::linux",
            "nix::",
            "libc::",
            "signal::unix",
            "net::unix",
            "\"/proc",
            "\"/sys/",
        ];
        let mut found = Vec::new();
        let mut todo = vec![root.clone()];
        while let Some(dir) = todo.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let rel = path.strip_prefix(&root).unwrap().to_path_buf();
                if rel.starts_with("os")
                    || rel.starts_with("bin")
                    || rel == std::path::Path::new("os.rs")
                {
                    continue;
                }
                if path.is_dir() {
                    todo.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (n, line) in text.lines().enumerate() {
                        if needles.iter().any(|needle| line.contains(needle)) {
                            found.push(format!("src/{}:{}: {}", rel.display(), n + 1, line.trim()));
                        }
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "move these into src/os/:\n{}",
            found.join("\n")
        );
    }
}

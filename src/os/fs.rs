//! Files and directories only their owner may read: the bridge's token store, private keys
//! from `cert generate`, the audit log and `connect --log-file`; and whether a directory takes
//! new files (the audit log's, checked before binding: access(2) on Unix, a probe file that is
//! created and removed elsewhere).
//!
//! - Native (Unix, macOS included): files are created 0600 and directories 0700 (set at
//!   creation, never chmod afterwards); a directory that grants group or other users any
//!   access is refused by [`is_private_dir`].
//! - Portable (Windows, or `--features portable`): files and directories get the access
//!   control list inherited from their parent. On Windows the default locations (the user's
//!   profile, `%APPDATA%`) grant access only to the user, SYSTEM and administrators; a
//!   directory elsewhere is as private as its parent makes it. [`is_private_dir`] accepts it.

use std::fs::{DirBuilder, Metadata, OpenOptions};

/// Makes `opts` create its file readable and writable by the owner only (0600).
pub(crate) fn private_file(opts: &mut OpenOptions) -> &mut OpenOptions {
    imp::with_mode(opts, 0o600)
}

/// Makes `opts` create its file with these permission bits (Unix; ignored elsewhere).
pub(crate) fn with_mode(opts: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    imp::with_mode(opts, mode)
}

/// Makes `builder` create directories only the owner may enter (0700).
pub(crate) fn private_dir(builder: &mut DirBuilder) -> &mut DirBuilder {
    imp::private_dir(builder)
}

/// Whether an existing directory is closed to other users.
pub(crate) fn is_private_dir(meta: &Metadata) -> bool {
    imp::is_private_dir(meta)
}

/// Whether files can be created in the directory `dir`.
pub(crate) fn check_dir_writable(dir: &std::path::Path) -> std::io::Result<()> {
    imp::check_dir_writable(dir)
}

/// The error for a path that must be a directory and is not.
pub(crate) fn not_a_directory() -> std::io::Error {
    imp::not_a_directory()
}

/// The permission bits of a path (`None` where the OS has none, or it cannot be read).
#[cfg(test)]
pub(crate) fn mode(path: &std::path::Path) -> Option<u32> {
    imp::mode(path)
}

/// Sets a path's permission bits (tests: an executable script, a directory open to others).
#[cfg(all(test, unix))]
pub(crate) fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    #[allow(clippy::unwrap_used)]
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(all(unix, not(feature = "portable")))]
mod imp {
    use std::fs::{DirBuilder, Metadata, OpenOptions};
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};

    pub(super) fn with_mode(opts: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
        opts.mode(mode)
    }

    pub(super) fn private_dir(builder: &mut DirBuilder) -> &mut DirBuilder {
        builder.mode(0o700)
    }

    pub(super) fn is_private_dir(meta: &Metadata) -> bool {
        meta.permissions().mode() & 0o077 == 0
    }

    /// access(2) for write and search, which also knows read-only file systems.
    pub(super) fn check_dir_writable(dir: &std::path::Path) -> std::io::Result<()> {
        use nix::unistd::{access, AccessFlags};
        access(dir, AccessFlags::W_OK | AccessFlags::X_OK).map_err(std::io::Error::from)
    }

    pub(super) fn not_a_directory() -> std::io::Error {
        std::io::Error::from(nix::errno::Errno::ENOTDIR)
    }

    #[cfg(test)]
    pub(super) fn mode(path: &std::path::Path) -> Option<u32> {
        Some(std::fs::metadata(path).ok()?.permissions().mode() & 0o777)
    }
}

#[cfg(not(all(unix, not(feature = "portable"))))]
mod imp {
    use std::fs::{DirBuilder, Metadata, OpenOptions};

    pub(super) fn with_mode(opts: &mut OpenOptions, _mode: u32) -> &mut OpenOptions {
        opts
    }

    pub(super) fn private_dir(builder: &mut DirBuilder) -> &mut DirBuilder {
        builder
    }

    pub(super) fn is_private_dir(_meta: &Metadata) -> bool {
        true
    }

    /// A probe file, created and removed: what the OS's ACLs allow, read-only volumes included.
    pub(super) fn check_dir_writable(dir: &std::path::Path) -> std::io::Result<()> {
        let probe = dir.join(format!(".mcp-relay-probe-{}", std::process::id()));
        match OpenOptions::new().write(true).create_new(true).open(&probe) {
            Ok(_) => std::fs::remove_file(&probe),
            // Left by an earlier run with the same pid: it was writable then.
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
            Err(e) => Err(e),
        }
    }

    pub(super) fn not_a_directory() -> std::io::Error {
        std::io::ErrorKind::NotADirectory.into()
    }

    #[cfg(test)]
    pub(super) fn mode(_path: &std::path::Path) -> Option<u32> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_and_directories_are_owner_only() {
        let base = std::env::temp_dir().join(format!("mcp-relay-os-fs-{}", std::process::id()));
        let dir = base.join("private");
        private_dir(DirBuilder::new().recursive(true))
            .create(&dir)
            .unwrap();
        let file = dir.join("secret");
        private_file(OpenOptions::new().write(true).create_new(true))
            .open(&file)
            .unwrap();
        assert!(is_private_dir(&std::fs::metadata(&dir).unwrap()));
        check_dir_writable(&dir).unwrap();
        assert!(check_dir_writable(&dir.join("missing")).is_err());
        assert_eq!(not_a_directory().kind(), std::io::ErrorKind::NotADirectory);
        if crate::os::PORTABLE {
            assert_eq!((mode(&dir), mode(&file)), (None, None));
        } else {
            assert_eq!((mode(&dir), mode(&file)), (Some(0o700), Some(0o600)));
        }
        let _ = std::fs::remove_dir_all(base);
    }
}

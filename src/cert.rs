//! `mcp-relay cert generate`: a self-signed development certificate and key (PEM).
//!
//! Meant for local testing of `serve --tls-cert/--tls-key`; production certificates come from
//! a real CA. The key file is created with mode 0600; existing files are never overwritten.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};

use crate::cli::CertGenerateArgs;

/// Default subject alternative names.
pub(crate) const DEFAULT_SANS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// File names written into the output directory.
pub(crate) const CERT_FILE: &str = "cert.pem";
pub(crate) const KEY_FILE: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("--days must be between 1 and 3650")]
    Days,
    #[error("cannot generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Paths written by [`generate`].
#[derive(Debug)]
pub(crate) struct Written {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The `cert generate` subcommand; returns the exit code (0, 1, or 64 for bad usage).
pub(crate) fn generate_command(args: &CertGenerateArgs) -> u8 {
    match generate(&args.out_dir, &args.sans, args.days) {
        Ok(w) => {
            println!("wrote {} and {}", w.cert.display(), w.key.display());
            0
        }
        Err(e) => {
            eprintln!("mcp-relay: {e}");
            if matches!(e, Error::Days) {
                64
            } else {
                1
            }
        }
    }
}

/// Writes `cert.pem` and `key.pem` (0600) into `out_dir`, valid for `days` from now.
pub(crate) fn generate(out_dir: &Path, sans: &[String], days: u32) -> Result<Written, Error> {
    if days == 0 || days > 3650 {
        return Err(Error::Days);
    }
    let sans: Vec<String> = if sans.is_empty() {
        DEFAULT_SANS.iter().map(|s| s.to_string()).collect()
    } else {
        sans.to_vec()
    };
    let mut params = CertificateParams::new(sans)?;
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "mcp-relay development certificate");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::minutes(5);
    params.not_after = now + time::Duration::days(i64::from(days));
    let key = KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    std::fs::create_dir_all(out_dir).map_err(|source| Error::Write {
        path: out_dir.to_path_buf(),
        source,
    })?;
    let written = Written {
        cert: out_dir.join(CERT_FILE),
        key: out_dir.join(KEY_FILE),
    };
    write_new(&written.key, key.serialize_pem().as_bytes(), 0o600)?;
    write_new(&written.cert, cert.pem().as_bytes(), 0o644)?;
    Ok(written)
}

/// Writes a file that must not exist yet, created with `mode`.
fn write_new(path: &Path, data: &[u8], mode: u32) -> Result<(), Error> {
    let err = |source| Error::Write {
        path: path.to_path_buf(),
        source,
    };
    let mut options = OpenOptions::new();
    let mut f = crate::os::fs::with_mode(options.write(true).create_new(true), mode)
        .open(path)
        .map_err(err)?;
    f.write_all(data).map_err(err)?;
    f.sync_all().map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_pem_files_with_private_key_mode() {
        let dir = std::env::temp_dir().join(format!("mcp-relay-cert-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let w = generate(&dir, &[], 30).unwrap();
        let cert = std::fs::read_to_string(&w.cert).unwrap();
        let key = std::fs::read_to_string(&w.key).unwrap();
        assert!(cert.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(key.contains("PRIVATE KEY-----"));
        let native = !crate::os::PORTABLE;
        assert_eq!(crate::os::fs::mode(&w.key), native.then_some(0o600));
        assert!(generate(&dir, &[], 30).is_err(), "must not overwrite");
        assert!(matches!(generate(&dir, &[], 0), Err(Error::Days)));
        let _ = std::fs::remove_dir_all(&dir);
    }
}

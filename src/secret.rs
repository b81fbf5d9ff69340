//! Secret references: `env:NAME` or `file:/path`, never literals (STYLE.md §6).
//!
//! The environment is read through a lookup function so tests pass a map instead of
//! mutating the process environment.

use std::path::PathBuf;

pub(crate) mod strength;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum Error {
    #[error("a secret must be a reference (`env:NAME` or `file:/path`), not a literal")]
    Literal,
    #[error("environment variable {0} is not set")]
    MissingEnv(String),
    #[error("cannot read secret file {path}: {reason}")]
    File { path: PathBuf, reason: String },
    #[error("secret {0} is empty")]
    Empty(String),
}

/// Resolves a reference to its bytes (a trailing newline of a file is dropped).
pub(crate) fn resolve(
    reference: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<u8>, Error> {
    let bytes = if let Some(name) = reference.strip_prefix("env:") {
        env(name)
            .ok_or_else(|| Error::MissingEnv(name.to_owned()))?
            .into_bytes()
    } else if let Some(path) = reference.strip_prefix("file:") {
        let mut b = std::fs::read(path).map_err(|e| Error::File {
            path: PathBuf::from(path),
            reason: e.kind().to_string(),
        })?;
        while b.last().is_some_and(|c| *c == b'\n' || *c == b'\r') {
            b.pop();
        }
        b
    } else {
        return Err(Error::Literal);
    };
    if bytes.is_empty() {
        return Err(Error::Empty(reference.to_owned()));
    }
    Ok(bytes)
}

/// The process environment, for production callers.
pub(crate) fn process_env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_is_refused_and_env_is_read_through_the_lookup() {
        let env = |n: &str| (n == "S").then(|| "abc".to_owned());
        assert_eq!(resolve("abc", &env), Err(Error::Literal));
        assert_eq!(resolve("env:S", &env), Ok(b"abc".to_vec()));
        assert!(matches!(resolve("env:T", &env), Err(Error::MissingEnv(_))));
    }
}

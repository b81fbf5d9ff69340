//! Bearer tokens for the authenticated relay systems (`relay-jwt`, `relay-oauth`): random
//! values, the `Authorization` header the load client sends, and `relay-jwt`'s HS256 secret
//! and token, minted once per start by the relay binary under test (`token jwt`, the same
//! command an operator runs). The relay's own authorization server and the flow that gets
//! `relay-oauth`'s token are `oauth.rs`; which system uses what is `systems.rs`.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{bail, Context as _, Result};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hyper::header::HeaderValue;

/// The variable that carries `relay-jwt`'s secret into the relay (`--jwt-secret env:…`) and
/// into `token jwt` (`--secret env:…`); never on a command line.
pub(crate) const JWT_SECRET_ENV: &str = "BENCH_JWT_SECRET";

/// The issuer `relay-jwt` accepts and its token names (the relay's default, given explicitly).
pub(crate) const JWT_ISSUER: &str = "mcp-relay";

/// The principal and role of the benchmark's tokens.
pub(crate) const USER: &str = "bench";

/// An authenticated principal's caps, raised to the relay's own session and connection
/// limits (`--max-sessions`, `--max-connections`: 10,000) so that one principal holding every
/// session of a workload ((d) 100, (e) 1,000 sessions; (e) 64 requests in flight) meets no
/// limit `relay-sse`'s anonymous callers do not: `--max-sessions-per-principal` (default 64)
/// and `[limits] max_concurrent_per_principal` (default 64) in the config file.
pub(crate) const PRINCIPAL_CAP: &str = "10000";

/// The config file's `[limits]` with the raised concurrency cap (every authenticated relay's
/// file starts with it).
pub(crate) fn limits_section() -> String {
    format!("[limits]\nmax_concurrent_per_principal = {PRINCIPAL_CAP}\n")
}

/// `n` random bytes, base64url without padding.
pub(crate) fn random_b64(n: usize) -> String {
    let bytes: Vec<u8> = (0..n).map(|_| rand::random::<u8>()).collect();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// A random HMAC secret of 32 bytes (43 characters), drawn again in the unlikely case it
/// contains a word the relay takes for a placeholder.
pub(crate) fn jwt_secret() -> String {
    loop {
        let s = random_b64(32);
        let lower = s.to_ascii_lowercase();
        if !["secret", "test", "change", "example", "password", "xxxxxx"]
            .iter()
            .any(|w| lower.contains(w))
        {
            return s;
        }
    }
}

/// `relay token jwt` with `secret` in its environment: an HS256 token for `audience` (the
/// relay's resource, `http://127.0.0.1:PORT/mcp`), valid for an hour. The flags are those of
/// every relay release with `token jwt`, so an older `BENCH_RELAY` works too.
pub(crate) fn mint_jwt(relay: &Path, secret: &str, audience: &str) -> Result<String> {
    let out = Command::new(relay)
        .args(["token", "jwt", "--secret"])
        .arg(format!("env:{JWT_SECRET_ENV}"))
        .args(["--user", USER, "--roles", USER, "--expires-in", "1h"])
        .args(["--issuer", JWT_ISSUER, "--audience", audience])
        .env(JWT_SECRET_ENV, secret)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("run {} token jwt", relay.display()))?;
    if !out.status.success() {
        bail!(
            "`mcp-relay token jwt` failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    let token = String::from_utf8(out.stdout).context("token jwt: output not UTF-8")?;
    let token = token.trim();
    if token.split('.').count() != 3 {
        bail!("`mcp-relay token jwt` printed no JWT");
    }
    Ok(token.to_owned())
}

/// The `Authorization` header for `token` (marked sensitive).
pub(crate) fn bearer(token: &str) -> Result<HeaderValue> {
    let mut v = HeaderValue::from_str(&format!("Bearer {token}")).context("token not a header")?;
    v.set_sensitive(true);
    Ok(v)
}

//! `mcp-relay token`: mint credentials for the relay's own auth config.
//!
//! `token key` prints a new API key and the `[[auth.api_keys]]` block (hash only) to paste into
//! the config; `token secret` prints a random HMAC secret; `token jwt` signs an access token
//! that `policy::jwt` accepts; `token password-hash` reads a password from stdin and prints its
//! Argon2id PHC string for `[[oauth_server.users]]`. Owns only the command line and the output format: hashing and
//! generation are `policy::api_key`, verification is `policy::jwt`, secret references are
//! `secret.rs`. `cli.rs` wires [`TokenCommand`]; `command.rs` runs it.

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::PrivateKeyDer;

use crate::policy::api_key::{parse_rfc3339, ApiKeys};
use crate::secret;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TokenCommand {
    /// Generate an API key; prints the key, then the config block holding only its hash.
    Key(KeyArgs),
    /// Generate a random HMAC secret (base64url) for `[[auth.jwt]] secret`.
    Secret(SecretArgs),
    /// Sign a JWT access token (only the token goes to stdout).
    Jwt(JwtArgs),
    /// Read a password from stdin (one line, not echoed on a terminal) and print its Argon2id
    /// PHC string, for `password_hash` of `[[oauth_server.users]]`.
    PasswordHash,
}

#[derive(Debug, clap::Args)]
pub(crate) struct KeyArgs {
    /// Key id recorded in audit. Default: a random short id.
    #[arg(long)]
    pub id: Option<String>,
    /// Principal the key authenticates as. Default: the key id.
    #[arg(long)]
    pub principal: Option<String>,
    /// Comma-separated roles.
    #[arg(long, value_delimiter = ',')]
    pub roles: Vec<String>,
    /// Expiry, RFC 3339 (e.g. 2027-01-01T00:00:00Z). Default: never.
    #[arg(long)]
    pub expires: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct SecretArgs {
    /// Secret size in bits: at least 256, a multiple of 8.
    #[arg(long, default_value_t = 256)]
    pub bits: u32,
}

#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("signer").required(true).args(["secret", "auto_secret", "key_file"])))]
pub(crate) struct JwtArgs {
    /// Subject (`sub`).
    #[arg(long)]
    pub user: String,
    /// Comma-separated roles (`roles` claim).
    #[arg(long, value_delimiter = ',', required = true)]
    pub roles: Vec<String>,
    /// Lifetime, e.g. `15m`, `24h`.
    #[arg(long)]
    pub expires_in: String,
    /// HMAC secret reference: `env:NAME` or `file:/path` (literals are refused).
    #[arg(long)]
    pub secret: Option<String>,
    /// Generate a secret, print `secret: <value>` to stderr and sign with it.
    #[arg(long)]
    pub auto_secret: bool,
    /// Private key PEM (PKCS#8, or PKCS#1 RSA) for RS*/PS*/ES256/ES384/EdDSA.
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Algorithm. Default: HS256 with a secret, inferred from the key with --key-file.
    #[arg(long)]
    pub alg: Option<String>,
    /// Issuer (`iss`).
    #[arg(long, default_value = "mcp-relay")]
    pub issuer: String,
    /// Audience (`aud`): the URL the relay expects, its `--resource` (by default
    /// `http(s)://<listen><path>`, e.g. `http://127.0.0.1:8080/mcp`). Default: from --config;
    /// without either, asked for on a terminal, else an error.
    #[arg(long, value_name = "URL")]
    pub audience: Option<String>,
    /// The relay's config file (`serve --config`): the audience is the one the relay expects
    /// from --issuer, computed as the relay computes it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Space-separated OAuth scopes (`scope`).
    #[arg(long)]
    pub scope: Option<String>,
}

/// Runs a `token` subcommand against the real stdout, stderr and environment.
/// Runs a `token` subcommand for `main`: 0, or 64 with the error on stderr.
pub(crate) fn command(cmd: TokenCommand) -> u8 {
    match run(cmd) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("error: {e:#}");
            64
        }
    }
}

pub(crate) fn run(mut cmd: TokenCommand) -> anyhow::Result<()> {
    if let TokenCommand::Jwt(a) = &mut cmd {
        if a.audience.is_none() && a.config.is_none() {
            a.audience = ask_audience()?;
        }
    }
    if let TokenCommand::PasswordHash = cmd {
        let password = read_password()?;
        writeln!(std::io::stdout(), "{}", password_hash(&password)?)?;
        return Ok(());
    }
    let mut out = std::io::stdout().lock();
    let mut err = std::io::stderr().lock();
    run_with(cmd, &mut out, &mut err, &secret::process_env)
}

/// Asks for the audience when a person is at the terminal; `None` otherwise (`jwt` then says
/// what to pass).
fn ask_audience() -> anyhow::Result<Option<String>> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        return Ok(None);
    }
    eprint!("Audience, the relay's URL (its --resource, e.g. http://127.0.0.1:8080/mcp): ");
    std::io::stderr().flush()?;
    let mut line = String::new();
    stdin.lock().read_line(&mut line)?;
    let line = line.trim();
    Ok((!line.is_empty()).then(|| line.to_owned()))
}

/// One line of stdin, its line ending removed; on a terminal, asked for with echo off. An
/// empty password is refused.
fn read_password() -> anyhow::Result<String> {
    use std::io::{BufRead, IsTerminal};
    let stdin = std::io::stdin();
    let terminal = stdin.is_terminal();
    if terminal {
        eprint!("Password (not shown): ");
        std::io::stderr().flush()?;
        echo(false);
    }
    let mut line = String::new();
    let read = stdin.lock().read_line(&mut line);
    if terminal {
        echo(true);
        eprintln!();
    }
    read.context("reading the password from stdin")?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.is_empty() {
        bail!("empty password (give it on stdin, one line)");
    }
    Ok(password.to_owned())
}

/// Terminal echo on or off (`stty`, on the terminal that is stdin); best effort.
fn echo(on: bool) {
    let _ = std::process::Command::new("stty")
        .arg(if on { "echo" } else { "-echo" })
        .stdin(std::process::Stdio::inherit())
        .status();
}

/// The Argon2id PHC string of `password` (the crate's default parameters, a random salt).
pub(crate) fn password_hash(password: &str) -> anyhow::Result<String> {
    use argon2::password_hash::{PasswordHasher as _, SaltString};
    if password.is_empty() {
        bail!("empty password");
    }
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| anyhow::anyhow!("salt: {e}"))?;
    let hash = argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| anyhow::anyhow!("hashing the password: {e}"))?;
    Ok(hash.to_string())
}

/// The `aud` to sign: `--audience`, else what the relay configured by `--config` expects from
/// `issuer` (its issuer's `audience`, else the relay's resource URL).
fn audience(a: &JwtArgs) -> anyhow::Result<String> {
    if let Some(aud) = &a.audience {
        if aud.is_empty() {
            bail!("--audience must not be empty");
        }
        return Ok(aud.clone());
    }
    let Some(file) = &a.config else {
        bail!(
            "no audience: pass --audience URL (the relay's --resource, by default http://<listen><path>, e.g. http://127.0.0.1:8080/mcp) or --config FILE (the relay's config)"
        );
    };
    let cfg = crate::config::file::serve_config(file)
        .map_err(|errors| anyhow::anyhow!("--config {}: {}", file.display(), errors.join("; ")))?;
    let auth = &cfg.policy.auth;
    let Some(jwt) = auth.jwt() else {
        bail!(
            "--config {}: the relay accepts no JWTs (no [[auth.jwt]] nor jwt_secret/jwks_url)",
            file.display()
        );
    };
    match jwt.audiences(&a.issuer) {
        Some([first, ..]) => Ok(first.clone()),
        Some([]) => Ok(auth.resource().to_owned()),
        None => bail!(
            "--config {}: the relay accepts no issuer `{}` (it accepts: {}); pass --issuer",
            file.display(),
            a.issuer,
            jwt.issuer_names().join(", ")
        ),
    }
}

/// [`run`] with its outputs and environment passed in (tests).
pub(crate) fn run_with(
    cmd: TokenCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<()> {
    match cmd {
        TokenCommand::Key(a) => key(a, out),
        TokenCommand::Secret(a) => {
            writeln!(out, "{}", random_secret(a.bits)?)?;
            Ok(())
        }
        TokenCommand::Jwt(a) => {
            let token = jwt(a, err, env, SystemTime::now())?;
            writeln!(out, "{token}")?;
            Ok(())
        }
        TokenCommand::PasswordHash => bail!("token password-hash reads stdin (run it alone)"),
    }
}

fn key(a: KeyArgs, out: &mut dyn Write) -> anyhow::Result<()> {
    let id = match a.id {
        Some(id) if id.is_empty() => bail!("--id must not be empty"),
        Some(id) => id,
        None => format!("key-{}", hex(&rand::random::<[u8; 4]>())),
    };
    let principal = a.principal.unwrap_or_else(|| id.clone());
    if principal.is_empty() {
        bail!("--principal must not be empty");
    }
    if let Some(e) = &a.expires {
        parse_rfc3339(e).map_err(|r| anyhow::anyhow!("--expires {e:?} is not RFC 3339: {r}"))?;
    }
    let roles: Vec<String> = a.roles.into_iter().filter(|r| !r.is_empty()).collect();
    let key = ApiKeys::generate();
    writeln!(out, "{key}")?;
    writeln!(out)?;
    writeln!(
        out,
        "# Paste into the config. The key above is not stored anywhere."
    )?;
    writeln!(out, "[[auth.api_keys]]")?;
    writeln!(out, "id = {}", toml_str(&id))?;
    writeln!(out, "principal = {}", toml_str(&principal))?;
    let roles: Vec<String> = roles.iter().map(|r| toml_str(r)).collect();
    writeln!(out, "roles = [{}]", roles.join(", "))?;
    writeln!(out, "sha256 = {}", toml_str(&ApiKeys::hash(&key)))?;
    if let Some(e) = &a.expires {
        writeln!(out, "expires = {}", toml_str(e))?;
    }
    Ok(())
}

/// A TOML basic string (JSON string escapes are valid TOML escapes).
fn toml_str(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn random_secret(bits: u32) -> anyhow::Result<String> {
    if bits < 256 || !bits.is_multiple_of(8) || bits > 8192 {
        bail!("--bits must be a multiple of 8 between 256 and 8192");
    }
    let mut buf = vec![0u8; (bits / 8) as usize];
    rand::fill(&mut buf[..]);
    Ok(URL_SAFE_NO_PAD.encode(buf))
}

fn jwt(
    a: JwtArgs,
    err: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
    now: SystemTime,
) -> anyhow::Result<String> {
    let lifetime = humantime::parse_duration(&a.expires_in)
        .with_context(|| format!("--expires-in {:?}", a.expires_in))?;
    if lifetime.is_zero() {
        bail!("--expires-in must be positive");
    }
    let audience = audience(&a)?;
    let (alg, key) = signing_key(&a, err, env)?;
    let iat = now
        .duration_since(UNIX_EPOCH)
        .unwrap_or(Duration::ZERO)
        .as_secs();
    let roles: Vec<&str> = a
        .roles
        .iter()
        .map(String::as_str)
        .filter(|r| !r.is_empty())
        .collect();
    let mut claims = serde_json::json!({
        "sub": a.user,
        "roles": roles,
        "iss": a.issuer,
        "aud": audience,
        "iat": iat,
        "nbf": iat,
        "exp": iat.saturating_add(lifetime.as_secs()),
        "jti": URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>()),
    });
    if let (Some(scope), Some(map)) = (&a.scope, claims.as_object_mut()) {
        map.insert("scope".to_owned(), scope.clone().into());
    }
    let mut header = Header::new(alg);
    header.typ = Some("at+jwt".to_owned());
    jsonwebtoken::encode(&header, &claims, &key).context("signing the token")
}

fn signing_key(
    a: &JwtArgs,
    err: &mut dyn Write,
    env: &dyn Fn(&str) -> Option<String>,
) -> anyhow::Result<(Algorithm, EncodingKey)> {
    let named = match &a.alg {
        Some(s) => Some(
            s.parse::<Algorithm>()
                .map_err(|_| anyhow::anyhow!("unknown --alg {s}"))?,
        ),
        None => None,
    };
    if let Some(path) = &a.key_file {
        let pem = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let (inferred, key) = private_key(&pem).with_context(|| format!("{}", path.display()))?;
        let alg = named.unwrap_or(inferred);
        if !same_family(alg, inferred) {
            bail!(
                "--alg {alg:?} does not fit the key in {} ({inferred:?})",
                path.display()
            );
        }
        return Ok((alg, key));
    }
    let alg = named.unwrap_or(Algorithm::HS256);
    let min = match alg {
        Algorithm::HS256 => 32,
        Algorithm::HS384 => 48,
        Algorithm::HS512 => 64,
        other => bail!("--alg {other:?} needs --key-file"),
    };
    let bytes = if a.auto_secret {
        let s = random_secret(min as u32 * 8)?;
        writeln!(err, "secret: {s}")?;
        s.into_bytes()
    } else {
        let reference = a.secret.as_deref().unwrap_or_default();
        secret::resolve(reference, env).context("--secret")?
    };
    if bytes.len() < min {
        bail!("the secret must be at least {min} bytes for {alg:?}");
    }
    Ok((alg, EncodingKey::from_secret(&bytes)))
}

fn same_family(a: Algorithm, b: Algorithm) -> bool {
    use Algorithm::*;
    let family = |x| match x {
        RS256 | RS384 | RS512 | PS256 | PS384 | PS512 => 1,
        ES256 => 2,
        ES384 => 3,
        EdDSA => 4,
        HS256 | HS384 | HS512 => 5,
    };
    family(a) == family(b)
}

/// Reads a private key PEM and says which algorithm family it signs for.
fn private_key(pem: &[u8]) -> anyhow::Result<(Algorithm, EncodingKey)> {
    let der = PrivateKeyDer::from_pem_slice(pem).context("no private key PEM section")?;
    match der {
        PrivateKeyDer::Pkcs1(k) => {
            RsaKeyPair::from_der(k.secret_pkcs1_der()).context("bad RSA key")?;
            Ok((
                Algorithm::RS256,
                EncodingKey::from_rsa_der(k.secret_pkcs1_der()),
            ))
        }
        PrivateKeyDer::Pkcs8(k) => {
            let d = k.secret_pkcs8_der();
            let rng = ring::rand::SystemRandom::new();
            if Ed25519KeyPair::from_pkcs8_maybe_unchecked(d).is_ok() {
                Ok((Algorithm::EdDSA, EncodingKey::from_ed_der(d)))
            } else if EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                d,
                &rng,
            )
            .is_ok()
            {
                Ok((Algorithm::ES256, EncodingKey::from_ec_der(d)))
            } else if EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P384_SHA384_FIXED_SIGNING,
                d,
                &rng,
            )
            .is_ok()
            {
                Ok((Algorithm::ES384, EncodingKey::from_ec_der(d)))
            } else if RsaKeyPair::from_pkcs8(d).is_ok() {
                // Why the PEM again: jsonwebtoken signs RSA with the inner PKCS#1 key.
                Ok((Algorithm::RS256, EncodingKey::from_rsa_pem(pem)?))
            } else {
                bail!("unsupported private key (RSA, EC P-256/P-384, Ed25519)")
            }
        }
        PrivateKeyDer::Sec1(_) => {
            bail!("SEC1 EC key: convert with `openssl pkcs8 -topk8 -nocrypt`")
        }
        _ => bail!("unsupported private key format"),
    }
}

#[cfg(test)]
mod tests;

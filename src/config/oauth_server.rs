//! `[oauth_server]`: the built-in OAuth 2.1 authorization server (docs/oauth-server.md), off
//! unless the section (or `--oauth-issuer`) is present. The file form, validated into
//! [`OAuthServerConfig`], which `authz.rs` starts. Every problem is collected with its key.
//!
//! Checked here: the issuer (https, or http on a loopback host; no path, query or fragment),
//! durations, the registration policy and its redirect-URI patterns, local users (PHC
//! Argon2id hashes, unique names), the company identity provider (`[oauth_server.upstream]`),
//! the branding logo, and where the state lives (`state_dir` or `database_url`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// `[oauth_server]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct OAuthServerFile {
    /// The public base URL (`https://relay.example.com`): the `iss` of every token.
    #[serde(default)]
    pub issuer: Option<String>,
    /// Directory of the SQLite database (default `mcp-relay-state` beside the config file).
    #[serde(default)]
    pub state_dir: Option<PathBuf>,
    /// `postgres://…` (or `env:NAME`, `file:PATH`): the state in PostgreSQL instead.
    #[serde(default)]
    pub database_url: Option<String>,
    #[serde(default)]
    pub access_token_ttl: Option<String>,
    #[serde(default)]
    pub refresh_token_ttl: Option<String>,
    #[serde(default)]
    pub login_session_ttl: Option<String>,
    #[serde(default)]
    pub key_rotation: Option<String>,
    /// `open` (default), `allow-list` or `off`.
    #[serde(default)]
    pub registration: Option<String>,
    /// Redirect-URI patterns (globs) a registration must match under `allow-list`.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// Whether an https `client_id` names a client ID metadata document. Default true.
    #[serde(default)]
    pub client_metadata_documents: Option<bool>,
    /// Scopes offered (`scopes_supported`). Default `["mcp"]`.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Shown on the pages. Default `mcp-relay`.
    #[serde(default)]
    pub name: Option<String>,
    /// A PNG, SVG, JPEG or WebP file shown on the pages (served at `/oauth/logo`).
    #[serde(default)]
    pub logo: Option<PathBuf>,
    /// Failed logins before a user (or an address) is locked out. Default 5.
    #[serde(default)]
    pub login_attempts: Option<u32>,
    /// How long a lockout lasts. Default `15m`.
    #[serde(default)]
    pub lockout: Option<String>,
    /// Registrations one address may make per hour. Default 20.
    #[serde(default)]
    pub registrations_per_hour: Option<u32>,
    #[serde(default)]
    pub users: Vec<LocalUser>,
    #[serde(default)]
    pub upstream: Option<UpstreamFile>,
}

/// `[[oauth_server.users]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocalUser {
    pub name: String,
    /// A PHC string (`$argon2id$v=19$…`), as `mcp-relay token password-hash` prints.
    pub password_hash: String,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub disabled: bool,
}

/// `[oauth_server.upstream]`: the company identity provider people log in with.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpstreamFile {
    pub issuer: String,
    pub client_id: String,
    /// `env:NAME` or `file:PATH`; absent for a public client.
    #[serde(default)]
    pub client_secret: Option<String>,
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// The button's label. Default `Single sign-on`.
    #[serde(default)]
    pub name: Option<String>,
    /// The claim naming the principal. Default `sub`.
    #[serde(default)]
    pub principal_claim: Option<String>,
    /// The claim holding groups (array or string). Default `groups`.
    #[serde(default)]
    pub groups_claim: Option<String>,
    /// Group → roles.
    #[serde(default)]
    pub roles: BTreeMap<String, Vec<String>>,
    /// Roles every upstream user gets.
    #[serde(default)]
    pub default_roles: Vec<String>,
}

/// Who may register clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Registration {
    Open,
    AllowList,
    Off,
}

/// Where the state lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Storage {
    /// The SQLite file `oauth.db` in this directory.
    Sqlite(PathBuf),
    /// A PostgreSQL URL (already resolved; never logged).
    Postgres(String),
}

/// The company identity provider, validated.
#[derive(Debug, Clone)]
pub(crate) struct UpstreamConfig {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<String>,
    pub scopes: Vec<String>,
    pub name: String,
    pub principal_claim: String,
    pub groups_claim: String,
    pub roles: BTreeMap<String, Vec<String>>,
    pub default_roles: Vec<String>,
}

/// The authorization server's settings, validated.
#[derive(Debug, Clone)]
pub(crate) struct OAuthServerConfig {
    /// No trailing slash.
    pub issuer: String,
    pub storage: Storage,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub login_session_ttl: Duration,
    pub key_rotation: Duration,
    pub registration: Registration,
    pub redirect_patterns: Vec<String>,
    pub client_metadata_documents: bool,
    pub scopes: Vec<String>,
    pub name: String,
    pub logo: Option<PathBuf>,
    pub login_attempts: u32,
    pub lockout: Duration,
    pub registrations_per_hour: u32,
    pub users: Vec<LocalUser>,
    pub upstream: Option<UpstreamConfig>,
}

impl OAuthServerConfig {
    /// Whether `name` is a configured, enabled local user.
    pub(crate) fn user(&self, name: &str) -> Option<&LocalUser> {
        self.users.iter().find(|u| u.name == name)
    }
}

/// `--oauth-issuer`, `--oauth-state-dir`, `--oauth-database-url`.
#[derive(Debug, Default)]
pub(crate) struct Flags {
    pub issuer: Option<String>,
    pub state_dir: Option<PathBuf>,
    pub database_url: Option<String>,
}

/// Validates `[oauth_server]` (with the flags over it). `base` is the config file's directory.
pub(crate) fn build(
    file: Option<OAuthServerFile>,
    flags: Flags,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<OAuthServerConfig> {
    let on = file.is_some() || flags.issuer.is_some();
    if !on {
        if flags.state_dir.is_some() || flags.database_url.is_some() {
            errors.push(
                "--oauth-state-dir/--oauth-database-url need --oauth-issuer or [oauth_server]"
                    .into(),
            );
        }
        return None;
    }
    let before = errors.len();
    let mut f = file.unwrap_or_default();
    let issuer = flags.issuer.clone().or(f.issuer.take());
    let issuer = match issuer {
        Some(i) => check_issuer(&i, "oauth_server.issuer", errors),
        None => {
            errors.push("oauth_server.issuer: required (the public base URL, e.g. https://relay.example.com)".into());
            String::new()
        }
    };
    let storage = storage(&mut f, flags, base, env, errors);
    let Lifetimes {
        access_token_ttl,
        refresh_token_ttl,
        login_session_ttl,
        key_rotation,
        lockout,
    } = lifetimes(&f, errors);
    let registration = registration(&f, errors);
    let scopes = f.scopes.take().unwrap_or_else(|| vec!["mcp".into()]);
    if let Some(s) = scopes.iter().find(|s| !is_scope_token(s)) {
        errors.push(format!("oauth_server.scopes: `{s}` is not a scope token"));
    }
    let logo = f.logo.take().map(|p| base.join(p));
    if let Some(p) = &logo {
        if logo_type(p).is_none() || !p.is_file() {
            errors.push(format!(
                "oauth_server.logo: {} is not a .png, .svg, .jpg or .webp file",
                p.display()
            ));
        }
    }
    let users = users(std::mem::take(&mut f.users), errors);
    let upstream = f.upstream.take().and_then(|u| upstream(u, env, errors));
    if users.is_empty() && upstream.is_none() {
        errors.push("oauth_server: nobody can log in; add [[oauth_server.users]] or [oauth_server.upstream]".into());
    }
    if errors.len() > before {
        return None;
    }
    Some(OAuthServerConfig {
        issuer,
        storage,
        access_token_ttl,
        refresh_token_ttl,
        login_session_ttl,
        key_rotation,
        registration,
        redirect_patterns: f.redirect_uris,
        client_metadata_documents: f.client_metadata_documents.unwrap_or(true),
        scopes,
        name: f.name.unwrap_or_else(|| "mcp-relay".into()),
        logo,
        login_attempts: f.login_attempts.unwrap_or(5).max(1),
        lockout,
        registrations_per_hour: f.registrations_per_hour.unwrap_or(20).max(1),
        users,
        upstream,
    })
}

/// `registration` and its redirect-URI patterns.
fn registration(f: &OAuthServerFile, errors: &mut Vec<String>) -> Registration {
    let registration = match f.registration.as_deref().unwrap_or("open") {
        "open" => Registration::Open,
        "allow-list" => Registration::AllowList,
        "off" => Registration::Off,
        other => {
            errors.push(format!(
                "oauth_server.registration: `{other}` (expected open, allow-list or off)"
            ));
            Registration::Off
        }
    };
    for p in &f.redirect_uris {
        if let Err(e) = globset::Glob::new(p) {
            errors.push(format!("oauth_server.redirect_uris: `{p}`: {e}"));
        }
    }
    if registration == Registration::AllowList && f.redirect_uris.is_empty() {
        errors
            .push("oauth_server.registration = \"allow-list\" needs redirect_uris patterns".into());
    }
    registration
}

/// The durations of `[oauth_server]`.
struct Lifetimes {
    access_token_ttl: Duration,
    refresh_token_ttl: Duration,
    login_session_ttl: Duration,
    key_rotation: Duration,
    lockout: Duration,
}

fn lifetimes(f: &OAuthServerFile, errors: &mut Vec<String>) -> Lifetimes {
    let duration = |v: &Option<String>, key: &str, default: &str, errors: &mut Vec<String>| {
        let s = v.as_deref().unwrap_or(default);
        humantime::parse_duration(s)
            .ok()
            .filter(|d| !d.is_zero())
            .unwrap_or_else(|| {
                errors.push(format!(
                    "oauth_server.{key}: `{s}` is not a duration (examples: 10m, 12h, 30d)"
                ));
                Duration::from_secs(60)
            })
    };
    let access_token_ttl = duration(&f.access_token_ttl, "access_token_ttl", "10m", errors);
    let refresh_token_ttl = duration(&f.refresh_token_ttl, "refresh_token_ttl", "30d", errors);
    let login_session_ttl = duration(&f.login_session_ttl, "login_session_ttl", "12h", errors);
    let key_rotation = duration(&f.key_rotation, "key_rotation", "30d", errors);
    let lockout = duration(&f.lockout, "lockout", "15m", errors);
    if access_token_ttl > Duration::from_secs(24 * 3600) {
        errors.push(
            "oauth_server.access_token_ttl: at most 24h (access tokens are short-lived)".into(),
        );
    }
    Lifetimes {
        access_token_ttl,
        refresh_token_ttl,
        login_session_ttl,
        key_rotation,
        lockout,
    }
}

/// The media type of a logo file, by its extension.
pub(crate) fn logo_type(path: &Path) -> Option<&'static str> {
    match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
        "png" => Some("image/png"),
        "svg" => Some("image/svg+xml"),
        "jpg" | "jpeg" => Some("image/jpeg"),
        "webp" => Some("image/webp"),
        _ => None,
    }
}

/// RFC 6749 §3.3 scope-token characters.
fn is_scope_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b))
}

/// An issuer or IdP URL: https, or http to a loopback host; no query or fragment. The
/// relay's own issuer also has no path (its endpoints live at fixed paths).
fn check_issuer(s: &str, key: &str, errors: &mut Vec<String>) -> String {
    let trimmed = s.trim_end_matches('/');
    match reqwest::Url::parse(trimmed) {
        Ok(u) if !secure_or_loopback(&u) => errors.push(format!(
            "{key}: `{s}` must be https (http only on a loopback host)"
        )),
        Ok(u) if u.query().is_some() || u.fragment().is_some() || !u.username().is_empty() => {
            errors.push(format!(
                "{key}: `{s}` must have no query, fragment or credentials"
            ))
        }
        Ok(u) if key == "oauth_server.issuer" && u.path() != "/" => errors.push(format!(
            "{key}: `{s}` must be an origin with no path (the endpoints are /oauth/…)"
        )),
        Ok(_) => {}
        Err(e) => errors.push(format!("{key}: `{s}`: {e}")),
    }
    trimmed.to_owned()
}

/// https, or http to `localhost`, `127.0.0.0/8` or `::1`.
pub(crate) fn secure_or_loopback(u: &reqwest::Url) -> bool {
    match (u.scheme(), u.host()) {
        ("https", Some(_)) => true,
        ("http", Some(url::Host::Domain(d))) => d.eq_ignore_ascii_case("localhost"),
        ("http", Some(url::Host::Ipv4(ip))) => ip.is_loopback(),
        ("http", Some(url::Host::Ipv6(ip))) => ip.is_loopback(),
        _ => false,
    }
}

fn storage(
    f: &mut OAuthServerFile,
    flags: Flags,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Storage {
    if let Some(url) = flags.database_url.or(f.database_url.take()) {
        let url = if url.starts_with("env:") || url.starts_with("file:") {
            match crate::secret::resolve(&url, env) {
                Ok(b) => String::from_utf8_lossy(&b).into_owned(),
                Err(e) => {
                    errors.push(format!("oauth_server.database_url: {e}"));
                    return Storage::Postgres(String::new());
                }
            }
        } else {
            url
        };
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            errors.push("oauth_server.database_url: must be a postgres:// URL".into());
        }
        return Storage::Postgres(url);
    }
    let dir = flags
        .state_dir
        .or(f.state_dir.take().map(|d| base.join(d)))
        .unwrap_or_else(|| base.join("mcp-relay-state"));
    Storage::Sqlite(std::path::absolute(&dir).unwrap_or(dir))
}

fn users(list: Vec<LocalUser>, errors: &mut Vec<String>) -> Vec<LocalUser> {
    let mut seen = std::collections::HashSet::new();
    for u in &list {
        if !crate::caller::identity_is_valid(&u.name) {
            errors.push(format!(
                "oauth_server.users: `{}` is not a valid user name",
                u.name.escape_debug()
            ));
        }
        if !seen.insert(u.name.as_str()) {
            errors.push(format!("oauth_server.users: `{}` appears twice", u.name));
        }
        match argon2::PasswordHash::new(&u.password_hash) {
            Ok(h) if h.algorithm.as_str() == "argon2id" => {}
            Ok(_) => errors.push(format!("oauth_server.users.{}: password_hash must be Argon2id", u.name)),
            Err(_) => errors.push(format!(
                "oauth_server.users.{}: password_hash is not a PHC string (make one with `mcp-relay token password-hash`)",
                u.name
            )),
        }
    }
    list
}

fn upstream(
    u: UpstreamFile,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<UpstreamConfig> {
    let issuer = check_issuer(&u.issuer, "oauth_server.upstream.issuer", errors);
    let client_secret = match u
        .client_secret
        .as_deref()
        .map(|r| crate::secret::resolve(r, env))
    {
        None => None,
        Some(Ok(b)) => Some(String::from_utf8_lossy(&b).into_owned()),
        Some(Err(e)) => {
            errors.push(format!("oauth_server.upstream.client_secret: {e}"));
            None
        }
    };
    if u.client_id.is_empty() {
        errors.push("oauth_server.upstream.client_id: required".into());
    }
    Some(UpstreamConfig {
        issuer,
        client_id: u.client_id,
        client_secret,
        scopes: u
            .scopes
            .unwrap_or_else(|| vec!["openid".into(), "email".into(), "profile".into()]),
        name: u.name.unwrap_or_else(|| "Single sign-on".into()),
        principal_claim: u.principal_claim.unwrap_or_else(|| "sub".into()),
        groups_claim: u.groups_claim.unwrap_or_else(|| "groups".into()),
        roles: u.roles,
        default_roles: u.default_roles,
    })
}

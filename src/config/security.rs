//! The security part of the configuration: the `[auth]`, `[roles]`, `[audit]`, `[limits]` and
//! `[network]` sections of `serve --config FILE` (TOML), plus their command-line shorthands,
//! validated into the runtime objects (`Authenticator`, `Rbac`, audit and mTLS settings, IP
//! rules, CORS, rate limits).
//!
//! File paths inside the file are relative to the file. Secrets are references (`env:`,
//! `file:`), resolved here through a lookup function. Every problem is collected.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::config::oauth_server::{self, OAuthServerConfig, OAuthServerFile};
use crate::policy::api_key::{ApiKeyConfig, ApiKeys};
use crate::policy::authn::{AuthParts, Authenticator};
use crate::policy::cors::{self, Cors};
use crate::policy::ip::{IpRules, NetworkConfig};
use crate::policy::issued::IssuedTokens;
use crate::policy::jwt::{JwtConfig, JwtVerifier};
use crate::policy::mtls::MtlsMap;
use crate::policy::rate_limit::{Limits, LimitsConfig};
use crate::policy::rbac::Rbac;
use crate::policy::{OriginGuard, RequestPolicy};
use crate::telemetry::audit::AuditConfig;
use crate::tls::client::MtlsConfig;

/// The file form (`serve --config`). Sections for listeners and servers come later.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FileConfig {
    /// Who may connect: API keys, JWT issuers, mTLS clients.
    #[serde(default)]
    pub auth: Option<AuthFile>,
    /// Who may do what: a roles file (`permissions.json` form).
    #[serde(default)]
    pub roles: Option<RolesFile>,
    /// One JSON line per request.
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// Rate limits and the per-principal concurrency cap (docs/traffic.md).
    #[serde(default)]
    pub limits: Option<LimitsConfig>,
    /// The built-in authorization server (docs/oauth-server.md).
    #[serde(default)]
    pub oauth_server: Option<OAuthServerFile>,
    /// This relay as one replica of a fleet (docs/fleet.md).
    #[serde(default)]
    pub cluster: Option<crate::cluster::config::ClusterFile>,
    /// The response cache of idempotent reads (`relay/cache.rs`).
    #[serde(default)]
    pub cache: Option<crate::config::cache::CacheFile>,
    /// Client IP allow/deny, trusted proxies, CORS origins (docs/traffic.md).
    #[serde(default)]
    pub network: Option<NetworkConfig>,
    /// Every `serve` flag as a key: accepted here, read from the raw table by `config/file.rs`
    /// before the flags are parsed.
    #[serde(default, rename = "serve")]
    pub _serve: Option<toml::Table>,
    /// `[servers]`, `[endpoints]`, `[aggregate]`: read by `config/file/servers.rs`.
    #[serde(default, rename = "servers")]
    pub _servers: Option<toml::Value>,
    #[serde(default, rename = "endpoints")]
    pub _endpoints: Option<toml::Value>,
    #[serde(default, rename = "aggregate")]
    pub _aggregate: Option<toml::Value>,
}

/// `[auth]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthFile {
    /// The relay's canonical URL (`https://mcp.example.com/mcp`): JWT audience and RFC 9728
    /// `resource`. Default: `http(s)://<listen><path>`.
    #[serde(default)]
    pub resource: Option<String>,
    /// Authorization servers listed in the protected-resource metadata.
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// Scopes advertised in the metadata (default: `required_scopes`).
    #[serde(default)]
    pub scopes_supported: Vec<String>,
    /// Scopes every JWT must carry (else 403 `insufficient_scope`).
    #[serde(default)]
    pub required_scopes: Vec<String>,
    /// `[[auth.api_keys]]` entries, as printed by `mcp-relay token key`.
    #[serde(default)]
    pub api_keys: Vec<ApiKeyConfig>,
    /// `[[auth.jwt]]` issuers.
    #[serde(default)]
    pub jwt: Vec<JwtConfig>,
    /// `[auth.mtls]`: client certificates (needs `--tls-cert`).
    #[serde(default)]
    pub mtls: Option<MtlsConfig>,
}

/// `[roles]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RolesFile {
    /// The roles file (JSON; the seed's `permissions.json` form, with our extensions).
    pub file: PathBuf,
}

/// Command-line shorthands for the common cases.
#[derive(Debug, Default)]
pub(crate) struct Shorthands {
    pub config: Option<PathBuf>,
    pub resource: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwks_url: Option<String>,
    pub jwt_issuer: String,
    pub jwt_algorithms: Vec<String>,
    pub roles: Option<PathBuf>,
    pub audit_log: Option<String>,
    pub identity_header: Option<String>,
    /// `--cors-origin` values (joined with `[network] cors_origins`).
    pub cors_origins: Vec<String>,
    /// `--allow-ip`, `--deny-ip`, `--trusted-proxy` (joined with `[network]`).
    pub allow_ips: Vec<String>,
    pub deny_ips: Vec<String>,
    pub trusted_proxies: Vec<String>,
    /// `--memory-budget` (overrides `[limits] memory_budget`).
    pub memory_budget: Option<String>,
    /// The listener is loopback-only (rate-limit defaults are off there).
    pub loopback: bool,
    /// `--oauth-issuer`, `--oauth-state-dir`, `--oauth-database-url`.
    pub oauth: oauth_server::Flags,
    /// `--node`, `--peer`, `--peer-url`, `--cluster-store`, `--drain-window`.
    pub cluster: crate::cluster::config::Flags,
}

/// What the security settings build into.
#[derive(Debug)]
pub(crate) struct Security {
    pub auth: Arc<Authenticator>,
    pub rbac: Option<Arc<Rbac>>,
    pub audit: Option<AuditConfig>,
    pub mtls: Option<MtlsConfig>,
    pub ip: Arc<IpRules>,
    pub cors: Arc<Cors>,
    pub limits: Arc<Limits>,
    /// The built-in authorization server, when on (its verifier is in `auth`).
    pub oauth_server: Option<Arc<OAuthServerConfig>>,
    pub cluster: Option<crate::cluster::config::ClusterConfig>,
    pub cache: Option<crate::config::cache::CacheConfig>,
}

impl Security {
    /// The request policy these settings make with the Host/Origin guard, and what stays
    /// beside it in the configuration: the audit log and the mTLS handshake settings.
    pub(crate) fn into_policy(
        self,
        origin: OriginGuard,
    ) -> (RequestPolicy, Option<AuditConfig>, Option<MtlsConfig>) {
        let policy = RequestPolicy {
            origin,
            auth: self.auth,
            rbac: self.rbac,
            ip: self.ip,
            cors: self.cors,
            limits: self.limits,
        };
        (policy, self.audit, self.mtls)
    }
}

/// Reads the file (if any), applies the shorthands and validates everything.
pub(crate) fn build(
    s: Shorthands,
    default_resource: String,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> Option<Security> {
    let before = errors.len();
    let (file, base) = match &s.config {
        Some(path) => match read(path) {
            Ok(f) => (f, path.parent().map(Path::to_path_buf).unwrap_or_default()),
            Err(e) => {
                errors.push(e);
                (FileConfig::default(), PathBuf::new())
            }
        },
        None => (FileConfig::default(), PathBuf::new()),
    };
    let mut auth = file.auth.unwrap_or_default();
    let oauth = oauth_server::build(file.oauth_server, s.oauth, &base, env, errors);
    let cluster = crate::cluster::config::build(file.cluster, s.cluster, env, errors);
    let cache = crate::config::cache::build(file.cache, cluster.as_ref(), errors);
    let default_resource = issuer_resource(oauth.as_ref(), default_resource);
    let resource = s
        .resource
        .or(auth.resource.take())
        .unwrap_or(default_resource);
    if !(resource.starts_with("https://") || resource.starts_with("http://")) {
        errors.push(format!("auth.resource `{resource}` must be an http(s) URL"));
    }
    if let Some(jwt) = jwt_shorthand(
        s.jwt_secret.as_deref(),
        s.jwks_url.as_deref(),
        s.jwt_issuer,
        s.jwt_algorithms,
        errors,
    ) {
        auth.jwt.push(jwt);
    }
    if let Some(o) = &oauth {
        auth.authorization_servers.insert(0, o.issuer.clone());
        if auth.scopes_supported.is_empty() {
            auth.scopes_supported = o.scopes.clone();
        }
    }
    let (mut parts, mtls) = credentials(auth, resource, s.identity_header, &base, env, errors);
    parts.issued = oauth
        .as_ref()
        .map(|o| Arc::new(IssuedTokens::new(o.issuer.clone())));
    let rbac = roles(s.roles, file.roles, &base, errors);
    let audit = audit(file.audit, s.audit_log, &base, errors);
    let (ip, cors) = network(
        file.network.unwrap_or_default(),
        [s.allow_ips, s.deny_ips, s.trusted_proxies, s.cors_origins],
        cluster.as_ref(),
        errors,
    );
    let mut limits = file.limits.unwrap_or_default();
    if s.memory_budget.is_some() {
        limits.memory_budget = s.memory_budget;
    }
    let limits = limits.build(s.loopback, errors);
    if errors.len() > before {
        return None;
    }
    Some(Security {
        auth: Arc::new(Authenticator::new(parts)),
        rbac,
        audit,
        mtls,
        ip: Arc::new(ip),
        cors: Arc::new(cors),
        limits: Arc::new(limits),
        oauth_server: oauth.map(Arc::new),
        cluster,
        cache,
    })
}

/// With the built-in authorization server the public URL is known: the issuer's origin with
/// the MCP path is the default resource.
fn issuer_resource(oauth: Option<&OAuthServerConfig>, default_resource: String) -> String {
    match oauth {
        Some(o) => {
            let origin = crate::policy::authn::origin_of(&default_resource);
            format!("{}{}", o.issuer, &default_resource[origin.len()..])
        }
        None => default_resource,
    }
}

/// The configured peers whose address is an IP literal: trusted proxies without being
/// listed (the configuration trusts them with forwarding already), so an owner believes the
/// client address a peer forwards (per-IP limits, IP rules, the audit log).
fn peer_proxies(cluster: &crate::cluster::config::ClusterConfig) -> Vec<String> {
    use url::Host;
    let ip = |u: &url::Url| match u.host()? {
        Host::Ipv4(a) => Some(a.to_string()),
        Host::Ipv6(a) => Some(a.to_string()),
        Host::Domain(_) => None,
    };
    cluster.peers.values().filter_map(ip).collect()
}

/// One warning when peers are named by host name (`peer_url`, or a name in `peers`) and no
/// trusted proxy is configured: the owner then sees the forwarding peer as the client.
fn warn_untrusted_peers(cluster: &crate::cluster::config::ClusterConfig, ip: &IpRules) {
    let named = cluster.peer_url.is_some()
        || cluster
            .peers
            .values()
            .any(|u| matches!(u.host(), Some(url::Host::Domain(_))));
    if named && !ip.has_trusted() {
        tracing::warn!(
            "fleet peers are named by host name and no trusted proxy is configured: list the \
             peers' network (the pod CIDR) in [network] trusted_proxies, or owners key per-IP \
             limits on the forwarding peer"
        );
    }
}

/// `[network]` joined with `--allow-ip`, `--deny-ip`, `--trusted-proxy` and `--cors-origin`
/// (in that order in `flags`), and the fleet's peers given by IP address as trusted proxies,
/// as IP rules and CORS.
fn network(
    mut network: NetworkConfig,
    flags: [Vec<String>; 4],
    cluster: Option<&crate::cluster::config::ClusterConfig>,
    errors: &mut Vec<String>,
) -> (IpRules, Cors) {
    let [allow, deny, trusted_proxies, cors_origins] = flags;
    if !allow.is_empty() {
        network.allow.get_or_insert_with(Vec::new).extend(allow);
    }
    network.deny.extend(deny);
    network.trusted_proxies.extend(trusted_proxies);
    network
        .trusted_proxies
        .extend(cluster.map(peer_proxies).unwrap_or_default());
    let ip = network.build(errors);
    if let Some(c) = cluster {
        warn_untrusted_peers(c, &ip);
    }
    let origins: Vec<String> = cors_origins
        .into_iter()
        .chain(network.cors_origins)
        .collect();
    (ip, cors::build(&origins, errors))
}

/// `--jwt-secret` / `--jwks-url` as one `[[auth.jwt]]` issuer.
fn jwt_shorthand(
    secret: Option<&str>,
    jwks_url: Option<&str>,
    issuer: String,
    algorithms: Vec<String>,
    errors: &mut Vec<String>,
) -> Option<JwtConfig> {
    if secret.is_none() && jwks_url.is_none() {
        return None;
    }
    let algorithms = if !algorithms.is_empty() {
        algorithms
    } else if secret.is_some() {
        vec!["HS256".into()]
    } else {
        vec!["RS256".into(), "ES256".into()]
    };
    let mut table = toml::Table::new();
    table.insert("issuer".into(), issuer.into());
    table.insert("algorithms".into(), algorithms.into());
    if let Some(secret) = secret {
        table.insert("secret".into(), secret.into());
    }
    if let Some(url) = jwks_url {
        table.insert("jwks_url".into(), url.into());
    }
    match JwtConfig::deserialize(table) {
        Ok(mut c) => {
            c.origin = Some("--jwt-secret");
            Some(c)
        }
        Err(e) => {
            errors.push(format!("--jwt-secret/--jwks-url: {e}"));
            None
        }
    }
}

/// `[auth]`: API keys, JWT issuers (their key files relative to `base`) and mTLS clients
/// (the CA bundle read now, not after binding), as the authenticator's parts and the mTLS
/// settings.
fn credentials(
    auth: AuthFile,
    resource: String,
    identity_header: Option<String>,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<String>,
) -> (AuthParts, Option<MtlsConfig>) {
    let mut jwts = auth.jwt;
    for jwt in &mut jwts {
        for key in &mut jwt.public_keys {
            *key = base.join(&*key);
        }
    }
    let api_keys = (!auth.api_keys.is_empty())
        .then(|| ApiKeys::new(auth.api_keys))
        .and_then(|r| {
            r.map_err(|e| errors.push(format!("auth.api_keys: {e}")))
                .ok()
        });
    let jwt = (!jwts.is_empty())
        .then(|| JwtVerifier::build(jwts, &resource, env))
        .and_then(|r| r.map_err(|e| errors.push(format!("auth.jwt: {e}"))).ok());
    let mtls_cfg = auth.mtls.map(|mut m| {
        m.ca = base.join(&m.ca);
        m
    });
    // The CA bundle is read now (it is read again when serving starts), not after binding.
    if let Some(Err(e)) = mtls_cfg.as_ref().map(crate::tls::client::verifier) {
        errors.push(format!("auth.mtls.ca: {}", crate::error::with_causes(&e)));
    }
    let mtls = mtls_cfg.as_ref().and_then(|m| {
        MtlsMap::new(&m.clients)
            .map_err(|e| errors.push(format!("auth.mtls.clients: {e}")))
            .ok()
    });
    let parts = AuthParts {
        api_keys,
        jwt,
        issued: None,
        mtls,
        identity_header,
        required_scopes: auth.required_scopes,
        resource,
        authorization_servers: auth.authorization_servers,
        scopes_supported: auth.scopes_supported,
    };
    (parts, mtls_cfg)
}

/// The roles file: `--roles`, else `[roles] file` (relative to `base`).
fn roles(
    flag: Option<PathBuf>,
    file: Option<RolesFile>,
    base: &Path,
    errors: &mut Vec<String>,
) -> Option<Arc<Rbac>> {
    let path = flag.or(file.map(|r| base.join(r.file)))?;
    Rbac::load(&path)
        .map_err(|e| errors.push(format!("roles file {}: {e}", path.display())))
        .ok()
        .map(Arc::new)
}

/// The audit log: `--audit-log`, else `[audit]`. Checked now, before any port is bound: a
/// log that cannot be written is a usage error reported with the others, under the path the
/// relay would really open.
fn audit(
    file: Option<AuditConfig>,
    flag: Option<String>,
    base: &Path,
    errors: &mut Vec<String>,
) -> Option<AuditConfig> {
    let from_flag = flag.is_some();
    let mut audit = file;
    if let Some(target) = flag {
        let mut table = toml::Table::new();
        table.insert("file".into(), target.into());
        match AuditConfig::deserialize(table) {
            Ok(a) => audit = Some(a),
            Err(e) => errors.push(format!("--audit-log: {e}")),
        }
    }
    if let Some(a) = &mut audit {
        let key = if from_flag {
            "--audit-log"
        } else {
            "audit.file"
        };
        errors.extend(resolve_audit(a, base, key));
    }
    audit
}

/// Makes the audit file absolute (relative to `base`, the config file's directory, or the
/// working directory) and returns the problems of the settings, each with its key.
pub(crate) fn resolve_audit(a: &mut AuditConfig, base: &Path, file_key: &str) -> Vec<String> {
    if a.file != "-" {
        let path = base.join(&a.file);
        let path = std::path::absolute(&path).unwrap_or(path);
        a.file = path.to_string_lossy().into_owned();
    }
    a.problems(file_key)
}

/// The file, parsed (not validated): `serve` and `mcp-relay oauth` read it the same way.
pub(crate) fn read(path: &Path) -> Result<FileConfig, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("--config {}: {}", path.display(), e.kind()))?;
    toml::from_str(&text).map_err(|e| format!("--config {}: {e}", path.display()))
}

//! JWT access tokens (SECURITY.md §4): the `[[auth.jwt]]` file form, the per-issuer verifier,
//! and the claim → [`Principal`] mapping.
//!
//! Order of checks in [`JwtVerifier::verify`]: size (8 KiB) → shape → unverified `iss` selects
//! the issuer config (it decides nothing else) → header `alg` against that issuer's pinned list
//! → `typ` → key chosen by (`kid`, `kty`, `alg`) from the issuer's own keys → signature → `exp`,
//! `nbf`, `aud` → principal, roles, scopes. A token verified once is taken from a cache of
//! verified tokens by its SHA-256 after the size check (`jwt/cache.rs`: what a hit still
//! checks). Keys (PEM files, JWKS fetch and cache) live in `jwt/keys.rs`; tests in
//! `jwt/tests.rs`. Header extraction and the 401 mapping are in
//! `authn.rs` and `error.rs`; `token.rs` mints tokens that this file verifies.

mod cache;
mod claims;
mod keys;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{Map, Value};

use crate::caller::{AuthFailure, Principal};
use crate::policy::token_cache::{self, TokenCache};
use crate::secret;
use crate::secret::strength::{self, Weakness};

use keys::{Jwks, Lookup, VerifyKey};

/// Tokens longer than this are refused before any decoding.
pub(crate) const MAX_TOKEN_BYTES: usize = 8 * 1024;
/// The largest accepted `leeway`.
pub(crate) const MAX_LEEWAY: Duration = Duration::from_secs(60);

/// One trusted issuer (`[[auth.jwt]]`).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct JwtConfig {
    /// Exact `iss` value. Required; one entry per issuer.
    pub issuer: String,
    /// Where the secret reference came from, for error messages: `--jwt-secret` for the
    /// flag, `auth.jwt.secret` otherwise. Not a file key.
    #[serde(skip)]
    pub origin: Option<&'static str>,
    /// Accepted `aud` values; the token's `aud` must contain one. Default: the relay's
    /// canonical resource URI.
    #[serde(default)]
    pub audience: Vec<String>,
    /// Pinned algorithms, e.g. `["RS256"]`; the token header never widens this. Either all
    /// HMAC (`HS256/384/512`, with `secret`) or all asymmetric (`RS*`, `PS*`, `ES256`, `ES384`,
    /// `EdDSA`, with `public_keys` and/or `jwks_url`). Required.
    pub algorithms: Vec<String>,
    /// HMAC secret reference (`env:NAME` or `file:/path`), at least as long as the hash;
    /// placeholder and guessable secrets are refused (`secret/strength.rs`).
    #[serde(default)]
    pub secret: Option<String>,
    /// PEM files with public keys or certificates (RSA, EC P-256/P-384, Ed25519).
    #[serde(default)]
    pub public_keys: Vec<PathBuf>,
    /// JWKS URL, https (http only to a loopback host). Fetched on first use and cached.
    #[serde(default)]
    pub jwks_url: Option<String>,
    /// Claim holding the roles, a dotted path (`realm_access.roles`); a top-level claim with
    /// exactly this name wins. Array of strings or one string. Default: `roles`.
    #[serde(default = "default_roles_claim")]
    pub roles_claim: String,
    /// Claim naming the principal (a string). Default: `sub`.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, at most `60s`. Default: `30s`.
    #[serde(default = "default_30s")]
    pub leeway: String,
    /// Whether `nbf` is checked. Default: true.
    #[serde(default = "default_true")]
    pub check_nbf: bool,
    /// Least time between two JWKS fetches (an unknown `kid` refreshes once per interval).
    /// Default: `30s`.
    #[serde(default = "default_30s")]
    pub jwks_refresh: String,
}

fn default_roles_claim() -> String {
    "roles".to_owned()
}
fn default_principal_claim() -> String {
    "sub".to_owned()
}
fn default_30s() -> String {
    "30s".to_owned()
}
fn default_true() -> bool {
    true
}

/// Why the `[[auth.jwt]]` config is invalid. The issuer is named in every message.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("jwt: issuer must not be empty")]
    EmptyIssuer,
    #[error("jwt issuer {0}: configured more than once")]
    DuplicateIssuer(String),
    #[error("jwt issuer {0}: algorithms must not be empty")]
    NoAlgorithms(String),
    #[error("jwt issuer {issuer}: unknown or forbidden algorithm {alg}")]
    BadAlgorithm { issuer: String, alg: String },
    #[error("jwt issuer {0}: HMAC and asymmetric algorithms cannot be mixed")]
    MixedAlgorithms(String),
    #[error("jwt issuer {0}: HMAC algorithms need `secret` and take no public keys or jwks_url")]
    HmacKeys(String),
    #[error(
        "jwt issuer {0}: asymmetric algorithms need `public_keys` or `jwks_url`, not `secret`"
    )]
    AsymmetricKeys(String),
    #[error("jwt issuer {issuer}: secret: {source}")]
    Secret {
        issuer: String,
        #[source]
        source: secret::Error,
    },
    #[error(
        "jwt issuer {issuer}: {key} `{reference}`: the secret must be at least {min} bytes for {alg}"
    )]
    ShortSecret {
        issuer: String,
        key: &'static str,
        reference: String,
        alg: String,
        min: usize,
    },
    #[error(
        "jwt issuer {issuer}: {key} `{reference}`: the secret {reason}; generate one with `mcp-relay token secret`"
    )]
    WeakSecret {
        issuer: String,
        key: &'static str,
        reference: String,
        #[source]
        reason: Weakness,
    },
    #[error("jwt issuer {issuer}: public key {path}: {source}")]
    KeyFile {
        issuer: String,
        path: PathBuf,
        #[source]
        source: keys::Error,
    },
    #[error("jwt issuer {issuer}: {field}: {reason}")]
    BadDuration {
        issuer: String,
        field: &'static str,
        reason: String,
    },
    #[error("jwt issuer {0}: leeway must be at most 60s")]
    LeewayTooLarge(String),
    #[error("jwt issuer {issuer}: jwks_url: {reason}")]
    JwksUrl { issuer: String, reason: String },
    #[error("jwt: cannot build the jwks http client: {0}")]
    HttpClient(#[source] reqwest::Error),
}

/// One issuer, validated.
struct Issuer {
    audience: Vec<String>,
    algorithms: Vec<Algorithm>,
    /// The HMAC key; `None` for asymmetric issuers. Never mixed with `keys`/`jwks`.
    hmac: Option<DecodingKey>,
    keys: Vec<VerifyKey>,
    jwks: Option<Jwks>,
    roles_claim: String,
    principal_claim: String,
    leeway: u64,
    check_nbf: bool,
}

/// Verifies bearer JWTs against the configured issuers. Cheap to clone; clones share the
/// cache of verified tokens (`jwt/cache.rs`), a newly built verifier starts with none.
#[derive(Clone)]
pub(crate) struct JwtVerifier {
    issuers: Arc<HashMap<String, Issuer>>,
    http: Option<reqwest::Client>,
    verified: Arc<TokenCache<cache::Verified>>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("issuers", &self.issuers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The header fields we read; everything else (`jku`, `x5u`, `jwk`, `x5c`) is ignored.
#[derive(serde::Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    typ: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

fn fail(word: &'static str) -> AuthFailure {
    AuthFailure::Invalid(word)
}

// === impl JwtVerifier ===

impl JwtVerifier {
    /// Validates every issuer config; secrets are resolved through `env`, key files read now.
    pub(crate) fn build(
        configs: Vec<JwtConfig>,
        default_audience: &str,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<JwtVerifier, Error> {
        let mut issuers = HashMap::new();
        for c in configs {
            let name = c.issuer.clone();
            if name.is_empty() {
                return Err(Error::EmptyIssuer);
            }
            let issuer = build_issuer(c, default_audience, env)?;
            if issuers.insert(name.clone(), issuer).is_some() {
                return Err(Error::DuplicateIssuer(name));
            }
        }
        let http = if issuers.values().any(|i| i.jwks.is_some()) {
            Some(keys::http_client().map_err(Error::HttpClient)?)
        } else {
            None
        };
        Ok(JwtVerifier {
            issuers: Arc::new(issuers),
            http,
            verified: Arc::default(),
        })
    }

    /// The issuers accepted, sorted (for messages).
    pub(crate) fn issuer_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.issuers.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// The audiences a token from `issuer` may name (its `audience`, or the relay's resource);
    /// `None` for an issuer that is not accepted.
    pub(crate) fn audiences(&self, issuer: &str) -> Option<&[String]> {
        self.issuers.get(issuer).map(|i| i.audience.as_slice())
    }

    /// Verifies a bearer token now.
    pub(crate) async fn verify(&self, token: &str) -> Result<Principal, AuthFailure> {
        self.verify_at(token, SystemTime::now()).await
    }

    /// Verifies a bearer token as of `now` (tests, and re-checks on long connections): from
    /// the cache when it was verified before (`jwt/cache.rs` says what a hit still checks),
    /// else in full.
    pub(crate) async fn verify_at(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<Principal, AuthFailure> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(fail("token_too_large"));
        }
        let digest = token_cache::digest(token);
        if let Some((hit, _)) = self.verified.get(&digest) {
            if let Some(outcome) = self.cached_outcome(hit, now).await {
                return outcome;
            }
        }
        let verified = self.verify_in_full(token, now).await?;
        let until = verified.window.until();
        self.verified.insert(digest, verified.clone(), until, now);
        Ok(verified.principal)
    }

    /// The checks in the order of this file's header, after the size.
    async fn verify_in_full(
        &self,
        token: &str,
        now: SystemTime,
    ) -> Result<cache::Verified, AuthFailure> {
        let mut parts = token.split('.');
        let (Some(h64), Some(p64), Some(sig64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(fail("malformed_token"));
        };
        let header: Header = decode_part(h64)?;
        let claims: Map<String, Value> = decode_part(p64)?;

        // The unverified `iss` only chooses which config to check the token against.
        let iss = match claims.get("iss") {
            None => return Err(fail("missing_claim")),
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err(fail("bad_issuer")),
        };
        let issuer = self.issuers.get(iss).ok_or(fail("unknown_issuer"))?;
        let alg = header
            .alg
            .parse::<Algorithm>()
            .ok()
            .filter(|a| issuer.algorithms.contains(a))
            .ok_or(fail("alg_not_allowed"))?;
        check_typ(header.typ.as_deref())?;
        if header.crit.is_some() {
            return Err(fail("unsupported_crit"));
        }

        let message = &token[..h64.len() + 1 + p64.len()];
        let generation = self
            .check_signature(issuer, &header, alg, message.as_bytes(), sig64)
            .await?;
        let (principal, window) = claims::principal(issuer, &header, &claims, now)?;
        let keys = generation.map(|generation| {
            Arc::new(cache::KeysSeen {
                issuer: iss.to_owned(),
                kid: header.kid.clone(),
                alg,
                generation,
            })
        });
        Ok(cache::Verified {
            principal,
            window,
            keys,
        })
    }

    /// Checks the signature; the generation of the JWKS keys it was checked against, for an
    /// issuer with a JWKS.
    async fn check_signature(
        &self,
        issuer: &Issuer,
        header: &Header,
        alg: Algorithm,
        message: &[u8],
        sig64: &str,
    ) -> Result<Option<u64>, AuthFailure> {
        if let Some(secret) = &issuer.hmac {
            return verify_with(secret, alg, message, sig64)?
                .then_some(None)
                .ok_or(fail("bad_signature"));
        }
        let kid = header.kid.as_deref();
        let mut candidates: Vec<&VerifyKey> = Vec::new();
        let fetched;
        let mut jwks_down = false;
        let mut generation = None;
        if let (Some(jwks), Some(http)) = (&issuer.jwks, &self.http) {
            match jwks.lookup(http, kid, alg).await {
                Lookup::Keys(k, g) => {
                    fetched = k;
                    generation = Some(g);
                }
                Lookup::Unavailable => {
                    jwks_down = true;
                    fetched = Arc::default();
                }
            }
            // Keys naming this exact kid first, then kid-less ones.
            candidates.extend(
                fetched
                    .iter()
                    .filter(|k| k.selects(kid, alg) && k.kid.is_some()),
            );
            candidates.extend(
                fetched
                    .iter()
                    .filter(|k| k.selects(kid, alg) && k.kid.is_none()),
            );
        }
        candidates.extend(issuer.keys.iter().filter(|k| k.selects(kid, alg)));
        if candidates.is_empty() {
            return Err(fail(if jwks_down {
                "jwks_unavailable"
            } else {
                "unknown_key"
            }));
        }
        for key in candidates {
            if verify_with(&key.key, alg, message, sig64)? {
                return Ok(generation);
            }
        }
        Err(fail("bad_signature"))
    }
}

/// Why this cannot panic inside jsonwebtoken: an RSA key built from JWK components is only
/// ever passed with an RS/PS algorithm ([`VerifyKey::selects`] checks the key type), and the
/// HMAC key is only used for HS algorithms.
fn verify_with(
    key: &DecodingKey,
    alg: Algorithm,
    message: &[u8],
    sig64: &str,
) -> Result<bool, AuthFailure> {
    jsonwebtoken::crypto::verify(sig64, message, key, alg).map_err(|_| fail("malformed_token"))
}

fn decode_part<T: serde::de::DeserializeOwned>(b64: &str) -> Result<T, AuthFailure> {
    let bytes = URL_SAFE_NO_PAD
        .decode(b64)
        .map_err(|_| fail("malformed_token"))?;
    serde_json::from_slice(&bytes).map_err(|_| fail("malformed_token"))
}

/// RFC 9068 asks for `at+jwt`; plain `JWT` and no `typ` are accepted for compatibility. Other
/// types (ID tokens from some providers, logout tokens, DPoP proofs) are not access tokens.
fn check_typ(typ: Option<&str>) -> Result<(), AuthFailure> {
    match typ.map(str::to_ascii_lowercase).as_deref() {
        None | Some("at+jwt" | "application/at+jwt" | "jwt") => Ok(()),
        Some(_) => Err(fail("bad_token_type")),
    }
}

fn is_hmac(alg: Algorithm) -> bool {
    matches!(alg, Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512)
}

fn build_issuer(
    c: JwtConfig,
    default_audience: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Issuer, Error> {
    let algorithms = parse_algorithms(&c.issuer, &c.algorithms)?;
    let name = c.issuer.clone();
    let duration = |field: &'static str, s: &str| {
        humantime::parse_duration(s).map_err(|e| Error::BadDuration {
            issuer: name.clone(),
            field,
            reason: e.to_string(),
        })
    };
    let leeway = duration("leeway", &c.leeway)?;
    let refresh = duration("jwks_refresh", &c.jwks_refresh)?;
    if leeway > MAX_LEEWAY {
        return Err(Error::LeewayTooLarge(name));
    }

    let (mut hmac, mut keys, mut jwks) = (None, Vec::new(), None);
    if algorithms.iter().any(|a| is_hmac(*a)) {
        hmac = Some(hmac_key(&c, &name, &algorithms, env)?);
    } else {
        if c.secret.is_some() || (c.public_keys.is_empty() && c.jwks_url.is_none()) {
            return Err(Error::AsymmetricKeys(name));
        }
        for path in &c.public_keys {
            let loaded = keys::load_pem_file(path).map_err(|source| Error::KeyFile {
                issuer: name.clone(),
                path: path.clone(),
                source,
            })?;
            keys.extend(loaded);
        }
        if let Some(url) = &c.jwks_url {
            let url = check_jwks_url(url).map_err(|reason| Error::JwksUrl {
                issuer: name.clone(),
                reason,
            })?;
            jwks = Some(Jwks::new(url, refresh));
        }
    }
    let audience = if c.audience.is_empty() {
        vec![default_audience.to_owned()]
    } else {
        c.audience
    };
    Ok(Issuer {
        audience,
        algorithms,
        hmac,
        keys,
        jwks,
        roles_claim: c.roles_claim,
        principal_claim: c.principal_claim,
        leeway: leeway.as_secs(),
        check_nbf: c.check_nbf,
    })
}

/// The algorithms of an issuer: known names, all HMAC or none.
fn parse_algorithms(name: &str, list: &[String]) -> Result<Vec<Algorithm>, Error> {
    if list.is_empty() {
        return Err(Error::NoAlgorithms(name.to_owned()));
    }
    let mut algorithms = Vec::new();
    for a in list {
        let alg = a.parse::<Algorithm>().map_err(|_| Error::BadAlgorithm {
            issuer: name.to_owned(),
            alg: a.clone(),
        })?;
        algorithms.push(alg);
    }
    let hmac_count = algorithms.iter().filter(|a| is_hmac(**a)).count();
    if hmac_count != 0 && hmac_count != algorithms.len() {
        return Err(Error::MixedAlgorithms(name.to_owned()));
    }
    Ok(algorithms)
}

/// The shared secret of an HMAC issuer: the only key it has, long enough for every
/// algorithm and not guessable.
fn hmac_key(
    c: &JwtConfig,
    name: &str,
    algorithms: &[Algorithm],
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<DecodingKey, Error> {
    let reference = match (&c.secret, c.public_keys.is_empty(), &c.jwks_url) {
        (Some(r), true, None) => r,
        _ => return Err(Error::HmacKeys(name.to_owned())),
    };
    let bytes = secret::resolve(reference, env).map_err(|source| Error::Secret {
        issuer: name.to_owned(),
        source,
    })?;
    for alg in algorithms {
        let min = match alg {
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 32,
        };
        if bytes.len() < min {
            return Err(Error::ShortSecret {
                issuer: name.to_owned(),
                key: c.origin.unwrap_or("auth.jwt.secret"),
                reference: reference.clone(),
                alg: format!("{alg:?}"),
                min,
            });
        }
    }
    // Placeholders and guessable secrets would let anyone mint tokens (issue 14).
    strength::check(&bytes, strength::MIN_HMAC_BYTES).map_err(|reason| Error::WeakSecret {
        issuer: name.to_owned(),
        key: c.origin.unwrap_or("auth.jwt.secret"),
        reference: reference.clone(),
        reason,
    })?;
    Ok(DecodingKey::from_secret(&bytes))
}

/// https anywhere; http only to a loopback host (tests, local development).
fn check_jwks_url(raw: &str) -> Result<reqwest::Url, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| e.to_string())?;
    let host = url.host_str().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    match url.scheme() {
        "https" => Ok(url),
        "http" if loopback => Ok(url),
        "http" => Err("must be https (http only to a loopback host)".to_owned()),
        other => Err(format!("unsupported scheme {other}")),
    }
}

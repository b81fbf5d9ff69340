//! Verification keys for `jwt.rs`: PEM public keys and certificates from files, and the JWKS
//! (fetched lazily over https, cached, refreshed at most once per interval, single-flight).
//!
//! Only asymmetric keys live here; the HMAC secret of an issuer is a separate key in `jwt.rs`,
//! so a symmetric key can never be chosen for an RS/ES/EdDSA token nor the reverse. Symmetric
//! (`oct`) keys in a JWKS are dropped. Nothing in a token header (`jku`, `x5u`, `jwk`) reaches
//! this file: only the configured URL is fetched.

use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::{Algorithm, DecodingKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo};

/// JWKS fetch: whole-request timeout.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// JWKS fetch: largest body read.
const MAX_JWKS_BYTES: usize = 1024 * 1024;
/// JWKS: keys beyond this many are ignored (bounds the work of a kid-less token).
const MAX_JWKS_KEYS: usize = 100;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ED25519: &str = "1.3.101.112";

/// Key type and, for EC, curve: what decides which algorithms a key may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        matches!(
            (self, alg),
            (KeyKind::Rsa, RS256 | RS384 | RS512 | PS256 | PS384 | PS512)
                | (KeyKind::EcP256, ES256)
                | (KeyKind::EcP384, ES384)
                | (KeyKind::Ed25519, EdDSA)
        )
    }
}

/// One asymmetric verification key.
#[derive(Clone)]
pub(crate) struct VerifyKey {
    /// JWKS `kid`; `None` for PEM files (they match any `kid`).
    pub(crate) kid: Option<String>,
    pub(crate) kind: KeyKind,
    /// JWKS `alg`, when the key names one: then only that algorithm.
    pub(crate) alg: Option<Algorithm>,
    pub(crate) key: DecodingKey,
}

impl VerifyKey {
    /// Whether this key may verify a token with this `kid` and `alg` (the (kid, kty, alg) rule).
    pub(crate) fn selects(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        let kid_ok = match (kid, self.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        kid_ok && self.kind.fits(alg) && self.alg.is_none_or(|a| a == alg)
    }
}

/// Why a public key file cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Error {
    #[error("cannot read: {0}")]
    Read(#[source] std::io::Error),
    #[error("not PEM: {0}")]
    Pem(String),
    #[error("contains a private key; give the public key or certificate")]
    PrivateKey,
    #[error("no PUBLIC KEY or CERTIFICATE section")]
    Empty,
    #[error("unsupported key (RSA, EC P-256/P-384 and Ed25519 are supported)")]
    Unsupported,
    #[error("bad certificate or public key encoding")]
    Encoding,
}

/// Loads every `PUBLIC KEY` and `CERTIFICATE` section of a PEM file.
pub(crate) fn load_pem_file(path: &Path) -> Result<Vec<VerifyKey>, Error> {
    let bytes = std::fs::read(path).map_err(Error::Read)?;
    let mut out = Vec::new();
    for section in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(&bytes) {
        let (kind, der) = section.map_err(|e| Error::Pem(e.to_string()))?;
        match kind {
            SectionKind::PublicKey => out.push(from_spki_der(&der)?),
            SectionKind::Certificate => {
                let (_, cert) =
                    x509_parser::parse_x509_certificate(&der).map_err(|_| Error::Encoding)?;
                out.push(from_spki(cert.public_key())?);
            }
            SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey => {
                return Err(Error::PrivateKey)
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(Error::Empty);
    }
    Ok(out)
}

fn from_spki_der(der: &[u8]) -> Result<VerifyKey, Error> {
    let (_, spki) = SubjectPublicKeyInfo::from_der(der).map_err(|_| Error::Encoding)?;
    from_spki(&spki)
}

fn from_spki(spki: &SubjectPublicKeyInfo<'_>) -> Result<VerifyKey, Error> {
    let data: &[u8] = &spki.subject_public_key.data;
    let (kind, key) = match spki.algorithm.algorithm.to_id_string().as_str() {
        OID_RSA => (KeyKind::Rsa, DecodingKey::from_rsa_der(data)),
        OID_ED25519 => (KeyKind::Ed25519, DecodingKey::from_ed_der(data)),
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let kind = match curve.as_deref() {
                Some(OID_P256) => KeyKind::EcP256,
                Some(OID_P384) => KeyKind::EcP384,
                _ => return Err(Error::Unsupported),
            };
            (kind, DecodingKey::from_ec_der(data))
        }
        _ => return Err(Error::Unsupported),
    };
    Ok(VerifyKey {
        kid: None,
        kind,
        alg: None,
        key,
    })
}

/// Parses a JWKS document, keeping the usable signature keys (at most [`MAX_JWKS_KEYS`]).
pub(crate) fn parse_jwks(body: &[u8]) -> Result<Vec<VerifyKey>, serde_json::Error> {
    #[derive(serde::Deserialize)]
    struct Doc {
        keys: Vec<serde_json::Value>,
    }
    let doc: Doc = serde_json::from_slice(body)?;
    Ok(doc
        .keys
        .iter()
        .filter_map(jwk_to_key)
        .take(MAX_JWKS_KEYS)
        .collect())
}

fn jwk_to_key(v: &serde_json::Value) -> Option<VerifyKey> {
    let s = |name: &str| v.get(name).and_then(serde_json::Value::as_str);
    if s("use").is_some_and(|u| u != "sig") {
        return None;
    }
    let kind = match (s("kty")?, s("crv")) {
        ("RSA", _) => KeyKind::Rsa,
        ("EC", Some("P-256")) => KeyKind::EcP256,
        ("EC", Some("P-384")) => KeyKind::EcP384,
        ("OKP", Some("Ed25519")) => KeyKind::Ed25519,
        _ => return None, // `oct` (symmetric) and unknown types never verify anything
    };
    let alg = match s("alg") {
        None => None,
        Some(a) => Some(a.parse::<Algorithm>().ok()?),
    };
    if alg.is_some_and(|a| !kind.fits(a)) {
        return None;
    }
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(v.clone()).ok()?;
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(VerifyKey {
        kid: s("kid").map(str::to_owned),
        kind,
        alg,
        key,
    })
}

/// Builds the one HTTP client used for every JWKS fetch: no redirects, 5 s timeout.
pub(crate) fn http_client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(FETCH_TIMEOUT)
        .connect_timeout(FETCH_TIMEOUT)
        .build()
}

/// Why a JWKS fetch failed (logged; the client only sees `jwks_unavailable` or `unknown_key`).
#[derive(Debug, thiserror::Error)]
enum FetchError {
    #[error("request failed: {0}")]
    Http(#[source] reqwest::Error),
    #[error("status {0}")]
    Status(u16),
    #[error("body larger than {MAX_JWKS_BYTES} bytes")]
    TooLarge,
    #[error("not a JWKS document: {0}")]
    Json(#[source] serde_json::Error),
}

async fn fetch(client: &reqwest::Client, url: &reqwest::Url) -> Result<Vec<VerifyKey>, FetchError> {
    let mut resp = client
        .get(url.clone())
        .send()
        .await
        .map_err(FetchError::Http)?;
    if !resp.status().is_success() {
        return Err(FetchError::Status(resp.status().as_u16()));
    }
    if resp
        .content_length()
        .is_some_and(|n| n > MAX_JWKS_BYTES as u64)
    {
        return Err(FetchError::TooLarge);
    }
    let mut body = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(FetchError::Http)? {
        if body.len() + chunk.len() > MAX_JWKS_BYTES {
            return Err(FetchError::TooLarge);
        }
        body.extend_from_slice(&chunk);
    }
    parse_jwks(&body).map_err(FetchError::Json)
}

#[derive(Clone, Default)]
struct Snapshot {
    keys: Arc<Vec<VerifyKey>>,
    loaded: bool,
    last_attempt: Option<Instant>,
    loaded_at: Option<Instant>,
    /// Counts successful fetches: a token verified under one generation of keys is taken
    /// from `jwt.rs`'s cache only while the keys are still that generation.
    generation: u64,
}

/// Keys older than this are fetched again on the next use (a withdrawn key stops working
/// within this time even if no token with an unknown `kid` arrives); a failed refetch keeps
/// the old keys.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(600);

/// One issuer's JWKS: cached keys plus the refresh gate.
pub(crate) struct Jwks {
    url: reqwest::Url,
    refresh: Duration,
    state: RwLock<Snapshot>,
    /// Held across a fetch: concurrent verifiers wait for it and then reuse its result.
    fetching: tokio::sync::Mutex<()>,
}

/// What the cache can offer for one token.
pub(crate) enum Lookup {
    /// The keys and their generation (see [`Snapshot::generation`]).
    Keys(Arc<Vec<VerifyKey>>, u64),
    /// Never loaded successfully (the first fetch failed and the interval has not passed).
    Unavailable,
}

impl Jwks {
    pub(crate) fn new(url: reqwest::Url, refresh: Duration) -> Jwks {
        Jwks {
            url,
            refresh,
            state: RwLock::new(Snapshot::default()),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    fn snapshot(&self) -> Snapshot {
        self.state.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn missing(s: &Snapshot, kid: Option<&str>, alg: Algorithm) -> bool {
        !s.loaded
            || kid.is_some_and(|k| !s.keys.iter().any(|v| v.selects(Some(k), alg)))
            || s.loaded_at.is_some_and(|t| t.elapsed() >= MAX_AGE)
    }

    /// Keys for a token: loads on first use; an unknown `kid` (or keys past [`MAX_AGE`])
    /// refreshes at most once per interval, and concurrent callers share that one fetch.
    pub(crate) async fn lookup(
        &self,
        client: &reqwest::Client,
        kid: Option<&str>,
        alg: Algorithm,
    ) -> Lookup {
        if Self::missing(&self.snapshot(), kid, alg) {
            // Why lock before deciding: a caller arriving while a fetch is in flight must wait
            // for its result, not report the keys as unavailable.
            let _one_fetch = self.fetching.lock().await;
            let s = self.snapshot();
            let allowed = s.last_attempt.is_none_or(|t| t.elapsed() >= self.refresh);
            if allowed && Self::missing(&s, kid, alg) {
                self.set(|s| s.last_attempt = Some(Instant::now()));
                match fetch(client, &self.url).await {
                    Ok(keys) => self.set(|s| {
                        s.keys = Arc::new(keys);
                        s.loaded = true;
                        s.loaded_at = Some(Instant::now());
                        s.generation += 1;
                    }),
                    Err(e) => tracing::warn!(url = %self.url, error = %e, "jwks fetch failed"),
                }
            }
        }
        let s = self.snapshot();
        if s.loaded {
            Lookup::Keys(s.keys, s.generation)
        } else {
            Lookup::Unavailable
        }
    }

    fn set(&self, f: impl FnOnce(&mut Snapshot)) {
        let mut guard = self.state.write().unwrap_or_else(|e| e.into_inner());
        f(&mut guard);
    }
}

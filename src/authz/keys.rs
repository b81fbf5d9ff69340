//! Signing keys: ES256 (P-256) keys the relay generates, stores and rotates. A new key is
//! published (JWKS, and the verifier of `policy/issued.rs`) at once but signs only from two
//! minutes later — by then every replica sharing the database has loaded it — so a token one
//! replica mints is never unknown to another. A retired key stays published for a day (the
//! longest access-token lifetime) after it stopped signing, then it is deleted.
//! [`Keyring::sync`] runs at start and every minute (or more often for a short
//! `key_rotation`): it rotates when the newest key is older than `key_rotation`, and picks up
//! keys another replica made.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use jsonwebtoken::{DecodingKey, EncodingKey, Header};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

use super::store::keys::StoredKey;
use super::store::{Store, StoreError};
use crate::policy::issued::{IssuedTokens, PublicKey, TOKEN_TYPE};

/// The key that signs now.
struct Signer {
    kid: String,
    key: EncodingKey,
}

/// How long a new key is published before it signs: two key syncs of every replica.
const AHEAD: i64 = 120;
/// How long a retired key stays published: it may still sign for [`AHEAD`], and its tokens
/// live at most a day (the longest `access_token_ttl`), with a minute's skew.
const GRACE: i64 = AHEAD + 24 * 3600 + 60;

/// The signing key and the published ones.
#[derive(Default)]
pub(crate) struct Keyring {
    signer: ArcSwapOption<Signer>,
    jwks: ArcSwapOption<Value>,
}

impl Keyring {
    /// Rotates when the newest key is older than `rotation`, then loads the published keys
    /// into the JWKS and `verifier` (the current policy's).
    pub(crate) async fn sync(
        &self,
        store: &Store,
        now: i64,
        rotation: Duration,
        verifier: &IssuedTokens,
    ) -> Result<(), StoreError> {
        let since = now - GRACE;
        let mut keys = store.keys(since).await?;
        let current = keys.iter().find(|k| k.retired.is_none());
        let due = current.is_none_or(|k| now - k.created >= rotation.as_secs() as i64);
        if due {
            store.rotate_to(&generate(now)?).await?;
            store.drop_keys(since).await?;
            keys = store.keys(since).await?;
        }
        self.publish(&keys, now, verifier);
        Ok(())
    }

    fn publish(&self, keys: &[StoredKey], now: i64, verifier: &IssuedTokens) {
        // Newest first: the newest key published long enough, else (a fresh state) the newest.
        let signing = keys
            .iter()
            .find(|k| k.created <= now - AHEAD)
            .or(keys.first());
        let signer = signing.and_then(|k| {
            let der = STANDARD.decode(&k.private_key).ok()?;
            Some(Arc::new(Signer {
                kid: k.kid.clone(),
                key: EncodingKey::from_ec_der(&der),
            }))
        });
        let jwks: Vec<Value> = keys
            .iter()
            .filter_map(|k| serde_json::from_str(&k.public_jwk).ok())
            .collect();
        let public = jwks
            .iter()
            .filter_map(|j| {
                let key =
                    DecodingKey::from_ec_components(j["x"].as_str()?, j["y"].as_str()?).ok()?;
                Some(PublicKey {
                    kid: j["kid"].as_str()?.to_owned(),
                    key,
                })
            })
            .collect();
        verifier.set_keys(public);
        self.signer.store(signer);
        self.jwks.store(Some(Arc::new(json!({ "keys": jwks }))));
    }

    /// The JWKS document.
    pub(crate) fn jwks(&self) -> Value {
        self.jwks
            .load_full()
            .map(|j| (*j).clone())
            .unwrap_or_else(|| json!({ "keys": [] }))
    }

    /// Signs `claims` as an access token (`typ` `at+jwt`, RFC 9068).
    pub(crate) fn sign(&self, claims: &Value) -> Option<String> {
        let signer = self.signer.load_full()?;
        let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
        header.kid = Some(signer.kid.clone());
        header.typ = Some(TOKEN_TYPE.into());
        jsonwebtoken::encode(&header, claims, &signer.key).ok()
    }
}

/// A new P-256 key: PKCS#8 for signing, and its public JWK.
fn generate(now: i64) -> Result<StoredKey, StoreError> {
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
        .map_err(|_| StoreError::Key)?;
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
        .map_err(|_| StoreError::Key)?;
    // The uncompressed point: 0x04 ‖ x ‖ y.
    let point = pair.public_key().as_ref();
    let kid = super::random_token(12);
    let jwk = json!({
        "kty": "EC",
        "crv": "P-256",
        "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
        "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        "kid": kid,
        "use": "sig",
        "alg": "ES256",
    });
    Ok(StoredKey {
        kid,
        private_key: STANDARD.encode(pkcs8.as_ref()),
        public_jwk: jwk.to_string(),
        created: now,
        retired: None,
    })
}

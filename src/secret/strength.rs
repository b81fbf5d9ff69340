//! Whether a resolved secret is fit to sign or check credentials (issue 14, bug 3): known
//! placeholders, too short, one character repeated, a sequence or a repeated pattern, or too
//! little entropy are refused at start-up, on SIGHUP and by `check-config`.
//!
//! Owns the rules only. The callers name the key (`auth.jwt.secret`, `--jwt-secret`,
//! `auth.api_keys.sha256`) and never print the secret: a [`Weakness`] says why, not what.
//! Neighbours: `secret.rs` resolves `env:`/`file:` references; `policy/jwt.rs` and
//! `policy/api_key.rs` call the checks.

use ring::digest::{digest, SHA256};

/// HS256 needs a key at least as long as its hash (RFC 7518 §3.2).
pub(crate) const MIN_HMAC_BYTES: usize = 32;
/// The least Shannon estimate (bits per byte × length) a secret must reach. A 32-byte key from
/// `mcp-relay token secret` (43 base64url characters) estimates at about 200 bits; 32 random
/// hex characters (16 bytes) at about 120.
pub(crate) const MIN_ENTROPY_BITS: u32 = 128;

/// Words that only placeholders and samples contain (compared without case). Long enough
/// that a random key contains one with negligible probability (the shortest, `secret`, has
/// odds of about 1 in 30 million in 43 base64url characters).
const PLACEHOLDERS: &[&str] = &[
    "replace-me",
    "replace_me",
    "replaceme",
    "change-me",
    "change_me",
    "changeme",
    "placeholder",
    "example",
    "secret",
    "password",
    "your-key",
    "your_key",
    "insert-",
    "xxxxxx",
];

/// Keys that placeholders and samples use: the SHA-256 of these is refused as an API key hash.
const PLACEHOLDER_KEYS: &[&str] = &[
    "",
    "mcpr_REPLACE-ME-probe-key",
    "REPLACE-ME",
    "changeme",
    "secret",
    "password",
    "test",
    "probe",
];

/// Why a secret is refused. The text never contains the secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Weakness {
    #[error("is {len} bytes; at least {min} are needed")]
    Short { len: usize, min: usize },
    #[error("looks like a placeholder (it contains `{0}`)")]
    Placeholder(&'static str),
    #[error("is one character repeated")]
    Repeated,
    #[error("is a sequence or a repeated pattern")]
    Pattern,
    #[error("has too little entropy (about {bits} bits estimated, at least {min} needed)")]
    LowEntropy { bits: u32, min: u32 },
    #[error("is the hash of a well-known placeholder key")]
    KnownKey,
}

/// Checks an HMAC secret (or any shared secret) of at least `min_len` bytes.
pub(crate) fn check(secret: &[u8], min_len: usize) -> Result<(), Weakness> {
    if secret.len() < min_len {
        return Err(Weakness::Short {
            len: secret.len(),
            min: min_len,
        });
    }
    let lower = secret.to_ascii_lowercase();
    if let Some(word) = PLACEHOLDERS
        .iter()
        .find(|w| lower.windows(w.len()).any(|x| x == w.as_bytes()))
    {
        return Err(Weakness::Placeholder(word));
    }
    if secret.iter().all(|b| *b == secret[0]) {
        return Err(Weakness::Repeated);
    }
    if is_pattern(secret) {
        return Err(Weakness::Pattern);
    }
    let bits = entropy_bits(secret);
    if bits < f64::from(MIN_ENTROPY_BITS) {
        return Err(Weakness::LowEntropy {
            bits: bits as u32,
            min: MIN_ENTROPY_BITS,
        });
    }
    Ok(())
}

/// Checks the `sha256` of an API key entry (64 hex characters, already decoded to `hash`): a
/// placeholder such as 64 zeros, few distinct digits, or the hash of a well-known key.
pub(crate) fn check_key_hash(hash: &[u8; 32]) -> Result<(), Weakness> {
    let mut nibbles = [false; 16];
    for b in hash {
        nibbles[usize::from(b >> 4)] = true;
        nibbles[usize::from(b & 0x0f)] = true;
    }
    // 64 random hex digits use 8 or fewer distinct values with odds below 1 in 10^12.
    let distinct = nibbles.iter().filter(|x| **x).count();
    if distinct == 1 {
        return Err(Weakness::Repeated);
    }
    if distinct <= 8 || is_pattern(hash) {
        return Err(Weakness::Pattern);
    }
    if PLACEHOLDER_KEYS
        .iter()
        .any(|k| digest(&SHA256, k.as_bytes()).as_ref() == hash)
    {
        return Err(Weakness::KnownKey);
    }
    Ok(())
}

/// A run of ascending or descending neighbours over half the secret (`0123…`, `abcd…`), or a
/// block repeated to the end (`abcabcabc…`).
fn is_pattern(s: &[u8]) -> bool {
    let steps = s
        .windows(2)
        .filter(|w| w[1].wrapping_sub(w[0]) == 1 || w[0].wrapping_sub(w[1]) == 1)
        .count();
    if steps * 2 >= s.len() {
        return true;
    }
    (1..=s.len() / 2).any(|p| s[p..].iter().zip(s).all(|(a, b)| a == b))
}

/// Shannon entropy of the byte distribution, times the length: a rough upper bound on the
/// secret's entropy that catches words, short alphabets and repetition.
fn entropy_bits(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for b in s {
        counts[usize::from(*b)] += 1;
    }
    let n = s.len() as f64;
    let per_byte: f64 = counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum();
    per_byte * n
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;

    use super::*;

    fn hash_of(key: &str) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(digest(&SHA256, key.as_bytes()).as_ref());
        out
    }

    #[test]
    fn check_refuses_placeholders_short_repeated_patterned_and_low_entropy_secrets() {
        let cases: &[(&str, Weakness)] = &[
            // deploy/k8s/secret.yaml as shipped before issue 14
            (
                "REPLACE-ME-with-the-output-of-mcp-relay-token-secret",
                Weakness::Placeholder("replace-me"),
            ),
            (
                "ChangeMe-0f9c2b7e41d8a6530c1e9f4b7a2d8e6c",
                Weakness::Placeholder("changeme"),
            ),
            (
                "my-example-key-for-the-relay-9f8e7d6c5b4a",
                Weakness::Placeholder("example"),
            ),
            (
                "rbac-integration-secret-0123456789abcdefghijkl",
                Weakness::Placeholder("secret"),
            ),
            ("short-but-random-Qz8", Weakness::Short { len: 20, min: 32 }),
            (&"a".repeat(40), Weakness::Repeated),
            ("0123456789abcdefghijklmnopqrstuvwxyz", Weakness::Pattern),
            ("zyxwvutsrqponmlkjihgfedcba9876543210", Weakness::Pattern),
            ("abc1abc1abc1abc1abc1abc1abc1abc1abc1", Weakness::Pattern),
        ];
        for (secret, want) in cases {
            assert_eq!(check(secret.as_bytes(), 32).as_ref(), Err(want), "{secret}");
        }
        // 32 hex digits: 16 bytes of entropy, long enough but too little.
        let hex16 = "3f9a0c7e1b5d8f2a6c4e0b9d7f1a3c5e";
        assert!(matches!(
            check(hex16.as_bytes(), 32),
            Err(Weakness::LowEntropy { .. })
        ));
        // A short alphabet: long enough, but about 70 bits.
        let aab = "aabbaabbaabbccddaabbaabbccddaabbccdd";
        assert!(matches!(
            check(aab.as_bytes(), 32),
            Err(Weakness::LowEntropy { .. })
        ));
    }

    #[test]
    fn check_accepts_generated_secrets() {
        for _ in 0..200 {
            let s = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
            assert_eq!(check(s.as_bytes(), 32), Ok(()), "{s}");
        }
        let hex32 = "9b1f4c7a2e8d0f6b3a5c9e1d7f2b4a6c8e0d3f5a7b9c1e2d4f6a8b0c2e4d6f81";
        assert_eq!(check(hex32.as_bytes(), 32), Ok(()));
        // Raw random bytes in a file.
        let raw: Vec<u8> = (0u8..32)
            .map(|i| i.wrapping_mul(97).wrapping_add(13))
            .collect();
        assert_eq!(check(&raw, 32), Ok(()));
    }

    #[test]
    fn check_never_prints_the_secret() {
        let secret = "REPLACE-ME-0f9c2b7e41d8a6530c1e9f4b7a2d8e6c";
        let err = check(secret.as_bytes(), 32).unwrap_err().to_string();
        assert!(!err.contains("0f9c2b7e"), "{err}");
        let err = check(b"Qz8-short", 32).unwrap_err().to_string();
        assert!(!err.contains("Qz8"), "{err}");
    }

    #[test]
    fn check_key_hash_refuses_placeholder_hashes() {
        assert_eq!(check_key_hash(&[0u8; 32]), Err(Weakness::Repeated));
        assert_eq!(check_key_hash(&[0xab; 32]), Err(Weakness::Pattern));
        let seq: Vec<u8> = (0u8..32).collect();
        let seq: [u8; 32] = seq.try_into().unwrap();
        assert_eq!(check_key_hash(&seq), Err(Weakness::Pattern));
        assert_eq!(check_key_hash(&hash_of("")), Err(Weakness::KnownKey));
        assert_eq!(
            check_key_hash(&hash_of("mcpr_REPLACE-ME-probe-key")),
            Err(Weakness::KnownKey)
        );
        for i in 0..200 {
            let h = hash_of(&format!("mcpr_key-{i}"));
            assert_eq!(check_key_hash(&h), Ok(()), "{i}");
        }
    }
}

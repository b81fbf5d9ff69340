//! The ambiguity rule (SECURITY.md §3). A client's message: one pass over the whole
//! document before the envelope is read, which rejects duplicate keys at any depth, keys in
//! the envelope, `params` or `params._meta` that fold (case, NUL and control characters)
//! onto a key the relay reads, and nesting deeper than [`MAX_DEPTH`]. A child's message
//! ([`upstream_envelope`]): the same rule on the maps the relay reads only, checked while
//! the envelope is read. Syntax errors become [`Error::Parse`].

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};

use serde_json::value::RawValue;

use super::{Envelope, Error};

/// Deepest nesting accepted (SECURITY.md §2).
pub(crate) const MAX_DEPTH: usize = 64;

/// Keys the relay reads somewhere in an envelope; look-alikes of these are refused.
const READ_KEYS: &[&str] = &[
    "jsonrpc",
    "id",
    "method",
    "params",
    "name",
    "uri",
    "_meta",
    "progressToken",
    "io.modelcontextprotocol/subscriptionId",
    "requestId",
];

/// The length of the longest of [`READ_KEYS`] (`io.modelcontextprotocol/subscriptionId`).
const LONGEST_READ_KEY: usize = 38;

/// Where in the message a map sits: the rule on look-alike keys applies to the first three.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Scope {
    Envelope,
    Params,
    Meta,
    Other,
}

/// Checks `bytes`; `batch` says a top-level array holds envelopes.
pub(super) fn check(bytes: &[u8], batch: bool) -> Result<(), Error> {
    let scope = if batch { Scope::Other } else { Scope::Envelope };
    run(
        bytes,
        Walk {
            depth: 0,
            scope,
            batch_top: batch,
            element: false,
            shallow: false,
        },
    )
}

/// The envelope of one message from a child, in one pass: its keys checked (duplicates,
/// look-alikes), its values kept raw (so only checked for syntax); then `params`, when
/// present, walked the same way, down into `_meta` only. Results and arguments are not
/// walked: no policy reads them.
pub(super) fn upstream_envelope(bytes: &[u8]) -> Result<Envelope<'_>, Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let env = de
        .deserialize_map(Top)
        .and_then(|env| de.end().map(|()| env))
        .map_err(wire_error)?;
    if let Some(params) = env.params {
        let walk = Walk {
            depth: 1,
            scope: Scope::Params,
            batch_top: false,
            element: false,
            shallow: true,
        };
        run(params.get().as_bytes(), walk)?;
    }
    Ok(env)
}

fn run(bytes: &[u8], seed: Walk) -> Result<(), Error> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let result = seed.deserialize(&mut de).and_then(|()| de.end());
    result.map_err(wire_error)
}

fn wire_error(e: serde_json::Error) -> Error {
    if e.is_data() {
        Error::Invalid(reason(&e.to_string()))
    } else {
        Error::Parse
    }
}

/// The top of an envelope for [`upstream_envelope`]: what the relay reads, kept raw.
struct Top;

impl<'de> Visitor<'de> for Top {
    type Value = Envelope<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON-RPC envelope")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Envelope<'de>, A::Error> {
        let mut env = Envelope::default();
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if is_lookalike(&key) {
                return Err(serde::de::Error::custom("ambiguous_key"));
            }
            let slot = match key.as_ref() {
                "jsonrpc" => Some(&mut env.jsonrpc),
                "id" => Some(&mut env.id),
                "method" => Some(&mut env.method),
                "params" => Some(&mut env.params),
                "result" => Some(&mut env.result),
                "error" => Some(&mut env.error),
                _ => None,
            };
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate_key"));
            }
            match slot {
                Some(slot) => *slot = Some(map.next_value::<&'de RawValue>()?),
                None => {
                    map.next_value::<serde::de::IgnoredAny>()?;
                }
            }
        }
        Ok(env)
    }
}

fn reason(message: &str) -> &'static str {
    if message.starts_with("duplicate_key") {
        "duplicate_key"
    } else if message.starts_with("ambiguous_key") {
        "ambiguous_key"
    } else if message.starts_with("too_deep") {
        "too_deep"
    } else if message.starts_with("nested_batch") {
        "nested_batch"
    } else {
        "not_envelope"
    }
}

struct Walk {
    depth: usize,
    scope: Scope,
    /// The top-level array of a batch: its elements are envelopes.
    batch_top: bool,
    /// An element of a batch: an array here is a nested batch.
    element: bool,
    /// Skip values outside the scopes the relay reads.
    shallow: bool,
}

impl Walk {
    fn child(&self, scope: Scope) -> Walk {
        Walk {
            depth: self.depth + 1,
            scope,
            batch_top: false,
            element: self.batch_top,
            shallow: self.shallow,
        }
    }
}

impl<'de> DeserializeSeed<'de> for Walk {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }
    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }
    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }
    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }
    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }
    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("too_deep"));
        }
        if self.element {
            // Elements of a batch must be objects: a nested array is not an envelope.
            return Err(serde::de::Error::custom("nested_batch"));
        }
        let scope = if self.batch_top {
            Scope::Envelope
        } else {
            Scope::Other
        };
        while let Some(()) = seq.next_element_seed(self.child(scope))? {}
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        if self.depth >= MAX_DEPTH {
            return Err(serde::de::Error::custom("too_deep"));
        }
        let mut seen = Seen::default();
        while let Some(Key(key)) = map.next_key::<Key<'de>>()? {
            if self.scope != Scope::Other && is_lookalike(&key) {
                return Err(serde::de::Error::custom("ambiguous_key"));
            }
            let scope = match (self.scope, key.as_ref()) {
                (Scope::Envelope, "params") => Scope::Params,
                (Scope::Params, "_meta") => Scope::Meta,
                _ => Scope::Other,
            };
            if !seen.insert(key) {
                return Err(serde::de::Error::custom("duplicate_key"));
            }
            if self.shallow && scope == Scope::Other {
                map.next_value::<serde::de::IgnoredAny>()?;
            } else {
                map.next_value_seed(self.child(scope))?;
            }
        }
        Ok(())
    }
}

/// Keys seen in one object: a short list scanned linearly (most objects are small), switching
/// to a hash set past [`Seen::LINEAR`] keys so a huge object stays linear time.
#[derive(Default)]
struct Seen<'de> {
    few: Vec<Cow<'de, str>>,
    many: Option<HashSet<Cow<'de, str>>>,
}

impl<'de> Seen<'de> {
    const LINEAR: usize = 16;

    /// False when `key` was seen before.
    fn insert(&mut self, key: Cow<'de, str>) -> bool {
        if let Some(set) = &mut self.many {
            return set.insert(key);
        }
        if self.few.contains(&key) {
            return false;
        }
        self.few.push(key);
        if self.few.len() > Self::LINEAR {
            self.many = Some(self.few.drain(..).collect());
        }
        true
    }
}

/// An object key, borrowed from the input when it has no escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> serde::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v)))
    }
}

/// True when `key` is not itself a read key but folds onto one.
fn is_lookalike(key: &str) -> bool {
    if READ_KEYS.contains(&key) {
        return false;
    }
    // Plain printable ASCII (most keys): folding is ASCII lowercasing alone.
    if key.bytes().all(|b| b == b' ' || b.is_ascii_graphic()) {
        return READ_KEYS
            .iter()
            .any(|k| k.len() == key.len() && k.eq_ignore_ascii_case(key));
    }
    // Cheap exit: every read key is short, and folding only ever removes characters or
    // changes case, so a key without those characters' room cannot fold onto one.
    if key.len() < 2 || key.chars().filter(|c| !c.is_control()).count() > LONGEST_READ_KEY {
        return false;
    }
    READ_KEYS.iter().any(|k| folds_to(key, k))
}

/// True when `key`, with control characters dropped and lowercased, equals `target`
/// (compared char by char: no allocation on the hot path). Read keys fold to themselves
/// lowercased, so `target` is lowercased the same way.
fn folds_to(key: &str, target: &str) -> bool {
    let mut want = target.chars().flat_map(char::to_lowercase);
    for c in key
        .chars()
        .filter(|c| !c.is_control())
        .flat_map(char::to_lowercase)
    {
        if want.next() != Some(c) {
            return false;
        }
    }
    want.next().is_none()
}

//! The `requestState` the relay hands a 2026-07-28 client when a legacy child asks it for
//! input (PROTOCOL.md §2.3 MRTR; issue: era bridging, server side).
//!
//! The state names the parked request (child pid, relay id, round) and what it is bound to:
//! the principal, the server, the method and name of the request, and an expiry. It is sealed
//! with ChaCha20-Poly1305 (`ring`) under a key drawn at start-up, with a fresh random nonce per
//! state: `mcpr1.` + base64url(nonce ‖ ciphertext ‖ tag). A state altered by one bit, made by
//! another relay process or for another server fails to open; one presented by another
//! principal, for another request or after its expiry is refused too. Every refusal is the
//! same -32602 to the client (`Error::RequestState`), and nothing reaches a child.
//!
//! Task handles (`mcpt1.`, [`TaskRef`]) are sealed the same way: a task a child of a pool
//! made is named to the client by a handle bound to the principal, so its follow-ups reach
//! that child and nobody else's.
//!
//! In a fleet both carry the owner tag in front (`cluster::id::tag`: `r0.<epoch>.mcpr1.…`), so
//! a stateless retry or follow-up that reaches another node is forwarded to the node whose
//! key sealed it (`listener/streamable_http/modern.rs`).
//!
//! Not here: parking and resuming the request (`upstream/translate.rs`), which child to send
//! the retry to (`relay/legacy.rs`).

use std::time::{SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};

use crate::cluster::id::{owner, Owner};

const PREFIX: &str = "mcpr1.";
const AAD: &[u8] = b"mcp-relay requestState v1";
const TASK_PREFIX: &str = "mcpt1.";
const TASK_AAD: &[u8] = b"mcp-relay taskId v1";
/// States longer than this are not ours (they are never opened).
const MAX_LEN: usize = 4096;

/// What a sealed state says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct State {
    /// The principal that made the request (empty when anonymous).
    #[serde(rename = "p")]
    pub principal: String,
    /// The named server (empty for a single-server relay).
    #[serde(rename = "s")]
    pub server: String,
    /// The child serving it.
    #[serde(rename = "c")]
    pub pid: u32,
    /// The request's id at the child.
    #[serde(rename = "i")]
    pub relay_id: u64,
    /// The round of input this state answers.
    #[serde(rename = "r")]
    pub round: u32,
    /// The request's method and name (tool, prompt or URI).
    #[serde(rename = "m")]
    pub method: String,
    #[serde(rename = "n")]
    pub name: String,
    /// Unix milliseconds after which the state is refused.
    #[serde(rename = "e")]
    pub expires_ms: u64,
}

/// What a task handle the relay hands out says: the child's own task id, which child
/// (pid) made it, and for whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct TaskRef {
    #[serde(rename = "p")]
    pub principal: String,
    #[serde(rename = "s")]
    pub server: String,
    #[serde(rename = "c")]
    pub pid: u32,
    #[serde(rename = "t")]
    pub task: String,
}

/// Why a state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Not a state of this relay, or altered.
    Invalid,
    /// Another principal, server or request.
    Mismatch,
    Expired,
}

impl Refused {
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Refused::Invalid | Refused::Mismatch => "request_state_invalid",
            Refused::Expired => "request_state_expired",
        }
    }
}

/// The relay's sealing key (one per relay process and server).
pub(crate) struct StateKey {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(..)")
    }
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl StateKey {
    /// A fresh random key; `None` if the system has no random numbers to give.
    pub(crate) fn generate() -> Option<StateKey> {
        let rng = SystemRandom::new();
        let mut bytes = [0u8; 32];
        rng.fill(&mut bytes).ok()?;
        let key = UnboundKey::new(&CHACHA20_POLY1305, &bytes).ok()?;
        Some(StateKey {
            key: LessSafeKey::new(key),
            rng,
        })
    }

    /// Seals `state` (empty, which never opens, if no nonce could be drawn).
    pub(crate) fn seal(&self, state: &State) -> String {
        self.seal_as(PREFIX, AAD, state)
    }

    /// Seals a task handle (`mcpt1.`): which child made the task, for whom.
    pub(crate) fn seal_task(&self, task: &TaskRef) -> String {
        self.seal_as(TASK_PREFIX, TASK_AAD, task)
    }

    /// Opens a task handle; `Mismatch` for another principal or server.
    pub(crate) fn open_task(
        &self,
        text: &str,
        principal: &str,
        server: &str,
    ) -> Result<TaskRef, Refused> {
        let task: TaskRef = self.open_as(TASK_PREFIX, TASK_AAD, text)?;
        if task.principal != principal || task.server != server {
            return Err(Refused::Mismatch);
        }
        Ok(task)
    }

    fn seal_as<T: Serialize>(&self, prefix: &str, aad: &'static [u8], value: &T) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        if self.rng.fill(&mut nonce).is_err() {
            return String::new();
        }
        let mut data = serde_json::to_vec(value).unwrap_or_default();
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut data,
        );
        if sealed.is_err() {
            return String::new();
        }
        let mut out = Vec::with_capacity(NONCE_LEN + data.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&data);
        // In a fleet, tagged with this node (`r0.<epoch>.mcpr1.…`): another node sends the
        // continuation here (`cluster/forward.rs`); only this process can open it anyway.
        crate::cluster::id::tag(&format!("{prefix}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    fn open_as<T: serde::de::DeserializeOwned>(
        &self,
        prefix: &str,
        aad: &'static [u8],
        text: &str,
    ) -> Result<T, Refused> {
        // Another node's or another process's (its tag says so): not ours to open.
        let Owner::Here { rest: text } = owner(text) else {
            return Err(Refused::Invalid);
        };
        let body = text
            .strip_prefix(prefix)
            .filter(|b| b.len() <= MAX_LEN)
            .ok_or(Refused::Invalid)?;
        let raw = URL_SAFE_NO_PAD.decode(body).map_err(|_| Refused::Invalid)?;
        if raw.len() <= NONCE_LEN {
            return Err(Refused::Invalid);
        }
        let (nonce, sealed) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Refused::Invalid)?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad), &mut sealed)
            .map_err(|_| Refused::Invalid)?;
        serde_json::from_slice(plain).map_err(|_| Refused::Invalid)
    }

    /// Opens a state and checks what it is bound to: `expect` is the state the retry would
    /// make (its principal, server, method and name); pid, relay id and round come from the
    /// sealed state.
    pub(crate) fn open(&self, text: &str, expect: &State) -> Result<State, Refused> {
        let state: State = self.open_as(PREFIX, AAD, text)?;
        let bound = state.principal == expect.principal
            && state.server == expect.server
            && state.method == expect.method
            && state.name == expect.name;
        if !bound {
            return Err(Refused::Mismatch);
        }
        if state.expires_ms <= now_ms() {
            return Err(Refused::Expired);
        }
        Ok(state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State {
            principal: "alice".into(),
            server: "files".into(),
            pid: 4242,
            relay_id: 17,
            round: 1,
            method: "tools/call".into(),
            name: "ask".into(),
            // Fixed, so two calls build equal states (year 2096).
            expires_ms: 4_000_000_000_000,
        }
    }

    #[test]
    fn a_sealed_state_opens_for_its_request_only() {
        let key = StateKey::generate().unwrap();
        let sealed = key.seal(&state());
        assert!(sealed.starts_with(PREFIX));
        assert_eq!(key.open(&sealed, &state()), Ok(state()));
        let other = State {
            principal: "mallory".into(),
            ..state()
        };
        assert_eq!(key.open(&sealed, &other), Err(Refused::Mismatch));
        let tool = State {
            name: "other".into(),
            ..state()
        };
        assert_eq!(key.open(&sealed, &tool), Err(Refused::Mismatch));
        // Another relay process (another key) cannot open it.
        assert_eq!(
            StateKey::generate().unwrap().open(&sealed, &state()),
            Err(Refused::Invalid)
        );
    }

    #[test]
    fn every_bit_flip_is_refused() {
        let key = StateKey::generate().unwrap();
        let sealed = key.seal(&state());
        let raw = URL_SAFE_NO_PAD
            .decode(sealed.strip_prefix(PREFIX).unwrap())
            .unwrap();
        for byte in 0..raw.len() {
            for bit in 0..8 {
                let mut r = raw.clone();
                r[byte] ^= 1 << bit;
                let text = format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(&r));
                assert_eq!(key.open(&text, &state()), Err(Refused::Invalid));
            }
        }
        assert_eq!(
            key.open(&format!("{sealed}-TAMPERED"), &state()),
            Err(Refused::Invalid)
        );
    }

    #[test]
    fn a_task_handle_opens_for_its_principal_only() {
        let key = StateKey::generate().unwrap();
        let t = TaskRef {
            principal: "alice".into(),
            server: String::new(),
            pid: 7,
            task: "task-1".into(),
        };
        let sealed = key.seal_task(&t);
        assert!(sealed.starts_with(TASK_PREFIX));
        assert_eq!(key.open_task(&sealed, "alice", ""), Ok(t));
        assert_eq!(key.open_task(&sealed, "bob", ""), Err(Refused::Mismatch));
        // A request state is not a task handle, nor the reverse.
        assert_eq!(key.open(&sealed, &state()), Err(Refused::Invalid));
        let st = key.seal(&state());
        assert_eq!(key.open_task(&st, "alice", ""), Err(Refused::Invalid));
    }

    #[test]
    fn an_expired_state_is_refused() {
        let key = StateKey::generate().unwrap();
        let old = State {
            expires_ms: now_ms() - 1,
            ..state()
        };
        let sealed = key.seal(&old);
        assert_eq!(key.open(&sealed, &old), Err(Refused::Expired));
    }
}

//! Why credentials were refused, in the relay's own log (issue 14): the client gets a 401 or
//! 403 with a reason, but the operator should not have to ask the client for it.
//!
//! Every refusal is logged at debug; the first refusal for each reason within a minute is also
//! logged at info, so `bad_audience` shows in a default log and a flood of bad tokens is one
//! line a minute per reason. Reasons are the fixed words of `AuthFailure::reason`, so the
//! table stays small (and is bounded anyway).
//!
//! Owns: the per-reason window and the hints read from a refused JWT (`kid`, `iss`, `sub`, `aud`,
//! unverified, capped, escaped), with the audiences the relay expected. Never logs a token, a key
//! or any other header value. Does not own: deciding (`authn.rs`, `jwt.rs`, `api_key.rs`), audit
//! records and metrics (`ticket.rs`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tracing::{debug, info};

use super::AuthFailure;
use crate::policy::api_key::KEY_PREFIX;

/// One info line per reason per window.
const WINDOW: Duration = Duration::from_secs(60);
/// Reasons remembered at once (there are about thirty).
const MAX_REASONS: usize = 128;
/// Longest hint kept (characters).
const MAX_HINT: usize = 64;

/// When each reason was last logged at info.
#[derive(Debug, Default)]
pub(crate) struct RefusalLog {
    last_info: Mutex<HashMap<&'static str, Instant>>,
}

impl RefusalLog {
    /// Logs one refusal: debug always, info when it is the first of its reason this minute.
    /// `expected` gives the audiences the relay accepts from an issuer (for `bad_audience`).
    pub(crate) fn note(
        &self,
        failure: AuthFailure,
        headers: &HeaderMap,
        expected: &dyn Fn(&str) -> String,
    ) {
        let reason = failure.reason();
        let h = Hints::of(headers);
        let expected = match reason {
            "bad_audience" => expected(h.issuer.as_deref().unwrap_or_default()),
            _ => String::new(),
        };
        let shown = |v: &Option<String>| v.clone().unwrap_or_default();
        let (kid, issuer, subject, audience) = (
            shown(&h.kid),
            shown(&h.issuer),
            shown(&h.subject),
            shown(&h.audience),
        );
        debug!(
            reason,
            credential = h.credential,
            kid,
            issuer,
            subject,
            audience,
            expected,
            "credential refused"
        );
        if self.first_in_window(reason, Instant::now()) {
            info!(
                reason,
                credential = h.credential,
                kid,
                issuer,
                subject,
                audience,
                expected,
                "credential refused (more for this reason within a minute: at debug)"
            );
        }
    }

    /// Whether `reason` was not logged at info within the window before `now` (and notes it).
    fn first_in_window(&self, reason: &'static str, now: Instant) -> bool {
        let mut last = self.last_info.lock().unwrap_or_else(|e| e.into_inner());
        if last
            .get(reason)
            .is_some_and(|t| now.saturating_duration_since(*t) < WINDOW)
        {
            return false;
        }
        if last.len() >= MAX_REASONS {
            last.retain(|_, t| now.saturating_duration_since(*t) < WINDOW);
        }
        if last.len() < MAX_REASONS {
            last.insert(reason, now);
        }
        true
    }
}

/// What can be said about the refused credential without repeating it.
#[derive(Debug, Default)]
struct Hints {
    /// `jwt`, `api_key`, or `none` (no header credential: missing, or a certificate).
    credential: &'static str,
    kid: Option<String>,
    issuer: Option<String>,
    subject: Option<String>,
    /// The token's `aud` (several joined with `,`).
    audience: Option<String>,
}

impl Hints {
    fn of(headers: &HeaderMap) -> Hints {
        let bearer = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, t)| t.trim());
        match bearer {
            Some(t) if !t.starts_with(KEY_PREFIX) => jwt_hints(t),
            Some(_) => Hints {
                credential: "api_key",
                ..Hints::default()
            },
            None if headers.contains_key("x-api-key") => Hints {
                credential: "api_key",
                ..Hints::default()
            },
            None => Hints {
                credential: "none",
                ..Hints::default()
            },
        }
    }
}

/// `kid` from the header and `iss`/`sub` from the claims, unverified (they say what the
/// token claims, which is what an operator needs to find its minter).
fn jwt_hints(token: &str) -> Hints {
    let mut parts = token.split('.');
    let part = |p: Option<&str>| -> Option<serde_json::Value> {
        let bytes = URL_SAFE_NO_PAD.decode(p?.trim_end_matches('=')).ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let header = part(parts.next());
    let claims = part(parts.next());
    let text = |v: Option<&serde_json::Value>, key: &str| {
        v?.get(key)?
            .as_str()
            .map(|s| s.chars().take(MAX_HINT).collect::<String>())
    };
    let audience = match claims.as_ref().and_then(|c| c.get("aud")) {
        Some(serde_json::Value::Array(items)) => {
            let all: Vec<&str> = items.iter().filter_map(|v| v.as_str()).collect();
            Some(all.join(",").chars().take(MAX_HINT * 2).collect())
        }
        _ => text(claims.as_ref(), "aud"),
    };
    Hints {
        credential: "jwt",
        kid: text(header.as_ref(), "kid"),
        issuer: text(claims.as_ref(), "iss"),
        subject: text(claims.as_ref(), "sub"),
        audience,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_info_line_per_reason_per_minute() {
        let log = RefusalLog::default();
        let t0 = Instant::now();
        assert!(log.first_in_window("bad_audience", t0));
        assert!(!log.first_in_window("bad_audience", t0 + Duration::from_secs(1)));
        assert!(log.first_in_window("expired_credential", t0 + Duration::from_secs(2)));
        assert!(!log.first_in_window("bad_audience", t0 + Duration::from_secs(59)));
        assert!(log.first_in_window("bad_audience", t0 + Duration::from_secs(61)));
    }

    #[test]
    fn hints_name_the_token_never_repeat_it() {
        let b64 = |v: serde_json::Value| URL_SAFE_NO_PAD.encode(v.to_string());
        let token = format!(
            "{}.{}.c2ln",
            b64(serde_json::json!({"alg":"HS256","kid":"k1"})),
            b64(serde_json::json!({"iss":"mcp-relay","sub":"x".repeat(500),"aud":["a","b"]}))
        );
        let mut h = HeaderMap::new();
        h.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        let hints = Hints::of(&h);
        assert_eq!(hints.credential, "jwt");
        assert_eq!(hints.kid.as_deref(), Some("k1"));
        assert_eq!(hints.issuer.as_deref(), Some("mcp-relay"));
        assert_eq!(hints.subject.map(|s| s.len()), Some(MAX_HINT));
        assert_eq!(hints.audience.as_deref(), Some("a,b"));
        h.insert(header::AUTHORIZATION, "Bearer mcpr_abc".parse().unwrap());
        assert_eq!(Hints::of(&h).credential, "api_key");
        assert_eq!(Hints::of(&HeaderMap::new()).credential, "none");
    }
}

//! Claims of a verified JWT → [`Principal`]: `exp`/`nbf` with leeway (the [`Window`] a cached
//! token is checked against again), `aud`, the principal claim, roles from the configured path,
//! scopes. Runs only after `jwt.rs` checked the
//! signature; `jwt.rs` already matched `iss` exactly when it chose the issuer.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value};

use super::{fail, Header, Issuer};
use crate::caller::{AuthFailure, AuthMethod, Principal};

fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<u64>, AuthFailure> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match (v.as_u64(), v.as_f64()) {
            (Some(n), _) => Ok(Some(n)),
            (None, Some(f)) if f.is_finite() && f >= 0.0 => Ok(Some(f.floor() as u64)),
            _ => Err(fail("malformed_token")),
        },
    }
}

/// When a token may be used: its `exp` and (when the issuer checks it) `nbf`, with the
/// issuer's leeway. Kept with a cached token, so a hit is checked against the clock exactly as
/// a full verification would be.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    exp: u64,
    nbf: Option<u64>,
    leeway: u64,
}

impl Window {
    /// `exp` first (expired), then `nbf` (not yet valid), as a full verification orders them.
    pub(super) fn check(&self, now: SystemTime) -> Result<(), AuthFailure> {
        let now_s = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if now_s >= self.exp.saturating_add(self.leeway) {
            return Err(AuthFailure::Expired);
        }
        match self.nbf {
            Some(nbf) if nbf > now_s.saturating_add(self.leeway) => Err(fail("not_yet_valid")),
            _ => Ok(()),
        }
    }

    /// The end of the window: past it the token is refused.
    pub(super) fn until(&self) -> SystemTime {
        // Capped (about 35,000 years) so that no `exp` overflows the clock.
        UNIX_EPOCH + Duration::from_secs(self.exp.saturating_add(self.leeway).min(1 << 40))
    }
}

/// The principal of a token whose signature is checked, and its [`Window`].
pub(super) fn principal(
    issuer: &Issuer,
    header: &Header,
    claims: &Map<String, Value>,
    now: SystemTime,
) -> Result<(Principal, Window), AuthFailure> {
    let exp = numeric_date(claims, "exp")?.ok_or(fail("missing_claim"))?;
    let mut window = Window {
        exp,
        nbf: None,
        leeway: issuer.leeway,
    };
    window.check(now)?;
    if issuer.check_nbf {
        window.nbf = numeric_date(claims, "nbf")?;
        window.check(now)?;
    }
    check_audience(issuer, claims.get("aud"))?;

    let name = match claims.get(&issuer.principal_claim) {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => return Err(fail("missing_claim")),
    };
    let roles = roles(claims, &issuer.roles_claim)?;
    let scopes = scopes(claims)?;
    let key_id = header
        .kid
        .clone()
        .or_else(|| claims.get("jti").and_then(Value::as_str).map(str::to_owned));
    let principal = Principal {
        name,
        method: AuthMethod::Jwt,
        roles,
        scopes,
        key_id,
        expires_at: UNIX_EPOCH.checked_add(Duration::from_secs(exp)),
    };
    Ok((principal, window))
}

fn check_audience(issuer: &Issuer, aud: Option<&Value>) -> Result<(), AuthFailure> {
    let ours = |s: &str| issuer.audience.iter().any(|a| a == s);
    let ok = match aud {
        None => return Err(fail("missing_claim")),
        Some(Value::String(s)) => ours(s),
        Some(Value::Array(items)) => items.iter().any(|v| v.as_str().is_some_and(ours)),
        Some(_) => false,
    };
    ok.then_some(()).ok_or(fail("bad_audience"))
}

/// Roles from the configured claim: missing → none (RBAC then denies); any other shape than
/// a string or an array of strings → refused (fail closed).
fn roles(claims: &Map<String, Value>, path: &str) -> Result<Vec<String>, AuthFailure> {
    let value = match claims.get(path) {
        Some(v) => Some(v),
        None => {
            let mut cur: Option<&Value> = None;
            for (i, seg) in path.split('.').enumerate() {
                let obj = if i == 0 {
                    Some(claims)
                } else {
                    match cur {
                        Some(Value::Object(m)) => Some(m),
                        Some(_) => return Err(fail("bad_roles_claim")),
                        None => None,
                    }
                };
                cur = obj.and_then(|m| m.get(seg));
                if cur.is_none() {
                    break;
                }
            }
            cur
        }
    };
    string_list(value).ok_or(fail("bad_roles_claim"))
}

fn string_list(value: Option<&Value>) -> Option<Vec<String>> {
    match value {
        None => Some(Vec::new()),
        Some(Value::String(s)) => Some(vec![s.clone()]),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_owned))
            .collect(),
        Some(_) => None,
    }
}

/// Scopes from `scope` (space-separated) or else `scp` (array, or one string).
fn scopes(claims: &Map<String, Value>) -> Result<Vec<String>, AuthFailure> {
    match claims.get("scope") {
        Some(Value::String(s)) => Ok(s.split_whitespace().map(str::to_owned).collect()),
        Some(_) => Err(fail("bad_scope_claim")),
        None => string_list(claims.get("scp")).ok_or(fail("bad_scope_claim")),
    }
}

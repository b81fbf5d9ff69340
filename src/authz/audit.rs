//! The authorization server's audit records: one line per login, consent, token issue,
//! refresh, revocation and registration, allowed or refused, on the relay's audit log
//! (transport `oauth`). Never a password, code, token, secret or verifier: the user, the
//! client id, the grant (family) id and a fixed reason.

use crate::caller::Caller;
use crate::telemetry::audit::Record;

use super::AuthServer;

/// What happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    Login,
    Logout,
    Consent,
    Authorize,
    Token,
    Refresh,
    Revoke,
    Register,
}

impl Event {
    fn as_str(self) -> &'static str {
        match self {
            Event::Login => "oauth/login",
            Event::Logout => "oauth/logout",
            Event::Consent => "oauth/consent",
            Event::Authorize => "oauth/authorize",
            Event::Token => "oauth/token",
            Event::Refresh => "oauth/refresh",
            Event::Revoke => "oauth/revoke",
            Event::Register => "oauth/register",
        }
    }
}

/// One record's facts.
#[derive(Debug, Default)]
pub(crate) struct Fact<'a> {
    /// The user, when known.
    pub user: Option<&'a str>,
    pub client_id: Option<&'a str>,
    /// The grant (refresh-token family) it concerns.
    pub grant: Option<&'a str>,
    /// Why it was refused (`None`: allowed).
    pub refused: Option<&'static str>,
}

impl AuthServer {
    /// Writes one audit record for `event` from `caller` (its address; no principal yet).
    pub(crate) fn audit(&self, caller: &Caller, event: Event, fact: Fact<'_>) {
        if !self.audit.is_enabled() {
            return;
        }
        let allowed = fact.refused.is_none();
        let record = Record {
            principal: fact.user.unwrap_or_default().to_owned(),
            auth: "oauth",
            key_id: fact.grant.map(str::to_owned),
            client: caller.peer.map(|c| c.to_string()),
            transport: "oauth",
            method: Some(event.as_str().to_owned()),
            name: fact.client_id.map(str::to_owned),
            decision: if allowed { "allow" } else { "deny" },
            outcome: if allowed { "ok" } else { "refused" },
            reason: fact.refused,
            ..Record::default()
        };
        self.audit.emit(record);
    }
}

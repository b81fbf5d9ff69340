//! The authorization server's users as the console's operators: a local user (`[[oauth_server.
//! users]]`) with the `admin` role, not disabled (in the file or by `mcp-relay oauth users
//! disable`), logs in to the console with their password.
//!
//! Owns: [`Operators`] for [`AuthServer`]. The password check and the lockout are the login
//! page's (`login.rs`, `lockout.rs`): the same Argon2id verification (an unknown, disabled or
//! non-admin user costs the same hash and gets the same answer) and the same per-user and
//! per-address throttle. Does not own: the console's own sessions and audit records
//! (`admin/console/auth.rs`).

use std::net::IpAddr;

use crate::admin::console::Operators;
use crate::config::oauth_server::LocalUser;

use super::AuthServer;

/// The role that makes a user an operator of the console.
pub(crate) const ADMIN_ROLE: &str = "admin";

/// Whether `user` may log in to the console.
pub(crate) fn is_operator(user: &LocalUser) -> bool {
    !user.disabled && user.roles.iter().any(|r| r == ADMIN_ROLE)
}

#[async_trait::async_trait]
impl Operators for AuthServer {
    async fn verify(&self, user: &str, password: &str, client: &str) -> Option<String> {
        let addr: Option<IpAddr> = client.parse().ok();
        let lockout = self.lockout.load_full();
        if !lockout.attempt(user, addr) {
            return None;
        }
        let admin = self.cfg().user(user).filter(|u| is_operator(u)).cloned();
        let hash = admin.as_ref().map(|u| u.password_hash.clone());
        let password = password.to_owned();
        let verified =
            tokio::task::spawn_blocking(move || super::login::verify(hash.as_deref(), &password))
                .await
                .unwrap_or(false);
        let disabled = self.store.is_disabled(user).await.unwrap_or(true);
        let admin = admin.filter(|_| verified && !disabled)?;
        lockout.succeeded(&admin.name, addr);
        Some(admin.name)
    }
}

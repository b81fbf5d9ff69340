//! The admin listener's settings (`--admin-listen`, `--admin-token-env`), validated. The
//! listener itself, its guard and its routes are `admin.rs`.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::policy::OriginGuard;

/// The admin listener's settings (`--admin-listen`, `--admin-token-env`).
#[derive(Clone)]
pub(crate) struct AdminConfig {
    pub listen: SocketAddr,
    /// Host/Origin checks for the admin bind.
    pub guard: OriginGuard,
    /// The bearer token every admin request must carry, when configured.
    pub(crate) token: Option<Arc<[u8]>>,
    /// Whether the operator's console (`/ui`) is served (`--no-console` turns it off).
    pub console: bool,
}

impl std::fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminConfig")
            .field("listen", &self.listen)
            .field("guard", &self.guard)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl AdminConfig {
    /// Validates the admin flags: `listen` (off when `None`), the name of the variable holding
    /// the bearer token, the `--allowed-host` names, and the environment to read it from.
    /// A non-loopback bind needs a token and host names.
    pub(crate) fn build(
        listen: Option<SocketAddr>,
        token_env: Option<&str>,
        hosts: &[String],
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Option<AdminConfig>, Vec<String>> {
        let Some(listen) = listen else {
            return match token_env {
                Some(_) => Err(vec!["--admin-token-env needs --admin-listen".into()]),
                None => Ok(None),
            };
        };
        let mut errors = Vec::new();
        let loopback = listen.ip().is_loopback();
        let token = match token_env {
            Some(name) => match env(name).filter(|v| !v.trim().is_empty()) {
                Some(v) => Some(Arc::from(v.trim().as_bytes())),
                None => {
                    errors.push(format!(
                        "--admin-token-env {name}: the variable is not set or empty"
                    ));
                    None
                }
            },
            None if !loopback => {
                errors.push(format!(
                    "--admin-listen {listen} is not loopback: the admin endpoints need a bearer token (--admin-token-env NAME)"
                ));
                None
            }
            None => None,
        };
        if !loopback && hosts.is_empty() {
            errors.push(format!(
                "--admin-listen {listen} is not loopback: name the host names clients use with --allowed-host (DNS rebinding protection)"
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(Some(AdminConfig {
            listen,
            guard: OriginGuard {
                loopback,
                hosts: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
                // No browser origin is ever allowed (on a loopback bind, loopback ones pass).
                origins: Vec::new(),
            },
            token,
            console: true,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        (name == "ADMIN_TOKEN").then(|| "s3cret\n".to_owned())
    }

    #[test]
    fn admin_flags_are_validated() {
        let lo: SocketAddr = "127.0.0.1:9090".parse().unwrap();
        let any: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        assert!(AdminConfig::build(None, None, &[], &env).unwrap().is_none());
        assert!(AdminConfig::build(None, Some("ADMIN_TOKEN"), &[], &env).is_err());
        let c = AdminConfig::build(Some(lo), None, &[], &env)
            .unwrap()
            .unwrap();
        assert!(c.token.is_none() && c.guard.loopback);
        let e = AdminConfig::build(Some(any), None, &["m.example".into()], &env).unwrap_err();
        assert!(e[0].contains("--admin-token-env"), "{e:?}");
        let e = AdminConfig::build(Some(any), Some("ADMIN_TOKEN"), &[], &env).unwrap_err();
        assert!(e[0].contains("--allowed-host"), "{e:?}");
        let e = AdminConfig::build(Some(lo), Some("NOPE"), &[], &env).unwrap_err();
        assert!(e[0].contains("NOPE"), "{e:?}");
        let c = AdminConfig::build(Some(any), Some("ADMIN_TOKEN"), &["M.example".into()], &env)
            .unwrap()
            .unwrap();
        assert_eq!(c.token.as_deref(), Some(&b"s3cret"[..]));
        assert_eq!(c.guard.hosts, vec!["m.example".to_owned()]);
        assert!(!format!("{c:?}").contains("s3cret"));
    }
}

//! How `serve` authenticates to its remote upstream: the `--upstream-header`,
//! `--upstream-bearer-env|file` and `--upstream-oauth-*` flags (and the same `[serve]` keys),
//! plus the `headers` of an `--mcp-servers` `url` entry, turned into the link's [`Access`].
//!
//! Secrets in flags and the config file are references (`env:NAME`, `file:/path`,
//! `secret.rs`), resolved here once per load; an `--mcp-servers` entry's values are
//! taken as the host's file has them. Values are never logged. The client credentials grant
//! itself is `remote/client_credentials.rs`; the bridge (`connect`) builds its own access.

use std::path::PathBuf;
use std::sync::Arc;

use super::client_credentials::{ClientCredentials, Grant};
use super::{Access, CredentialSource};
use crate::secret;

/// The credential flags of `serve` for its remote upstream, as given (flattened into
/// `ServeArgs`, so each is also a `[serve]` key).
#[derive(Debug, Default, Clone, clap::Args)]
pub(crate) struct Flags {
    /// A header sent to the remote upstream with every request (`'Name: value'`, repeatable).
    /// The value may be a reference, `env:NAME` or `file:/path`; credentials (Authorization,
    /// Cookie, and names with `key`, `token`, `secret` or `auth`) must be.
    #[arg(
        long = "upstream-header",
        value_name = "'NAME: VALUE'",
        help_heading = "Remote upstream"
    )]
    pub headers: Vec<String>,
    /// Send `Authorization: Bearer <value of this environment variable>` to the remote upstream.
    #[arg(
        long = "upstream-bearer-env",
        value_name = "NAME",
        help_heading = "Remote upstream"
    )]
    pub bearer_env: Option<String>,
    /// Send `Authorization: Bearer <contents of this file>` to the remote upstream (read at
    /// startup).
    #[arg(
        long = "upstream-bearer-file",
        value_name = "FILE",
        help_heading = "Remote upstream"
    )]
    pub bearer_file: Option<PathBuf>,
    /// OAuth 2.0 client credentials grant (RFC 6749 §4.4) for the remote upstream: the token
    /// endpoint (https, or http on loopback). The token is cached until it expires and
    /// renewed when the upstream refuses it.
    #[arg(
        long = "upstream-oauth-token-url",
        value_name = "URL",
        help_heading = "Remote upstream"
    )]
    pub oauth_token_url: Option<String>,
    /// The client id for --upstream-oauth-token-url.
    #[arg(
        long = "upstream-oauth-client-id",
        value_name = "ID",
        help_heading = "Remote upstream"
    )]
    pub oauth_client_id: Option<String>,
    /// The environment variable holding the client secret for --upstream-oauth-token-url.
    #[arg(
        long = "upstream-oauth-client-secret-env",
        value_name = "NAME",
        help_heading = "Remote upstream"
    )]
    pub oauth_client_secret_env: Option<String>,
    /// The file holding the client secret for --upstream-oauth-token-url.
    #[arg(
        long = "upstream-oauth-client-secret-file",
        value_name = "FILE",
        help_heading = "Remote upstream"
    )]
    pub oauth_client_secret_file: Option<PathBuf>,
    /// The `scope` to ask the token endpoint for.
    #[arg(
        long = "upstream-oauth-scope",
        value_name = "SCOPES",
        help_heading = "Remote upstream"
    )]
    pub oauth_scope: Option<String>,
    /// The RFC 8707 `resource` to ask the token endpoint for (the upstream's URL, usually).
    #[arg(
        long = "upstream-oauth-resource",
        value_name = "URI",
        help_heading = "Remote upstream"
    )]
    pub oauth_resource: Option<String>,
    /// The `audience` to ask the token endpoint for (authorization servers that use it).
    #[arg(
        long = "upstream-oauth-audience",
        value_name = "AUDIENCE",
        help_heading = "Remote upstream"
    )]
    pub oauth_audience: Option<String>,
}

/// The upstream's access, or `None` when nothing was configured; every problem at once.
/// `entry` is an `--mcp-servers` entry's headers and whether it said `type = "sse"`.
pub(crate) fn build(
    flags: &Flags,
    entry: Option<(Vec<(String, String)>, bool)>,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Access>, Vec<String>> {
    let mut errors = Vec::new();
    let (mut headers, legacy_sse) = entry.unwrap_or_default();
    for h in &flags.headers {
        match header(h, env) {
            Ok(pair) => headers.push(pair),
            Err(e) => errors.push(format!("--upstream-header: {e}")),
        }
    }
    let mut bearer = None;
    if let Some(name) = &flags.bearer_env {
        match secret::resolve(&format!("env:{name}"), env) {
            Ok(t) => bearer = Some(t),
            Err(e) => errors.push(format!("--upstream-bearer-env: {e}")),
        }
    }
    if let Some(file) = &flags.bearer_file {
        if bearer.is_some() {
            errors.push("--upstream-bearer-env and --upstream-bearer-file: give one".into());
        }
        match secret::resolve(&format!("file:{}", file.display()), env) {
            Ok(t) => bearer = Some(t),
            Err(e) => errors.push(format!("--upstream-bearer-file: {e}")),
        }
    }
    if let Some(token) = bearer {
        match String::from_utf8(token) {
            Ok(t) if !t.trim().is_empty() => {
                headers.push(("Authorization".into(), format!("Bearer {}", t.trim())));
            }
            _ => errors.push("--upstream-bearer-*: the token is not text".into()),
        }
    }
    let credentials = match oauth(flags, env) {
        Ok(c) => c,
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let authorizations = headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .count()
        + usize::from(credentials.is_some());
    if authorizations > 1 {
        errors.push(
            "the upstream's Authorization comes from more than one of --upstream-header, --upstream-bearer-*, --upstream-oauth-* and the --mcp-servers entry's headers: keep one".into(),
        );
    }
    for (k, v) in &headers {
        if axum::http::HeaderName::try_from(k.as_str()).is_err()
            || axum::http::HeaderValue::try_from(v.as_str()).is_err()
        {
            errors.push(format!(
                "upstream header `{k}`: not a valid header name and value"
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    if headers.is_empty() && credentials.is_none() && !legacy_sse {
        return Ok(None);
    }
    Ok(Some(Access {
        headers,
        credentials,
        legacy_sse,
        ..Access::default()
    }))
}

/// Header names whose value is a credential: given only as a reference.
fn is_credential(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    ["authorization", "proxy-authorization", "cookie"].contains(&n.as_str())
        || ["key", "token", "secret", "auth"]
            .iter()
            .any(|w| n.contains(w))
}

/// `Name: value`, the value resolved when it is a reference.
fn header(h: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<(String, String), String> {
    let (name, value) = h
        .split_once(':')
        .ok_or_else(|| format!("`{}`: expected `Name: value`", h.trim()))?;
    let (name, value) = (name.trim(), value.trim());
    axum::http::HeaderName::try_from(name).map_err(|_| format!("`{name}` is not a header name"))?;
    let reference = value.starts_with("env:") || value.starts_with("file:");
    if !reference {
        if is_credential(name) {
            return Err(format!(
                "{name}: a credential must be a reference (`{name}: env:NAME` or `{name}: file:/path`), not a literal"
            ));
        }
        return Ok((name.to_owned(), value.to_owned()));
    }
    let bytes = secret::resolve(value, env).map_err(|e| format!("{name}: {e}"))?;
    let value = String::from_utf8(bytes).map_err(|_| format!("{name}: the value is not text"))?;
    Ok((name.to_owned(), value.trim().to_owned()))
}

/// The client credentials grant, when its flags are given.
fn oauth(
    flags: &Flags,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<CredentialSource>, Vec<String>> {
    let any = flags.oauth_client_id.is_some()
        || flags.oauth_client_secret_env.is_some()
        || flags.oauth_client_secret_file.is_some()
        || flags.oauth_scope.is_some()
        || flags.oauth_resource.is_some()
        || flags.oauth_audience.is_some();
    let Some(url) = &flags.oauth_token_url else {
        if any {
            return Err(vec![
                "--upstream-oauth-* need --upstream-oauth-token-url".into()
            ]);
        }
        return Ok(None);
    };
    let mut errors = Vec::new();
    let client_id = flags.oauth_client_id.clone().unwrap_or_else(|| {
        errors.push("--upstream-oauth-token-url needs --upstream-oauth-client-id".into());
        String::new()
    });
    let reference = match (
        &flags.oauth_client_secret_env,
        &flags.oauth_client_secret_file,
    ) {
        (Some(n), None) => Some(format!("env:{n}")),
        (None, Some(f)) => Some(format!("file:{}", f.display())),
        (None, None) => {
            errors.push(
                "--upstream-oauth-token-url needs --upstream-oauth-client-secret-env or -file"
                    .into(),
            );
            None
        }
        (Some(_), Some(_)) => {
            errors.push("--upstream-oauth-client-secret-env and -file: give one".into());
            None
        }
    };
    let secret = reference.and_then(|r| match secret::resolve(&r, env) {
        Ok(b) => String::from_utf8(b)
            .map(|s| s.trim().to_owned())
            .map_err(|_| errors.push("--upstream-oauth-client-secret: not text".into()))
            .ok(),
        Err(e) => {
            errors.push(format!("--upstream-oauth-client-secret: {e}"));
            None
        }
    });
    let grant = Grant {
        client_id,
        client_secret: secret.unwrap_or_default(),
        scope: flags.oauth_scope.clone(),
        resource: flags.oauth_resource.clone(),
        audience: flags.oauth_audience.clone(),
    };
    let client = ClientCredentials::new(url, grant)
        .map_err(|e| errors.push(format!("--upstream-oauth-token-url: {e}")))
        .ok();
    match client {
        Some(c) if errors.is_empty() => Ok(Some(CredentialSource(Arc::new(c)))),
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(n: &str) -> Option<String> {
        (n == "UP").then(|| "s3cret\n".to_owned())
    }

    #[test]
    fn headers_bearers_and_their_conflicts() {
        let flags = Flags {
            headers: vec!["X-Tenant: acme".into(), "X-Api-Key: env:UP".into()],
            bearer_env: Some("UP".into()),
            ..Flags::default()
        };
        let a = build(&flags, None, &env).unwrap().unwrap();
        assert_eq!(a.authorization().as_deref(), Some("Bearer s3cret"));
        assert_eq!(
            a.other_headers().cloned().collect::<Vec<_>>(),
            [
                ("X-Tenant".to_owned(), "acme".to_owned()),
                ("X-Api-Key".to_owned(), "s3cret".to_owned())
            ]
        );
        // A literal credential, a missing variable, two Authorization sources.
        let bad = Flags {
            headers: vec![
                "Authorization: Bearer abc".into(),
                "X-Token: env:NOPE".into(),
            ],
            bearer_env: Some("UP".into()),
            ..Flags::default()
        };
        let errs = build(&bad, None, &env).unwrap_err();
        assert!(errs[0].contains("must be a reference"), "{errs:?}");
        assert!(errs[1].contains("NOPE"), "{errs:?}");
        let two = Flags {
            bearer_env: Some("UP".into()),
            ..Flags::default()
        };
        let entry = vec![("Authorization".to_owned(), "Bearer x".to_owned())];
        assert!(build(&two, Some((entry, false)), &env).is_err());
        assert_eq!(build(&Flags::default(), None, &env), Ok(None));
        // Debug output names headers, never their values.
        assert!(!format!("{a:?}").contains("s3cret"));
    }

    #[test]
    fn oauth_flags_need_each_other() {
        let partial = Flags {
            oauth_client_id: Some("c".into()),
            ..Flags::default()
        };
        assert!(build(&partial, None, &env).is_err());
        let whole = Flags {
            oauth_token_url: Some("https://as.example/token".into()),
            oauth_client_id: Some("c".into()),
            oauth_client_secret_env: Some("UP".into()),
            ..Flags::default()
        };
        let a = build(&whole, None, &env).unwrap().unwrap();
        assert!(a.credentials.is_some());
        let plain = Flags {
            oauth_token_url: Some("http://as.example/token".into()),
            ..whole
        };
        let errs = build(&plain, None, &env).unwrap_err();
        assert!(errs.iter().any(|e| e.contains("https")), "{errs:?}");
    }
}

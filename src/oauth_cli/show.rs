//! How `mcp-relay oauth … list` prints: a table for people (aligned columns, times in RFC
//! 3339 UTC), or with `--json` an array of objects (times as Unix seconds) for scripts. Reads
//! only what `authz::store` returned and the validated `[oauth_server]`; changes nothing.

use std::io::Write;

use serde_json::{json, Value};

use crate::authz::store::clients::Client;
use crate::authz::store::grants::Family;
use crate::config::oauth_server::OAuthServerConfig;

/// `clients list`.
pub(super) fn clients(list: &[Client], json: bool, out: &mut dyn Write) {
    if json {
        let items: Vec<Value> = list
            .iter()
            .map(|c| {
                json!({
                    "client_id": c.client_id, "name": c.name, "source": c.source,
                    "auth_method": c.auth_method, "redirect_uris": c.redirect_uris,
                    "created": c.created, "expires": c.expires,
                })
            })
            .collect();
        return print_json(items, out);
    }
    let rows = list
        .iter()
        .map(|c| {
            vec![
                c.client_id.clone(),
                c.name.clone(),
                c.source.clone(),
                c.auth_method.clone(),
                c.redirect_uris.join(" "),
                time(c.created),
            ]
        })
        .collect();
    let headers = [
        "CLIENT_ID",
        "NAME",
        "SOURCE",
        "AUTH",
        "REDIRECT_URIS",
        "CREATED",
    ];
    table(&headers, rows, "no clients", out);
}

/// `grants list`.
pub(super) fn grants(list: &[Family], json: bool, out: &mut dyn Write) {
    if json {
        let items: Vec<Value> = list
            .iter()
            .map(|f| {
                json!({
                    "id": f.id, "user": f.subject.name, "method": f.subject.method,
                    "roles": f.subject.roles, "client_id": f.client_id, "resource": f.resource,
                    "scope": f.scope, "created": f.created, "last_used": f.last_used,
                    "revoked": f.revoked, "revoked_reason": f.revoked_reason,
                })
            })
            .collect();
        return print_json(items, out);
    }
    let rows = list
        .iter()
        .map(|f| {
            let revoked = match (f.revoked, &f.revoked_reason) {
                (Some(t), reason) => {
                    format!("{} ({})", time(t), reason.as_deref().unwrap_or("-"))
                }
                (None, _) => "-".into(),
            };
            vec![
                f.subject.name.clone(),
                f.client_id.clone(),
                f.resource.clone(),
                f.scope.clone(),
                time(f.created),
                time(f.last_used),
                revoked,
            ]
        })
        .collect();
    let headers = [
        "USER",
        "CLIENT_ID",
        "RESOURCE",
        "SCOPE",
        "CREATED",
        "LAST_USED",
        "REVOKED",
    ];
    table(&headers, rows, "no grants", out);
}

/// One user as listed: name, roles, where it comes from, disabled in the config, disabled by
/// the operator (since when).
struct UserRow {
    name: String,
    roles: Vec<String>,
    source: &'static str,
    config_disabled: bool,
    operator_disabled: Option<i64>,
}

/// `users list`: the config's local users, then other names the operator disabled.
pub(super) fn users(
    cfg: Option<&OAuthServerConfig>,
    disabled: &[(String, i64)],
    json: bool,
    out: &mut dyn Write,
) {
    let since = |name: &str| disabled.iter().find(|(n, _)| n == name).map(|(_, t)| *t);
    let local = cfg.map(|c| c.users.as_slice()).unwrap_or_default();
    let mut rows: Vec<UserRow> = local
        .iter()
        .map(|u| UserRow {
            name: u.name.clone(),
            roles: u.roles.clone(),
            source: "local",
            config_disabled: u.disabled,
            operator_disabled: since(&u.name),
        })
        .collect();
    for (name, t) in disabled {
        if !local.iter().any(|u| &u.name == name) {
            rows.push(UserRow {
                name: name.clone(),
                roles: Vec::new(),
                source: if cfg.is_some() { "other" } else { "-" },
                config_disabled: false,
                operator_disabled: Some(*t),
            });
        }
    }
    if json {
        let items = rows
            .iter()
            .map(|u| {
                json!({
                    "name": u.name, "roles": u.roles, "source": u.source,
                    "disabled_in_config": u.config_disabled,
                    "disabled_by_operator": u.operator_disabled,
                })
            })
            .collect();
        return print_json(items, out);
    }
    let rows = rows
        .iter()
        .map(|u| {
            vec![
                u.name.clone(),
                u.roles.join(","),
                u.source.to_owned(),
                if u.config_disabled { "disabled" } else { "-" }.to_owned(),
                u.operator_disabled
                    .map_or("-".to_owned(), |t| format!("disabled {}", time(t))),
            ]
        })
        .collect();
    let headers = ["USER", "ROLES", "SOURCE", "CONFIG", "OPERATOR"];
    table(&headers, rows, "no users", out);
}

fn print_json(items: Vec<Value>, out: &mut dyn Write) {
    let _ = writeln!(out, "{:#}", Value::Array(items));
}

/// Unix seconds as RFC 3339 UTC (the number itself when out of range).
fn time(t: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(t)
        .ok()
        .and_then(|d| {
            d.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| t.to_string())
}

/// Left-aligned columns two spaces apart; `empty` alone when there are no rows. Cells are
/// shown with control characters escaped (names come from registrations).
fn table(headers: &[&str], rows: Vec<Vec<String>>, empty: &str, out: &mut dyn Write) {
    if rows.is_empty() {
        let _ = writeln!(out, "{empty}");
        return;
    }
    let rows: Vec<Vec<String>> = rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|c| c.escape_debug().to_string())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let _ = writeln!(out, "{}", line(headers.to_vec()));
    for r in &rows {
        let _ = writeln!(out, "{}", line(r.iter().map(String::as_str).collect()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns_and_escapes_control_characters() {
        let mut out = Vec::new();
        let rows = vec![
            vec!["a".into(), "x\ny".into()],
            vec!["long-id".into(), "z".into()],
        ];
        table(&["ID", "NAME"], rows, "none", &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "ID       NAME\na        x\\ny\nlong-id  z\n");
        let mut out = Vec::new();
        table(&["ID"], Vec::new(), "none", &mut out);
        assert_eq!(out, b"none\n");
    }

    #[test]
    fn times_are_rfc3339_utc() {
        assert_eq!(time(0), "1970-01-01T00:00:00Z");
    }
}

//! `mcp-relay connect` logs in to a relay that is its own authorization server. `connect`
//! opens the authorization URL with the system launcher (`xdg-open`, found on `PATH`); here
//! that is a stub, first on the `PATH` of the connect process only: a small Python script
//! (standard library) that plays the person at the browser: it logs in, approves, and then
//! loads the final redirect, which is connect's own loopback callback. The host side drives
//! connect over stdio (`initialize`, `tools/list`, `tools/call`), and the relay's audit log
//! must show the login, the consent and the token issue.
//! Not here: the pages' own checks (`pages.rs`) or the token endpoint's (its own files).

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use super::flow::*;
use crate::support::bridge::Bridge;

/// The stub launcher: argv[1] is the authorization URL; STUB_USER and STUB_PASSWORD log in.
/// Cookies are kept by hand; redirects are followed by hand; every step goes to STUB_LOG.
const XDG_OPEN: &str = r#"#!/usr/bin/env python3
import html, os, re, sys, urllib.error, urllib.parse, urllib.request

log = open(os.environ["STUB_LOG"], "a")
url = sys.argv[1]
issuer = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(url))
cookies = {}

class Keep(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

opener = urllib.request.build_opener(Keep)

def fetch(target, form=None):
    req = urllib.request.Request(target, method="POST" if form else "GET")
    if cookies:
        req.add_header("Cookie", "; ".join(k + "=" + v for k, v in cookies.items()))
    if form:
        req.add_header("Origin", issuer)
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        req.data = urllib.parse.urlencode(form).encode()
    try:
        res = opener.open(req, timeout=20)
    except urllib.error.HTTPError as e:
        res = e
    for c in res.headers.get_all("Set-Cookie") or []:
        k, _, v = c.split(";")[0].partition("=")
        cookies[k.strip()] = v.strip()
    body = res.read().decode("utf-8", "replace")
    path = urllib.parse.urlsplit(target).path
    log.write("%s %s -> %s\n" % ("POST" if form else "GET", path, res.status))
    return res.status, res.headers.get("Location"), body

def field(page, name):
    m = re.search(r'<input[^>]*name="%s"[^>]*>' % name, page)
    v = m and re.search(r'value="([^"]*)"', m.group(0))
    return html.unescape(v.group(1)) if v else ""

status, location, page = fetch(url)
for _ in range(8):
    if status in (302, 303):
        target = urllib.parse.urljoin(issuer + "/", location)
        if not target.startswith(issuer + "/"):
            status, _, page = fetch(target)
            log.write("callback answered %s\n" % status)
            sys.exit(0 if status == 200 else 1)
        status, location, page = fetch(target)
        continue
    action = re.search(r'<form[^>]*action="([^"]*)"', page)
    action = action and action.group(1)
    form = {"request": field(page, "request"), "csrf": field(page, "csrf")}
    if action == "/oauth/login":
        form.update(username=os.environ["STUB_USER"], password=os.environ["STUB_PASSWORD"])
    elif action == "/oauth/consent":
        form.update(decision="approve", remember="yes")
    else:
        log.write("no form: %s %s\n" % (status, page[:300]))
        sys.exit(1)
    status, location, page = fetch(issuer + action, form)
log.write("too many pages\n")
sys.exit(1)
"#;

#[tokio::test]
async fn connect_logs_in_through_the_relays_own_pages_and_calls_a_tool() {
    let server = AuthRelay::start("", &[]); // around `mcp-relay demo-server`
    let bin = server.dir.join("launcher");
    std::fs::create_dir_all(&bin).unwrap();
    let stub = bin.join("xdg-open");
    std::fs::write(&stub, XDG_OPEN).unwrap();
    std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755)).unwrap();
    let stub_log = server.dir.join("xdg-open.log");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let oauth_dir = server.dir.join("connect-oauth");
    let url = server.url("/mcp");
    let oauth_dir_arg = oauth_dir.display().to_string();
    let mut bridge = Bridge::spawn_env(
        &[&url, "--oauth-dir", &oauth_dir_arg],
        &[
            ("PATH", &path),
            ("STUB_USER", USER),
            ("STUB_PASSWORD", PASSWORD),
            ("STUB_LOG", &stub_log.display().to_string()),
        ],
        "info",
    );
    let init = bridge.initialize_raw().await;
    let launcher = std::fs::read_to_string(&stub_log).unwrap_or_default();
    assert_eq!(
        init["result"]["serverInfo"]["name"],
        "mcp-relay-demo",
        "{init}\nlauncher:\n{launcher}\nconnect:\n{}\nrelay:\n{}",
        bridge.stderr(),
        server.relay.logs()
    );
    bridge
        .send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}))
        .await;
    let tools = bridge.request(json!(1), "tools/list", json!({})).await;
    let names: Vec<&str> = tools["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{tools}"))
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    assert!(names.contains(&"echo"), "{tools}");
    let call = bridge
        .call(json!(2), "echo", json!({"text": "through connect"}))
        .await;
    assert_eq!(
        call["result"]["content"][0]["text"], "through connect",
        "{call}"
    );
    assert!(launcher.contains("POST /oauth/login -> 303"), "{launcher}");
    assert!(
        launcher.contains("POST /oauth/consent -> 303"),
        "{launcher}"
    );
    assert!(launcher.contains("callback answered 200"), "{launcher}");

    let login = server.audited("oauth/login", None).await;
    assert_eq!(login["principal"], USER, "{login}");
    let consent = server.audited("oauth/consent", None).await;
    let token = server.audited("oauth/token", None).await;
    assert_eq!(
        consent["name"], token["name"],
        "one client: {consent} {token}"
    );
    let audit = std::fs::read_to_string(&server.audit).unwrap();
    assert!(
        !audit.contains(PASSWORD),
        "the password reached the audit log"
    );
    // The tokens connect keeps are in its own directory, and only there.
    assert!(oauth_dir.exists(), "connect kept no tokens");
    let (code, _) = bridge.eof().await;
    assert_eq!(code, Some(0), "{}", bridge.stderr());
}

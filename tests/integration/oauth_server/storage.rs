//! The authorization server's state, on SQLite (a `state_dir`) and on PostgreSQL (a server
//! started by the test, `support::postgres`), with the same tests for both: the relay starts
//! and serves its metadata and JWKS; its signing key, clients and grants survive a restart;
//! `mcp-relay oauth` lists and changes them (grants revoke, users disable/enable, clients
//! revoke) with the right exit codes. Grants are written into the state as the token endpoint
//! writes them (a refresh-token family), so these tests need nothing but storage.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::support::postgres::Postgres;
use crate::support::{tempdir, Relay, FIXTURE, RELAY};

/// Where a test keeps the state.
enum Backend {
    Sqlite(PathBuf),
    Postgres(Postgres),
}

impl Backend {
    /// The SQLite state in a fresh directory.
    fn sqlite() -> Backend {
        Backend::Sqlite(tempdir().join("state"))
    }

    /// A fresh PostgreSQL server, or `None` when the test is skipped.
    fn postgres(test: &str) -> Option<Backend> {
        Postgres::start(test).map(Backend::Postgres)
    }

    /// The `[oauth_server]` key naming the state.
    fn key(&self) -> String {
        match self {
            Backend::Sqlite(dir) => format!("state_dir = {:?}", dir.to_str().unwrap()),
            Backend::Postgres(pg) => format!("database_url = {:?}", pg.url),
        }
    }

    /// The URL a test connects to with sqlx.
    fn url(&self) -> String {
        match self {
            Backend::Sqlite(dir) => format!("sqlite://{}", dir.join("oauth.db").display()),
            Backend::Postgres(pg) => pg.url.clone(),
        }
    }
}

/// A relay with `[oauth_server]` on (issuer = its own loopback origin) and its config file.
struct AuthRelay {
    relay: Option<Relay>,
    config: PathBuf,
    port: u16,
}

impl AuthRelay {
    /// Writes the config (local users `ada` and `bob`, `bob` disabled in it) and starts.
    async fn start(backend: &Backend) -> AuthRelay {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempdir();
        let config = dir.join("relay.toml");
        let ada = password_hash("pX7-qerv9Lk2mZa");
        let bob = password_hash("Hn4_wt8RbY1cuVe");
        std::fs::write(
            &config,
            format!(
                "[oauth_server]\nissuer = \"http://127.0.0.1:{port}\"\n{}\n\n\
                 [[oauth_server.users]]\nname = \"ada\"\npassword_hash = \"{ada}\"\nroles = [\"user\", \"ops\"]\n\n\
                 [[oauth_server.users]]\nname = \"bob\"\npassword_hash = \"{bob}\"\nroles = [\"user\"]\ndisabled = true\n",
                backend.key()
            ),
        )
        .unwrap();
        let mut relay = AuthRelay {
            relay: None,
            config,
            port,
        };
        relay.restart().await;
        relay
    }

    /// Starts the relay (again) on the same port and config; returns once it serves its
    /// metadata (the "listening" line comes before the state is open; requests wait for it).
    async fn restart(&mut self) {
        if let Some(mut old) = self.relay.take() {
            assert_eq!(old.terminate(), Some(0), "{}", old.logs());
        }
        let listen = format!("127.0.0.1:{}", self.port);
        let config = self.config.to_str().unwrap();
        let args = [
            "serve", "--listen", &listen, "--config", config, "--", FIXTURE,
        ];
        self.relay = Some(Relay::start_raw(&args));
        self.get("/.well-known/oauth-authorization-server").await;
    }

    fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `GET path` as JSON (status 200 asserted).
    async fn get(&self, path: &str) -> Value {
        let res = reqwest::get(format!("{}{path}", self.base()))
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "GET {path}");
        res.json().await.unwrap()
    }

    /// The metadata's issuer and the JWKS's key ids, checked for shape.
    async fn metadata_and_kids(&self) -> Vec<String> {
        let meta = self.get("/.well-known/oauth-authorization-server").await;
        assert_eq!(meta["issuer"], self.base(), "{meta}");
        assert_eq!(meta["jwks_uri"], format!("{}/oauth/jwks", self.base()));
        let jwks = self.get("/oauth/jwks").await;
        let keys = jwks["keys"].as_array().expect("keys");
        assert!(!keys.is_empty(), "{jwks}");
        for k in keys {
            assert_eq!(k["kty"], "EC", "{k}");
            assert!(k.get("d").is_none(), "a private part is published: {k}");
        }
        keys.iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect()
    }

    /// `mcp-relay oauth --config FILE ARGS`: (exit code, stdout, stderr).
    fn oauth(&self, args: &[&str]) -> (i32, String, String) {
        let mut all = vec!["--config", self.config.to_str().unwrap()];
        all.extend_from_slice(args);
        oauth(&all)
    }

    /// `oauth ARGS --json`, parsed (exit 0 asserted).
    fn oauth_json(&self, args: &[&str]) -> Vec<Value> {
        let mut all = args.to_vec();
        all.push("--json");
        let (code, out, err) = self.oauth(&all);
        assert_eq!(code, 0, "oauth {args:?}: {err}");
        serde_json::from_str::<Value>(&out)
            .unwrap_or_else(|e| panic!("{e}: {out}"))
            .as_array()
            .unwrap()
            .clone()
    }
}

/// `mcp-relay oauth ARGS`: (exit code, stdout, stderr).
fn oauth(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(RELAY)
        .arg("oauth")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `mcp-relay token password-hash` with `password` on stdin.
fn password_hash(password: &str) -> String {
    use std::io::Write;
    let mut child = Command::new(RELAY)
        .args(["token", "password-hash"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(child.stdin.take().unwrap(), "{password}").unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let hash = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    assert!(!hash.contains(password));
    hash
}

/// Writes a client and a grant into the state as registration and the token endpoint do.
async fn seed(backend: &Backend, rows: &[Row<'_>]) {
    sqlx::any::install_default_drivers();
    let pool = sqlx::AnyPool::connect(&backend.url()).await.unwrap();
    for row in rows {
        match row {
            Row::Client(id, name) => {
                let metadata = json!({"client_id": id, "client_name": name, "redirect_uris": ["http://127.0.0.1:9/cb"]});
                sqlx::query("INSERT INTO oauth_clients (client_id, secret_hash, auth_method, name, redirect_uris, metadata, source, created, expires) VALUES ($1, NULL, 'none', $2, $3, $4, 'registered', $5, NULL)")
                    .bind(*id)
                    .bind(*name)
                    .bind(r#"["http://127.0.0.1:9/cb"]"#)
                    .bind(metadata.to_string())
                    .bind(now())
                    .execute(&pool)
                    .await
                    .unwrap();
            }
            Row::Grant(family, user, client) => {
                sqlx::query("INSERT INTO oauth_families (id, client_id, subject, roles, method, resource, scope, created, last_used, revoked, revoked_reason) VALUES ($1, $2, $3, '[\"user\"]', 'password', $4, 'mcp', $5, $5, NULL, NULL)")
                    .bind(*family)
                    .bind(*client)
                    .bind(*user)
                    .bind("http://127.0.0.1:1/mcp")
                    .bind(now())
                    .execute(&pool)
                    .await
                    .unwrap();
                sqlx::query("INSERT INTO oauth_refresh_tokens (token_hash, family, expires, used) VALUES ($1, $2, $3, NULL)")
                    .bind(format!("{family}-token-hash"))
                    .bind(*family)
                    .bind(now() + 3600)
                    .execute(&pool)
                    .await
                    .unwrap();
            }
        }
    }
    pool.close().await;
}

/// A row [`seed`] writes: a client (id, name) or a grant (family id, user, client id).
enum Row<'a> {
    Client(&'a str, &'a str),
    Grant(&'a str, &'a str, &'a str),
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The values of `field` in `items` (sorted).
fn field(items: &[Value], name: &str) -> Vec<String> {
    let mut v: Vec<String> = items
        .iter()
        .map(|i| i[name].as_str().unwrap_or_default().to_owned())
        .collect();
    v.sort();
    v
}

/// Starts, reads the key id, writes a client and a grant, restarts: same key, same client
/// and grant, listed by `mcp-relay oauth`.
async fn state_survives_a_restart(backend: Backend) {
    let mut relay = AuthRelay::start(&backend).await;
    let kids = relay.metadata_and_kids().await;
    seed(
        &backend,
        &[
            Row::Client("c-kept", "kept"),
            Row::Grant("f-kept", "ada", "c-kept"),
        ],
    )
    .await;
    relay.restart().await;
    assert_eq!(
        relay.metadata_and_kids().await,
        kids,
        "the signing key changed"
    );
    let clients = relay.oauth_json(&["clients", "list"]);
    assert_eq!(field(&clients, "client_id"), ["c-kept"]);
    assert_eq!(
        clients[0]["redirect_uris"],
        json!(["http://127.0.0.1:9/cb"])
    );
    let grants = relay.oauth_json(&["grants", "list"]);
    assert_eq!(field(&grants, "user"), ["ada"]);
    assert_eq!(grants[0]["client_id"], "c-kept");
}

#[tokio::test]
async fn sqlite_state_survives_a_restart() {
    let backend = Backend::sqlite();
    let Backend::Sqlite(dir) = &backend else {
        unreachable!()
    };
    let dir = dir.clone();
    state_survives_a_restart(backend).await;
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the state directory");
    assert_eq!(mode(&dir.join("oauth.db")), 0o600, "the database file");
}

#[tokio::test]
async fn postgres_state_survives_a_restart() {
    if let Some(backend) = Backend::postgres("postgres_state_survives_a_restart") {
        state_survives_a_restart(backend).await;
    }
}

/// `mcp-relay oauth` on a running relay's state: grants revoke, users disable/enable, clients
/// revoke, each seen in the lists that follow.
async fn oauth_commands_change_the_state(backend: Backend) {
    let relay = AuthRelay::start(&backend).await;
    seed(
        &backend,
        &[
            Row::Client("c-one", "one"),
            Row::Client("c-two", "two"),
            Row::Grant("f-1", "ada", "c-one"),
            Row::Grant("f-2", "ada", "c-two"),
            Row::Grant("f-3", "carol", "c-one"),
        ],
    )
    .await;
    let (code, table, _) = relay.oauth(&["grants", "list"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("USER "), "{table}");
    assert_eq!(table.lines().count(), 4, "{table}");

    let (code, out, err) = relay.oauth(&["grants", "revoke", "--user", "ada", "--client", "c-one"]);
    assert_eq!(
        (code, out.trim()),
        (0, "1 grant(s) of ada revoked"),
        "{err}"
    );
    assert_eq!(
        field(&relay.oauth_json(&["grants", "list"]), "id"),
        ["f-2", "f-3"]
    );
    let all = relay.oauth_json(&["grants", "list", "--all"]);
    let f1 = all
        .iter()
        .find(|g| g["id"] == "f-1")
        .expect("f-1 listed with --all");
    assert_eq!(f1["revoked_reason"], "revoked_by_operator");
    assert!(f1["revoked"].is_i64(), "{f1}");

    users_disable_and_enable(&relay);
    // ada's last grant went with the disabling.
    assert_eq!(field(&relay.oauth_json(&["grants", "list"]), "id"), ["f-3"]);

    let (code, out, err) = relay.oauth(&["clients", "revoke", "c-one"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("c-one removed"), "{out}");
    assert_eq!(
        field(&relay.oauth_json(&["clients", "list"]), "client_id"),
        ["c-two"]
    );
    assert!(relay.oauth_json(&["grants", "list"]).is_empty());
    let all = relay.oauth_json(&["grants", "list", "--all"]);
    let f3 = all.iter().find(|g| g["id"] == "f-3").unwrap();
    assert_eq!(f3["revoked_reason"], "client_removed");
    let (code, _, err) = relay.oauth(&["clients", "revoke", "c-one"]);
    assert_eq!(code, 1, "an unknown client: {err}");
    assert!(err.contains("no client `c-one`"), "{err}");
}

/// `users list|disable|enable`: the config's users with their roles and `disabled`, the
/// operator's disabling (of a local user, and of a name from elsewhere), and enabling.
fn users_disable_and_enable(relay: &AuthRelay) {
    let user = |name: &str| {
        relay
            .oauth_json(&["users", "list"])
            .into_iter()
            .find(|u| u["name"] == name)
            .unwrap_or_else(|| panic!("{name} not listed"))
    };
    let ada = user("ada");
    assert_eq!(ada["roles"], json!(["user", "ops"]));
    assert_eq!(ada["source"], "local");
    assert_eq!(
        (&ada["disabled_in_config"], &ada["disabled_by_operator"]),
        (&json!(false), &Value::Null)
    );
    assert_eq!(user("bob")["disabled_in_config"], true);

    let (code, out, err) = relay.oauth(&["users", "disable", "ada"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("ada disabled"), "{out}");
    assert!(user("ada")["disabled_by_operator"].is_i64());
    let (code, table, _) = relay.oauth(&["users", "list"]);
    assert_eq!(code, 0);
    let row = table.lines().find(|l| l.starts_with("ada ")).unwrap();
    assert!(row.contains("disabled 20"), "{table}");

    let (code, _, err) = relay.oauth(&["users", "disable", "dave"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("not a local user"), "{err}");
    assert_eq!(user("dave")["source"], "other");

    let (code, out, err) = relay.oauth(&["users", "enable", "ada"]);
    assert_eq!((code, out.trim()), (0, "user ada enabled"), "{err}");
    assert_eq!(user("ada")["disabled_by_operator"], Value::Null);
    let (code, out, _) = relay.oauth(&["users", "enable", "bob"]);
    assert_eq!(code, 0);
    assert!(out.contains("still `disabled = true`"), "{out}");
}

#[tokio::test]
async fn sqlite_oauth_commands_change_the_state() {
    oauth_commands_change_the_state(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_oauth_commands_change_the_state() {
    if let Some(backend) = Backend::postgres("postgres_oauth_commands_change_the_state") {
        oauth_commands_change_the_state(backend).await;
    }
}

#[test]
fn oauth_commands_exit_64_on_usage_and_69_without_a_database() {
    let dir = tempdir();
    let (code, _, err) = oauth(&["clients", "list"]);
    assert_eq!(code, 64, "no state named: {err}");
    assert!(err.contains("--config FILE"), "{err}");
    let (code, _, _) = oauth(&["grants", "revoke"]);
    assert_eq!(code, 64, "--user missing");
    let missing = dir.join("missing.toml");
    let (code, _, _) = oauth(&["--config", missing.to_str().unwrap(), "users", "list"]);
    assert_eq!(code, 64, "no config file");
    let off = dir.join("off.toml");
    std::fs::write(&off, "[serve]\nlisten = \"127.0.0.1:0\"\n").unwrap();
    let (code, _, err) = oauth(&["--config", off.to_str().unwrap(), "users", "list"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("authorization server is off"), "{err}");

    let nowhere = dir.join("no-state");
    let (code, _, err) = oauth(&[
        "--oauth-state-dir",
        nowhere.to_str().unwrap(),
        "clients",
        "list",
    ]);
    assert_eq!(code, 69, "{err}");
    assert!(!nowhere.exists(), "the state is not created by a list");
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("postgres://postgres@{}/relay", closed.local_addr().unwrap());
    drop(closed);
    let (code, _, err) = oauth(&["--oauth-database-url", &url, "grants", "list"]);
    assert_eq!(code, 69, "{err}");
}

#[test]
fn check_config_says_the_authorization_server_is_on() {
    let dir = tempdir();
    let config = dir.join("relay.toml");
    let hash = password_hash("Rk5-zqU2wgT8hLn");
    let text = |storage: &str| {
        format!(
            "[oauth_server]\nissuer = \"http://127.0.0.1:8080\"\n{storage}\n\n\
             [[oauth_server.users]]\nname = \"ada\"\npassword_hash = \"{hash}\"\n\n\
             [serve]\ncommand = [\"{FIXTURE}\"]\n"
        )
    };
    let check = || {
        let out = Command::new(RELAY)
            .arg("check-config")
            .arg(&config)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (
            out.status.code(),
            text,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    std::fs::write(&config, text("state_dir = \"state\"")).unwrap();
    let (code, out, err) = check();
    assert_eq!(code, Some(0), "{err}");
    let state = dir.join("state");
    assert!(
        out.contains(&format!(
            "authorization server: on (issuer http://127.0.0.1:8080, state SQLite in {}, 1 local user)",
            state.display()
        )),
        "{out}"
    );
    let url = "postgres://relay:Wq3vX9pLm2@db.internal/relay";
    std::fs::write(&config, text(&format!("database_url = \"{url}\""))).unwrap();
    let (code, out, err) = check();
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("state PostgreSQL, 1 local user)"), "{out}");
    assert!(
        !out.contains("Wq3vX9pLm2"),
        "the URL's password is shown: {out}"
    );

    std::fs::write(
        &config,
        "[oauth_server]\nissuer = \"http://relay.example.com\"\nregistration = \"sometimes\"\n",
    )
    .unwrap();
    let (code, out, err) = check();
    assert_eq!(code, Some(64), "{out}");
    for problem in [
        "must be https",
        "registration: `sometimes`",
        "nobody can log in",
    ] {
        assert!(err.contains(problem), "{problem} not reported: {err}");
    }
}

/// A client registered over HTTP (RFC 7591) is still there after a restart.
async fn registered_client_survives_a_restart(backend: Backend) {
    let mut relay = AuthRelay::start(&backend).await;
    let res = reqwest::Client::new()
        .post(format!("{}/oauth/register", relay.base()))
        .json(&json!({"redirect_uris": ["http://127.0.0.1:9/cb"], "client_name": "x", "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    let id = body["client_id"].as_str().expect("client_id").to_owned();
    relay.restart().await;
    let clients = relay.oauth_json(&["clients", "list"]);
    let c = clients
        .iter()
        .find(|c| c["client_id"] == id.as_str())
        .expect("the client after a restart");
    assert_eq!(
        (&c["name"], &c["auth_method"], &c["source"]),
        (&json!("x"), &json!("none"), &json!("registered"))
    );
}

#[tokio::test]
async fn sqlite_registered_client_survives_a_restart() {
    registered_client_survives_a_restart(Backend::sqlite()).await;
}

#[tokio::test]
async fn postgres_registered_client_survives_a_restart() {
    if let Some(backend) = Backend::postgres("postgres_registered_client_survives_a_restart") {
        registered_client_survives_a_restart(backend).await;
    }
}

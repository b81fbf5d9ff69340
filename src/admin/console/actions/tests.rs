//! The actions in process, over a made-up console (`auth/fake.rs`): confirmation first, the
//! CSRF token, each action's answer and its audit record with the operator's identity.

use axum::http::StatusCode;

use crate::admin::console::auth::fake::{console, post, send, text};
use crate::admin::console::Operator;

const CSRF: &str = "dGhlLWNzcmYtdG9rZW4tb2YtdGhpcy1zZXNzaW9u";

fn alice() -> Operator {
    Operator {
        name: "user:alice".into(),
        csrf: Some(CSRF.into()),
    }
}

#[tokio::test]
async fn each_action_is_confirmed_then_done_and_audited_with_the_operator() {
    let (router, taken) = console(alice());
    let res = send(
        &router,
        post(
            "/ui/actions/end-session",
            &format!("csrf={CSRF}&session=s1"),
        ),
    )
    .await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    assert!(page.contains("End the session s1?"), "{page}");
    assert!(page.contains(r#"name="session" value="s1""#), "{page}");
    assert!(page.contains(r#"href="/ui/sessions""#), "{page}");
    assert!(
        taken.0.lock().unwrap().is_empty(),
        "nothing done before confirming"
    );

    let cases = [
        (
            "end-session",
            "session=s1",
            StatusCode::OK,
            Some("s1"),
            "ok",
        ),
        (
            "end-session",
            "session=s2",
            StatusCode::NOT_FOUND,
            Some("s2"),
            "error",
        ),
        (
            "revoke",
            "principal=alice",
            StatusCode::OK,
            Some("alice"),
            "ok",
        ),
        ("restart", "server=git", StatusCode::OK, Some("git"), "ok"),
        (
            "restart",
            "server=",
            StatusCode::CONFLICT,
            Some(""),
            "error",
        ),
        ("reload", "", StatusCode::SERVICE_UNAVAILABLE, None, "error"),
    ];
    for (i, (action, field, status, name, outcome)) in cases.into_iter().enumerate() {
        let form = format!("csrf={CSRF}&confirm=yes&{field}");
        let res = send(&router, post(&format!("/ui/actions/{action}"), &form)).await;
        assert_eq!(res.status(), status, "{action} {field}");
        let records = taken.0.lock().unwrap();
        let r = &records[i];
        assert_eq!(
            r.method.as_deref(),
            Some(format!("console/{action}").as_str())
        );
        assert_eq!((r.principal.as_str(), r.auth), ("user:alice", "admin"));
        assert_eq!(
            (r.name.as_deref(), r.outcome),
            (name, outcome),
            "{action} {field}"
        );
    }
    let res = send(
        &router,
        post(
            "/ui/actions/revoke",
            &format!("csrf={CSRF}&confirm=yes&principal=alice"),
        ),
    )
    .await;
    assert!(text(res).await.contains("Ended 2 session(s)."));
}

#[tokio::test]
async fn a_form_without_the_token_or_a_target_is_refused_and_nothing_is_done() {
    let (router, taken) = console(alice());
    for form in [
        "confirm=yes&session=s1",
        "csrf=bm9wZQ&confirm=yes&session=s1",
    ] {
        let res = send(&router, post("/ui/actions/end-session", form)).await;
        assert_eq!(res.status(), StatusCode::FORBIDDEN, "{form}");
    }
    let res = send(
        &router,
        post("/ui/actions/revoke", &format!("csrf={CSRF}&confirm=yes")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = send(
        &router,
        post("/ui/actions/format-disk", &format!("csrf={CSRF}")),
    )
    .await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(taken.0.lock().unwrap().is_empty());
}

#[tokio::test]
async fn the_connect_page_and_extensions_cover_every_target() {
    let (router, _) = console(alice());
    let get = |path: &str| {
        axum::http::Request::get(path)
            .body(axum::body::Body::empty())
            .unwrap()
    };
    let res = send(&router, get("/ui/connect")).await;
    assert_eq!(res.status(), StatusCode::OK);
    let page = text(res).await;
    for (id, target) in [
        ("claude-desktop", "main"),
        ("vscode", "git"),
        ("curl", "git"),
    ] {
        let tag = format!(r#"<pre data-snippet="{id}" data-target="{target}">"#);
        assert!(page.contains(&tag), "{tag}: {page}");
    }
    assert!(
        page.contains("https://relay.example/servers/git/mcp"),
        "{page}"
    );
    assert!(page.contains(r#"href="/ui/connect/git.mcpb""#), "{page}");
    for (file, status) in [
        ("main.mcpb", 200),
        ("git.mcpb", 200),
        ("hg.mcpb", 404),
        ("git", 404),
    ] {
        let res = send(&router, get(&format!("/ui/connect/{file}"))).await;
        assert_eq!(res.status().as_u16(), status, "{file}");
        if status == 200 {
            assert_eq!(res.headers()["content-type"], "application/zip");
            let disposition = res.headers()["content-disposition"].to_str().unwrap();
            assert_eq!(disposition, format!("attachment; filename=\"{file}\""));
        }
    }
}

//! Declarative provisioning (SPEC §6): `POST /admin/apply` — one
//! transaction, idempotent, prune and dry run, errors naming the user and
//! field — `serve --seed`, and `POST /admin/tokens/check`.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{spawn_app, spawn_app_with, spawn_on};

const UUID_PW: &str = "6f1c8a52-0b7e-4d3c-9a51-2f8e7d6c5b4a";

async fn apply(app: &crate::helpers::TestApp, body: Value) -> (StatusCode, Value) {
    let r = app.admin_post("/admin/apply", body).await;
    let status = r.status();
    (status, r.json().await.unwrap())
}

fn names(v: &Value, field: &str) -> Vec<String> {
    v[field]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn apply_creates_updates_and_a_second_run_changes_nothing() {
    let app = spawn_app().await;
    app.create_user("kept").await;
    let doc = json!({"users": [
        {"username": "fixture", "password": UUID_PW, "expires_at": "2099-06-30T00:00:00Z",
         "token_ttl": "15m", "note": "calendar sync"},
        {"username": "generated", "status": "disabled"},
        {"username": "kept", "token_ttl": 120},
    ]});
    let (status, first) = apply(&app, doc.clone()).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    assert_eq!(names(&first, "created"), ["fixture", "generated"]);
    assert_eq!(names(&first, "updated"), ["kept"]);
    assert_eq!(first["unchanged"], 0);
    let generated = first["passwords"]["generated"].as_str().unwrap();
    assert_eq!(generated.len(), 36);
    assert!(
        first["passwords"].get("fixture").is_none(),
        "given passwords are not echoed"
    );

    let fixture: Value = app
        .admin_get("/admin/users/fixture")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(fixture["expires_at"], "2099-06-30T00:00:00Z");
    assert_eq!(fixture["token_ttl_secs"], 900);
    assert_eq!(fixture["note"], "calendar sync");
    let gen_user: Value = app
        .admin_get("/admin/users/generated")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(gen_user["status"], "disabled");
    let kept: Value = app
        .admin_get("/admin/users/kept")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(kept["token_ttl_secs"], 120);

    let token = app.token_for("fixture", UUID_PW).await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);

    let (_, second) = apply(&app, doc).await;
    assert_eq!(
        second,
        json!({"created": [], "updated": [], "deleted": [], "unchanged": 3, "passwords": {}})
    );
}

#[tokio::test]
async fn an_absent_field_is_cleared_and_a_password_replaced_only_when_it_does_not_verify() {
    let app = spawn_app().await;
    let doc = |note: Option<&str>, pw: &str| {
        let mut u = json!({"username": "u", "password": pw});
        if let Some(n) = note {
            u["note"] = json!(n);
        }
        json!({ "users": [u] })
    };
    apply(&app, doc(Some("n"), UUID_PW)).await;
    let audit_len = |v: Value| v["events"].as_array().unwrap().len();
    let before = audit_len(app.admin_get("/admin/audit").await.json().await.unwrap());

    let (_, same) = apply(&app, doc(Some("n"), UUID_PW)).await;
    assert_eq!(
        same["unchanged"], 1,
        "the stored hash verifies: nothing to do"
    );
    let after = audit_len(app.admin_get("/admin/audit").await.json().await.unwrap());
    assert_eq!(before, after, "an unchanged apply writes no audit event");

    let (_, cleared) = apply(&app, doc(None, UUID_PW)).await;
    assert_eq!(names(&cleared, "updated"), ["u"]);
    let u: Value = app.admin_get("/admin/users/u").await.json().await.unwrap();
    assert_eq!(u["note"], Value::Null);

    let other = "0b3e5b8c-7d2a-4f1e-9c6b-5a4d3e2f1a0b";
    let (_, changed) = apply(&app, doc(None, other)).await;
    assert_eq!(names(&changed, "updated"), ["u"]);
    let events: Value = app
        .admin_get("/admin/audit?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(events["events"][0]["detail"], "applied; changed password");
    assert_eq!(
        app.generate_token("u", UUID_PW).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.generate_token("u", other).await.status(),
        StatusCode::OK
    );
}

#[tokio::test]
async fn prune_deletes_the_unnamed_and_their_tokens_die() {
    let app = spawn_app().await;
    let pw = app.create_user("stray").await;
    let token = app.token_for("stray", &pw).await;
    let (_, without) = apply(&app, json!({"users": [{"username": "a"}]})).await;
    assert_eq!(
        without["unchanged"], 1,
        "without prune, others are left alone"
    );
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    let (_, pruned) = apply(&app, json!({"users": [{"username": "a"}], "prune": true})).await;
    assert_eq!(names(&pruned, "deleted"), ["stray"]);
    assert_eq!(
        app.admin_get("/admin/users/stray").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.verify(&token).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_dry_run_reports_and_changes_nothing() {
    let app = spawn_app().await;
    app.create_user("stray").await;
    let audit: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    let (status, plan) = apply(
        &app,
        json!({"users": [{"username": "new"}], "prune": true, "dry_run": true}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&plan, "created"), ["new"]);
    assert_eq!(names(&plan, "deleted"), ["stray"]);
    assert_eq!(
        plan["passwords"],
        json!({}),
        "no password is made up for a plan"
    );
    assert_eq!(
        app.admin_get("/admin/users/new").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin_get("/admin/users/stray").await.status(),
        StatusCode::OK
    );
    let unchanged: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    assert_eq!(audit, unchanged);
}

#[tokio::test]
async fn a_bad_document_changes_nothing_and_names_the_user_and_field() {
    let app = spawn_app().await;
    for (users, expected) in [
        (
            json!([{"username": "ok"}, {"username": "b", "token_ttl": "forever"}]),
            "user \"b\": token_ttl: ",
        ),
        (
            json!([{"username": "ok"}, {"username": "c", "expires_at": "soon"}]),
            "user \"c\": expires_at: ",
        ),
        (
            json!([{"username": "ok"}, {"username": "bad name"}]),
            "user \"bad name\": username: ",
        ),
        (
            json!([{"username": "ok"}, {"username": "ok"}]),
            "declared twice",
        ),
    ] {
        let (status, v) = apply(&app, json!({ "users": users })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["message"].as_str().unwrap().contains(expected), "{v}");
        assert_eq!(
            app.admin_get("/admin/users/ok").await.status(),
            StatusCode::NOT_FOUND
        );
    }
    // An entry that does not read (a bad value, an unknown field) is a
    // broken rule of SPEC §6 too: 422 naming the user and the field.
    for (users, expected) in [
        (
            json!([{"username": "ok"}, {"username": "x", "pasword": "y"}]),
            "user \"x\" (entry 2): pasword: unknown field `pasword`",
        ),
        (
            json!([{"username": "ok"}, {"username": "s", "status": "gone"}]),
            "user \"s\" (entry 2): status: unknown variant `gone`",
        ),
    ] {
        let (status, v) = apply(&app, json!({ "users": users })).await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
        assert!(v["message"].as_str().unwrap().contains(expected), "{v}");
    }
    let (status, v) = apply(&app, json!({"users": [], "prune_all": true})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a malformed request: {v}");
}

#[tokio::test]
async fn check_token_gives_the_verify_verdict() {
    let app = spawn_app().await;
    let pw = app.create_user("u").await;
    let token = app.token_for("u", &pw).await;
    let check = |t: String| {
        let app = &app;
        async move {
            let r = app
                .admin_post("/admin/tokens/check", json!({ "token": t }))
                .await;
            assert_eq!(r.status(), StatusCode::OK);
            r.json::<Value>().await.unwrap()
        }
    };
    let valid = check(token.clone()).await;
    assert_eq!(valid["valid"], true);
    assert_eq!(valid["sub"], "u");
    app.admin_post("/admin/users/u/revoke", json!({})).await;
    let revoked = check(token.clone()).await;
    assert_eq!(revoked["valid"], false);
    let rejection = app.verify_rejection(&token).await;
    assert!(
        rejection.contains(revoked["reason"].as_str().unwrap()),
        "{rejection} vs {revoked}"
    );
    assert_eq!(check("garbage".into()).await["reason"], "malformed token");
}

#[tokio::test]
async fn a_seed_file_is_applied_before_the_listeners_open() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("users.toml");
    std::fs::write(
        &seed,
        format!("[[user]]\nusername = \"seeded\"\npassword = \"{UUID_PW}\"\ntoken_ttl = \"15m\"\n"),
    )
    .unwrap();
    let seed_arg = seed.to_str().unwrap();
    let app = spawn_app_with(&["--seed", seed_arg]).await;
    let token = app.token_for("seeded", UUID_PW).await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    // A restart with the same seed changes nothing.
    let audit: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    let app = app.restart(&["--seed", seed_arg]).await;
    let again: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    assert_eq!(audit, again);

    std::fs::write(&seed, "[[user]]\nusername = \"x\"\ntoken_ttl = \"never\"\n").unwrap();
    let err = spawn_on(
        &dir.path().join("other"),
        &["--seed", seed_arg],
        1_800_000_000,
    )
    .await
    .err()
    .expect("a bad seed file stops start-up")
    .to_string();
    assert!(
        err.contains(seed_arg) && err.contains("user \"x\": token_ttl"),
        "{err}"
    );
}

#[tokio::test]
async fn ephemeral_without_an_admin_token_file_keeps_the_admin_api_off() {
    use clap::Parser;
    use tessera::cli::{Cli, Command};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let argv = [
        "tessera",
        "serve",
        "--ephemeral",
        "--data-dir",
        data.to_str().unwrap(),
        "--listen",
        "127.0.0.1:0",
        "--admin-listen",
        "127.0.0.1:0",
    ];
    let Command::Serve(args) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let config = tessera::config::Config::from_args(*args).unwrap();
    let app = tessera::app::App::build(config).await.unwrap();
    assert_eq!(app.admin_addr, None);
    assert!(app.service().ready());
    // Without --feed-token-file the revocation feed is closed to everyone.
    let partner = app.partner_addr;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    let r = reqwest::Client::new()
        .get(format!("http://{partner}/revocations"))
        .bearer_auth("any-token-at-all-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let _ = stop.send(());
    task.await.unwrap();
    assert!(!data.exists(), "nothing was written to the data dir");
}

#[tokio::test]
async fn a_given_hash_is_stored_as_is_and_replaced_only_when_it_differs() {
    let app = spawn_app().await;
    let first = tessera::login::password::hash_new("first chosen password").unwrap();
    let second = tessera::login::password::hash_new("second chosen password").unwrap();
    let doc = |h: &tessera::login::password::PasswordHash| json!({"users": [{"username": "u", "password_hash": h}]});
    let (_, created) = apply(&app, doc(&first)).await;
    assert_eq!(names(&created, "created"), ["u"]);
    assert_eq!(created["passwords"], json!({}));
    assert_eq!(
        app.generate_token("u", "first chosen password")
            .await
            .status(),
        StatusCode::OK
    );
    let (_, same) = apply(&app, doc(&first)).await;
    assert_eq!(same["unchanged"], 1);
    let (_, changed) = apply(&app, doc(&second)).await;
    assert_eq!(names(&changed, "updated"), ["u"]);
    assert_eq!(
        app.generate_token("u", "second chosen password")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        app.generate_token("u", "first chosen password")
            .await
            .status(),
        StatusCode::UNAUTHORIZED
    );
}

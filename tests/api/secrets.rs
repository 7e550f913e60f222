//! Secret rotation with an overlap (SPEC §15): a new secret while the old
//! one lasts its grace, on both login endpoints; ending one early; the
//! grace running out on a controlled clock; evidence of use; and what a
//! rotation must not do (revoke a token, keep more than two secrets).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

const DAY: u64 = 86_400;
const CURRENT: &str = "tessera_logins_total{secret=\"current\"}";
const PREVIOUS: &str = "tessera_logins_total{secret=\"previous\"}";

async fn rotate(app: &TestApp, name: &str, body: Value) -> reqwest::Response {
    app.admin_post(&format!("/admin/users/{name}/secrets"), body)
        .await
}

/// Rotates with `body`, asserting 201; returns the answer.
async fn rotated(app: &TestApp, name: &str, body: Value) -> Value {
    let r = rotate(app, name, body).await;
    assert_eq!(r.status(), StatusCode::CREATED);
    r.json().await.unwrap()
}

async fn user(app: &TestApp, name: &str) -> Value {
    app.admin_get(&format!("/admin/users/{name}"))
        .await
        .json()
        .await
        .unwrap()
}

async fn secret_ids(app: &TestApp, name: &str) -> Vec<String> {
    user(app, name).await["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// The status and body of a `/generateToken` login.
async fn login(app: &TestApp, name: &str, password: &str) -> (StatusCode, String) {
    let r = app.generate_token(name, password).await;
    (r.status(), r.text().await.unwrap())
}

/// The status and body of an `/oauth/token` login with HTTP Basic.
async fn oauth(app: &TestApp, name: &str, password: &str) -> (StatusCode, Value) {
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/token")
        .basic_auth(name, Some(password))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    (r.status(), r.json().await.unwrap())
}

/// The status of an `/oauth/token` login with the secret in the body.
async fn oauth_post(app: &TestApp, name: &str, password: &str) -> StatusCode {
    app.partner_request(reqwest::Method::POST, "/oauth/token")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", name),
            ("client_secret", password),
        ])
        .send()
        .await
        .unwrap()
        .status()
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String)> {
    let v: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap().to_owned(),
                e["detail"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn both_secrets_open_every_login_until_the_grace_ends_then_the_old_one_is_a_wrong_password() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let created = user(&app, "partner").await;
    assert_eq!(created["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(created["secrets"][0]["expires_at"], Value::Null);
    assert_eq!(created["last_login_at"], Value::Null);

    let answer = rotated(&app, "partner", json!({})).await;
    let new = answer["password"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let previous = &answer["previous"];
    assert_eq!(previous["id"], created["secrets"][0]["id"]);
    assert_eq!(
        previous["expires_at"],
        json!(tessera::runtime::time::rfc3339(app.now() + DAY)),
        "the default grace is 24h"
    );
    assert_eq!(answer["secret"]["expires_at"], Value::Null);
    let ids = secret_ids(&app, "partner").await;
    assert_eq!(
        ids,
        [
            answer["secret"]["id"].as_str().unwrap(),
            previous["id"].as_str().unwrap()
        ],
        "newest first"
    );
    assert!(
        ids.iter()
            .all(|id| id.len() == 8 && !new.contains(id.as_str()))
    );

    for pw in [&old, &new] {
        assert_eq!(login(&app, "partner", pw).await.0, StatusCode::OK);
        assert_eq!(oauth(&app, "partner", pw).await.0, StatusCode::OK);
        assert_eq!(oauth_post(&app, "partner", pw).await, StatusCode::OK);
    }

    app.advance(DAY - 1);
    assert_eq!(login(&app, "partner", &old).await.0, StatusCode::OK);
    app.advance(1);
    let wrong = login(&app, "partner", "7b0c6ad0-9d0b-4d6e-8f59-1b7c4fb1d2a3").await;
    assert_eq!(
        login(&app, "partner", &old).await,
        wrong,
        "expired = wrong password"
    );
    assert_eq!(wrong.0, StatusCode::UNAUTHORIZED);
    let (status, body) = oauth(&app, "partner", &old).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "invalid_client");
    assert_eq!(
        oauth_post(&app, "partner", &old).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&app, "partner", &new).await.0, StatusCode::OK);
    assert_eq!(
        secret_ids(&app, "partner").await.len(),
        1,
        "an ended secret leaves the list"
    );
}

#[tokio::test]
async fn the_grace_runs_out_into_one_audit_event_within_the_minute() {
    let app = spawn_app().await;
    app.create_user("partner").await;
    rotated(&app, "partner", json!({"grace": "10m"})).await;
    app.prune().await;
    assert!(
        !audit_actions(&app)
            .await
            .iter()
            .any(|(a, _)| a == "user.secret.expire")
    );
    app.advance(600);
    assert_eq!(app.prune().await.secrets, 1);
    assert_eq!(app.prune().await.secrets, 0, "once");
    let events = audit_actions(&app).await;
    let expired: Vec<_> = events
        .iter()
        .filter(|(a, _)| a == "user.secret.expire")
        .collect();
    assert_eq!(expired.len(), 1, "{events:?}");
    assert!(expired[0].1.starts_with("secret "), "{}", expired[0].1);
    assert_eq!(
        user(&app, "partner").await["secrets"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn grace_zero_ends_the_old_secret_at_once_and_bad_graces_are_named() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let first = secret_ids(&app, "partner").await.remove(0);
    let answer = rotated(&app, "partner", json!({"grace": "0s"})).await;
    assert_eq!(answer["previous"], Value::Null);
    let (action, detail) = audit_actions(&app).await.remove(0);
    assert_eq!(action, "user.secret.rotate");
    assert!(
        detail.ends_with(&format!("secret {first} ended at once")),
        "{detail}"
    );
    assert_eq!(
        login(&app, "partner", &old).await.0,
        StatusCode::UNAUTHORIZED
    );
    let new = answer["password"].as_str().unwrap();
    assert_eq!(login(&app, "partner", new).await.0, StatusCode::OK);

    let answer = rotated(&app, "partner", json!({"grace": "30d"})).await;
    let (_, detail) = audit_actions(&app).await.remove(0);
    assert!(
        detail.contains("valid until") && !detail.contains("ended"),
        "{detail}"
    );
    assert_eq!(
        answer["previous"]["expires_at"],
        json!(tessera::runtime::time::rfc3339(app.now() + 30 * DAY))
    );
    for bad in ["31d", "30d 1s", "later", "-1h"] {
        let r = rotate(&app, "partner", json!({ "grace": bad })).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{bad}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().starts_with("grace: "),
            "{body}"
        );
    }
    let r = rotate(&app, "partner", json!({ "grace": "1h", "extra": 1 })).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = rotate(&app, "nobody", json!({})).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        secret_ids(&app, "partner").await.len(),
        2,
        "refusals changed nothing"
    );
}

#[tokio::test]
async fn a_chosen_secret_is_kept_and_never_shown_back() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let answer = rotated(
        &app,
        "partner",
        json!({"password": "a chosen secret, long"}),
    )
    .await;
    assert!(answer.get("password").is_none(), "{answer}");
    assert_eq!(
        login(&app, "partner", "a chosen secret, long").await.0,
        StatusCode::OK
    );
    assert_eq!(login(&app, "partner", &old).await.0, StatusCode::OK);
    let r = rotate(&app, "partner", json!({"password": ""})).await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn never_more_than_two_valid_secrets() {
    let app = spawn_app().await;
    let first = app.create_user("partner").await;
    let second = rotated(&app, "partner", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    app.advance(60);
    let third = rotated(&app, "partner", json!({})).await;
    assert_eq!(
        login(&app, "partner", &first).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&app, "partner", &second).await.0, StatusCode::OK);
    let third_pw = third["password"].as_str().unwrap();
    assert_eq!(login(&app, "partner", third_pw).await.0, StatusCode::OK);
    assert_eq!(secret_ids(&app, "partner").await.len(), 2);
    let events = audit_actions(&app).await;
    assert!(
        events[0].0 == "user.secret.rotate" && events[0].1.contains("ended at once"),
        "the rotation names the secret it ended: {events:?}"
    );
}

#[tokio::test]
async fn ending_a_secret_early() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let only = secret_ids(&app, "partner").await.remove(0);
    let r = app
        .admin_delete(&format!("/admin/users/partner/secrets/{only}"))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT, "the only secret");
    let new = rotated(&app, "partner", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    for unknown in ["0badc0de", "nothex!!", "1234"] {
        let r = app
            .admin_delete(&format!("/admin/users/partner/secrets/{unknown}"))
            .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND, "{unknown}");
    }
    let r = app
        .admin_delete(&format!("/admin/users/nobody/secrets/{only}"))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);

    // The old one, ended before its grace: the new one alone opens logins.
    let r = app
        .admin_delete(&format!("/admin/users/partner/secrets/{only}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        login(&app, "partner", &old).await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(login(&app, "partner", &new).await.0, StatusCode::OK);
    assert_eq!(audit_actions(&app).await[0].0, "user.secret.delete");

    // The new one, ended: the rotation is undone, the old one stays for good.
    let newest = rotated(&app, "partner", json!({})).await;
    let id = newest["secret"]["id"].as_str().unwrap();
    let r = app
        .admin_delete(&format!("/admin/users/partner/secrets/{id}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let newest_pw = newest["password"].as_str().unwrap();
    assert_eq!(
        login(&app, "partner", newest_pw).await.0,
        StatusCode::UNAUTHORIZED
    );
    app.advance(2 * DAY);
    assert_eq!(login(&app, "partner", &new).await.0, StatusCode::OK);
    let left = user(&app, "partner").await;
    assert_eq!(left["secrets"][0]["expires_at"], Value::Null);
}

#[tokio::test]
async fn setting_a_password_replaces_every_secret() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let new = rotated(&app, "partner", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .admin_post("/admin/users/partner/password", json!({}))
        .await;
    let set: Value = r.json().await.unwrap();
    let set = set["password"].as_str().unwrap();
    for gone in [&old, &new] {
        assert_eq!(
            login(&app, "partner", gone).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(login(&app, "partner", set).await.0, StatusCode::OK);
    assert_eq!(secret_ids(&app, "partner").await.len(), 1);
}

#[tokio::test]
async fn logins_leave_evidence_of_which_secret_they_used() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let new = rotated(&app, "partner", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let (current, previous) = (app.metric(CURRENT).await, app.metric(PREVIOUS).await);
    let started = app.now();
    assert_eq!(login(&app, "partner", &old).await.0, StatusCode::OK);
    app.advance(5);
    assert_eq!(oauth(&app, "partner", &old).await.0, StatusCode::OK);
    assert_eq!(
        login(&app, "partner", "a wrong one").await.0,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(app.metric(PREVIOUS).await, previous + 2.0);
    assert_eq!(app.metric(CURRENT).await, current);

    // Nothing is written per login: the flush writes the newest use.
    assert_eq!(user(&app, "partner").await["last_login_at"], Value::Null);
    assert_eq!(app.flush_secret_uses().await, 1);
    let u = user(&app, "partner").await;
    let at = |t: u64| json!(tessera::runtime::time::rfc3339(t));
    assert_eq!(u["secrets"][1]["last_used_at"], at(started + 5));
    assert_eq!(
        u["secrets"][0]["last_used_at"],
        Value::Null,
        "the new one: unused"
    );
    assert_eq!(u["last_login_at"], at(started + 5));
    assert_eq!(app.flush_secret_uses().await, 0, "nothing new");

    app.advance(5);
    assert_eq!(login(&app, "partner", &new).await.0, StatusCode::OK);
    assert_eq!(app.metric(CURRENT).await, current + 1.0);
    app.flush_secret_uses().await;
    let u = user(&app, "partner").await;
    assert_eq!(u["secrets"][0]["last_used_at"], at(started + 10));
    assert_eq!(u["secrets"][1]["last_used_at"], at(started + 5));
    assert_eq!(u["last_login_at"], at(started + 10));
    let events = audit_actions(&app).await;
    assert_eq!(events[0].0, "user.secret.rotate", "a login is not audited");

    // A busy partner is written at most every 30 s, never per login.
    app.advance(29);
    assert_eq!(login(&app, "partner", &new).await.0, StatusCode::OK);
    assert_eq!(
        app.flush_secret_uses().await,
        0,
        "recorded 29 s ago: not yet"
    );
    app.advance(1);
    assert_eq!(login(&app, "partner", &new).await.0, StatusCode::OK);
    assert_eq!(app.flush_secret_uses().await, 1);
    assert_eq!(
        user(&app, "partner").await["secrets"][0]["last_used_at"],
        at(started + 40)
    );
}

#[tokio::test]
async fn the_last_uses_are_written_when_the_server_stops() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    rotated(&app, "partner", json!({})).await;
    assert_eq!(login(&app, "partner", &old).await.0, StatusCode::OK);
    // No flush by hand: a graceful stop writes what the logins noted.
    let app = app.restart(&[]).await;
    let u = user(&app, "partner").await;
    assert_ne!(u["secrets"][1]["last_used_at"], Value::Null, "{u}");
    assert_ne!(u["last_login_at"], Value::Null);
}

#[tokio::test]
async fn rotating_revokes_no_token() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let token = app.token_for("partner", &old).await;
    rotated(&app, "partner", json!({"grace": "1m"})).await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    app.advance(61);
    app.prune().await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    assert_eq!(
        login(&app, "partner", &old).await.0,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn secrets_travel_through_export_and_import_with_their_times() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let new = rotated(&app, "partner", json!({"grace": "2h"})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    app.generate_token("partner", &old).await;
    app.flush_secret_uses().await;
    let before = user(&app, "partner").await;
    let export = app.admin_get("/admin/export").await.text().await.unwrap();
    assert!(
        !export.contains(&old) && !export.contains(&new),
        "hashes only"
    );

    let other = spawn_app().await;
    let r = other
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(export)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let after = user(&other, "partner").await;
    assert_eq!(after["secrets"], before["secrets"]);
    assert_eq!(after["last_login_at"], before["last_login_at"]);
    for pw in [&old, &new] {
        assert_eq!(login(&other, "partner", pw).await.0, StatusCode::OK);
    }
}

#[tokio::test]
async fn an_applied_password_replaces_every_secret_too() {
    let app = spawn_app().await;
    let old = app.create_user("partner").await;
    let new = rotated(&app, "partner", json!({})).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .admin_post(
            "/admin/apply",
            json!({"users": [{"username": "partner", "password": "declared in a file"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    for gone in [&old, &new] {
        assert_eq!(
            login(&app, "partner", gone).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(
        login(&app, "partner", "declared in a file").await.0,
        StatusCode::OK
    );
    assert_eq!(secret_ids(&app, "partner").await.len(), 1);
}

//! Scopes: granted per user, carried by tokens, required by verifiers; a
//! scope taken away binds at once for tokens already issued.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app};

/// The `scope` claim of a token, read without verifying.
fn scope_claim(token: &str) -> Option<String> {
    let payload = token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    claims["scope"].as_str().map(str::to_owned)
}

/// Creates `name` holding `scopes`; returns its password.
async fn scoped_user(app: &TestApp, name: &str, scopes: Value) -> String {
    app.create_user_with(json!({"username": name, "scopes": scopes}))
        .await["password"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn login(app: &TestApp, user: &str, pw: &str, scope: Option<&str>) -> reqwest::Response {
    let mut query = vec![("username", user), ("password", pw)];
    if let Some(s) = scope {
        query.push(("scope", s));
    }
    app.partner_request(reqwest::Method::POST, "/generateToken")
        .query(&query)
        .send()
        .await
        .unwrap()
}

async fn verify_requiring(
    app: &TestApp,
    token: &str,
    query: &str,
    header: Option<&str>,
) -> reqwest::Response {
    let mut r = app
        .partner_request(reqwest::Method::GET, &format!("/verify{query}"))
        .bearer_auth(token);
    if let Some(h) = header {
        r = r.header("x-required-scope", h);
    }
    r.send().await.unwrap()
}

#[tokio::test]
async fn users_hold_sorted_scopes_set_on_create_and_patch() {
    let app = spawn_app().await;
    let created = app
        .create_user_with(json!({"username": "cm", "scopes": ["sync", "content", "sync"]}))
        .await;
    assert_eq!(created["scopes"], json!(["content", "sync"]));
    let bad = app
        .admin_post(
            "/admin/users",
            json!({"username": "x", "scopes": ["no spaces"]}),
        )
        .await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("no spaces"),
        "{body}"
    );
    let patched: Value = app
        .admin_patch("/admin/users/cm", json!({"scopes": ["property"]}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(patched["scopes"], json!(["property"]));
    for clear in [json!(null), json!([])] {
        let r: Value = app
            .admin_patch("/admin/users/cm", json!({ "scopes": clear }))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(r["scopes"], json!([]));
    }
    let plain = app.create_user_with(json!({"username": "plain"})).await;
    assert_eq!(plain["scopes"], json!([]));
}

#[tokio::test]
async fn generate_token_grants_all_or_a_requested_subset() {
    let app = spawn_app().await;
    let pw = scoped_user(&app, "cm", json!(["content", "sync"])).await;
    let all = login(&app, "cm", &pw, None).await.text().await.unwrap();
    assert_eq!(scope_claim(&all).as_deref(), Some("content sync"));
    let narrowed = login(&app, "cm", &pw, Some("sync")).await;
    assert_eq!(narrowed.status(), StatusCode::OK);
    assert_eq!(
        scope_claim(&narrowed.text().await.unwrap()).as_deref(),
        Some("sync")
    );
    for (asked, why) in [("sync property", "lacked"), ("bad/name", "malformed")] {
        let refused = login(&app, "cm", &pw, Some(asked)).await;
        assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{why}");
        assert!(
            refused.text().await.unwrap().starts_with("invalid scope"),
            "{why}"
        );
    }
    // A wrong password never learns whether the scope would have been held.
    let wrong = login(&app, "cm", "wrong-password-0000", Some("property")).await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    // A user without scopes: the seed's token, no claim.
    let plain_pw = app.create_user("plain").await;
    let plain = login(&app, "plain", &plain_pw, None)
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(scope_claim(&plain), None);
}

#[tokio::test]
async fn verify_requires_scopes_and_a_scope_taken_away_binds_at_once() {
    let app = spawn_app().await;
    let pw = scoped_user(&app, "cm", json!(["content", "sync"])).await;
    let token = login(&app, "cm", &pw, None).await.text().await.unwrap();
    let ok = verify_requiring(&app, &token, "?scope=sync", None).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["x-auth-scope"], "content sync");
    let both = verify_requiring(&app, &token, "?scope=sync%20content", Some("content")).await;
    assert_eq!(both.status(), StatusCode::OK);
    let lacking = verify_requiring(&app, &token, "", Some("property")).await;
    assert_eq!(lacking.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        lacking.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="insufficient_scope", scope="property""#
    );
    // Taken away: the token still carries it, the user no longer holds it.
    app.admin_patch("/admin/users/cm", json!({"scopes": ["content"]}))
        .await;
    let revoked_scope = verify_requiring(&app, &token, "?scope=sync", None).await;
    assert_eq!(revoked_scope.status(), StatusCode::FORBIDDEN);
    let still = verify_requiring(&app, &token, "?scope=content", None).await;
    assert_eq!(still.status(), StatusCode::OK);
    assert_eq!(still.headers()["x-auth-scope"], "content");
    // Given back: a token only ever had what it was granted.
    app.admin_patch(
        "/admin/users/cm",
        json!({"scopes": ["content", "sync", "property"]}),
    )
    .await;
    let back = verify_requiring(&app, &token, "?scope=sync", None).await;
    assert_eq!(back.status(), StatusCode::OK);
    assert_eq!(back.headers()["x-auth-scope"], "content sync");
    let never = verify_requiring(&app, &token, "?scope=property", None).await;
    assert_eq!(never.status(), StatusCode::FORBIDDEN);
    // No requirement: any valid token passes, as before scopes.
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    let bad = verify_requiring(&app, &token, "?scope=a/b", None).await;
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn oauth_grants_and_introspects_scopes() {
    let app = spawn_app().await;
    let pw = scoped_user(&app, "svc", json!(["content", "sync"])).await;
    let token = |scope: Option<&'static str>| {
        let mut form = vec![("grant_type", "client_credentials")];
        if let Some(s) = scope {
            form.push(("scope", s));
        }
        app.partner_request(reqwest::Method::POST, "/oauth/token")
            .basic_auth("svc", Some(&pw))
            .form(&form)
            .send()
    };
    let granted: Value = token(Some("sync")).await.unwrap().json().await.unwrap();
    assert_eq!(granted["scope"], "sync");
    let all: Value = token(None).await.unwrap().json().await.unwrap();
    assert_eq!(all["scope"], "content sync");
    let refused = token(Some("property")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    let err: Value = refused.json().await.unwrap();
    assert_eq!(err["error"], "invalid_scope");
    let introspected: Value = app
        .partner_request(reqwest::Method::POST, "/oauth/introspect")
        .basic_auth("svc", Some(&pw))
        .form(&[("token", all["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(introspected["active"], true);
    assert_eq!(introspected["scope"], "content sync");
    // A scope taken away is gone from introspection at once too.
    app.admin_patch("/admin/users/svc", json!({"scopes": ["content"]}))
        .await;
    let after: Value = app
        .partner_request(reqwest::Method::POST, "/oauth/introspect")
        .basic_auth("svc", Some(&pw))
        .form(&[("token", all["access_token"].as_str().unwrap())])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["scope"], "content", "{after}");
}

#[tokio::test]
async fn a_token_with_three_typical_scopes_stays_small() {
    let app = spawn_app().await;
    let name = "u".repeat(32);
    let pw = app
        .create_user_with(json!({
            "username": name,
            // The three families of the partner contract; each character
            // of a scope name costs 4/3 bytes (`a:read`-style names of
            // 13 characters made it 438 bytes).
            "scopes": ["property", "content", "calendar"],
        }))
        .await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let t = app.token_for(&name, &pw).await;
    assert_eq!(
        scope_claim(&t).as_deref(),
        Some("calendar content property")
    );
    assert!(t.len() <= 420, "{} bytes", t.len());
}

#[tokio::test]
async fn the_feed_tells_verifiers_which_scopes_a_changed_user_holds_now() {
    use tessera_verify::feed::subject_id;
    let app = spawn_app().await;
    let pw = scoped_user(&app, "cm", json!(["content", "sync"])).await;
    let token = login(&app, "cm", &pw, None).await.text().await.unwrap();
    app.admin_patch("/admin/users/cm", json!({"scopes": ["content"]}))
        .await;
    let feed = app.feed_get("/revocations").await.text().await.unwrap();
    let payload = feed.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap();
    let subject = &claims["subjects"][subject_id("cm")];
    assert_eq!(subject["scopes"], json!(["content"]), "{claims}");
    // A verifier reading that feed reaches /verify's verdict.
    let mut state = tessera_verify::feed::RevocationState::default();
    let parsed: tessera_verify::feed::FeedClaims = serde_json::from_value(claims).unwrap();
    state.apply(parsed, app.now(), 60).unwrap();
    let token_claims: tessera::token::Claims =
        serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(state.effective_scopes(&token_claims).to_string(), "content");
    assert_eq!(
        verify_requiring(&app, &token, "?scope=sync", None)
            .await
            .status(),
        StatusCode::FORBIDDEN
    );
}

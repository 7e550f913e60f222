//! `POST /generateToken`, the JWKS and health checks, as the seed contract
//! and SPEC §2 describe them.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{claims_of, spawn_app};

const SEED_PASSWORD: &str = "550e8400-e29b-41d4-a716-446655440000";

#[tokio::test]
async fn seed_example_request_works_verbatim() {
    let app = spawn_app().await;
    app.create_user_with(json!({"username": "channel_user", "password": SEED_PASSWORD}))
        .await;
    let r = app
        .partner_request(
            reqwest::Method::POST,
            "/generateToken?username=channel_user&password=550e8400-e29b-41d4-a716-446655440000",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-type"], "text/plain; charset=utf-8");
    assert_eq!(r.headers()["cache-control"], "no-store");
    let token = r.text().await.unwrap();
    assert!(!token.ends_with('\n'));
    assert_eq!(token.split('.').count(), 3);
    let claims = claims_of(&token);
    assert_eq!(claims["sub"], "channel_user");
    assert_eq!(claims["iss"], "tessera");
}

#[tokio::test]
async fn wrong_password_and_unknown_user_get_the_same_401() {
    let app = spawn_app().await;
    app.create_user("alice").await;
    for (user, pw) in [
        ("alice", SEED_PASSWORD),
        ("nobody", SEED_PASSWORD),
        ("nobody", "short"),
        ("bad name!", "x"),
    ] {
        let r = app.generate_token(user, pw).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
        assert_eq!(r.headers()["cache-control"], "no-store");
        assert_eq!(r.text().await.unwrap(), "invalid username or password");
    }
}

#[tokio::test]
async fn disabled_or_expired_accounts_get_403_only_after_the_password_matched() {
    let app = spawn_app().await;
    let pw = app.create_user("dis").await;
    app.admin_patch("/admin/users/dis", json!({"status": "disabled"}))
        .await;
    let r = app.generate_token("dis", &pw).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.text().await.unwrap(), "token expired");
    let r = app.generate_token("dis", SEED_PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::UNAUTHORIZED,
        "wrong password reveals nothing"
    );

    let v = app
        .create_user_with(json!({"username": "old", "expires_at": "2020-01-01T00:00:00Z"}))
        .await;
    let r = app
        .generate_token("old", v["password"].as_str().unwrap())
        .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.text().await.unwrap(), "token expired");
}

#[tokio::test]
async fn missing_fields_are_400() {
    let app = spawn_app().await;
    for query in [
        "",
        "?username=a",
        "?password=b",
        "?username=&password=b",
        "?username=a&password=",
    ] {
        let r = app
            .partner_request(reqwest::Method::POST, &format!("/generateToken{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
        assert_eq!(r.text().await.unwrap(), "missing username or password");
    }
}

#[tokio::test]
async fn other_methods_are_405_with_allow() {
    let app = spawn_app().await;
    for method in [
        reqwest::Method::GET,
        reqwest::Method::PUT,
        reqwest::Method::DELETE,
    ] {
        let r = app
            .partner_request(method.clone(), "/generateToken")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(r.headers()["allow"], "POST");
        assert_eq!(r.text().await.unwrap(), "method not allowed");
    }
}

#[tokio::test]
async fn form_body_case_insensitive_names_and_body_wins() {
    let app = spawn_app().await;
    let pw = app.create_user("formy").await;
    let r = app
        .partner_request(reqwest::Method::POST, "/generateToken")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Username=formy&Password={pw}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let r = app
        .partner_request(
            reqwest::Method::POST,
            "/generateToken?username=formy&password=wrong",
        )
        .form(&[("password", pw.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "body password wins over query");
}

#[tokio::test]
async fn json_variant_uses_oauth_field_names() {
    let app = spawn_app().await;
    let pw = app.create_user("js").await;
    let r = app
        .partner_request(reqwest::Method::POST, "/generateToken")
        .query(&[("username", "js"), ("password", pw.as_str())])
        .header("accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "no-store");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 3600);
    assert_eq!(claims_of(v["access_token"].as_str().unwrap())["sub"], "js");
}

#[tokio::test]
async fn exp_follows_user_ttl_and_never_outlives_the_account() {
    let app = spawn_app().await;
    let v = app
        .create_user_with(json!({"username": "ttl", "token_ttl_secs": 120}))
        .await;
    let t = app.token_for("ttl", v["password"].as_str().unwrap()).await;
    let c = claims_of(&t);
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 120);

    let ends = app.now() + 600;
    let ends_text = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(ends),
    )
    .to_string();
    let v = app
        .create_user_with(json!({"username": "capped", "expires_at": ends_text}))
        .await;
    let t = app
        .token_for("capped", v["password"].as_str().unwrap())
        .await;
    assert_eq!(claims_of(&t)["exp"].as_u64().unwrap(), ends);
}

#[tokio::test]
async fn token_shape_and_size() {
    let app = spawn_app().await;
    let name = "u".repeat(32);
    let pw = app.create_user(&name).await;
    let t = app.token_for(&name, &pw).await;
    // 360 bytes before the account generation (`gen`) joined the claims.
    assert!(t.len() <= 380, "{} bytes", t.len());
    let c = claims_of(&t);
    let keys: Vec<&str> = c.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys.len(), 6, "only iss sub iat exp jti gen: {keys:?}");
    assert_eq!(c["jti"].as_str().unwrap().len(), 22, "128 bits base64url");
    let other = app.token_for(&name, &pw).await;
    assert_ne!(claims_of(&other)["jti"], c["jti"]);
}

#[tokio::test]
async fn oversize_and_malformed_input_is_a_clear_400_or_413() {
    let app = spawn_app().await;
    let post = |path: &str| app.partner_request(reqwest::Method::POST, path);
    let big = format!("username=a&password={}", "x".repeat(9000));
    let r = post("/generateToken").body(big).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);

    let long_user = "u".repeat(129);
    let r = app.generate_token(&long_user, "x").await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("username too long"));
    let r = app.generate_token("u", &"p".repeat(1025)).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(r.text().await.unwrap().contains("password too long"));

    for query in [
        "username=%zz&password=a",
        "username=a&password=%ff%fe",
        "username=a&password=%4",
    ] {
        let r = post(&format!("/generateToken?{query}"))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{query}");
    }
    let r = post("/generateToken")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(vec![b'u', b'=', 0xff, 0xfe])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn jwks_publishes_active_and_next_keys() {
    let app = spawn_app().await;
    let r = app.partner_get("/.well-known/jwks.json").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["cache-control"], "public, max-age=300");
    let v: Value = r.json().await.unwrap();
    let keys = v["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "active and next");
    for k in keys {
        assert_eq!(k["kty"], "OKP");
        assert_eq!(k["crv"], "Ed25519");
        assert_eq!(k["alg"], "EdDSA");
        assert_eq!(k["use"], "sig");
        assert!(k["d"].is_null(), "never the private part");
    }
    let pw = app.create_user("k").await;
    let t = app.token_for("k", &pw).await;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(keys.iter().any(|k| k["kid"] == header["kid"]));
}

#[tokio::test]
async fn health_and_unknown_paths() {
    let app = spawn_app().await;
    let r = app.partner_get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "ok");
    let r = app.partner_get("/readyz").await;
    assert_eq!(r.status(), StatusCode::OK);
    let r = app.partner_get("/admin/users").await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "admin routes do not exist on the partner listener"
    );
}

#[tokio::test]
async fn oversized_request_heads_are_refused_with_a_4xx() {
    let app = spawn_app().await;
    let r = app
        .partner_request(reqwest::Method::POST, "/generateToken")
        .header("x-padding", "p".repeat(100 * 1024))
        .send()
        .await;
    // hyper refuses a head over the 64 KiB buffer with a 400 and closes.
    let r = r.expect("a response, not a dropped connection");
    assert!(matches!(r.status().as_u16(), 400 | 431), "{}", r.status());
    let r = app.partner_get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
}

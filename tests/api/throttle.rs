//! Brute-force throttling through the real listener: failures counted per
//! client address (behind a trusted proxy, by X-Forwarded-For), 429 even for
//! the right password once throttled, other addresses unaffected.

use reqwest::StatusCode;

use crate::helpers::spawn_app_with;

#[tokio::test]
async fn throttles_the_guessing_address_only() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1", "--throttle-failures", "3"]).await;
    let pw = app.create_user("victim").await;
    let attacker = "203.0.113.9";
    for _ in 0..3 {
        let r = app.login_from(attacker, "victim", "guess").await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = app.login_from(attacker, "victim", &pw).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "a throttled address never gets a confirmation"
    );
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry));
    assert_eq!(r.text().await.unwrap(), "too many attempts");
    let r = app.login_from("198.51.100.7", "victim", &pw).await;
    assert_eq!(r.status(), StatusCode::OK, "the partner is not locked out");
    // A forged entry left of the proxy's own is ignored: the rightmost
    // untrusted address is the client.
    let r = app
        .login_from(&format!("198.51.100.7, {attacker}"), "victim", &pw)
        .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn untrusted_peers_cannot_choose_their_address() {
    let app = spawn_app_with(&["--throttle-failures", "2"]).await;
    let pw = app.create_user("v").await;
    app.login_from("203.0.113.1", "v", "guess").await;
    app.login_from("203.0.113.2", "v", "guess").await;
    let r = app.login_from("203.0.113.3", "v", &pw).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "X-Forwarded-For from an untrusted peer is ignored"
    );
}

async fn introspect(app: &crate::helpers::TestApp, bearer: &str) -> StatusCode {
    app.client
        .post(format!("{}/oauth/introspect", app.partner))
        .bearer_auth(bearer)
        .form(&[("token", "x")])
        .send()
        .await
        .unwrap()
        .status()
}

async fn wrong_bearer(app: &crate::helpers::TestApp, url: String, xff: &str) -> StatusCode {
    app.client
        .get(url)
        .bearer_auth("a-wrong-token-0123456789abcdef")
        .header("x-forwarded-for", xff)
        .send()
        .await
        .unwrap()
        .status()
}

/// Each secret kind has its own count, and the right 256-bit token is never
/// refused: strangers sending wrong feed tokens, wrong admin tokens or
/// wrong introspection tokens from the operator's own address neither lock
/// the operator out of the admin API nor a verifier out of the feed; only
/// the wrong ones are slowed down (429).
#[tokio::test]
async fn a_stranger_cannot_lock_the_operator_out() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1", "--throttle-failures", "3"]).await;
    let feed = format!("{}/revocations", app.partner);
    for _ in 0..10 {
        wrong_bearer(&app, feed.clone(), "127.0.0.1").await;
    }
    assert_eq!(
        wrong_bearer(&app, feed.clone(), "127.0.0.1").await,
        StatusCode::TOO_MANY_REQUESTS,
        "wrong feed tokens are slowed down"
    );
    assert_eq!(app.feed_get("/revocations").await.status(), StatusCode::OK);
    assert_eq!(app.admin_get("/admin/users").await.status(), StatusCode::OK);
    for _ in 0..10 {
        let status = introspect(&app, "a-wrong-token-0123456789abcdef").await;
        assert_ne!(status, StatusCode::OK);
    }
    assert_eq!(app.admin_get("/admin/users").await.status(), StatusCode::OK);
    assert_eq!(app.feed_get("/revocations").await.status(), StatusCode::OK);
    let users = format!("{}/admin/users", app.admin);
    for _ in 0..10 {
        wrong_bearer(&app, users.clone(), "127.0.0.1").await;
    }
    assert_eq!(
        wrong_bearer(&app, users.clone(), "127.0.0.1").await,
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.admin_get("/admin/users").await.status(),
        StatusCode::OK,
        "the right admin token keeps working from the same address"
    );
    assert_eq!(app.feed_get("/revocations").await.status(), StatusCode::OK);
    assert_eq!(
        introspect(&app, &app.admin_token).await,
        StatusCode::OK,
        "introspection keeps its own count"
    );
    assert_eq!(
        app.generate_token("nobody", "x").await.status(),
        StatusCode::UNAUTHORIZED,
        "logins keep their own count"
    );
}

/// The admin listener believes only its peer: a rotating `X-Forwarded-For`
/// does not buy fresh attempts there, even with `--trusted-proxies`.
#[tokio::test]
async fn the_admin_listener_ignores_forwarded_addresses() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1", "--throttle-failures", "3"]).await;
    let users = format!("{}/admin/users", app.admin);
    let mut statuses = Vec::new();
    for n in 0..5 {
        statuses.push(wrong_bearer(&app, users.clone(), &format!("203.0.113.{n}")).await);
    }
    assert_eq!(statuses[4], StatusCode::TOO_MANY_REQUESTS, "{statuses:?}");
}

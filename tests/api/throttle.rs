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

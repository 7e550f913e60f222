//! A user's login policy (SPEC §15): allowed networks and token rate, on
//! both login endpoints, through the admin API, apply and export/import.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app_with};

/// Behind a trusted proxy, so each login names its client address.
async fn behind_proxy() -> TestApp {
    spawn_app_with(&["--trusted-proxies", "127.0.0.1", "--throttle-failures", "3"]).await
}

async fn oauth_from(app: &TestApp, xff: &str, id: &str, secret: &str) -> reqwest::Response {
    app.partner_request(reqwest::Method::POST, "/oauth/token")
        .header("x-forwarded-for", xff)
        .basic_auth(id, Some(secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
}

/// The user's `allowed_networks` and `token_rate` as the admin API shows them.
async fn policy_of(app: &TestApp, name: &str) -> (Value, Value) {
    let u: Value = app
        .admin_get(&format!("/admin/users/{name}"))
        .await
        .json()
        .await
        .unwrap();
    (u["allowed_networks"].clone(), u["token_rate"].clone())
}

const REFUSED_NETWORK: &str = "tessera_logins_refused_total{reason=\"network\"}";
const REFUSED_RATE: &str = "tessera_logins_refused_total{reason=\"token_rate\"}";

#[tokio::test]
async fn networks_are_normalised_and_bad_ones_named() {
    let app = behind_proxy().await;
    let u = app
        .create_user_with(json!({
            "username": "pinned",
            "allowed_networks": ["2001:DB8:0:0::/32", "203.0.113.0/24", "192.0.2.7"],
        }))
        .await;
    assert_eq!(
        u["allowed_networks"],
        json!(["2001:db8::/32", "203.0.113.0/24", "192.0.2.7/32"])
    );
    assert_eq!(u["token_rate"], Value::Null);
    for bad in [
        json!(["10.1.2.3/8"]),
        json!(["nowhere"]),
        json!(
            (0..65)
                .map(|i| format!("10.{i}.0.0/16"))
                .collect::<Vec<_>>()
        ),
    ] {
        let r = app
            .admin_post(
                "/admin/users",
                json!({"username": "x", "allowed_networks": bad}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("allowed_networks: "),
            "{body}"
        );
    }
    let r = app
        .admin_post(
            "/admin/users",
            json!({"username": "x", "token_rate": "10/day"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // PATCH sets and clears both.
    let r = app
        .admin_patch(
            "/admin/users/pinned",
            json!({"allowed_networks": ["10.0.0.0/8"], "token_rate": "5/min"}),
        )
        .await;
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["allowed_networks"], json!(["10.0.0.0/8"]));
    assert_eq!(u["token_rate"], "5/min");
    let r = app
        .admin_patch(
            "/admin/users/pinned",
            json!({"allowed_networks": null, "token_rate": null}),
        )
        .await;
    let u: Value = r.json().await.unwrap();
    assert_eq!(u["allowed_networks"], json!([]));
    assert_eq!(u["token_rate"], Value::Null);
    let audit: Value = app
        .admin_get("/admin/audit?target=pinned&action=user.update")
        .await
        .json()
        .await
        .unwrap();
    let details: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["detail"].as_str().unwrap())
        .filter(|d| d.starts_with("changed"))
        .collect();
    assert_eq!(
        details, ["changed allowed_networks, token_rate"; 2],
        "each PATCH audited with the fields it changed"
    );
}

#[tokio::test]
async fn a_login_from_outside_the_allowed_networks_is_refused_after_the_password() {
    let app = behind_proxy().await;
    let pw = app
        .create_user_with(
            json!({"username": "pinned", "allowed_networks": ["203.0.113.0/24", "2001:db8::/32"]}),
        )
        .await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    // Inside: both endpoints, IPv4 and IPv6 (the whole address, not its /64).
    assert_eq!(
        app.login_from("203.0.113.9", "pinned", &pw).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_from("2001:db8::1", "pinned", &pw).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        oauth_from(&app, "203.0.113.9", "pinned", &pw)
            .await
            .status(),
        StatusCode::OK
    );

    // Outside, right password: 403 on /generateToken, unauthorized_client on OAuth.
    let before = app.metric(REFUSED_NETWORK).await;
    let r = app.login_from("198.51.100.1", "pinned", &pw).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.text().await.unwrap(), "address not allowed");
    let r = oauth_from(&app, "198.51.100.1", "pinned", &pw).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "unauthorized_client", "error_description": "address not allowed"})
    );
    // A forwarded entry that is no address is outside every network.
    let r = app.login_from("unknown", "pinned", &pw).await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(app.metric(REFUSED_NETWORK).await - before, 3.0);

    // Outside, wrong password: the usual 401, nothing said about networks.
    let r = app
        .login_from("198.51.100.2", "pinned", "not-the-password")
        .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Refusals for the network are no throttle failures: far more than the
    // threshold (3) still leave the address free to log in once allowed.
    for _ in 0..5 {
        let r = app.login_from("198.51.100.3", "pinned", &pw).await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }
    app.admin_patch("/admin/users/pinned", json!({"allowed_networks": []}))
        .await;
    assert_eq!(
        app.login_from("198.51.100.3", "pinned", &pw).await.status(),
        StatusCode::OK,
        "anywhere again, and never throttled"
    );
}

#[tokio::test]
async fn logins_past_the_token_rate_wait_and_the_rate_refills_with_the_clock() {
    let app = behind_proxy().await;
    let pw = app
        .create_user_with(json!({"username": "busy", "token_rate": "2/min"}))
        .await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let other = app.create_user("calm").await;
    // Two at once, on both endpoints together.
    assert_eq!(
        app.login_from("192.0.2.1", "busy", &pw).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        oauth_from(&app, "192.0.2.1", "busy", &pw).await.status(),
        StatusCode::OK
    );
    let before = app.metric(REFUSED_RATE).await;
    let r = app.login_from("192.0.2.1", "busy", &pw).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "30");
    assert_eq!(r.text().await.unwrap(), "too many tokens");
    let r = oauth_from(&app, "192.0.2.2", "busy", &pw).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(r.headers()["retry-after"], "30");
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "slow_down", "error_description": "token rate exceeded"})
    );
    assert_eq!(app.metric(REFUSED_RATE).await - before, 2.0);
    // A wrong password is answered as usual, and costs no token.
    let r = app.login_from("192.0.2.1", "busy", "wrong").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    // Other users are not affected.
    assert_eq!(
        app.login_from("192.0.2.1", "calm", &other).await.status(),
        StatusCode::OK
    );
    // 30 s on, one token is back: one login, then wait again.
    app.advance(30);
    assert_eq!(
        app.login_from("192.0.2.1", "busy", &pw).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.login_from("192.0.2.1", "busy", &pw).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    // Lifting the rate lifts the wait at once.
    app.admin_patch("/admin/users/busy", json!({"token_rate": null}))
        .await;
    for _ in 0..5 {
        assert_eq!(
            app.login_from("192.0.2.1", "busy", &pw).await.status(),
            StatusCode::OK
        );
    }
}

#[tokio::test]
async fn the_policy_travels_through_export_import_and_apply() {
    let app = behind_proxy().await;
    app.create_user_with(json!({
        "username": "pinned",
        "allowed_networks": ["203.0.113.0/24"],
        "token_rate": "10/h",
    }))
    .await;
    let export = app.admin_get("/admin/export").await.text().await.unwrap();
    let other = behind_proxy().await;
    let r = other
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(export)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    assert_eq!(
        policy_of(&other, "pinned").await,
        (json!(["203.0.113.0/24"]), json!("10/h"))
    );

    // Apply: set, change, and an entry's bad value named with its field.
    let r = app
        .admin_post(
            "/admin/apply",
            json!({"users": [{"username": "pinned", "allowed_networks": ["10.0.0.0/8"], "token_rate": "1/s"}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["updated"], json!(["pinned"]));
    assert_eq!(
        policy_of(&app, "pinned").await,
        (json!(["10.0.0.0/8"]), json!("1/s"))
    );
    let r = app
        .admin_post(
            "/admin/apply",
            json!({"users": [{"username": "pinned", "allowed_networks": ["10.1.0.0/8"]}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let body = r.text().await.unwrap();
    assert!(
        body.contains("allowed_networks") && body.contains("10.0.0.0/8"),
        "{body}"
    );
    // An apply that leaves them out clears them, like every optional field.
    let r = app
        .admin_post("/admin/apply", json!({"users": [{"username": "pinned"}]}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(policy_of(&app, "pinned").await, (json!([]), Value::Null));
}

#[tokio::test]
async fn introspection_and_revocation_hold_the_client_to_its_networks_too() {
    let app = behind_proxy().await;
    let pw = app
        .create_user_with(json!({"username": "pinned", "allowed_networks": ["203.0.113.0/24"]}))
        .await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app
        .login_from("203.0.113.9", "pinned", &pw)
        .await
        .text()
        .await
        .unwrap();
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let call = |xff: &'static str| {
            app.partner_request(reqwest::Method::POST, path)
                .header("x-forwarded-for", xff)
                .basic_auth("pinned", Some(&pw))
                .form(&[("token", token.as_str())])
                .send()
        };
        let r = call("198.51.100.1").await.unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(
            body,
            json!({"error": "unauthorized_client", "error_description": "address not allowed"}),
            "{path}"
        );
        assert_eq!(
            app.verify(&token).await.status(),
            StatusCode::OK,
            "{path} did nothing"
        );
        let r = call("203.0.113.9").await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "{path} from inside");
    }
}

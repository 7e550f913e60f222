//! SPEC §7, the OAuth 2.0 surface: `client_credentials` with both client
//! authentication methods through the `oauth2` crate (a client nobody here
//! wrote), every error row, introspection agreeing with `/verify`,
//! revocation rules, server metadata, and the throttle and hash-work rules
//! shared with `/generateToken`.

use oauth2::basic::BasicClient;
use oauth2::{
    AuthType, ClientId, ClientSecret, IntrospectionUrl, TokenIntrospectionResponse, TokenResponse,
    TokenUrl,
};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// The HTTP client the `oauth2` crate is given (no redirects, as its docs
/// advise).
fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test]
async fn the_oauth2_crate_gets_introspects_and_revokes_tokens() {
    let app = spawn_app().await;
    let secret = app.create_user("svc").await;
    for auth in [AuthType::BasicAuth, AuthType::RequestBody] {
        let http = client();
        let oauth = BasicClient::new(ClientId::new("svc".into()))
            .set_client_secret(ClientSecret::new(secret.clone()))
            .set_auth_type(auth.clone())
            .set_token_uri(TokenUrl::new(format!("{}/oauth/token", app.partner)).unwrap())
            .set_introspection_url(
                IntrospectionUrl::new(format!("{}/oauth/introspect", app.partner)).unwrap(),
            );
        let token = oauth
            .exchange_client_credentials()
            .request_async(&http)
            .await
            .unwrap_or_else(|e| panic!("{auth:?}: {e:?}"));
        assert_eq!(token.expires_in().unwrap().as_secs(), 3600);
        let access = token.access_token().secret().clone();
        assert_eq!(app.verify(&access).await.status(), StatusCode::OK);
        let seen = oauth
            .introspect(token.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(seen.active(), "{auth:?}");
        assert_eq!(seen.sub(), Some("svc"));
        // The crate refuses a revocation URL without TLS (RFC 7009 §2), so
        // this step is a plain request; authlib's revocation is in
        // tests/process/interop.rs.
        let revoked = app
            .partner_request(reqwest::Method::POST, "/oauth/revoke")
            .basic_auth("svc", Some(&secret))
            .form(&[("token", access.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(revoked.status(), StatusCode::OK);
        assert_eq!(app.verify(&access).await.status(), StatusCode::UNAUTHORIZED);
        let seen = oauth
            .introspect(token.access_token())
            .request_async(&http)
            .await
            .unwrap();
        assert!(!seen.active(), "{auth:?}: revoked");
    }
}

/// Basic credentials, form fields, and the expected status, `error` code
/// and whether a Basic challenge comes back.
type Case<'a> = (
    Option<(&'a str, &'a str)>,
    Vec<(&'a str, &'a str)>,
    StatusCode,
    &'a str,
    bool,
);

async fn token_request(
    app: &TestApp,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> reqwest::Response {
    let mut r = app
        .partner_request(reqwest::Method::POST, "/oauth/token")
        .form(form);
    if let Some((id, secret)) = basic {
        r = r.basic_auth(id, Some(secret));
    }
    r.send().await.unwrap()
}

async fn error_of(r: reqwest::Response) -> (StatusCode, String, String, Option<String>) {
    let status = r.status();
    let challenge = r
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned());
    assert_eq!(r.headers()["cache-control"], "no-store");
    assert_eq!(r.headers()["pragma"], "no-cache");
    let body: Value = r.json().await.unwrap();
    (
        status,
        body["error"].as_str().unwrap().to_owned(),
        body["error_description"].as_str().unwrap_or("").to_owned(),
        challenge,
    )
}

#[tokio::test]
async fn every_token_endpoint_case_of_spec_7() {
    let app = spawn_app_with(&["--throttle-failures", "1000"]).await;
    let secret = app.create_user("svc").await;
    let cc = ("grant_type", "client_credentials");
    let ok = token_request(&app, Some(("svc", &secret)), &[cc]).await;
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(ok.headers()["cache-control"], "no-store");
    assert_eq!(ok.headers()["pragma"], "no-cache");
    let body: Value = ok.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3600);
    let posted = token_request(
        &app,
        None,
        &[cc, ("client_id", "svc"), ("client_secret", &secret)],
    )
    .await;
    assert_eq!(posted.status(), StatusCode::OK, "client_secret_post");

    let cases: Vec<Case> = vec![
        (
            Some(("svc", &secret)),
            vec![],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            false,
        ),
        (
            Some(("svc", &secret)),
            vec![cc, cc],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            false,
        ),
        (
            Some(("svc", &secret)),
            vec![("grant_type", "password")],
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            false,
        ),
        (
            Some(("svc", &secret)),
            vec![cc, ("scope", "calendar")],
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            false,
        ),
        (
            Some(("svc", &secret)),
            vec![cc, ("client_id", "svc"), ("client_secret", &secret)],
            StatusCode::BAD_REQUEST,
            "invalid_request",
            false,
        ),
        (
            Some(("svc", "wrong")),
            vec![cc],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            true,
        ),
        (
            Some(("nobody", "wrong")),
            vec![cc],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            true,
        ),
        (
            None,
            vec![cc, ("client_id", "svc"), ("client_secret", "wrong")],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            false,
        ),
        (
            None,
            vec![cc],
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            false,
        ),
    ];
    for (basic, form, status, code, challenged) in cases {
        let (s, e, _, challenge) = error_of(token_request(&app, basic, &form).await).await;
        assert_eq!((s, e.as_str()), (status, code), "{basic:?} {form:?}");
        assert_eq!(
            challenge.as_deref(),
            challenged.then_some(r#"Basic realm="tessera""#),
            "{basic:?} {form:?}"
        );
    }
    app.admin_patch("/admin/users/svc", json!({"status": "disabled"}))
        .await;
    let (s, e, d, _) = error_of(token_request(&app, Some(("svc", &secret)), &[cc]).await).await;
    assert_eq!(
        (s, e.as_str(), d.as_str()),
        (
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            "token expired"
        )
    );
}

#[tokio::test]
async fn basic_credentials_are_form_decoded_first() {
    let app = spawn_app().await;
    let secret = "p%2B+w:rd";
    app.create_user_with(json!({"username": "odd@partner", "password": secret}))
        .await;
    // RFC 6749 §2.3.1: id and secret are form-urlencoded, then joined by ':'.
    let encode = |s: &str| -> String { form_urlencoded::byte_serialize(s.as_bytes()).collect() };
    let r = token_request(
        &app,
        Some((&encode("odd@partner"), &encode(secret))),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn throttling_is_shared_with_generate_token() {
    let app = spawn_app_with(&["--throttle-failures", "3"]).await;
    let secret = app.create_user("svc").await;
    app.generate_token("svc", "wrong-1").await;
    app.generate_token("svc", "wrong-2").await;
    let r = token_request(
        &app,
        Some(("svc", "wrong-3")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = token_request(
        &app,
        Some(("svc", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let (_, e, d, _) = error_of(r).await;
    assert_eq!(
        (e.as_str(), d.as_str()),
        ("invalid_client", "too many attempts")
    );
    let r = app.generate_token("svc", &secret).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "and the other way round"
    );
}

#[tokio::test]
async fn oauth_hash_work_never_depends_on_the_client() {
    let app = spawn_app_with(&["--throttle-failures", "1000"]).await;
    app.create_user("generated").await;
    app.create_user_with(json!({"username": "chosen", "password": "operator-chosen"}))
        .await;
    for guess in ["1b4e28ba-2fa1-41d2-883f-0016d3cca427", "not-a-uuid"] {
        let mut deltas = Vec::new();
        for id in ["generated", "chosen", "nobody"] {
            for path in ["/oauth/token", "/oauth/introspect"] {
                let before = checks(&app).await;
                let r = app
                    .partner_request(reqwest::Method::POST, path)
                    .basic_auth(id, Some(guess))
                    .form(&[("grant_type", "client_credentials"), ("token", "x")])
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
                let after = checks(&app).await;
                deltas.push((after.0 - before.0, after.1 - before.1));
            }
        }
        assert!(
            deltas.windows(2).all(|w| w[0] == w[1]),
            "{guess}: {deltas:?}"
        );
    }
}

async fn checks(app: &TestApp) -> (f64, f64) {
    (
        app.metric("tessera_password_checks_total{scheme=\"sha256-salted\"}")
            .await,
        app.metric("tessera_password_checks_total{scheme=\"argon2id\"}")
            .await,
    )
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/introspect")
        .bearer_auth(&app.admin_token)
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    r.json().await.unwrap()
}

/// Asserts that introspection and `/verify` agree on `token`.
pub async fn assert_same_verdict(app: &TestApp, token: &str) {
    let verified = app.verify(token).await.status() == StatusCode::OK;
    let seen = introspect(app, token).await;
    assert_eq!(seen["active"], verified, "{token}");
    if verified {
        assert_eq!(seen["token_type"], "Bearer");
        assert_eq!(seen["client_id"], seen["sub"]);
    } else {
        assert_eq!(seen, json!({"active": false}), "nothing else when inactive");
    }
}

#[tokio::test]
async fn introspection_agrees_with_verify_in_every_account_state() {
    let app = spawn_app().await;
    let pw = app.create_user("acct").await;
    let token = app.token_for("acct", &pw).await;
    assert_same_verdict(&app, &token).await;
    assert_eq!(introspect(&app, &token).await["sub"], "acct");
    for change in [
        json!({"status": "disabled"}),
        json!({"status": "active"}),
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
        json!({"expires_at": null}),
    ] {
        app.admin_patch("/admin/users/acct", change).await;
        assert_same_verdict(&app, &token).await;
    }
    app.admin_post("/admin/users/acct/revoke", json!({})).await;
    assert_same_verdict(&app, &token).await;
    app.advance(1);
    let fresh = app.token_for("acct", &pw).await;
    assert_same_verdict(&app, &fresh).await;
    app.admin_delete("/admin/users/acct").await;
    assert_same_verdict(&app, &fresh).await;
    app.advance(7200);
    assert_same_verdict(&app, &token).await;
    assert_same_verdict(&app, "garbage").await;
}

#[tokio::test]
async fn introspection_needs_a_caller() {
    let app = spawn_app().await;
    let secret = app.create_user("rs").await;
    let token = app.token_for("rs", &secret).await;
    for (id, pw) in [("rs", "wrong"), ("nobody", "x")] {
        let r = app
            .partner_request(reqwest::Method::POST, "/oauth/introspect")
            .basic_auth(id, Some(pw))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        let (s, e, _, _) = error_of(r).await;
        assert_eq!(
            (s, e.as_str()),
            (StatusCode::UNAUTHORIZED, "invalid_client")
        );
    }
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/introspect")
        .bearer_auth("not-the-admin-token")
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/introspect")
        .form(&[
            ("token", token.as_str()),
            ("client_id", "rs"),
            ("client_secret", &secret),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "client_secret_post");
    assert_eq!(r.json::<Value>().await.unwrap()["active"], true);
    for path in ["/oauth/introspect", "/oauth/revoke"] {
        let r = app
            .partner_request(reqwest::Method::POST, path)
            .basic_auth("rs", Some(&secret))
            .form(&[("token", "")])
            .send()
            .await
            .unwrap();
        let (s, e, _, _) = error_of(r).await;
        assert_eq!(
            (s, e.as_str()),
            (StatusCode::BAD_REQUEST, "invalid_request"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn revocation_rules_of_rfc_7009() {
    let app = spawn_app().await;
    let mine = app.create_user("mine").await;
    let theirs = app.create_user("theirs").await;
    let my_token = app.token_for("mine", &mine).await;
    let their_token = app.token_for("theirs", &theirs).await;
    let revoke = |token: String| {
        let app = &app;
        let mine = mine.clone();
        async move {
            app.partner_request(reqwest::Method::POST, "/oauth/revoke")
                .basic_auth("mine", Some(mine))
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    let r = revoke(their_token.clone()).await;
    let (s, e, _, _) = error_of(r).await;
    assert_eq!(
        (s, e.as_str()),
        (StatusCode::BAD_REQUEST, "unauthorized_client")
    );
    assert_eq!(
        app.verify(&their_token).await.status(),
        StatusCode::OK,
        "not revoked"
    );
    for harmless in ["garbage".to_owned(), my_token.clone()] {
        assert_eq!(revoke(harmless).await.status(), StatusCode::OK);
    }
    assert!(
        app.verify_rejection(&my_token)
            .await
            .contains("token revoked")
    );
    assert_eq!(
        revoke(my_token).await.status(),
        StatusCode::OK,
        "twice is fine"
    );
    let revs: Value = app
        .admin_get("/admin/revocations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revs["revocations"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn server_metadata_follows_the_public_url() {
    let app = spawn_app_with(&["--public-url", "https://auth.example.com/"]).await;
    let m: Value = app
        .partner_get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["token_endpoint"], "https://auth.example.com/oauth/token");
    assert_eq!(
        m["jwks_uri"],
        "https://auth.example.com/.well-known/jwks.json"
    );
    assert_eq!(
        m["introspection_endpoint"],
        "https://auth.example.com/oauth/introspect"
    );
    assert_eq!(
        m["revocation_endpoint"],
        "https://auth.example.com/oauth/revoke"
    );
    assert_eq!(m["grant_types_supported"], json!(["client_credentials"]));
    let methods = json!(["client_secret_basic", "client_secret_post"]);
    for field in [
        "token_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
        "revocation_endpoint_auth_methods_supported",
    ] {
        assert_eq!(m[field], methods, "{field}");
    }
    assert_eq!(m["response_types_supported"], json!([]));
    assert_eq!(m["issuer"], "tessera");
    let app = spawn_app().await;
    let m: Value = app
        .partner_get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(m["token_endpoint"], format!("{}/oauth/token", app.partner));
}

#[tokio::test]
async fn oauth_requests_are_counted_by_endpoint() {
    let app = spawn_app().await;
    let secret = app.create_user("svc").await;
    token_request(
        &app,
        Some(("svc", &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    token_request(
        &app,
        Some(("svc", "bad")),
        &[("grant_type", "client_credentials")],
    )
    .await;
    let issued = app
        .metric("tessera_token_requests_total{endpoint=\"oauth_token\",outcome=\"issued\"}")
        .await;
    let refused = app
        .metric(
            "tessera_token_requests_total{endpoint=\"oauth_token\",outcome=\"invalid_credentials\"}",
        )
        .await;
    assert_eq!((issued, refused), (1.0, 1.0));
}

/// SPEC §11: one partner minting and revoking its own tokens in a loop for
/// 5 s is held to its allowance (429 + `Retry-After`), so it grows neither
/// the data file nor the feed by more than a trifle.
#[tokio::test]
async fn a_partner_revoking_in_a_loop_is_rate_limited_and_cannot_grow_the_store() {
    let app = spawn_app().await;
    let pw = app.create_user("looper").await;
    let db = app.data_dir.join("tessera.redb");
    let file_before = std::fs::metadata(&db).unwrap().len();
    let feed_before = app
        .feed_get("/revocations")
        .await
        .text()
        .await
        .unwrap()
        .len();
    let started = std::time::Instant::now();
    let (mut revoked, mut limited) = (0, 0);
    while started.elapsed() < std::time::Duration::from_secs(5) {
        let token = app.token_for("looper", &pw).await;
        let r = app
            .partner_request(reqwest::Method::POST, "/oauth/revoke")
            .basic_auth("looper", Some(&pw))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        match r.status() {
            StatusCode::OK => revoked += 1,
            StatusCode::TOO_MANY_REQUESTS => {
                let retry: u64 = r.headers()["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse()
                    .unwrap();
                assert!((1..=2).contains(&retry), "Retry-After {retry}");
                let (_, error, _, _) = error_of(r).await;
                assert_eq!(error, "temporarily_unavailable");
                limited += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(limited > 0, "the loop was limited");
    assert!(
        revoked <= 10 + 6,
        "{revoked} revocations: a burst of 10, then one a second"
    );
    let file_growth = std::fs::metadata(&db)
        .unwrap()
        .len()
        .saturating_sub(file_before);
    let feed_growth = app
        .feed_get("/revocations")
        .await
        .text()
        .await
        .unwrap()
        .len()
        .saturating_sub(feed_before);
    eprintln!(
        "5 s of self-revocation: {revoked} revoked, {limited} limited, file +{file_growth} B, feed +{feed_growth} B"
    );
    assert!(file_growth < 16 << 20, "data file grew {file_growth} bytes");
    assert!(feed_growth < 1 << 20, "feed grew {feed_growth} bytes");
    // Another partner is not held back by this one's loop.
    let other = app.create_user("bystander").await;
    let token = app.token_for("bystander", &other).await;
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/revoke")
        .basic_auth("bystander", Some(&other))
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

/// Recording a revocation writes O(1): a thousand of them grow the data file
/// by far less than a thousand copies of anything would.
#[tokio::test]
async fn a_thousand_revocations_grow_the_data_file_by_little() {
    let app = spawn_app().await;
    let db = app.data_dir.join("tessera.redb");
    let before = std::fs::metadata(&db).unwrap().len();
    let exp = app.now() + 3600;
    for i in 0..1000 {
        let r = app
            .admin_post(
                "/admin/revocations",
                serde_json::json!({"jti": format!("{i:022}"), "exp": exp}),
            )
            .await;
        assert_eq!(r.status(), StatusCode::CREATED);
    }
    let growth = std::fs::metadata(&db).unwrap().len().saturating_sub(before);
    eprintln!("1,000 revocations: data file +{growth} bytes");
    assert!(growth < 16 << 20, "data file grew {growth} bytes");
}

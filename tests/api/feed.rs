//! SPEC §8, the signed revocation feed: a verifier that knows only the JWKS
//! and the feed reaches `/verify`'s verdict for every token after every
//! admin action, once it has polled; subjects never appear in clear; a
//! forged feed is refused; entries go once nothing they concern can live.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{SigningKey, VerifyingKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera::token::{self, FEED_TYP, TokenError};
use tessera_verify::feed::{FeedClaims, RevocationState};
use tessera_verify::verifier::{Reason, Verifier, VerifierConfig};

use crate::helpers::{TestApp, forge, spawn_app, spawn_app_with};

/// The biggest feed these tests accept.
const MAX_FEED: usize = 16 << 20;

/// A verifier built only from what Tessera publishes.
#[derive(Default)]
struct OfflineVerifier {
    keys: HashMap<String, VerifyingKey>,
    state: RevocationState,
}

impl OfflineVerifier {
    async fn refresh(&mut self, app: &TestApp) {
        self.keys = app.jwks().await["keys"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| {
                let x: [u8; 32] = B64
                    .decode(k["x"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                (
                    k["kid"].as_str().unwrap().to_owned(),
                    VerifyingKey::from_bytes(&x).unwrap(),
                )
            })
            .collect();
        let path = match self.state.seq() {
            Some(c) => format!("/revocations?since={c}"),
            None => "/revocations".to_owned(),
        };
        let r = app.feed_get(&path).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/jwt");
        let jws = r.text().await.unwrap();
        let feed: FeedClaims =
            token::verify_jws(&jws, MAX_FEED, Some(FEED_TYP), |kid| self.keys.get(kid)).unwrap();
        assert_eq!(feed.iss, "tessera");
        self.state.apply(feed, app.now(), 60).unwrap();
    }

    fn verdict(&self, token: &str, now: u64) -> bool {
        token::verify(token, |kid| self.keys.get(kid), "tessera", now, 60)
            .is_ok_and(|c| self.state.check(&c, now).is_ok())
    }
}

async fn assert_agrees(app: &TestApp, v: &mut OfflineVerifier, tokens: &[String], step: &str) {
    v.refresh(app).await;
    for (i, t) in tokens.iter().enumerate() {
        let online = app.verify(t).await.status() == StatusCode::OK;
        assert_eq!(v.verdict(t, app.now()), online, "{step}: token {i}");
    }
}

#[tokio::test]
async fn a_verifier_with_the_feed_agrees_with_verify_after_every_action() {
    let app = spawn_app().await;
    let mut v = OfflineVerifier::default();
    let pa = app.create_user("alice").await;
    let pb = app.create_user("bob").await;
    let mut tokens = vec![
        app.token_for("alice", &pa).await,
        app.token_for("alice", &pa).await,
        app.token_for("bob", &pb).await,
    ];
    assert_agrees(&app, &mut v, &tokens, "start").await;
    app.admin_post("/admin/revocations", json!({"token": tokens[0]}))
        .await;
    assert_agrees(&app, &mut v, &tokens, "revoke one").await;
    app.admin_post("/admin/users/bob/revoke", json!({})).await;
    assert_agrees(&app, &mut v, &tokens, "revoke-all").await;
    app.advance(1);
    tokens.push(app.token_for("bob", &pb).await);
    assert_agrees(&app, &mut v, &tokens, "after revoke-all").await;
    app.admin_patch("/admin/users/alice", json!({"status": "disabled"}))
        .await;
    assert_agrees(&app, &mut v, &tokens, "disable").await;
    app.admin_patch("/admin/users/alice", json!({"status": "active"}))
        .await;
    assert_agrees(&app, &mut v, &tokens, "enable").await;
    let soon = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(app.now() + 10),
    )
    .to_string();
    app.admin_patch("/admin/users/bob", json!({"expires_at": soon}))
        .await;
    assert_agrees(&app, &mut v, &tokens, "expires_at set").await;
    app.advance(10);
    assert_agrees(&app, &mut v, &tokens, "expires_at passed").await;
    app.admin_delete("/admin/users/alice").await;
    assert_agrees(&app, &mut v, &tokens, "delete").await;
    let pa = app.create_user("alice").await;
    tokens.push(app.token_for("alice", &pa).await);
    assert_agrees(&app, &mut v, &tokens, "re-create").await;
    for round in 0..2 {
        app.advance(300);
        let r = app.admin_post("/admin/keys/rotate", json!({})).await;
        assert_eq!(r.status(), StatusCode::OK);
        tokens.push(app.token_for("alice", &pa).await);
        assert_agrees(&app, &mut v, &tokens, &format!("rotation {round}")).await;
    }
    let export = app.admin_get("/admin/export").await.text().await.unwrap();
    let r = app
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(export)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_agrees(&app, &mut v, &tokens, "import").await;
    app.advance(4000);
    assert_agrees(&app, &mut v, &tokens, "everything expired").await;
}

#[tokio::test]
async fn deltas_carry_only_what_changed_and_full_snapshots_come_when_needed() {
    let app = spawn_app().await;
    app.create_user("quiet").await;
    let pw = app.create_user("loud").await;
    let t = app.token_for("loud", &pw).await;
    let (kid, _) = app.active_signing_key().await;
    let decode = |jws: &str| -> Value {
        let payload = jws.split('.').nth(1).unwrap();
        serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
    };
    let full = decode(&app.feed_get("/revocations").await.text().await.unwrap());
    assert_eq!(full["full"], true);
    assert_eq!(
        full["subjects"].as_object().unwrap().len(),
        2,
        "both created within the TTL"
    );
    let text = full.to_string();
    assert!(!text.contains("quiet") && !text.contains("loud"), "{text}");
    let cursor = full["seq"].as_u64().unwrap();
    app.admin_post("/admin/revocations", json!({"token": t}))
        .await;
    let delta = decode(
        &app.feed_get(&format!("/revocations?since={cursor}"))
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(delta["full"], false);
    assert_eq!(delta["subjects"], json!({}));
    assert_eq!(delta["revoked"].as_array().unwrap().len(), 1);
    for bogus in ["junk", "999999"] {
        let again = decode(
            &app.feed_get(&format!("/revocations?since={bogus}"))
                .await
                .text()
                .await
                .unwrap(),
        );
        assert_eq!(again["full"], true, "{bogus}");
    }
    let header: Value = serde_json::from_slice(
        &B64.decode(
            app.feed_get("/revocations")
                .await
                .text()
                .await
                .unwrap()
                .split('.')
                .next()
                .unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        header,
        json!({"alg": "EdDSA", "typ": "revocations+jwt", "kid": kid})
    );
    // Once nothing they concern can be alive, entries go.
    app.advance(3600 + 1);
    let later = decode(&app.feed_get("/revocations").await.text().await.unwrap());
    assert_eq!(later["subjects"], json!({}));
    assert_eq!(later["revoked"], json!([]));
}

#[tokio::test]
async fn a_forged_or_unsigned_feed_is_refused_and_never_passes_for_a_token() {
    let app = spawn_app().await;
    let mut v = OfflineVerifier::default();
    v.refresh(&app).await;
    let (kid, key) = app.active_signing_key().await;
    let claims = r#"{"iss":"tessera","iat":1,"seq":0,"full":true,"revoked":[],"subjects":{}}"#;
    let header = format!(r#"{{"alg":"EdDSA","typ":"revocations+jwt","kid":"{kid}"}}"#);
    let feed =
        |t: &str| token::verify_jws::<FeedClaims>(t, MAX_FEED, Some(FEED_TYP), |k| v.keys.get(k));
    assert!(
        feed(&forge(&header, claims, &key)).is_ok(),
        "the real key signs feeds"
    );
    let stranger = SigningKey::from_bytes(&[7; 32]);
    assert_eq!(
        feed(&forge(&header, claims, &stranger)).unwrap_err(),
        TokenError::BadSignature
    );
    let none = format!(
        "{}.{}.",
        B64.encode(r#"{"alg":"none","typ":"revocations+jwt"}"#),
        B64.encode(claims)
    );
    assert!(feed(&none).is_err());
    let as_token = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#);
    assert!(
        feed(&forge(&as_token, claims, &key)).is_err(),
        "a token is not a feed"
    );
    let real = app.feed_get("/revocations").await.text().await.unwrap();
    assert_eq!(
        app.verify(&real).await.status(),
        StatusCode::UNAUTHORIZED,
        "a feed is not a token"
    );
}

/// The real polling [`Verifier`] over HTTP, on the app's clock.
fn verifier(app: &TestApp) -> std::sync::Arc<Verifier> {
    let clock = app.clock_handle();
    let mut config = VerifierConfig::new(app.partner.clone());
    config.feed_token = Some(app.feed_token());
    config.clock = std::sync::Arc::new(move || clock.now());
    // These tests move the clock by hours; staleness has its own test.
    config.max_staleness = std::time::Duration::from_secs(86_400);
    Verifier::new(config)
}

#[tokio::test]
async fn the_verifier_gives_verifys_verdict_after_each_poll() {
    let app = spawn_app().await;
    let v = verifier(&app);
    let pa = app.create_user("alice").await;
    let t = app.token_for("alice", &pa).await;
    assert_eq!(
        v.verify(&t).unwrap_err(),
        Reason::Stale,
        "nothing fetched yet: fail closed"
    );
    v.refresh().await.unwrap();
    assert_eq!(v.verify(&t).unwrap().sub, "alice");
    app.admin_patch("/admin/users/alice", json!({"status": "disabled"}))
        .await;
    assert!(v.verify(&t).is_ok(), "not polled yet");
    v.refresh().await.unwrap();
    assert_eq!(v.verify(&t).unwrap_err().to_string(), "account disabled");
    app.admin_patch("/admin/users/alice", json!({"status": "active"}))
        .await;
    app.admin_post("/admin/revocations", json!({"token": t}))
        .await;
    v.refresh().await.unwrap();
    assert_eq!(v.verify(&t).unwrap_err().to_string(), "token revoked");
    app.advance(300);
    app.admin_post("/admin/keys/rotate", json!({})).await;
    let after_one = app.token_for("alice", &pa).await;
    assert_eq!(
        v.verify(&after_one).unwrap().sub,
        "alice",
        "the new active key was published as next before it signed"
    );
    app.advance(300);
    app.admin_post("/admin/keys/rotate", json!({})).await;
    let fresh = app.token_for("alice", &pa).await;
    assert_eq!(
        v.verify(&fresh).unwrap_err(),
        Reason::Token(TokenError::UnknownKey),
        "a key made after the last JWKS fetch"
    );
    v.refresh_with(true).await.unwrap();
    assert_eq!(v.verify(&fresh).unwrap().sub, "alice");
    assert_eq!(
        app.verify(&fresh).await.status(),
        StatusCode::OK,
        "and /verify agrees"
    );
    app.advance(3600);
    assert_eq!(v.verify(&fresh).unwrap_err().to_string(), "token expired");
}

#[tokio::test]
async fn a_verifier_refuses_a_feed_from_another_issuer() {
    let app = spawn_app_with(&["--issuer", "someone-else"]).await;
    let v = verifier(&app);
    let err = v.refresh().await.unwrap_err();
    assert!(err.to_string().contains("issuer"), "{err}");
}

#[tokio::test]
async fn a_verifier_cut_off_from_tessera_fails_closed_after_max_staleness() {
    let app = spawn_app().await;
    let pw = app.create_user("partner").await;
    let token = app.token_for("partner", &pw).await;
    let clock = app.clock_handle();
    let mut config = VerifierConfig::new(app.partner.clone());
    config.feed_token = Some(app.feed_token());
    config.max_staleness = std::time::Duration::from_secs(60);
    config.clock = std::sync::Arc::new(move || clock.now());
    let v = Verifier::new(config.clone());
    v.refresh().await.unwrap();
    config.when_stale = tessera_verify::verifier::WhenStale::Accept;
    let lenient = Verifier::new(config);
    lenient.refresh().await.unwrap();
    let app = app.stop_and_keep_clock().await;
    assert!(v.refresh().await.is_err(), "Tessera is gone");
    app.advance(60);
    assert!(
        v.verify(&token).is_ok(),
        "the cached state serves until max_staleness"
    );
    app.advance(1);
    assert_eq!(
        v.verify(&token).unwrap_err().to_string(),
        "revocation state stale"
    );
    assert!(
        lenient.verify(&token).is_ok(),
        "configured to accept when stale"
    );
}

#[tokio::test]
async fn the_feed_with_10000_revocations_and_1000_restricted_users_stays_small() {
    let app = spawn_app().await;
    let now = app.now();
    let mut lines: Vec<Value> = app
        .admin_get("/admin/export")
        .await
        .text()
        .await
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|l: &Value| l["type"] == "header" || l["type"] == "key")
        .collect();
    let hash =
        json!({"sha256-salted": {"salt": B64.encode([1u8; 16]), "hash": B64.encode([2u8; 32])}});
    for i in 0..1000 {
        lines.push(json!({"type": "user", "user": {
            "username": format!("partner{i:04}"), "status": "disabled",
            "created_at": now - 86_400, "updated_at": now, "expires_at": null,
            "token_ttl_secs": null, "tokens_valid_after": now, "note": null, "password": hash}}));
    }
    for i in 0..10_000 {
        lines.push(json!({"type": "revocation", "jti": format!("{i:022}"), "exp": now + 3600}));
    }
    lines.push(json!({"type": "end", "users": 1000, "keys": 2, "revocations": 10_000}));
    let body: String = lines.iter().map(|l| format!("{l}\n")).collect();
    let r = app
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let feed = app.feed_get("/revocations").await.text().await.unwrap();
    let claims: Value =
        serde_json::from_slice(&B64.decode(feed.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["revoked"].as_array().unwrap().len(), 10_000);
    assert_eq!(claims["subjects"].as_object().unwrap().len(), 1000);
    eprintln!(
        "full feed with 10,000 revocations and 1,000 restricted users: {} bytes",
        feed.len()
    );
    assert!(feed.len() < 1 << 20, "{} bytes", feed.len());
}

#[tokio::test]
async fn strangers_learn_nothing_from_the_feed() {
    let app = spawn_app().await;
    app.create_user("hotel_alpha").await;
    app.admin_patch("/admin/users/hotel_alpha", json!({"status": "disabled"}))
        .await;
    let r = app.partner_get("/revocations").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    let body = r.text().await.unwrap();
    assert!(!body.contains('.'), "no feed in the refusal: {body}");
    for wrong in ["", "x", app.admin_token.as_str()] {
        let r = app
            .partner_request(reqwest::Method::GET, "/revocations?since=0")
            .bearer_auth(wrong)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{wrong:?}");
    }
    let r = app.feed_get("/revocations").await;
    assert_eq!(r.status(), StatusCode::OK, "the feed token opens it");
}

/// A follower polling `?since=` as fast as it can while three admin clients
/// revoke tokens, disable and delete users ends with exactly the state of a
/// full snapshot: no change is skipped between two deltas.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_tight_follower_racing_writers_misses_nothing() {
    let app = std::sync::Arc::new(spawn_app().await);
    for i in 0..30 {
        app.create_user(&format!("u{i}")).await;
    }
    let mut v = OfflineVerifier::default();
    v.refresh(&app).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let exp = app.now() + 3600;
    let writers: Vec<_> = (0..3)
        .map(|w| {
            let app = app.clone();
            tokio::spawn(async move {
                for i in 0..130 {
                    let jti = format!("w{w}-{i:04}-AAAAAAAAAAAAAA");
                    let r = app
                        .admin_post("/admin/revocations", json!({"jti": jti, "exp": exp}))
                        .await;
                    assert_eq!(r.status(), StatusCode::CREATED);
                    if i % 13 == 0 {
                        let user = format!("u{}", (w * 10) + i / 13);
                        if i % 26 == 0 {
                            app.admin_patch(
                                &format!("/admin/users/{user}"),
                                json!({"status": "disabled"}),
                            )
                            .await;
                        } else {
                            app.admin_delete(&format!("/admin/users/{user}")).await;
                        }
                    }
                }
            })
        })
        .collect();
    let follower = {
        let app = app.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut polls = 0;
            while !done.load(std::sync::atomic::Ordering::SeqCst) {
                v.refresh(&app).await;
                polls += 1;
            }
            v.refresh(&app).await;
            (v, polls)
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let (followed, polls) = follower.await.unwrap();
    let mut whole = OfflineVerifier::default();
    whole.refresh(&app).await;
    assert_eq!(
        whole.state.len().0,
        390,
        "every revocation is in a full feed"
    );
    assert_eq!(
        followed.state.len(),
        whole.state.len(),
        "after {polls} polls the follower holds what a full snapshot holds"
    );
    for w in 0..3 {
        for i in 0..130 {
            let claims = tessera::token::Claims {
                iss: "tessera".into(),
                sub: "u29".into(),
                iat: app.now(),
                exp,
                jti: format!("w{w}-{i:04}-AAAAAAAAAAAAAA"),
                generation: None,
                scope: None,
                cnf: None,
            };
            assert!(
                followed.state.check(&claims, app.now()).is_err(),
                "revocation w{w}-{i} reached the follower"
            );
        }
    }
    for i in 0..30 {
        let claims = tessera::token::Claims {
            iss: "tessera".into(),
            sub: format!("u{i}"),
            iat: app.now(),
            exp,
            jti: "never-revoked-AAAAAAAA".into(),
            generation: Some(u64::MAX),
            scope: None,
            cnf: None,
        };
        assert_eq!(
            followed.state.check(&claims, app.now()),
            whole.state.check(&claims, app.now()),
            "user u{i}"
        );
    }
}

/// SPEC §11, "the verifier tells": freshness and the last error for a
/// readiness probe, a feed issued longer ago than `max_staleness` counts as
/// stale, and the poller, once stopped, sends nothing more.
#[tokio::test]
async fn the_verifier_reports_its_health_and_its_poller_stops() {
    let app = spawn_app().await;
    let pw = app.create_user("partner").await;
    let token = app.token_for("partner", &pw).await;
    let clock = app.clock_handle();
    let mut config = VerifierConfig::new(app.partner.clone());
    config.feed_token = Some(app.feed_token());
    config.max_staleness = std::time::Duration::from_secs(60);
    config.poll = std::time::Duration::from_millis(20);
    config.clock = std::sync::Arc::new(move || clock.now());
    let v = Verifier::new(config.clone());
    assert!(!v.is_fresh() && v.last_refresh().is_none(), "nothing yet");
    v.refresh().await.unwrap();
    assert!(v.is_fresh() && v.last_error().is_none());
    assert_eq!(v.last_refresh(), Some(app.now()));

    // Without the feed token: the refresh fails, says why, and the state
    // held ages toward stale.
    let mut no_token = config.clone();
    no_token.feed_token = None;
    let stranger = Verifier::new(no_token);
    assert!(stranger.refresh().await.is_err());
    assert!(
        stranger.last_error().unwrap().contains("401"),
        "{:?}",
        stranger.last_error()
    );

    // The poller refreshes on its own and stops once its handle is gone.
    let polled = Verifier::new(config);
    let poller = polled.spawn();
    assert!(
        crate::helpers::eventually(5, || async { polled.last_refresh().is_some() }).await,
        "the poller refreshed"
    );
    poller.stop().await;
    // Nothing to wait for: the poller has ended. What follows checks that
    // nothing happens, over several of its poll intervals.
    let before = app.metric("tessera_http_request_duration_seconds_count{listener=\"partner\",route=\"revocations\"}").await;
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let after = app.metric("tessera_http_request_duration_seconds_count{listener=\"partner\",route=\"revocations\"}").await;
    assert_eq!(
        before, after,
        "no feed requests once the poller was dropped"
    );

    // A feed issued longer ago than max_staleness counts as stale, even
    // though the last refresh itself was recent.
    app.advance(61);
    assert!(!v.is_fresh());
    assert_eq!(v.verify(&token).unwrap_err(), Reason::Stale);
    v.refresh().await.unwrap();
    assert!(v.is_fresh());
    assert!(v.verify(&token).is_ok());
}

/// Wrong feed tokens are slowed down: after `--throttle-failures` of them
/// an address gets 429 for the next wrong one, while the right token (256
/// random bits: nothing to confirm) still reads the feed from it.
#[tokio::test]
async fn wrong_feed_tokens_are_throttled() {
    let app = spawn_app_with(&["--throttle-failures", "2"]).await;
    let wrong = || {
        app.partner_request(reqwest::Method::GET, "/revocations")
            .bearer_auth("a-wrong-feed-token-0123456789")
            .send()
    };
    for _ in 0..2 {
        assert_eq!(wrong().await.unwrap().status(), StatusCode::UNAUTHORIZED);
    }
    let r = wrong().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    assert_eq!(app.feed_get("/revocations").await.status(), StatusCode::OK);
    assert_eq!(
        app.generate_token("nobody", "x").await.status(),
        StatusCode::UNAUTHORIZED,
        "logins keep their own count"
    );
}

/// An import is a change like any other: a verifier following the feed
/// refuses, within one poll, the tokens of users the import removed,
/// disabled or took a scope from, exactly as `/verify` does.
#[tokio::test]
async fn an_import_reaches_verifiers_within_one_poll() {
    let app = spawn_app().await;
    let v = verifier(&app);
    let pa = app
        .create_user_with(json!({"username": "alice", "scopes": ["content"]}))
        .await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let pb = app.create_user("bob").await;
    app.admin_patch("/admin/users/bob", json!({"status": "disabled"}))
        .await;
    let pk = app.create_user("kept").await;
    let export = app.admin_get("/admin/export").await.text().await.unwrap();
    app.advance(60);
    app.admin_patch(
        "/admin/users/alice",
        json!({"scopes": ["content", "calendar"]}),
    )
    .await;
    app.admin_patch("/admin/users/bob", json!({"status": "active"}))
        .await;
    let pg = app.create_user("ghost").await;
    let scoped = |user: &str, pw: &str| {
        let (app, user, pw) = (&app, user.to_owned(), pw.to_owned());
        async move {
            app.partner_request(
                reqwest::Method::POST,
                &format!("/generateToken?username={user}&password={pw}&scope=calendar"),
            )
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
        }
    };
    let tokens = [
        ("ghost", app.token_for("ghost", &pg).await),
        ("bob", app.token_for("bob", &pb).await),
        ("alice", scoped("alice", &pa).await),
    ];
    let kept = app.token_for("kept", &pk).await;
    v.refresh().await.unwrap();
    for (user, t) in &tokens {
        assert!(v.verify(t).is_ok(), "{user} before the import");
    }
    let calendar = tessera_verify::scope::Scopes::parse("calendar").unwrap();
    assert!(v.verify_scoped(&tokens[2].1, &calendar).is_ok());
    app.advance(60);
    let r = app
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(export)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    v.refresh().await.unwrap();
    for (user, t) in &tokens[..2] {
        assert_ne!(
            app.verify(t).await.status(),
            StatusCode::OK,
            "{user}: /verify"
        );
        assert!(
            v.verify(t).is_err(),
            "{user}: the verifier still accepts it"
        );
    }
    let alice = &tokens[2].1;
    let r = app
        .partner_request(reqwest::Method::GET, "/verify?scope=calendar")
        .bearer_auth(alice)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN, "alice: /verify");
    assert_eq!(
        v.verify_scoped(alice, &calendar).unwrap_err(),
        Reason::InsufficientScope,
        "alice: the verifier still grants the scope the import took away"
    );
    assert!(
        v.verify(&kept).is_ok(),
        "an unchanged user's token lives on"
    );
    let audit: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    let imported: Vec<(&str, &str)> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "user.import")
        .map(|e| (e["target"].as_str().unwrap(), e["detail"].as_str().unwrap()))
        .collect();
    assert_eq!(
        imported,
        [
            ("ghost", "removed"),
            ("bob", "changed"),
            ("alice", "changed")
        ],
        "one event per user the import changed, none for the unchanged"
    );
}

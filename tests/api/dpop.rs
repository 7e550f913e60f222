//! DPoP (SPEC §17): tokens bound to a partner's key at `/oauth/token` and
//! `/generateToken`, and one table of presentations answered alike by
//! `/verify` (behind forward-auth: the original request in
//! `X-Forwarded-*`) and by `tessera-verify`'s offline `Verifier`.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tessera_verify::dpop::{PresentationError, ath_of};
use tessera_verify::feed::RevocationState;
use tessera_verify::{Reason, Verifier, VerifierConfig};

use crate::helpers::{TestApp, spawn_app};

/// The partner's DPoP key.
fn partner_key() -> SigningKey {
    SigningKey::from_bytes(&[21; 32])
}

fn jwk(key: &SigningKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.verifying_key().as_bytes())})
}

static NEXT_JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// A proof, with `change` applied to its header and claims before
/// signing with `signer` (the header's `jwk` stays `key`'s unless changed).
fn proof(
    key: &SigningKey,
    signer: &SigningKey,
    claims: Value,
    change: impl FnOnce(&mut Value, &mut Value),
) -> String {
    let mut header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": jwk(key)});
    let mut claims = claims;
    if claims.get("jti").is_none() {
        let n = NEXT_JTI.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        claims["jti"] = json!(format!("jti-{n}"));
    }
    change(&mut header, &mut claims);
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    format!(
        "{input}.{}",
        B64.encode(signer.sign(input.as_bytes()).to_bytes())
    )
}

/// A proof for `POST url` at login.
fn login_proof(app: &TestApp, url: &str) -> String {
    let key = partner_key();
    proof(
        &key,
        &key,
        json!({"htm": "POST", "htu": url, "iat": app.now()}),
        |_, _| {},
    )
}

fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

async fn bound_token(app: &TestApp, secret: &str) -> String {
    let url = format!("{}/oauth/token", app.partner);
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/token")
        .basic_auth("partner", Some(secret))
        .header("dpop", login_proof(app, &url))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    body["access_token"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_login_with_a_proof_gets_a_token_bound_to_its_key() {
    let app = spawn_app().await;
    let secret = app.create_user("partner").await;
    let jkt = tessera_verify::jwk::thumbprint(&partner_key().verifying_key());

    let token = bound_token(&app, &secret).await;
    assert_eq!(claims_of(&token)["cnf"], json!({"jkt": jkt}));

    // /generateToken keeps its plain-text body; the token is bound too.
    let url = format!("{}/generateToken", app.partner);
    let r = app
        .partner_request(reqwest::Method::POST, "/generateToken")
        .query(&[("username", "partner"), ("password", &secret)])
        .header("dpop", login_proof(&app, &url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(claims_of(&r.text().await.unwrap())["cnf"]["jkt"], jkt);

    // Without a proof: a bearer token, as before.
    let plain = app.token_for("partner", &secret).await;
    assert!(claims_of(&plain).get("cnf").is_none());

    // Introspection shows the binding.
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/introspect")
        .bearer_auth(&app.admin_token)
        .form(&[("token", token.as_str())])
        .send()
        .await
        .unwrap();
    let seen: Value = r.json().await.unwrap();
    assert_eq!(
        (seen["active"].clone(), seen["token_type"].clone()),
        (json!(true), json!("DPoP"))
    );
    assert_eq!(seen["cnf"], json!({"jkt": jkt}));

    // The metadata lists the algorithms.
    let meta: Value = app
        .partner_get("/.well-known/oauth-authorization-server")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        meta["dpop_signing_alg_values_supported"],
        json!(["EdDSA", "ES256"])
    );
}

#[tokio::test]
async fn a_bad_proof_at_login_is_refused_before_the_password_is_checked() {
    let app = spawn_app().await;
    let secret = app.create_user("partner").await;
    let key = partner_key();
    let url = format!("{}/oauth/token", app.partner);
    let other = SigningKey::from_bytes(&[22; 32]);
    let bad_signature = proof(
        &key,
        &other,
        json!({"htm": "POST", "htu": url, "iat": app.now()}),
        |_, _| {},
    );
    let wrong_url = proof(
        &key,
        &key,
        json!({"htm": "POST", "htu": format!("{}/elsewhere", app.partner), "iat": app.now()}),
        |_, _| {},
    );
    for bad in [bad_signature, wrong_url] {
        let r = app
            .partner_request(reqwest::Method::POST, "/oauth/token")
            .basic_auth("partner", Some("not even the right secret"))
            .header("dpop", &bad)
            .form(&[("grant_type", "client_credentials")])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        let body: Value = r.json().await.unwrap();
        assert_eq!(body["error"], "invalid_dpop_proof", "{body}");
    }
    // A proof replayed at login.
    let once = login_proof(&app, &url);
    let login = |p: String| {
        app.partner_request(reqwest::Method::POST, "/oauth/token")
            .basic_auth("partner", Some(secret.as_str()))
            .header("dpop", p)
            .form(&[("grant_type", "client_credentials")])
            .send()
    };
    assert_eq!(login(once.clone()).await.unwrap().status(), StatusCode::OK);
    assert_eq!(login(once).await.unwrap().status(), StatusCode::BAD_REQUEST);
    // /generateToken words it in plain text.
    let gen_url = format!("{}/generateToken", app.partner);
    let r = app
        .partner_request(reqwest::Method::POST, "/generateToken")
        .query(&[("username", "partner"), ("password", &secret)])
        .header(
            "dpop",
            proof(
                &key,
                &other,
                json!({"htm": "POST", "htu": gen_url, "iat": app.now()}),
                |_, _| {},
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.text().await.unwrap(), "invalid dpop proof");
}

/// Makes a case's proof (twice: one for each side).
type MakeProof = Box<dyn Fn(&Ctx) -> String>;

/// How a case presents its token, and with which proof.
enum As {
    Bearer,
    Dpop(Option<MakeProof>),
}

/// What every case's proof is made from.
struct Ctx {
    now: u64,
    bound: String,
    url: String,
}

impl Ctx {
    /// The claims of a right proof for `GET url` with this token.
    fn claims(&self, token: &str) -> Value {
        json!({"htm": "GET", "htu": self.url, "iat": self.now, "ath": ath_of(token)})
    }

    fn signed(&self, change: impl FnOnce(&mut Value, &mut Value)) -> String {
        let key = partner_key();
        proof(&key, &key, self.claims(&self.bound), change)
    }
}

/// The refusal class both sides must give: None for accepted.
fn class_of_reason(r: &Reason) -> &'static str {
    match r {
        Reason::Presentation(PresentationError::Proof(_)) => "invalid_dpop_proof",
        Reason::Presentation(PresentationError::Binding(_)) => "invalid_token",
        _ => "other",
    }
}

fn class_of_challenge(challenge: &str) -> &'static str {
    if challenge.contains(r#"error="invalid_dpop_proof""#) {
        "invalid_dpop_proof"
    } else if challenge.contains(r#"error="invalid_token""#) {
        "invalid_token"
    } else {
        "other"
    }
}

#[tokio::test]
async fn verify_and_the_offline_verifier_answer_every_presentation_alike() {
    let app = spawn_app().await;
    let secret = app.create_user("partner").await;
    let bound = bound_token(&app, &secret).await;
    let plain = app.token_for("partner", &secret).await;
    let (kid, signing) = app.active_signing_key().await;
    let clock = app.clock_handle();
    let mut config = VerifierConfig::new(&app.partner);
    config.clock = Arc::new(move || clock.now());
    let verifier = Verifier::from_parts(
        config,
        HashMap::from([(kid, signing.verifying_key())]),
        RevocationState::default(),
    );
    let (proto, host, path) = ("https", "api.example.com:8443", "/properties/7");
    let ctx = Ctx {
        now: app.now(),
        bound: bound.clone(),
        url: format!("{proto}://{host}{path}"),
    };

    type Case = (&'static str, String, As, Option<&'static str>);
    let p = |f: fn(&Ctx) -> String| As::Dpop(Some(Box::new(f)));
    let cases: Vec<Case> = vec![
        (
            "a right proof",
            bound.clone(),
            p(|c| c.signed(|_, _| {})),
            None,
        ),
        (
            "htu with query and fragment",
            bound.clone(),
            p(|c| c.signed(|_, cl| cl["htu"] = json!(format!("{}?page=2#top", c.url)))),
            None,
        ),
        (
            "typ JWT",
            bound.clone(),
            p(|c| c.signed(|h, _| h["typ"] = json!("JWT"))),
            Some("invalid_dpop_proof"),
        ),
        (
            "alg none",
            bound.clone(),
            p(|c| c.signed(|h, _| h["alg"] = json!("none"))),
            Some("invalid_dpop_proof"),
        ),
        (
            "alg HS256",
            bound.clone(),
            p(|c| c.signed(|h, _| h["alg"] = json!("HS256"))),
            Some("invalid_dpop_proof"),
        ),
        (
            "bad signature",
            bound.clone(),
            p(|c| {
                let key = partner_key();
                proof(
                    &key,
                    &SigningKey::from_bytes(&[23; 32]),
                    c.claims(&c.bound),
                    |_, _| {},
                )
            }),
            Some("invalid_dpop_proof"),
        ),
        (
            "a private key in jwk",
            bound.clone(),
            p(|c| c.signed(|h, _| h["jwk"]["d"] = json!(B64.encode([21u8; 32])))),
            Some("invalid_dpop_proof"),
        ),
        (
            "htm POST for GET",
            bound.clone(),
            p(|c| c.signed(|_, cl| cl["htm"] = json!("POST"))),
            Some("invalid_dpop_proof"),
        ),
        (
            "htu another path",
            bound.clone(),
            p(
                |c| {
                    c.signed(|_, cl| cl["htu"] = json!("https://api.example.com:8443/properties/8"))
                },
            ),
            Some("invalid_dpop_proof"),
        ),
        (
            "htu another host",
            bound.clone(),
            p(|c| c.signed(|_, cl| cl["htu"] = json!("https://evil.example:8443/properties/7"))),
            Some("invalid_dpop_proof"),
        ),
        (
            "iat too old",
            bound.clone(),
            p(|c| c.signed(|_, cl| cl["iat"] = json!(c.now - 61))),
            Some("invalid_dpop_proof"),
        ),
        (
            "iat too new",
            bound.clone(),
            p(|c| c.signed(|_, cl| cl["iat"] = json!(c.now + 61))),
            Some("invalid_dpop_proof"),
        ),
        (
            "wrong ath",
            bound.clone(),
            p(|c| c.signed(|_, cl| cl["ath"] = json!(ath_of("another.token.x")))),
            Some("invalid_dpop_proof"),
        ),
        (
            "missing ath",
            bound.clone(),
            p(|c| {
                c.signed(|_, cl| {
                    cl.as_object_mut().unwrap().remove("ath");
                })
            }),
            Some("invalid_dpop_proof"),
        ),
        (
            "no DPoP header",
            bound.clone(),
            As::Dpop(None),
            Some("invalid_dpop_proof"),
        ),
        (
            "another key",
            bound.clone(),
            p(|c| {
                let other = SigningKey::from_bytes(&[24; 32]);
                proof(&other, &other, c.claims(&c.bound), |_, _| {})
            }),
            Some("invalid_token"),
        ),
        (
            "a bound token as Bearer",
            bound.clone(),
            As::Bearer,
            Some("invalid_token"),
        ),
        (
            "an unbound token as DPoP",
            plain.clone(),
            p(|c| c.signed(|_, _| {})),
            Some("invalid_token"),
        ),
        (
            "an unbound token as Bearer",
            plain.clone(),
            As::Bearer,
            None,
        ),
    ];
    assert!(cases.iter().filter(|c| c.3.is_some()).count() >= 12);
    for (what, token, presented, expected) in &cases {
        let proof = match presented {
            As::Bearer | As::Dpop(None) => None,
            As::Dpop(Some(make)) => Some((make(&ctx), make(&ctx))),
        };
        // /verify, as nginx or Caddy forward the original request.
        let mut req = app
            .partner_request(reqwest::Method::GET, "/verify")
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", format!("{path}?page=2"));
        req = match presented {
            As::Bearer => req.bearer_auth(token),
            As::Dpop(_) => req.header("authorization", format!("DPoP {token}")),
        };
        if let Some((first, _)) = &proof {
            req = req.header("dpop", first);
        }
        let r = req.send().await.unwrap();
        let served = match r.status() {
            StatusCode::OK => None,
            status => {
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
                let challenge = r.headers()["www-authenticate"].to_str().unwrap().to_owned();
                assert!(
                    challenge.starts_with(r#"DPoP algs="EdDSA ES256""#),
                    "{what}: {challenge}"
                );
                Some(class_of_challenge(&challenge))
            }
        };
        // tessera-verify, offline, with its own proof (its own replay cache).
        let url = format!("{proto}://{host}{path}?page=2");
        let offline = match (presented, &proof) {
            (As::Bearer, _) => verifier.verify(token),
            (As::Dpop(_), None) => verifier.verify_dpop(token, None, "GET", &url),
            (As::Dpop(_), Some((_, second))) => {
                verifier.verify_dpop(token, Some(second), "GET", &url)
            }
        };
        let offline = offline.err().map(|r| class_of_reason(&r));
        assert_eq!(served, *expected, "/verify: {what}");
        assert_eq!(offline, *expected, "tessera-verify: {what}");
    }

    // A replayed proof: accepted once by each, then refused by each.
    let once = ctx.signed(|_, _| {});
    let url = format!("{proto}://{host}{path}");
    for attempt in 0..2 {
        let r = app
            .partner_request(reqwest::Method::GET, "/verify")
            .header("authorization", format!("DPoP {bound}"))
            .header("dpop", &once)
            .header("x-forwarded-method", "GET")
            .header("x-forwarded-proto", proto)
            .header("x-forwarded-host", host)
            .header("x-forwarded-uri", path)
            .send()
            .await
            .unwrap();
        let offline = verifier.verify_dpop(&bound, Some(&once), "GET", &url);
        if attempt == 0 {
            assert_eq!(r.status(), StatusCode::OK);
            assert!(offline.is_ok());
        } else {
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "replayed at /verify");
            assert!(
                r.headers()["www-authenticate"]
                    .to_str()
                    .unwrap()
                    .contains("replayed")
            );
            assert_eq!(
                offline.err().map(|r| class_of_reason(&r)),
                Some("invalid_dpop_proof")
            );
        }
    }
}

#[tokio::test]
async fn a_partner_can_be_required_to_bind_every_token() {
    let app = spawn_app().await;
    let created = app
        .create_user_with(json!({"username": "partner", "dpop_required": true}))
        .await;
    assert_eq!(created["dpop_required"], true);
    let secret = created["password"].as_str().unwrap().to_owned();

    let r = app.generate_token("partner", &secret).await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert_eq!(r.text().await.unwrap(), "dpop proof required");
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/token")
        .basic_auth("partner", Some(&secret))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let body: Value = r.json().await.unwrap();
    assert_eq!(
        body,
        json!({"error": "invalid_dpop_proof", "error_description": "dpop proof required"})
    );
    // A wrong password is still only a wrong password.
    assert_eq!(
        app.generate_token("partner", "a wrong one").await.status(),
        StatusCode::UNAUTHORIZED
    );
    // With a proof: a bound token.
    bound_token(&app, &secret).await;

    // Export/import and apply keep it; PATCH turns it off.
    let export = app.admin_get("/admin/export").await.text().await.unwrap();
    let other = spawn_app().await;
    let r = other
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(export)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let u: Value = other
        .admin_get("/admin/users/partner")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(u["dpop_required"], true);
    let r = app
        .admin_patch("/admin/users/partner", json!({"dpop_required": false}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        app.generate_token("partner", &secret).await.status(),
        StatusCode::OK
    );
    let r = app
        .admin_post(
            "/admin/apply",
            json!({"users": [{"username": "partner", "dpop_required": true}]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let report: Value = r.json().await.unwrap();
    assert_eq!(report["updated"], json!(["partner"]));
    assert_eq!(
        app.generate_token("partner", &secret).await.status(),
        StatusCode::BAD_REQUEST
    );
}

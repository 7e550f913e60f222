//! The warp filter and the tower layer: a valid token passes with its
//! claims, a missing one gets the bare RFC 6750 challenge, a bad one
//! `invalid_token` with `/verify`'s reason.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use ed25519_dalek::SigningKey;
use tessera_verify::feed::RevocationState;
use tessera_verify::token::{self, Claims};
use tessera_verify::tower_layer::BearerLayer;
use tessera_verify::verifier::{Verifier, VerifierConfig};
use tessera_verify::warp_filter;
use tower::{Layer, ServiceExt};
use warp::Filter;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn setup() -> (Arc<Verifier>, String) {
    let key = SigningKey::from_bytes(&[5; 32]);
    let claims = Claims {
        iss: "tessera".into(),
        sub: "partner".into(),
        iat: now(),
        exp: now() + 600,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        generation: None,
        scope: None,
        cnf: None,
    };
    let token = token::encode(&claims, &token::encoded_header("k"), &key);
    let keys = HashMap::from([("k".to_owned(), key.verifying_key())]);
    let v = Verifier::from_parts(
        VerifierConfig::new("http://unused"),
        keys,
        RevocationState::default(),
    );
    (v, token)
}

#[tokio::test]
async fn the_warp_filter_extracts_claims_and_challenges_per_rfc_6750() {
    let (v, token) = setup();
    let route = warp::path!("whoami")
        .and(warp_filter::bearer(v))
        .map(|c: Arc<Claims>| c.sub.clone())
        .recover(warp_filter::recover);
    let ok = warp::test::request()
        .path("/whoami")
        .header("authorization", format!("Bearer {token}"))
        .reply(&route)
        .await;
    assert_eq!(
        (ok.status().as_u16(), ok.body().as_ref()),
        (200, b"partner".as_ref())
    );
    let none = warp::test::request().path("/whoami").reply(&route).await;
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="tessera""#
    );
    let bad = warp::test::request()
        .path("/whoami")
        .header("authorization", "Bearer not.a.token")
        .reply(&route)
        .await;
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="invalid_token", error_description="malformed token""#
    );
}

#[tokio::test]
async fn the_tower_layer_guards_any_service() {
    let (v, token) = setup();
    let inner = tower::service_fn(|req: http::Request<()>| async move {
        let sub = req.extensions().get::<Arc<Claims>>().map(|c| c.sub.clone());
        Ok::<_, Infallible>(http::Response::new(sub.unwrap_or_default()))
    });
    let svc = BearerLayer::new(v).layer(inner);
    let req = |auth: Option<String>| {
        let mut b = http::Request::builder().uri("/whoami");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(()).unwrap()
    };
    let ok = svc
        .clone()
        .oneshot(req(Some(format!("Bearer {token}"))))
        .await
        .unwrap();
    assert_eq!((ok.status().as_u16(), ok.body().as_str()), (200, "partner"));
    let none = svc.clone().oneshot(req(None)).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="tessera""#
    );
    let tampered = format!("Bearer {}x", &token[..token.len() - 1]);
    let bad = svc.oneshot(req(Some(tampered))).await.unwrap();
    assert_eq!(bad.status(), 401);
    assert!(
        bad.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
}

#[tokio::test]
async fn the_tower_layer_works_in_axum() {
    let (v, token) = setup();
    let app = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(
                |axum::Extension(c): axum::Extension<Arc<Claims>>| async move { c.sub.clone() },
            ),
        )
        .layer(BearerLayer::new(v));
    let req = |auth: Option<String>| {
        let mut b = http::Request::builder().uri("/whoami");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(axum::body::Body::empty()).unwrap()
    };
    let ok = app
        .clone()
        .oneshot(req(Some(format!("Bearer {token}"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let none = app.oneshot(req(None)).await.unwrap();
    assert_eq!(none.status(), 401);
    assert_eq!(
        none.headers()["www-authenticate"],
        r#"Bearer realm="tessera""#
    );
}

#[cfg(feature = "axum")]
#[tokio::test]
async fn the_axum_extractor_gives_claims_and_challenges_per_rfc_6750() {
    use tessera_verify::Verified;
    let (v, token) = setup();
    let app = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|c: Verified| async move { c.sub.clone() }),
        )
        .with_state(v.clone());
    let req = |auth: Option<String>| {
        let mut b = http::Request::builder().uri("/whoami");
        if let Some(a) = auth {
            b = b.header("authorization", a);
        }
        b.body(axum::body::Body::empty()).unwrap()
    };
    let body = |r: http::Response<axum::body::Body>| async move {
        let bytes = axum::body::to_bytes(r.into_body(), 1 << 16).await.unwrap();
        String::from_utf8(bytes.to_vec()).unwrap()
    };
    let ok = app
        .clone()
        .oneshot(req(Some(format!("Bearer {token}"))))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(body(ok).await, "partner");
    for missing in [None, Some("Basic dXNlcjpwdw==".to_owned())] {
        let none = app.clone().oneshot(req(missing)).await.unwrap();
        assert_eq!(none.status(), 401);
        assert_eq!(
            none.headers()["www-authenticate"],
            r#"Bearer realm="tessera""#
        );
    }
    let bad = app
        .clone()
        .oneshot(req(Some("Bearer not.a.token".into())))
        .await
        .unwrap();
    assert_eq!(bad.status(), 401);
    assert_eq!(
        bad.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="invalid_token", error_description="malformed token""#
    );
    // Behind BearerLayer, the extractor takes the layer's verdict.
    let layered = axum::Router::new()
        .route(
            "/whoami",
            axum::routing::get(|c: Verified| async move { c.sub.clone() }),
        )
        .layer(BearerLayer::new(v.clone()))
        .with_state(v);
    let ok = layered
        .oneshot(req(Some(format!("Bearer {token}"))))
        .await
        .unwrap();
    assert_eq!(body(ok).await, "partner");
}

/// A verifier whose feed says `partner` now holds only `held`, and a token
/// of `partner` granted `content sync`.
fn setup_scoped(held: Option<&[&str]>) -> (Arc<Verifier>, String) {
    use tessera_verify::account::AccountState;
    use tessera_verify::feed::{FeedClaims, SubjectState, subject_id};
    use tessera_verify::scope::Scopes;
    let key = SigningKey::from_bytes(&[5; 32]);
    let claims = Claims {
        iss: "tessera".into(),
        sub: "partner".into(),
        iat: now(),
        exp: now() + 600,
        jti: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        generation: None,
        scope: Some("content sync".into()),
        cnf: None,
    };
    let token = token::encode(&claims, &token::encoded_header("k"), &key);
    let mut state = RevocationState::default();
    if let Some(held) = held {
        let subject = SubjectState::new(AccountState::default(), now() + 600)
            .with_scopes(Scopes::new(held).unwrap());
        state
            .apply(
                FeedClaims {
                    iss: "tessera".into(),
                    iat: now(),
                    seq: 1,
                    since: None,
                    full: true,
                    revoked: Vec::new(),
                    subjects: HashMap::from([(subject_id("partner"), subject)]),
                },
                now(),
                60,
            )
            .unwrap();
    }
    let keys = HashMap::from([("k".to_owned(), key.verifying_key())]);
    let v = Verifier::from_parts(VerifierConfig::new("http://unused"), keys, state);
    (v, token)
}

#[tokio::test]
async fn scoped_forms_answer_403_for_a_scope_the_token_lacks_or_the_user_lost() {
    use tessera_verify::scope::Scopes;
    let scopes = |s: &[&str]| Scopes::new(s).unwrap();
    // The feed says nothing of partner: the token's claim holds.
    let (v, token) = setup_scoped(None);
    let route = |v: Arc<Verifier>, required: Scopes| {
        warp::any()
            .and(warp_filter::bearer_scoped(v, required))
            .map(|c: Arc<Claims>| c.sub.clone())
            .recover(warp_filter::recover)
    };
    let ask = |route, token: String| async move {
        warp::test::request()
            .header("authorization", format!("Bearer {token}"))
            .reply(&route)
            .await
    };
    let ok = ask(route(v.clone(), scopes(&["sync"])), token.clone()).await;
    assert_eq!(ok.status(), 200);
    let lacking = ask(
        route(v.clone(), scopes(&["property", "sync"])),
        token.clone(),
    )
    .await;
    assert_eq!(lacking.status(), 403);
    assert_eq!(
        lacking.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="insufficient_scope", scope="property sync""#
    );
    // The feed says partner now holds only `content`: `sync` is gone.
    let (v, token) = setup_scoped(Some(&["content"]));
    assert_eq!(
        v.verify_scoped(&token, &scopes(&["sync"])),
        Err(tessera_verify::Reason::InsufficientScope)
    );
    assert!(v.verify_scoped(&token, &scopes(&["content"])).is_ok());
    let lost = ask(route(v.clone(), scopes(&["sync"])), token.clone()).await;
    assert_eq!(lost.status(), 403);
    // The tower layer, the same verdicts.
    let inner = tower::service_fn(|_req: http::Request<()>| async move {
        Ok::<_, Infallible>(http::Response::new(String::from("ok")))
    });
    let req = || {
        http::Request::builder()
            .header("authorization", format!("Bearer {token}"))
            .body(())
            .unwrap()
    };
    let layered = |required| BearerLayer::new(v.clone()).requiring(required).layer(inner);
    let denied = layered(scopes(&["sync"])).oneshot(req()).await.unwrap();
    assert_eq!(denied.status(), 403);
    assert_eq!(
        denied.headers()["www-authenticate"],
        r#"Bearer realm="tessera", error="insufficient_scope", scope="sync""#
    );
    let allowed = layered(scopes(&["content"])).oneshot(req()).await.unwrap();
    assert_eq!(allowed.status(), 200);
}

/// A verifier (public URL `public_url`, if any), a token bound to the
/// partner's DPoP key, and a maker of proofs for `GET htu` with that token.
fn setup_dpop(public_url: Option<&str>) -> (Arc<Verifier>, String, impl Fn(&str) -> String) {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use ed25519_dalek::Signer as _;
    let issuer = SigningKey::from_bytes(&[5; 32]);
    let partner = SigningKey::from_bytes(&[6; 32]);
    let jkt = tessera_verify::jwk::thumbprint(&partner.verifying_key());
    let claims = Claims {
        iss: "tessera".into(),
        sub: "partner".into(),
        iat: now(),
        exp: now() + 600,
        jti: "BBBBBBBBBBBBBBBBBBBBBB".into(),
        generation: None,
        scope: None,
        cnf: Some(tessera_verify::token::Confirmation { jkt }),
    };
    let token = token::encode(&claims, &token::encoded_header("k"), &issuer);
    let mut config = VerifierConfig::new("http://unused");
    config.public_url = public_url.map(str::to_owned);
    let v = Verifier::from_parts(
        config,
        HashMap::from([("k".to_owned(), issuer.verifying_key())]),
        RevocationState::default(),
    );
    let ath = tessera_verify::dpop::ath_of(&token);
    let counter = std::sync::atomic::AtomicU64::new(0);
    let prove = move |htu: &str| {
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let header = serde_json::json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {
            "kty": "OKP", "crv": "Ed25519", "x": B64.encode(partner.verifying_key().as_bytes())}});
        let claims = serde_json::json!({"jti": format!("p{n}"), "htm": "GET", "htu": htu, "iat": now(), "ath": ath});
        let input = format!(
            "{}.{}",
            B64.encode(header.to_string()),
            B64.encode(claims.to_string())
        );
        format!(
            "{input}.{}",
            B64.encode(partner.sign(input.as_bytes()).to_bytes())
        )
    };
    (v, token, prove)
}

#[tokio::test]
async fn every_adapter_checks_dpop_bound_tokens() {
    // warp: htu from http:// and the Host header.
    let (v, token, prove) = setup_dpop(None);
    let route = warp::path!("whoami")
        .and(warp_filter::bearer(v))
        .map(|c: Arc<Claims>| c.sub.clone())
        .recover(warp_filter::recover);
    let call = |auth: String, proof: Option<String>| {
        let mut r = warp::test::request()
            .path("/whoami?x=1")
            .header("host", "service.example:8080")
            .header("authorization", auth);
        if let Some(p) = proof {
            r = r.header("dpop", p);
        }
        r.reply(&route)
    };
    let proof = prove("http://service.example:8080/whoami");
    let ok = call(format!("DPoP {token}"), Some(proof.clone())).await;
    assert_eq!(
        (ok.status().as_u16(), ok.body().as_ref()),
        (200, b"partner".as_ref())
    );
    let replayed = call(format!("DPoP {token}"), Some(proof)).await;
    assert_eq!(replayed.status(), 401);
    let challenge = replayed.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.starts_with(r#"DPoP algs="EdDSA ES256", error="invalid_dpop_proof""#),
        "{challenge}"
    );
    let downgraded = call(format!("Bearer {token}"), None).await;
    assert_eq!(downgraded.status(), 401);
    let challenge = downgraded.headers()["www-authenticate"].to_str().unwrap();
    assert!(
        challenge.contains(r#"error="invalid_token""#),
        "{challenge}"
    );
    let elsewhere = call(
        format!("DPoP {token}"),
        Some(prove("http://other.example/whoami")),
    )
    .await;
    assert_eq!(elsewhere.status(), 401);

    // tower (and so axum's layer): htu from the configured public URL.
    let (v, token, prove) = setup_dpop(Some("https://api.example.com"));
    let inner = tower::service_fn(|req: http::Request<()>| async move {
        let sub = req.extensions().get::<Arc<Claims>>().map(|c| c.sub.clone());
        Ok::<_, Infallible>(http::Response::new(sub.unwrap_or_default()))
    });
    let svc = BearerLayer::new(v.clone()).layer(inner);
    let req = |proof: String| {
        http::Request::builder()
            .uri("/whoami")
            .header("host", "internal:9000")
            .header("authorization", format!("DPoP {token}"))
            .header("dpop", proof)
            .body(())
            .unwrap()
    };
    let ok = svc
        .clone()
        .oneshot(req(prove("https://api.example.com/whoami")))
        .await
        .unwrap();
    assert_eq!((ok.status().as_u16(), ok.body().as_str()), (200, "partner"));
    let internal = svc
        .oneshot(req(prove("http://internal:9000/whoami")))
        .await
        .unwrap();
    assert_eq!(
        internal.status(),
        401,
        "the public URL, not the Host, names the service"
    );

    // The axum extractor.
    #[cfg(feature = "axum")]
    {
        use tessera_verify::Verified;
        let app = axum::Router::new()
            .route(
                "/whoami",
                axum::routing::get(|c: Verified| async move { c.sub.clone() }),
            )
            .with_state(v);
        let req = |auth: String, proof: String| {
            http::Request::builder()
                .uri("/whoami")
                .header("authorization", auth)
                .header("dpop", proof)
                .body(axum::body::Body::empty())
                .unwrap()
        };
        let ok = app
            .clone()
            .oneshot(req(
                format!("DPoP {token}"),
                prove("https://api.example.com/whoami"),
            ))
            .await
            .unwrap();
        assert_eq!(ok.status(), 200);
        let downgraded = app
            .oneshot(req(
                format!("Bearer {token}"),
                prove("https://api.example.com/whoami"),
            ))
            .await
            .unwrap();
        assert_eq!(downgraded.status(), 401);
    }
}

//! `GET /verify`: every rule of SPEC §2's "valid only if ALL hold" list,
//! each with a token that breaks exactly that rule (signed with the server's
//! real key where the rule is not about the signature).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, claims_of, forge, spawn_app};

struct Fixture {
    app: TestApp,
    kid: String,
    key: SigningKey,
    token: String,
}

async fn fixture() -> Fixture {
    let app = spawn_app().await;
    let pw = app.create_user("partner").await;
    let token = app.token_for("partner", &pw).await;
    let (kid, key) = app.active_signing_key().await;
    Fixture {
        app,
        kid,
        key,
        token,
    }
}

impl Fixture {
    fn header(&self) -> String {
        format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{}"}}"#, self.kid)
    }

    /// Claims in the account generation of the fixture's real token, so
    /// that each rejection below breaks exactly the rule it names.
    fn claims(&self, iss: &str, sub: &str, iat: u64, exp: u64) -> String {
        let generation = claims_of(&self.token)["gen"].as_u64().unwrap();
        json!({"iss": iss, "sub": sub, "iat": iat, "exp": exp, "jti": "AAAAAAAAAAAAAAAAAAAAAA", "gen": generation})
            .to_string()
    }

    async fn rejected_with(&self, token: &str, reason: &str) {
        let h = self.app.verify_rejection(token).await;
        assert!(
            h.starts_with(r#"Bearer realm="tessera", error="invalid_token""#),
            "{h}"
        );
        assert!(h.contains(reason), "expected {reason:?} in {h}");
    }
}

#[tokio::test]
async fn valid_token_passes_with_forward_auth_headers() {
    let f = fixture().await;
    let r = f.app.verify(&f.token).await;
    assert_eq!(r.status(), StatusCode::OK);
    let c = claims_of(&f.token);
    assert_eq!(r.headers()["x-auth-subject"], "partner");
    assert_eq!(r.headers()["x-auth-token-id"], c["jti"].as_str().unwrap());
    assert_eq!(
        r.headers()["x-auth-expires-at"],
        c["exp"].to_string().as_str()
    );
    assert!(r.text().await.unwrap().is_empty());
    // A token forged with the real key and sound claims passes too: the
    // rejections below each break exactly one rule.
    let t = forge(
        &f.header(),
        &f.claims("tessera", "partner", f.app.now(), f.app.now() + 60),
        &f.key,
    );
    assert_eq!(f.app.verify(&t).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn no_token_gets_a_bare_challenge() {
    let f = fixture().await;
    let r = f.app.partner_get("/verify").await;
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    let r = f
        .app
        .partner_request(reqwest::Method::GET, "/verify")
        .header("authorization", "Basic dXNlcjpwYXNz")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
}

#[tokio::test]
async fn shape_rules() {
    let f = fixture().await;
    let t = &f.token;
    f.rejected_with("abc", "malformed").await;
    f.rejected_with(&format!("{t}.x"), "malformed").await;
    f.rejected_with(t.rsplit_once('.').unwrap().0, "malformed")
        .await;
    f.rejected_with(&format!("{t}="), "malformed").await;
    f.rejected_with(&t.replace('.', ".!"), "malformed").await;
    let huge = forge(
        &f.header(),
        &f.claims("tessera", &"p".repeat(4200), f.app.now(), f.app.now() + 60),
        &f.key,
    );
    f.rejected_with(&huge, "malformed").await;
}

#[tokio::test]
async fn algorithm_rules() {
    let f = fixture().await;
    let claims = f.claims("tessera", "partner", f.app.now(), f.app.now() + 60);
    let none = format!(
        "{}.{}.",
        B64.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, f.kid)),
        B64.encode(&claims)
    );
    f.rejected_with(&none, "unsupported algorithm").await;
    for alg in ["none", "HS256", "RS256"] {
        let t = forge(
            &format!(r#"{{"alg":"{alg}","kid":"{}"}}"#, f.kid),
            &claims,
            &f.key,
        );
        f.rejected_with(&t, "unsupported algorithm").await;
    }
    let crit = forge(
        &format!(r#"{{"alg":"EdDSA","kid":"{}","crit":["exp"]}}"#, f.kid),
        &claims,
        &f.key,
    );
    f.rejected_with(&crit, "critical").await;
}

#[tokio::test]
async fn hmac_keyed_with_the_public_key_is_refused() {
    use hmac::{Hmac, KeyInit, Mac};
    let f = fixture().await;
    let jwks = f.app.jwks().await;
    let x = jwks["keys"][0]["x"].as_str().unwrap();
    let input = format!(
        "{}.{}",
        B64.encode(format!(r#"{{"alg":"HS256","kid":"{}"}}"#, f.kid)),
        B64.encode(f.claims("tessera", "partner", f.app.now(), f.app.now() + 60))
    );
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(x.as_bytes()).unwrap();
    mac.update(input.as_bytes());
    let t = format!("{input}.{}", B64.encode(mac.finalize().into_bytes()));
    f.rejected_with(&t, "unsupported algorithm").await;
}

#[tokio::test]
async fn key_and_signature_rules() {
    let f = fixture().await;
    let claims = f.claims("tessera", "partner", f.app.now(), f.app.now() + 60);
    let unknown = forge(r#"{"alg":"EdDSA","kid":"no-such-key"}"#, &claims, &f.key);
    f.rejected_with(&unknown, "unknown key").await;
    let foreign = forge(&f.header(), &claims, &SigningKey::from_bytes(&[7; 32]));
    f.rejected_with(&foreign, "bad signature").await;
    // Tampered payload under the original signature.
    let parts: Vec<&str> = f.token.split('.').collect();
    let mut c = claims_of(&f.token);
    c["sub"] = json!("someone_else");
    let tampered = format!("{}.{}.{}", parts[0], B64.encode(c.to_string()), parts[2]);
    f.rejected_with(&tampered, "bad signature").await;
    // Embedded attacker JWK is ignored.
    let attacker = SigningKey::from_bytes(&[9; 32]);
    let ax = B64.encode(attacker.verifying_key().as_bytes());
    let h = format!(
        r#"{{"alg":"EdDSA","kid":"{}","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{ax}"}}}}"#,
        f.kid
    );
    f.rejected_with(&forge(&h, &claims, &attacker), "bad signature")
        .await;
}

#[tokio::test]
async fn claim_rules() {
    let f = fixture().await;
    let n = f.app.now();
    let wrong_iss = forge(
        &f.header(),
        &f.claims("someone", "partner", n, n + 60),
        &f.key,
    );
    f.rejected_with(&wrong_iss, "wrong issuer").await;
    let future = forge(
        &f.header(),
        &f.claims("tessera", "partner", n + 120, n + 600),
        &f.key,
    );
    f.rejected_with(&future, "not yet valid").await;
    let expired = forge(
        &f.header(),
        &f.claims("tessera", "partner", n - 120, n - 60),
        &f.key,
    );
    f.rejected_with(&expired, "expired").await;
    let within_leeway = forge(
        &f.header(),
        &f.claims("tessera", "partner", n + 60, n + 600),
        &f.key,
    );
    assert_eq!(
        f.app.verify(&within_leeway).await.status(),
        StatusCode::OK,
        "an iat up to --clock-leeway (60 s) ahead: the issuer's clock is ahead"
    );
    let generation = claims_of(&f.token)["gen"].as_u64().unwrap();
    let from_an_older_generation = forge(
        &f.header(),
        &f.claims("tessera", "partner", n, n + 60).replace(
            &format!("\"gen\":{generation}"),
            &format!("\"gen\":{}", generation - 1),
        ),
        &f.key,
    );
    f.rejected_with(&from_an_older_generation, "revoked").await;
    let without_a_generation = forge(
        &f.header(),
        &json!({"iss": "tessera", "sub": "partner", "iat": n, "exp": n + 60, "jti": "AAAAAAAAAAAAAAAAAAAAAA"}).to_string(),
        &f.key,
    );
    f.rejected_with(&without_a_generation, "revoked").await;
    let ghost = forge(
        &f.header(),
        &f.claims("tessera", "ghost", n, n + 60),
        &f.key,
    );
    f.rejected_with(&ghost, "account deleted").await;
}

#[tokio::test]
async fn expiry_is_enforced_over_time() {
    let app = spawn_app().await;
    let v = app
        .create_user_with(json!({"username": "short", "token_ttl_secs": 1}))
        .await;
    let t = app
        .token_for("short", v["password"].as_str().unwrap())
        .await;
    assert_eq!(app.verify(&t).await.status(), StatusCode::OK);
    app.advance(1);
    assert!(app.verify_rejection(&t).await.contains("expired"));
}

#[tokio::test]
async fn account_rules() {
    let f = fixture().await;
    let app = &f.app;
    app.admin_patch("/admin/users/partner", json!({"status": "disabled"}))
        .await;
    f.rejected_with(&f.token, "account disabled").await;
    app.admin_patch(
        "/admin/users/partner",
        json!({"status": "active", "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    f.rejected_with(&f.token, "account expired").await;
    app.admin_patch("/admin/users/partner", json!({"expires_at": null}))
        .await;
    assert_eq!(
        app.verify(&f.token).await.status(),
        StatusCode::OK,
        "restored"
    );
    app.admin_delete("/admin/users/partner").await;
    f.rejected_with(&f.token, "account deleted").await;
}

#[tokio::test]
async fn revoked_jti_is_refused_in_the_same_second() {
    let f = fixture().await;
    let r = f
        .app
        .admin_post("/admin/revocations", json!({"token": f.token}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    f.rejected_with(&f.token, "token revoked").await;
}

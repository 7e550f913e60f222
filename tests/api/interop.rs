//! A mainstream JWT library (`jsonwebtoken`) verifies Tessera's tokens with
//! the JWKS key, and the signed revocation feed too: our own verifier is
//! not the only judge.

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation, decode, decode_header};
use serde_json::Value;

use crate::helpers::spawn_app;

#[tokio::test]
async fn jsonwebtoken_verifies_with_the_jwks() {
    let app = spawn_app().await;
    let pw = app.create_user("interop").await;
    let token = app.token_for("interop", &pw).await;
    let jwks: JwkSet = serde_json::from_value(app.jwks().await).unwrap();
    let header = decode_header(&token).unwrap();
    assert_eq!(header.alg, Algorithm::EdDSA);
    assert_eq!(header.typ.as_deref(), Some("JWT"));
    let jwk = jwks
        .find(header.kid.as_deref().unwrap())
        .expect("kid is in the JWKS");
    let key = DecodingKey::from_jwk(jwk).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["tessera"]);
    validation.set_required_spec_claims(&["exp", "iss", "sub"]);
    let data = decode::<Value>(&token, &key, &validation).unwrap();
    assert_eq!(data.claims["sub"], "interop");

    // And it refuses a tampered one, so the check above is real.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    assert!(decode::<Value>(&parts.join("."), &key, &validation).is_err());
    // A different key in the set does not verify it either.
    let other = jwks
        .keys
        .iter()
        .find(|k| k.common.key_id != header.kid)
        .unwrap();
    assert!(decode::<Value>(&token, &DecodingKey::from_jwk(other).unwrap(), &validation).is_err());
}

#[tokio::test]
async fn jsonwebtoken_verifies_the_revocation_feed_with_the_jwks() {
    let app = spawn_app().await;
    let pw = app.create_user("feedy").await;
    let token = app.token_for("feedy", &pw).await;
    app.admin_post("/admin/revocations", serde_json::json!({"token": token}))
        .await;
    let feed = app.feed_get("/revocations").await.text().await.unwrap();
    let jwks: JwkSet = serde_json::from_value(app.jwks().await).unwrap();
    let header = decode_header(&feed).unwrap();
    assert_eq!(header.typ.as_deref(), Some("revocations+jwt"));
    let key = DecodingKey::from_jwk(jwks.find(header.kid.as_deref().unwrap()).unwrap()).unwrap();
    let mut validation = Validation::new(Algorithm::EdDSA);
    validation.set_issuer(&["tessera"]);
    validation.set_required_spec_claims(&["iss"]);
    validation.validate_exp = false; // a feed has no exp: it is as fresh as its iat
    let data = decode::<Value>(&feed, &key, &validation).unwrap();
    assert_eq!(data.claims["full"], true);
    assert_eq!(data.claims["revoked"].as_array().unwrap().len(), 1);
    let mut parts: Vec<String> = feed.split('.').map(str::to_owned).collect();
    parts[2] = parts[2].chars().rev().collect();
    assert!(decode::<Value>(&parts.join("."), &key, &validation).is_err());
}

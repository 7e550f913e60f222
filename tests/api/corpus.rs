//! A negative-token corpus: crafted tokens an attacker would try. Each must
//! be refused by `/verify` (401) and, where the flaw is in the token itself,
//! by the library verifier (`tessera::token::verify`) too.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey, VerifyingKey};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::json;

use crate::helpers::{claims_of, forge, spawn_app};

/// The group order L of Ed25519, little-endian.
const L: [u8; 32] = [
    0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
];

fn hmac_token(alg: &str, kid: &str, claims: &str, secret: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#)),
        B64.encode(claims)
    );
    let tag = if alg == "HS512" {
        let mut m = Hmac::<sha2::Sha512>::new_from_slice(secret).unwrap();
        m.update(input.as_bytes());
        m.finalize().into_bytes().to_vec()
    } else {
        let mut m = Hmac::<sha2::Sha256>::new_from_slice(secret).unwrap();
        m.update(input.as_bytes());
        m.finalize().into_bytes().to_vec()
    };
    format!("{input}.{}", B64.encode(tag))
}

fn with_signature(token: &str, sig: &[u8]) -> String {
    let input = token.rsplit_once('.').unwrap().0;
    format!("{input}.{}", B64.encode(sig))
}

#[tokio::test]
async fn crafted_tokens_are_all_refused() {
    let app = spawn_app().await;
    let pw = app.create_user("victim").await;
    let good = app.token_for("victim", &pw).await;
    app.create_user("departed").await;
    app.admin_delete("/admin/users/departed").await;
    let (kid, key) = app.active_signing_key().await;
    let public: VerifyingKey = key.verifying_key();
    let x = B64.encode(public.as_bytes());
    let attacker = SigningKey::from_bytes(&[13; 32]);
    let ax = B64.encode(attacker.verifying_key().as_bytes());
    let n = app.now();
    let g = claims_of(&good)["gen"].as_u64().unwrap();
    let header = format!(r#"{{"alg":"EdDSA","typ":"JWT","kid":"{kid}"}}"#);
    let claims =
        json!({"iss":"tessera","sub":"victim","iat":n,"exp":n+600,"jti":"AAAAAAAAAAAAAAAAAAAAAA","gen":g})
            .to_string();
    let claims_with = |field: &str, raw: &str| {
        let mut c = json!({"iss":"tessera","sub":"victim","iat":n,"exp":n+600,"jti":"AAAAAAAAAAAAAAAAAAAAAA","gen":g})
            .to_string();
        c = c.replace(
            &format!("\"{field}\":{}", if field == "iat" { n } else { n + 600 }),
            &format!("\"{field}\":{raw}"),
        );
        c
    };
    let sound = forge(&header, &claims, &key);
    let good_sig = B64.decode(sound.rsplit('.').next().unwrap()).unwrap();
    let mut non_canonical_s = good_sig.clone();
    let mut carry = 0u16;
    for i in 0..32 {
        let sum = non_canonical_s[32 + i] as u16 + L[i] as u16 + carry;
        non_canonical_s[32 + i] = sum as u8;
        carry = sum >> 8;
    }
    let mut small_order = vec![0u8; 64];
    small_order[0] = 1; // R = the identity point, S = 0
    let alg_only = |alg: &str| {
        forge(
            &format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#),
            &claims,
            &key,
        )
    };
    let unsigned = |alg: &str| {
        format!(
            "{}.{}.",
            B64.encode(format!(r#"{{"alg":"{alg}","kid":"{kid}"}}"#)),
            B64.encode(&claims)
        )
    };

    // (name, token, refused by the library verifier too)
    let corpus: Vec<(&str, String, bool)> = vec![
        ("alg none, no signature", unsigned("none"), true),
        ("alg None", unsigned("None"), true),
        ("alg NONE", unsigned("NONE"), true),
        ("alg none with a real signature", alg_only("none"), true),
        ("alg empty", alg_only(""), true),
        (
            "HS256 keyed with the public key (base64)",
            hmac_token("HS256", &kid, &claims, x.as_bytes()),
            true,
        ),
        (
            "HS256 keyed with the raw public key",
            hmac_token("HS256", &kid, &claims, public.as_bytes()),
            true,
        ),
        (
            "HS512 keyed with the public key",
            hmac_token("HS512", &kid, &claims, x.as_bytes()),
            true,
        ),
        (
            "RS256 header over an Ed25519 signature",
            alg_only("RS256"),
            true,
        ),
        ("ES256 header", alg_only("ES256"), true),
        ("lower-case eddsa", alg_only("eddsa"), true),
        ("header only", B64.encode(&header), true),
        (
            "two segments",
            sound.rsplit_once('.').unwrap().0.to_owned(),
            true,
        ),
        ("four segments", format!("{sound}.AAAA"), true),
        ("empty segments", "..".to_owned(), true),
        ("padding on the signature", format!("{sound}=="), true),
        ("padding on the payload", sound.replacen('.', "=.", 2), true),
        (
            "standard base64 characters",
            sound.replace('-', "+").replace('_', "/") + "+/",
            true,
        ),
        ("whitespace inside", sound.replacen('.', ". ", 1), true),
        (
            "duplicate alg in the header",
            forge(
                &format!(r#"{{"alg":"EdDSA","alg":"none","kid":"{kid}"}}"#),
                &claims,
                &key,
            ),
            true,
        ),
        (
            "duplicate sub in the claims",
            forge(
                &header,
                &claims.replacen(
                    "\"sub\":\"victim\"",
                    "\"sub\":\"victim\",\"sub\":\"admin\"",
                    1,
                ),
                &key,
            ),
            true,
        ),
        (
            "kid path injection",
            forge(
                r#"{"alg":"EdDSA","kid":"../../../../dev/null"}"#,
                &claims,
                &key,
            ),
            true,
        ),
        (
            "kid URL",
            forge(
                r#"{"alg":"EdDSA","kid":"https://attacker.example/key"}"#,
                &claims,
                &key,
            ),
            true,
        ),
        (
            "kid SQL",
            forge(r#"{"alg":"EdDSA","kid":"' OR '1'='1"}"#, &claims, &key),
            true,
        ),
        (
            "kid missing",
            forge(r#"{"alg":"EdDSA"}"#, &claims, &key),
            true,
        ),
        (
            "jku to an attacker JWKS",
            forge(
                &format!(
                    r#"{{"alg":"EdDSA","kid":"{kid}","jku":"https://attacker.example/jwks"}}"#
                ),
                &claims,
                &attacker,
            ),
            true,
        ),
        (
            "x5u to an attacker cert",
            forge(
                &format!(
                    r#"{{"alg":"EdDSA","kid":"{kid}","x5u":"https://attacker.example/c.pem"}}"#
                ),
                &claims,
                &attacker,
            ),
            true,
        ),
        (
            "embedded attacker jwk",
            forge(
                &format!(
                    r#"{{"alg":"EdDSA","kid":"{kid}","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{ax}"}}}}"#
                ),
                &claims,
                &attacker,
            ),
            true,
        ),
        (
            "crit header",
            forge(
                &format!(r#"{{"alg":"EdDSA","kid":"{kid}","crit":["exp"]}}"#),
                &claims,
                &key,
            ),
            true,
        ),
        (
            "huge float exp",
            forge(&header, &claims_with("exp", "1e30"), &key),
            true,
        ),
        (
            "exp past u64",
            forge(&header, &claims_with("exp", "18446744073709551616"), &key),
            true,
        ),
        (
            "negative iat",
            forge(&header, &claims_with("iat", "-1"), &key),
            true,
        ),
        (
            "string exp",
            forge(
                &header,
                &claims_with("exp", &format!("\"{}\"", n + 600)),
                &key,
            ),
            true,
        ),
        (
            "fractional exp",
            forge(
                &header,
                &claims_with("exp", &format!("{}.5", n + 600)),
                &key,
            ),
            true,
        ),
        (
            "claims not an object",
            forge(&header, "[1,2,3]", &key),
            true,
        ),
        ("header not JSON", forge("EdDSA", &claims, &key), true),
        (
            "truncated signature",
            sound[..sound.len() - 4].to_owned(),
            true,
        ),
        (
            "signature of another message",
            with_signature(&sound, &key.sign(b"another message").to_bytes()),
            true,
        ),
        (
            "signature of another token",
            with_signature(
                &sound,
                &B64.decode(good.rsplit('.').next().unwrap()).unwrap(),
            ),
            true,
        ),
        (
            "non-canonical S (S + L)",
            with_signature(&sound, &non_canonical_s),
            true,
        ),
        (
            "small-order R, zero S",
            with_signature(&sound, &small_order),
            true,
        ),
        (
            "all-zero signature",
            with_signature(&sound, &[0u8; 64]),
            true,
        ),
        (
            "over 4 KiB",
            forge(&header, &claims.replace("victim", &"v".repeat(4096)), &key),
            true,
        ),
        // Sound tokens whose flaw is the account: only the service can tell.
        (
            "sub of a deleted user",
            forge(&header, &claims.replace("victim", "departed"), &key),
            false,
        ),
        (
            "sub of a user that never existed",
            forge(&header, &claims.replace("victim", "nobody"), &key),
            false,
        ),
    ];
    assert!(corpus.len() >= 30);
    let vk = public;
    for (name, token, library_refuses) in &corpus {
        let r = app.verify(token).await;
        assert_eq!(
            r.status(),
            reqwest::StatusCode::UNAUTHORIZED,
            "/verify accepted: {name}"
        );
        crate::oauth::assert_same_verdict(&app, token).await;
        if *library_refuses {
            let verdict =
                tessera::token::verify(token, |k| (k == kid).then_some(&vk), "tessera", n, 60);
            assert!(verdict.is_err(), "library verifier accepted: {name}");
        }
    }
    // The corpus is sharp: the sound token it was derived from passes.
    assert_eq!(app.verify(&sound).await.status(), reqwest::StatusCode::OK);
    crate::oauth::assert_same_verdict(&app, &sound).await;
}

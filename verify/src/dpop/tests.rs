//! Every rule of a proof, each with a proof that breaks only it.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer as _, SigningKey};
use serde_json::{Value, json};

use super::*;

const NOW: u64 = 1_900_000_000;
const URL: &str = "https://api.example.com:8443/properties/7";

fn ed_key() -> SigningKey {
    SigningKey::from_bytes(&[7; 32])
}

fn ed_jwk(key: &SigningKey) -> Value {
    json!({"kty": "OKP", "crv": "Ed25519", "x": B64.encode(key.verifying_key().as_bytes())})
}

fn claims() -> Value {
    json!({"jti": "proof-1", "htm": "GET", "htu": URL, "iat": NOW})
}

fn sign_ed(header: &Value, claims: &Value, key: &SigningKey) -> String {
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims.to_string())
    );
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn proof_with(
    header_change: impl FnOnce(&mut Value),
    claims_change: impl FnOnce(&mut Value),
) -> String {
    let key = ed_key();
    let mut header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk(&key)});
    header_change(&mut header);
    let mut c = claims();
    claims_change(&mut c);
    sign_ed(&header, &c, &key)
}

fn request(token: Option<&str>) -> Request<'_> {
    Request {
        method: "GET",
        url: URL,
        access_token: token,
        now: NOW,
        leeway_secs: 60,
    }
}

#[test]
fn a_valid_proof_names_its_keys_thumbprint() {
    let proof = proof_with(|_| {}, |_| {});
    let checked = check_proof(&proof, &request(None)).unwrap();
    // The thumbprint of an Ed25519 key is the one the server names keys by.
    assert_eq!(
        checked.jkt,
        crate::jwk::thumbprint(&ed_key().verifying_key())
    );
    assert_eq!((checked.jti.as_str(), checked.iat), ("proof-1", NOW));
    // The fully-specified algorithm name panva's libraries send.
    let proof = proof_with(|h| h["alg"] = json!("Ed25519"), |_| {});
    assert!(check_proof(&proof, &request(None)).is_ok());
}

#[test]
fn es256_proofs_are_accepted_and_thumbprinted_per_rfc_7638() {
    use p256::ecdsa::signature::Signer as _;
    let key = p256::ecdsa::SigningKey::from_slice(&[9; 32]).unwrap();
    let point = key.verifying_key().to_sec1_point(false);
    let sec1 = point.as_bytes();
    let (x, y) = (B64.encode(&sec1[1..33]), B64.encode(&sec1[33..65]));
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": y}});
    let input = format!(
        "{}.{}",
        B64.encode(header.to_string()),
        B64.encode(claims().to_string())
    );
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    let proof = format!("{input}.{}", B64.encode(sig.to_bytes()));
    let checked = check_proof(&proof, &request(None)).unwrap();
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    assert_eq!(checked.jkt, B64.encode(Sha256::digest(canonical)));
    // The same proof with the key of another curve member is no key.
    let bad = proof.replacen(&B64.encode(header.to_string()), &B64.encode(json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": {"kty": "EC", "crv": "P-256", "x": x, "y": x}}).to_string()), 1);
    assert_eq!(check_proof(&bad, &request(None)), Err(ProofError::BadKey));
}

#[test]
fn each_broken_rule_is_named() {
    let other = SigningKey::from_bytes(&[8; 32]);
    let cases: Vec<(&str, String, ProofError)> = vec![
        (
            "typ JWT",
            proof_with(|h| h["typ"] = json!("JWT"), |_| {}),
            ProofError::WrongType,
        ),
        (
            "no typ",
            proof_with(
                |h| {
                    h.as_object_mut().unwrap().remove("typ");
                },
                |_| {},
            ),
            ProofError::WrongType,
        ),
        (
            "alg none",
            proof_with(|h| h["alg"] = json!("none"), |_| {}),
            ProofError::UnsupportedAlgorithm,
        ),
        (
            "alg HS256",
            proof_with(|h| h["alg"] = json!("HS256"), |_| {}),
            ProofError::UnsupportedAlgorithm,
        ),
        (
            "private key in jwk",
            proof_with(|h| h["jwk"]["d"] = json!(B64.encode([7; 32])), |_| {}),
            ProofError::BadKey,
        ),
        (
            "no jwk",
            proof_with(
                |h| {
                    h.as_object_mut().unwrap().remove("jwk");
                },
                |_| {},
            ),
            ProofError::BadKey,
        ),
        (
            "EC key for EdDSA",
            proof_with(|h| h["jwk"]["kty"] = json!("EC"), |_| {}),
            ProofError::BadKey,
        ),
        (
            "signed by another key",
            proof_with(|h| h["jwk"] = ed_jwk(&other), |_| {}),
            ProofError::BadSignature,
        ),
        (
            "htm POST",
            proof_with(|_| {}, |c| c["htm"] = json!("POST")),
            ProofError::WrongMethod,
        ),
        (
            "htm lowercase",
            proof_with(|_| {}, |c| c["htm"] = json!("get")),
            ProofError::WrongMethod,
        ),
        (
            "htu other path",
            proof_with(
                |_| {},
                |c| c["htu"] = json!("https://api.example.com:8443/properties/8"),
            ),
            ProofError::WrongUrl,
        ),
        (
            "htu other host",
            proof_with(
                |_| {},
                |c| c["htu"] = json!("https://evil.example.com:8443/properties/7"),
            ),
            ProofError::WrongUrl,
        ),
        (
            "htu other port",
            proof_with(
                |_| {},
                |c| c["htu"] = json!("https://api.example.com/properties/7"),
            ),
            ProofError::WrongUrl,
        ),
        (
            "htu other scheme",
            proof_with(
                |_| {},
                |c| c["htu"] = json!("http://api.example.com:8443/properties/7"),
            ),
            ProofError::WrongUrl,
        ),
        (
            "iat too old",
            proof_with(|_| {}, |c| c["iat"] = json!(NOW - 61)),
            ProofError::StaleOrEarly,
        ),
        (
            "iat too new",
            proof_with(|_| {}, |c| c["iat"] = json!(NOW + 61)),
            ProofError::StaleOrEarly,
        ),
        (
            "no jti",
            proof_with(
                |_| {},
                |c| {
                    c.as_object_mut().unwrap().remove("jti");
                },
            ),
            ProofError::Malformed,
        ),
        (
            "iat a string",
            proof_with(|_| {}, |c| c["iat"] = json!("now")),
            ProofError::Malformed,
        ),
        ("two parts", "a.b".into(), ProofError::Malformed),
        (
            "crit",
            proof_with(|h| h["crit"] = json!(["exp"]), |_| {}),
            ProofError::Malformed,
        ),
    ];
    for (what, proof, expected) in cases {
        assert_eq!(check_proof(&proof, &request(None)), Err(expected), "{what}");
    }
    // The edges of the window hold.
    for iat in [NOW - 60, NOW + 60] {
        let proof = proof_with(|_| {}, |c| c["iat"] = json!(iat));
        assert!(check_proof(&proof, &request(None)).is_ok(), "{iat}");
    }
}

#[test]
fn htu_ignores_query_fragment_case_and_default_ports() {
    let request_url = "HTTPS://API.example.com:443/properties/7?page=2#top";
    let req = Request {
        url: request_url,
        ..request(None)
    };
    let proof = proof_with(
        |_| {},
        |c| c["htu"] = json!("https://api.example.com/properties/7"),
    );
    assert!(check_proof(&proof, &req).is_ok());
    assert_eq!(normalise_htu("http://h:80"), Some("http://h/".into()));
    assert_eq!(
        normalise_htu("http://h:8080/a?b#c"),
        Some("http://h:8080/a".into())
    );
    assert_eq!(normalise_htu("ftp://h/"), None);
    assert_eq!(normalise_htu("/relative"), None);
    assert_eq!(normalise_htu("http://user@h/"), None);
    // The path is compared as sent: case matters there.
    assert_ne!(normalise_htu("http://h/A"), normalise_htu("http://h/a"));
}

#[test]
fn ath_must_be_the_tokens_hash_when_a_token_comes_with_the_proof() {
    let token = "the.access.token";
    let with_ath = proof_with(|_| {}, |c| c["ath"] = json!(ath_of(token)));
    assert!(check_proof(&with_ath, &request(Some(token))).is_ok());
    assert_eq!(
        check_proof(&with_ath, &request(Some("another.token.x"))),
        Err(ProofError::WrongAccessToken)
    );
    let without = proof_with(|_| {}, |_| {});
    assert_eq!(
        check_proof(&without, &request(Some(token))),
        Err(ProofError::WrongAccessToken)
    );
    assert!(
        check_proof(&without, &request(None)).is_ok(),
        "at issue: no ath"
    );
}

#[test]
fn a_proof_is_accepted_once_within_its_window() {
    let replays = ReplayCache::new(16);
    let proof = proof_with(|_| {}, |_| {});
    assert!(check_proof_once(&proof, &request(None), &replays).is_ok());
    assert_eq!(
        check_proof_once(&proof, &request(None), &replays),
        Err(ProofError::Replayed)
    );
    let other = proof_with(|_| {}, |c| c["jti"] = json!("proof-2"));
    assert!(check_proof_once(&other, &request(None), &replays).is_ok());
    // Past its window the proof is refused for its iat anyway.
    let late = Request {
        now: NOW + 61,
        ..request(None)
    };
    assert_eq!(
        check_proof_once(&proof, &late, &replays),
        Err(ProofError::StaleOrEarly)
    );
}

#[test]
fn bound_tokens_come_as_dpop_by_their_key_and_unbound_ones_as_bearer() {
    let replays = ReplayCache::new(16);
    let token = "the.access.token";
    let jkt = crate::jwk::thumbprint(&ed_key().verifying_key());
    let proof = proof_with(|_| {}, |c| c["ath"] = json!(ath_of(token)));
    let req = request(None);
    let dpop = |proof| Presented::Dpop {
        proof,
        request: req,
        replays: &replays,
    };
    let check = |cnf: Option<&str>, presented| check_presentation(token, cnf, presented);
    assert_eq!(check(None, Presented::Bearer), Ok(()));
    assert_eq!(
        check(Some(&jkt), Presented::Bearer),
        Err(BindingError::BoundTokenAsBearer.into()),
        "downgrade"
    );
    assert_eq!(
        check(None, dpop(Some(&proof))),
        Err(BindingError::UnboundTokenAsDpop.into())
    );
    assert_eq!(
        check(Some(&jkt), dpop(None)),
        Err(ProofError::Malformed.into())
    );
    assert_eq!(
        check(Some("another-keys-thumbprint"), dpop(Some(&proof))),
        Err(BindingError::OtherKey.into())
    );
    // The proof must carry this token's hash, whatever the request said.
    let for_another_token = proof_with(
        |_| {},
        |c| {
            c["jti"] = json!("proof-for-another-token");
            c["ath"] = json!(ath_of("another.access.token"));
        },
    );
    assert_eq!(
        check(Some(&jkt), dpop(Some(&for_another_token))),
        Err(ProofError::WrongAccessToken.into())
    );
    assert_eq!(
        check(Some(&jkt), dpop(Some(&proof))),
        Ok(()),
        "another key used no jti"
    );
    assert_eq!(
        check(Some(&jkt), dpop(Some(&proof))),
        Err(ProofError::Replayed.into())
    );
}

#[test]
fn a_key_read_once_is_remembered_and_answers_as_reading_it_again() {
    let key = SigningKey::from_bytes(&[31; 32]);
    let x = B64.encode(key.verifying_key().as_bytes());
    let canonical = format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#);
    assert!(KNOWN_KEYS.get(&canonical).is_none());
    let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk(&key)});
    let first = check_proof(&sign_ed(&header, &claims(), &key), &request(None)).unwrap();
    assert!(KNOWN_KEYS.get(&canonical).is_some());
    let again = check_proof(&sign_ed(&header, &claims(), &key), &request(None)).unwrap();
    assert_eq!(again.jkt, first.jkt);
    // A remembered key still refuses what another key signed.
    let forged = sign_ed(&header, &claims(), &SigningKey::from_bytes(&[32; 32]));
    assert_eq!(
        check_proof(&forged, &request(None)),
        Err(ProofError::BadSignature)
    );
    // What is no key is refused every time, and never remembered.
    let no_point = (0u8..=255)
        .map(|i| {
            let mut b = [0u8; 32];
            b[0] = i;
            b
        })
        .find(|b| ed25519_dalek::VerifyingKey::from_bytes(b).is_err())
        .unwrap();
    let bad_x = B64.encode(no_point);
    let bad = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": {"kty": "OKP", "crv": "Ed25519", "x": bad_x}});
    for _ in 0..2 {
        assert_eq!(
            check_proof(&sign_ed(&bad, &claims(), &key), &request(None)),
            Err(ProofError::BadKey)
        );
    }
    assert!(
        KNOWN_KEYS
            .get(&format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{bad_x}"}}"#))
            .is_none()
    );
}

#[test]
fn a_proof_is_remembered_by_its_key_and_jti_until_its_window_ends() {
    let replays = ReplayCache::new(16);
    let proof = |jkt: &str, jti: &str| Proof {
        jkt: jkt.into(),
        jti: jti.into(),
        iat: NOW,
    };
    assert!(replays.first_use(&proof("key-a", "1"), NOW + 61, NOW));
    assert!(!replays.first_use(&proof("key-a", "1"), NOW + 61, NOW + 60));
    // Another key's proof with the same jti is another proof; so is
    // another jti, even one that runs the key's text on ("key-a" + "1"
    // and "key-a1" + "" must not meet).
    assert!(replays.first_use(&proof("key-b", "1"), NOW + 61, NOW));
    assert!(replays.first_use(&proof("key-a", "2"), NOW + 61, NOW));
    assert!(replays.first_use(&proof("key-a1", ""), NOW + 61, NOW));
    // Once its window has ended, the place is free for a new proof.
    assert!(replays.first_use(&proof("key-a", "1"), NOW + 200, NOW + 61));
    assert!(!replays.first_use(&proof("key-a", "1"), NOW + 200, NOW + 199));
}

#[test]
fn a_flood_of_proofs_never_grows_the_cache_past_its_size() {
    let replays = ReplayCache::new(1_000);
    assert!(replays.is_empty());
    for i in 0..20_000u64 {
        let proof = Proof {
            jkt: "one-busy-partner".into(),
            jti: i.to_string(),
            iat: NOW,
        };
        assert!(replays.first_use(&proof, NOW + 61, NOW));
    }
    assert!(!replays.is_empty());
    // Full, not emptied: about its size, never past it.
    assert!(
        (500..=1_000).contains(&replays.len()),
        "{} remembered",
        replays.len()
    );
    // The latest proofs are among those remembered: replaying one now is refused.
    let latest = Proof {
        jkt: "one-busy-partner".into(),
        jti: "19999".into(),
        iat: NOW,
    };
    assert!(!replays.first_use(&latest, NOW + 61, NOW));
}

#[test]
fn a_proof_may_be_2048_bytes_long_and_its_jti_256() {
    // Every length is reached by some padding claim and header member
    // (base64 skips some lengths for one of them alone).
    let proofs = || {
        (1000..1500).flat_map(|pad| {
            (0..3).map(move |extra| {
                proof_with(
                    |h| h["x-pad"] = json!("h".repeat(extra)),
                    |c| c["pad"] = json!("p".repeat(pad)),
                )
            })
        })
    };
    let longest = proofs().find(|p| p.len() == MAX_PROOF_LEN).unwrap();
    assert!(check_proof(&longest, &request(None)).is_ok());
    let longer = proofs().find(|p| p.len() == MAX_PROOF_LEN + 1).unwrap();
    assert_eq!(
        check_proof(&longer, &request(None)),
        Err(ProofError::Malformed)
    );
    for (jti, ok) in [
        (String::new(), false),
        ("j".repeat(256), true),
        ("j".repeat(257), false),
        ("j".repeat(1000), false),
    ] {
        let proof = proof_with(|_| {}, |c| c["jti"] = json!(jti));
        let answer = check_proof(&proof, &request(None));
        assert_eq!(answer.is_ok(), ok, "jti of {} bytes: {answer:?}", jti.len());
        if !ok {
            assert_eq!(answer, Err(ProofError::Malformed));
        }
    }
}

#[test]
fn a_flood_of_new_keys_never_grows_the_known_keys_past_their_size() {
    for i in 0..(KNOWN_KEYS_CAPACITY as u32 + 1_000) {
        let mut seed = [0u8; 32];
        seed[..4].copy_from_slice(&i.to_le_bytes());
        seed[31] = 0xee;
        let key = SigningKey::from_bytes(&seed);
        let header = json!({"typ": "dpop+jwt", "alg": "EdDSA", "jwk": ed_jwk(&key)});
        assert!(check_proof(&sign_ed(&header, &claims(), &key), &request(None)).is_ok());
    }
    assert!(
        KNOWN_KEYS.len() <= KNOWN_KEYS_CAPACITY,
        "{} keys",
        KNOWN_KEYS.len()
    );
}

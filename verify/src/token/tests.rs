//! Every token-level rule of SPEC §2, each with a token that breaks only it.

use super::*;
use ed25519_dalek::SigningKey;

const NOW: u64 = 1_800_000_000;

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn claims() -> Claims {
    Claims {
        iss: "tessera".into(),
        sub: "channel_user".into(),
        iat: NOW,
        exp: NOW + 3600,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        generation: None,
        scope: None,
        cnf: None,
    }
}

fn sign(c: &Claims, k: &SigningKey) -> String {
    encode(c, &encoded_header("k1"), k)
}

fn check(token: &str, k: &SigningKey, now: u64) -> Result<Claims, TokenError> {
    let vk = k.verifying_key();
    verify(token, |kid| (kid == "k1").then_some(&vk), "tessera", now, 0)
}

/// Builds a token from raw JSON parts, signed by `k`.
fn forge(header: &str, payload: &str, k: &SigningKey) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = k.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

#[test]
fn the_generation_claim_is_gen_and_absent_when_none() {
    let mut c = claims();
    assert!(!serde_json::to_string(&c).unwrap().contains("gen"));
    c.generation = Some(42);
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.ends_with(r#","gen":42}"#), "{json}");
    let k = key(1);
    assert_eq!(check(&sign(&c, &k), &k, NOW), Ok(c));
}

#[test]
fn a_jws_of_a_given_typ_round_trips_and_no_other_typ_passes() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Payload {
        n: u64,
    }
    let k = key(1);
    let vk = k.verifying_key();
    let find = |kid: &str| (kid == "k1").then_some(&vk);
    let feed = encode_jws(FEED_TYP, "k1", &Payload { n: 7 }, &k);
    assert_eq!(
        verify_jws::<Payload>(&feed, 1 << 20, Some(FEED_TYP), find),
        Ok(Payload { n: 7 })
    );
    let other = encode_jws("other+jwt", "k1", &Payload { n: 7 }, &k);
    assert_eq!(
        verify_jws::<Payload>(&other, 1 << 20, Some(FEED_TYP), find),
        Err(TokenError::Malformed),
        "the wanted typ only"
    );
    assert_eq!(
        verify_jws::<Payload>(&feed, 1 << 20, None, find),
        Err(TokenError::Malformed),
        "a feed never passes where no typ is asked for (a bearer token)"
    );
    assert_eq!(
        verify_jws::<Payload>(&other, 1 << 20, None, find),
        Ok(Payload { n: 7 })
    );
}

#[test]
fn round_trip() {
    let k = key(1);
    let t = sign(&claims(), &k);
    assert_eq!(check(&t, &k, NOW), Ok(claims()));
}

#[test]
fn wire_format_has_no_whitespace_and_fixed_member_order() {
    let t = sign(&claims(), &key(1));
    let parts: Vec<&str> = t.split('.').collect();
    assert_eq!(parts.len(), 3);
    let header = String::from_utf8(B64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header, r#"{"alg":"EdDSA","typ":"JWT","kid":"k1"}"#);
    let payload = String::from_utf8(B64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(
        payload,
        r#"{"iss":"tessera","sub":"channel_user","iat":1800000000,"exp":1800003600,"jti":"AAAAAAAAAAAAAAAAAAAAAA"}"#
    );
}

#[test]
fn rejects_wrong_part_count() {
    let k = key(1);
    let t = sign(&claims(), &k);
    assert_eq!(
        check(&format!("{t}.x"), &k, NOW),
        Err(TokenError::Malformed)
    );
    let two = t.rsplit_once('.').unwrap().0;
    assert_eq!(check(two, &k, NOW), Err(TokenError::Malformed));
}

#[test]
fn rejects_alg_none_and_hmac() {
    let k = key(1);
    let p = serde_json::to_string(&claims()).unwrap();
    for alg in ["none", "None", "HS256", "RS256", "eddsa", "Ed25519"] {
        let t = forge(&format!(r#"{{"alg":"{alg}","kid":"k1"}}"#), &p, &k);
        assert_eq!(
            check(&t, &k, NOW),
            Err(TokenError::UnsupportedAlgorithm),
            "{alg}"
        );
    }
}

#[test]
fn headers_of_any_size_decode_and_bad_base64_in_one_is_malformed() {
    let k = key(1);
    let p = serde_json::to_string(&claims()).unwrap();
    // Past the stack buffer: decoded on the heap, same verdict.
    let long = format!(
        r#"{{"alg":"EdDSA","kid":"k1","x5u":"{}"}}"#,
        "u".repeat(400)
    );
    assert_eq!(check(&forge(&long, &p, &k), &k, NOW), Ok(claims()));
    let short = forge(r#"{"alg":"EdDSA","kid":"k1"}"#, &p, &k);
    assert_eq!(check(&short, &k, NOW), Ok(claims()));
    let bad = format!("e!{}", &short[2..]);
    assert_eq!(check(&bad, &k, NOW), Err(TokenError::Malformed));
    let bad_long = forge(&long, &p, &k).replacen('e', "!", 1);
    assert_eq!(check(&bad_long, &k, NOW), Err(TokenError::Malformed));
}

#[test]
fn the_scope_claim_is_absent_when_none_and_round_trips() {
    let mut c = claims();
    assert!(!serde_json::to_string(&c).unwrap().contains("scope"));
    c.scope = Some("content sync".into());
    let json = serde_json::to_string(&c).unwrap();
    assert!(json.ends_with(r#","scope":"content sync"}"#), "{json}");
    let k = key(1);
    assert_eq!(check(&sign(&c, &k), &k, NOW), Ok(c));
}

#[test]
fn rejects_crit() {
    let k = key(1);
    let p = serde_json::to_string(&claims()).unwrap();
    let t = forge(r#"{"alg":"EdDSA","kid":"k1","crit":["exp"]}"#, &p, &k);
    assert_eq!(check(&t, &k, NOW), Err(TokenError::CriticalHeader));
}

#[test]
fn ignores_embedded_keys() {
    // Signed by an attacker key that the header offers as a JWK: the kid
    // still decides, so the signature fails.
    let attacker = key(9);
    let p = serde_json::to_string(&claims()).unwrap();
    let x = B64.encode(attacker.verifying_key().as_bytes());
    let h = format!(
        r#"{{"alg":"EdDSA","kid":"k1","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}"}},"jku":"http://evil/jwks"}}"#
    );
    let t = forge(&h, &p, &attacker);
    assert_eq!(check(&t, &key(1), NOW), Err(TokenError::BadSignature));
}

#[test]
fn rejects_unknown_kid() {
    let k = key(1);
    let t = encode(&claims(), &encoded_header("other"), &k);
    assert_eq!(check(&t, &k, NOW), Err(TokenError::UnknownKey));
}

#[test]
fn rejects_foreign_signature_and_tampering() {
    let t = sign(&claims(), &key(2));
    assert_eq!(check(&t, &key(1), NOW), Err(TokenError::BadSignature));

    let k = key(1);
    let t = sign(&claims(), &k);
    let mut other = claims();
    other.sub = "someone_else".into();
    let forged_payload = B64.encode(serde_json::to_vec(&other).unwrap());
    let parts: Vec<&str> = t.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
    assert_eq!(check(&tampered, &k, NOW), Err(TokenError::BadSignature));
}

#[test]
fn rejects_non_canonical_base64() {
    let k = key(1);
    let t = sign(&claims(), &k);
    assert_eq!(check(&format!("{t}="), &k, NOW), Err(TokenError::Malformed));
    assert_eq!(
        check(&format!("{t}=="), &k, NOW),
        Err(TokenError::Malformed)
    );
    // The last character of an 86-char signature carries 2 unused bits;
    // setting them gives another decoding of the same bytes.
    let (head, last) = t.split_at(t.len() - 1);
    let c = last.as_bytes()[0];
    let idx = B64_ALPHABET.iter().position(|&a| a == c).unwrap();
    let bumped = B64_ALPHABET[idx ^ 1] as char;
    let t2 = format!("{head}{bumped}");
    assert_eq!(check(&t2, &k, NOW), Err(TokenError::Malformed));
    let standard = t.replace('-', "+").replace('_', "/");
    if standard != t {
        assert_eq!(check(&standard, &k, NOW), Err(TokenError::Malformed));
    }
}

const B64_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

#[test]
fn rejects_time_and_issuer_violations() {
    let k = key(1);
    let t = sign(&claims(), &k);
    assert_eq!(check(&t, &k, NOW + 3600), Err(TokenError::Expired));
    assert!(check(&t, &k, NOW + 3599).is_ok());
    assert_eq!(check(&t, &k, NOW - 1), Err(TokenError::NotYetValid));
    let vk = k.verifying_key();
    let with_leeway = |now| verify(&t, |_| Some(&vk), "tessera", now, 60).map(|_| ());
    assert_eq!(with_leeway(NOW - 60), Ok(()), "iat up to the leeway ahead");
    assert_eq!(with_leeway(NOW - 61), Err(TokenError::NotYetValid));
    assert_eq!(
        with_leeway(NOW + 3600),
        Err(TokenError::Expired),
        "exp has no leeway"
    );
    let mut c = claims();
    c.iss = "someone".into();
    let t = sign(&c, &k);
    assert_eq!(check(&t, &k, NOW), Err(TokenError::WrongIssuer));
}

#[test]
fn rejects_bad_claim_types_even_when_signed() {
    let k = key(1);
    let h = r#"{"alg":"EdDSA","kid":"k1"}"#;
    for p in [
        r#"{"iss":"tessera","sub":"a","iat":-1,"exp":1800003600,"jti":"x"}"#,
        r#"{"iss":"tessera","sub":"a","iat":1800000000,"exp":1.5e9,"jti":"x"}"#,
        r#"{"iss":"tessera","sub":"a","iat":1800000000,"exp":99999999999999999999999,"jti":"x"}"#,
        r#"{"iss":"tessera","sub":"a","iat":1800000000,"exp":"1800003600","jti":"x"}"#,
        r#"{"iss":"tessera","sub":"a","sub":"b","iat":1800000000,"exp":1800003600,"jti":"x"}"#,
        r#"{"iss":"tessera","iat":1800000000,"exp":1800003600,"jti":"x"}"#,
        "not json",
    ] {
        assert_eq!(
            check(&forge(h, p, &k), &k, NOW),
            Err(TokenError::Malformed),
            "{p}"
        );
    }
    let dup = forge(r#"{"alg":"EdDSA","alg":"none","kid":"k1"}"#, r#"{}"#, &k);
    assert_eq!(check(&dup, &k, NOW), Err(TokenError::Malformed));
}

/// A token of exactly `len` bytes, signed by `k` (any kid).
fn token_of_len(len: usize, k: &SigningKey) -> String {
    // base64url never makes a part of 4n+1 characters, so vary the
    // header's length as well as the payload's.
    for kid in ["k1", "k12", "k123"] {
        for n in 1..len {
            let mut c = claims();
            c.sub = "a".repeat(n);
            let t = encode(&c, &encoded_header(kid), k);
            if t.len() == len {
                return t;
            }
            if t.len() > len {
                break;
            }
        }
    }
    panic!("no token of {len} bytes")
}

#[test]
fn the_size_limit_is_exact() {
    let k = key(1);
    let vk = k.verifying_key();
    let any_kid = |t: &str| verify(t, |_| Some(&vk), "tessera", NOW, 0).map(|_| ());
    let longest = token_of_len(MAX_TOKEN_LEN, &k);
    assert_eq!(any_kid(&longest), Ok(()));
    let over = token_of_len(MAX_TOKEN_LEN + 1, &k);
    assert_eq!(any_kid(&over), Err(TokenError::Malformed));
}

#[test]
fn rejects_oversize() {
    let k = key(1);
    let mut c = claims();
    c.sub = "a".repeat(MAX_TOKEN_LEN);
    let t = sign(&c, &k);
    assert_eq!(check(&t, &k, NOW), Err(TokenError::Malformed));
}

#[test]
fn size_for_32_char_username_is_within_budget() {
    let mut c = claims();
    c.sub = "u".repeat(32);
    c.generation = Some(4_000_000_000);
    c.iat = 4_000_000_000;
    c.exp = 4_000_003_600;
    let kid = "x".repeat(43); // an RFC 7638 SHA-256 thumbprint
    let t = encode(&c, &encoded_header(&kid), &key(1));
    // 360 bytes before the account generation (`gen`, here ten digits)
    // joined the claims; a ten-digit one adds 23.
    assert!(t.len() <= 382, "{} bytes", t.len());
}

//! The JWT codec: claims in, compact EdDSA JWS out, and the reverse with every
//! token-level verification rule of SPEC §2. Pure: no I/O, and the clock is
//! passed in so tests never sleep. Account-level rules (revocation, user
//! state) need the issuer's state: the server checks them against its store,
//! a partner's service against the revocation feed.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signature, Signer, VerifyingKey};
use serde::de::IgnoredAny;
use serde::{Deserialize, Serialize};

/// The longest bearer token accepted; anything longer is malformed.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The longest `jti` accepted for a revocation (ours are 22 characters).
pub const MAX_JTI_LEN: usize = 256;

/// The registered claims Tessera puts in every token, in wire order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer, the server's `--issuer`.
    pub iss: String,
    /// Subject, the partner's username.
    pub sub: String,
    /// Issued-at, unix seconds.
    pub iat: u64,
    /// Expiry, unix seconds; the token is valid while `now < exp`.
    pub exp: u64,
    /// 128 random bits, base64url without padding.
    pub jti: String,
    /// The generation of the account the token was issued from (claim
    /// `gen`): the token dies once the account's generation passes it (see
    /// [`crate::account`]). Absent in tokens issued before generations.
    #[serde(rename = "gen", default, skip_serializing_if = "Option::is_none")]
    pub generation: Option<u64>,
    /// The scopes granted (space-separated, sorted; see [`crate::scope`]);
    /// absent when none. What the token may do is these ∩ the scopes its
    /// user holds now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The key the token is bound to (RFC 9449 §6, claim `cnf`): a bound
    /// token is accepted only as `DPoP` with a proof by that key
    /// ([`crate::dpop`]). Absent for bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// The `cnf` claim of a DPoP-bound token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of the key, base64url.
    pub jkt: String,
}

impl Claims {
    /// The thumbprint of the key the token is bound to, if it is bound.
    pub fn bound_to(&self) -> Option<&str> {
        self.cnf.as_ref().map(|c| c.jkt.as_str())
    }
}

/// How far in the future an `iat` may lie before a token counts as not yet
/// valid, by default: hosts' clocks are seconds apart, and a verifier whose
/// clock is behind the issuer's must still accept a fresh token. `exp` is
/// never given leeway.
pub const DEFAULT_LEEWAY_SECS: u64 = 60;

/// Why a token was refused. `Display` is the short reason that goes into
/// `WWW-Authenticate: error_description`; it never echoes the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not three canonical base64url parts of JSON, too long, or bad claim types.
    #[error("malformed token")]
    Malformed,
    /// The header's `alg` is not exactly `EdDSA`.
    #[error("unsupported algorithm")]
    UnsupportedAlgorithm,
    /// The header carries `crit`, which Tessera never understands.
    #[error("unsupported critical header")]
    CriticalHeader,
    /// The header's `kid` names no key in the keyring.
    #[error("unknown key")]
    UnknownKey,
    /// The signature does not verify (strictly) under the named key.
    #[error("bad signature")]
    BadSignature,
    /// `iss` is not this server's issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `iat` lies in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `now >= exp`.
    #[error("token expired")]
    Expired,
}

/// The JOSE header as Tessera reads it. Unknown members (`jwk`, `jku`, `x5u`,
/// …) are ignored and never used to find a key; duplicate members are a
/// parse error.
#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    alg: Cow<'a, str>,
    #[serde(borrow)]
    kid: Cow<'a, str>,
    #[serde(default, borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// Headers up to this many bytes are decoded on the stack (ours are 46).
const STACK_HEADER: usize = 256;

/// The `typ` of a signed revocation feed ([`crate::feed`]); a bearer token
/// with this `typ` is refused, so a feed can never pass for a token.
pub const FEED_TYP: &str = "revocations+jwt";

/// The fixed header of every token signed with the key `kid`, base64url
/// encoded once per key so minting never re-serialises it.
pub fn encoded_header(kid: &str) -> String {
    #[derive(Serialize)]
    struct Fixed<'a> {
        alg: &'a str,
        typ: &'a str,
        kid: &'a str,
    }
    let header = Fixed {
        alg: "EdDSA",
        typ: "JWT",
        kid,
    };
    // A struct of three strings always serialises.
    B64.encode(serde_json::to_vec(&header).unwrap_or_default())
}

/// Signs `claims` as a compact JWS. `header_b64` must come from
/// [`encoded_header`] for the same key.
pub fn encode(claims: &Claims, header_b64: &str, key: &impl Signer<Signature>) -> String {
    let mut out = String::with_capacity(360);
    out.push_str(header_b64);
    out.push('.');
    // Serialising a struct of strings and integers cannot fail.
    let payload = serde_json::to_vec(claims).unwrap_or_default();
    B64.encode_string(payload, &mut out);
    let signature = key.sign(out.as_bytes());
    out.push('.');
    B64.encode_string(signature.to_bytes(), &mut out);
    out
}

/// Checks the parts of a token that can never change for a given token
/// string: shape, header, key and signature, and the claim types. Returns the
/// claims and the `kid` that verified them. Time and issuer are checked by
/// [`check_claims`], so a caller may cache this step's result per token.
pub fn verify_signature<'k>(
    token: &str,
    find_key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
) -> Result<Claims, TokenError> {
    verify_jws(token, MAX_TOKEN_LEN, None, find_key)
}

/// A compact JWS signed by a key `find_key` knows, its payload decoded as
/// `T`: at most `max_len` bytes, three canonical base64url parts, `alg`
/// exactly `EdDSA`, no `crit`, a strict signature under the key named by
/// `kid` (never a key named any other way), and — when `typ` is given — that
/// exact `typ`; without one, a feed's `typ` is refused.
pub fn verify_jws<'k, T: serde::de::DeserializeOwned>(
    compact: &str,
    max_len: usize,
    typ: Option<&str>,
    find_key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
) -> Result<T, TokenError> {
    if compact.len() > max_len {
        return Err(TokenError::Malformed);
    }
    let mut parts = compact.split('.');
    let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(TokenError::Malformed);
    };
    // Decoded without allocating in the usual case: a verification's
    // own work beside the signature is what the bench holds to 10%.
    let mut stack = [0u8; STACK_HEADER];
    let heap;
    let header_json: &[u8] = match B64.decode_slice(header_b64, &mut stack) {
        Ok(n) => &stack[..n],
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            heap = B64.decode(header_b64).map_err(|_| TokenError::Malformed)?;
            &heap
        }
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(TokenError::Malformed),
    };
    let header: Header = serde_json::from_slice(header_json).map_err(|_| TokenError::Malformed)?;
    if header.alg != "EdDSA" {
        return Err(TokenError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(TokenError::CriticalHeader);
    }
    let typ_ok = match typ {
        Some(wanted) => header.typ.as_deref() == Some(wanted),
        None => header.typ.as_deref() != Some(FEED_TYP),
    };
    if !typ_ok {
        return Err(TokenError::Malformed);
    }
    let key = find_key(&header.kid).ok_or(TokenError::UnknownKey)?;
    let mut signature_bytes = [0u8; Signature::BYTE_SIZE];
    if B64.decode_slice(signature_b64, &mut signature_bytes) != Ok(Signature::BYTE_SIZE) {
        return Err(TokenError::Malformed);
    }
    let signature = Signature::from_bytes(&signature_bytes);
    let signing_input = &compact[..header_b64.len() + 1 + payload_b64.len()];
    key.verify_strict(signing_input.as_bytes(), &signature)
        .map_err(|_| TokenError::BadSignature)?;
    let payload = B64.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)
}

/// Signs `payload` as a compact JWS with header
/// `{"alg":"EdDSA","typ":typ,"kid":kid}`.
pub fn encode_jws(
    typ: &str,
    kid: &str,
    payload: &impl Serialize,
    key: &impl Signer<Signature>,
) -> String {
    // A header of three strings and a plain payload struct always serialise.
    let header = serde_json::to_vec(&serde_json::json!({"alg": "EdDSA", "typ": typ, "kid": kid}))
        .unwrap_or_default();
    let payload = serde_json::to_vec(payload).unwrap_or_default();
    let mut out = String::with_capacity(header.len() * 2 + payload.len() * 2 + 90);
    B64.encode_string(header, &mut out);
    out.push('.');
    B64.encode_string(payload, &mut out);
    let signature = key.sign(out.as_bytes());
    out.push('.');
    B64.encode_string(signature.to_bytes(), &mut out);
    out
}

/// Checks the time- and issuer-dependent rules: `iss` matches, `iat` is at
/// most `leeway` seconds in the future, and `now < exp` (strictly, no
/// leeway).
pub fn check_claims(
    claims: &Claims,
    issuer: &str,
    now: u64,
    leeway: u64,
) -> Result<(), TokenError> {
    if claims.iss != issuer {
        return Err(TokenError::WrongIssuer);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(TokenError::NotYetValid);
    }
    if now >= claims.exp {
        return Err(TokenError::Expired);
    }
    Ok(())
}

/// Every token-level rule in one call: [`verify_signature`] then
/// [`check_claims`] with `leeway` for `iat`.
pub fn verify<'k>(
    token: &str,
    find_key: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
    issuer: &str,
    now: u64,
    leeway: u64,
) -> Result<Claims, TokenError> {
    let claims = verify_signature(token, find_key)?;
    check_claims(&claims, issuer, now, leeway)?;
    Ok(claims)
}

#[cfg(test)]
mod tests {
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
}

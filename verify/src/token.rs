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
mod tests;

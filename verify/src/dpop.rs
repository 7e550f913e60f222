//! DPoP proofs (RFC 9449, SPEC §17): the one reading of a proof, shared
//! by the Tessera server (at issue and at `/verify`) and by partners'
//! services verifying offline, so both answer every proof alike.
//!
//! A proof is a compact JWS whose header carries `typ: dpop+jwt`, an
//! asymmetric `alg` (`EdDSA` — also under its fully-specified name
//! `Ed25519` — or `ES256`) and the public key as `jwk` (never a private
//! member); its claims name the request (`htm`, `htu`), when it was made
//! (`iat`, within the leeway either way), a unique `jti`, and — when it
//! comes with an access token — `ath`, the token's SHA-256. [`check_proof`]
//! answers the key's RFC 7638 thumbprint (`jkt`), which a bound token
//! carries as `cnf.jkt`; [`ReplayCache`] refuses a `jti` seen before
//! within its window.

use std::borrow::Cow;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::Deserialize;
use serde::de::IgnoredAny;
use sha2::{Digest, Sha256};

/// The longest proof accepted (a proof with a P-256 key is about 600 bytes).
pub const MAX_PROOF_LEN: usize = 2048;
/// The `typ` every proof carries.
pub const PROOF_TYP: &str = "dpop+jwt";
/// The algorithms accepted, as the RFC 8414 metadata and the
/// `WWW-Authenticate: DPoP algs` challenge list them.
pub const ALGORITHMS: [&str; 2] = ["EdDSA", "ES256"];

/// Why a proof was refused. `Display` is the short reason `/verify` and
/// the verifiers give; it never echoes the proof.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProofError {
    /// Not three canonical base64url parts of JSON, too long, or a claim
    /// missing or of the wrong type.
    #[error("malformed dpop proof")]
    Malformed,
    /// The header's `typ` is not `dpop+jwt`.
    #[error("dpop proof has the wrong typ")]
    WrongType,
    /// `alg` is not one of [`ALGORITHMS`] (`none` and `HS256` included).
    #[error("unsupported dpop proof algorithm")]
    UnsupportedAlgorithm,
    /// The `jwk` is missing, not a public key of the `alg`, or carries a
    /// private member.
    #[error("bad dpop proof key")]
    BadKey,
    /// The signature does not verify under the `jwk`.
    #[error("bad dpop proof signature")]
    BadSignature,
    /// `htm` is not the request's method.
    #[error("dpop proof is for another method")]
    WrongMethod,
    /// `htu` is not the request's URL (scheme, host with port, path).
    #[error("dpop proof is for another url")]
    WrongUrl,
    /// `iat` is further from now than the leeway.
    #[error("dpop proof is too old or too new")]
    StaleOrEarly,
    /// `ath` is missing or is not the SHA-256 of the access token.
    #[error("dpop proof does not match the access token")]
    WrongAccessToken,
    /// The `jti` was seen before within its window.
    #[error("dpop proof replayed")]
    Replayed,
}

/// The request a proof must name, and the clock to judge it by.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The HTTP method, e.g. `POST`.
    pub method: &'a str,
    /// The request's URL; its query and fragment are ignored (RFC 9449 §4.3).
    pub url: &'a str,
    /// The access token presented with the proof, if any: `ath` must then
    /// be its SHA-256; without one, `ath` is not looked at.
    pub access_token: Option<&'a str>,
    /// Now, unix seconds.
    pub now: u64,
    /// How far `iat` may lie from now, either way.
    pub leeway_secs: u64,
}

/// A proof that passed every rule but replay, which needs a
/// [`ReplayCache`] ([`check_proof_once`] does both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The RFC 7638 thumbprint of the proof's key: a bound token's `cnf.jkt`.
    pub jkt: String,
    /// The proof's unique id.
    pub jti: String,
    /// When the proof says it was made.
    pub iat: u64,
}

#[derive(Deserialize)]
struct Header<'a> {
    #[serde(borrow)]
    typ: Option<Cow<'a, str>>,
    #[serde(borrow)]
    alg: Cow<'a, str>,
    jwk: Option<Jwk>,
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// The public key of a proof, as JWK members (RFC 7517/7518/8037).
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    /// A private member: a proof carrying one is refused.
    d: Option<IgnoredAny>,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    ath: Option<String>,
}

/// The proof key, checked for its `alg`.
enum Key {
    Ed25519(ed25519_dalek::VerifyingKey),
    P256(Box<p256::ecdsa::VerifyingKey>),
}

/// A proof key read from its JWK, with its RFC 7638 thumbprint.
struct ProofKey {
    key: Key,
    jkt: String,
}

/// How many proof keys [`KNOWN_KEYS`] remembers (each a few hundred bytes).
const KNOWN_KEYS_CAPACITY: usize = 4096;

/// Proof keys read lately, by their RFC 7638 thumbprint input (the
/// canonical JSON of their public members). A partner signs every proof
/// with one key, so reading it once (an Ed25519 point decompression, a
/// P-256 point check and a SHA-256: ~10% of a proof's check) serves all its
/// proofs. Only keys that were read whole are kept, and a key is a pure
/// function of those members, so an entry can never answer differently
/// than reading it again; past the capacity the least used are forgotten.
static KNOWN_KEYS: std::sync::LazyLock<quick_cache::sync::Cache<String, Arc<ProofKey>>> =
    std::sync::LazyLock::new(|| quick_cache::sync::Cache::new(KNOWN_KEYS_CAPACITY));

fn decode_fixed<const N: usize>(text: &str) -> Option<[u8; N]> {
    let mut out = [0u8; N];
    (B64.decode_slice(text, &mut out).ok()? == N).then_some(out)
}

impl Jwk {
    /// The key and its RFC 7638 thumbprint, if this is a public key the
    /// proof's `alg` signs with.
    fn key_for(&self, alg: &str) -> Result<Arc<ProofKey>, ProofError> {
        if self.d.is_some() {
            return Err(ProofError::BadKey);
        }
        let ed25519 = match (alg, self.kty.as_str(), self.crv.as_deref()) {
            ("EdDSA" | "Ed25519", "OKP", Some("Ed25519")) => true,
            ("ES256", "EC", Some("P-256")) => false,
            _ => return Err(ProofError::BadKey),
        };
        let x = self.x.as_deref().ok_or(ProofError::BadKey)?;
        let canonical = if ed25519 {
            format!(r#"{{"crv":"Ed25519","kty":"OKP","x":"{x}"}}"#)
        } else {
            let y = self.y.as_deref().ok_or(ProofError::BadKey)?;
            format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#)
        };
        if let Some(known) = KNOWN_KEYS.get(&canonical) {
            return Ok(known);
        }
        let key = if ed25519 {
            let bytes: [u8; 32] = decode_fixed(x).ok_or(ProofError::BadKey)?;
            Key::Ed25519(
                ed25519_dalek::VerifyingKey::from_bytes(&bytes).map_err(|_| ProofError::BadKey)?,
            )
        } else {
            let y = self.y.as_deref().ok_or(ProofError::BadKey)?;
            let xb: [u8; 32] = decode_fixed(x).ok_or(ProofError::BadKey)?;
            let yb: [u8; 32] = decode_fixed(y).ok_or(ProofError::BadKey)?;
            let mut sec1 = [0u8; 65];
            sec1[0] = 4;
            sec1[1..33].copy_from_slice(&xb);
            sec1[33..].copy_from_slice(&yb);
            Key::P256(Box::new(
                p256::ecdsa::VerifyingKey::from_sec1_bytes(&sec1)
                    .map_err(|_| ProofError::BadKey)?,
            ))
        };
        let read = Arc::new(ProofKey {
            key,
            jkt: B64.encode(Sha256::digest(&canonical)),
        });
        KNOWN_KEYS.insert(canonical, Arc::clone(&read));
        Ok(read)
    }
}

impl Key {
    fn verifies(&self, signing_input: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Ed25519(key) => {
                let Ok(bytes) = <[u8; 64]>::try_from(signature) else {
                    return false;
                };
                key.verify_strict(signing_input, &ed25519_dalek::Signature::from_bytes(&bytes))
                    .is_ok()
            }
            Self::P256(key) => {
                use p256::ecdsa::signature::Verifier as _;
                let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                    return false;
                };
                key.verify(signing_input, &sig).is_ok()
            }
        }
    }
}

/// `ath` of an access token: base64url(SHA-256(token)).
pub fn ath_of(access_token: &str) -> String {
    B64.encode(Sha256::digest(access_token.as_bytes()))
}

/// A URL as `htu` compares it (RFC 9449 §4.3, RFC 3986 §6.2.2–6.2.3):
/// scheme and host lowercase, the scheme's default port dropped, an empty
/// path as `/`, query and fragment cut off. None for what is no absolute
/// http(s) URL.
pub fn normalise_htu(url: &str) -> Option<String> {
    let url = url.split(['?', '#']).next().unwrap_or("");
    let (scheme, rest) = url.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => ":80",
        "https" => ":443",
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    let authority = authority.to_ascii_lowercase();
    let authority = authority.strip_suffix(default_port).unwrap_or(&authority);
    Some(format!("{scheme}://{authority}{path}"))
}

/// Checks every rule of a proof but replay: shape, `typ`, `alg`, a public
/// `jwk` of that `alg`, the signature under it, `htm`, `htu`, `iat` within
/// the leeway, and `ath` when an access token came with it.
pub fn check_proof(proof: &str, request: &Request<'_>) -> Result<Proof, ProofError> {
    if proof.len() > MAX_PROOF_LEN {
        return Err(ProofError::Malformed);
    }
    let mut parts = proof.split('.');
    let (Some(header_b64), Some(claims_b64), Some(signature_b64), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ProofError::Malformed);
    };
    let header_json = B64.decode(header_b64).map_err(|_| ProofError::Malformed)?;
    let header: Header = serde_json::from_slice(&header_json).map_err(|_| ProofError::Malformed)?;
    if header.typ.as_deref() != Some(PROOF_TYP) {
        return Err(ProofError::WrongType);
    }
    if !matches!(header.alg.as_ref(), "EdDSA" | "Ed25519" | "ES256") {
        return Err(ProofError::UnsupportedAlgorithm);
    }
    if header.crit.is_some() {
        return Err(ProofError::Malformed);
    }
    let key = header
        .jwk
        .as_ref()
        .ok_or(ProofError::BadKey)?
        .key_for(&header.alg)?;
    let signature = B64
        .decode(signature_b64)
        .map_err(|_| ProofError::Malformed)?;
    let signing_input = &proof[..header_b64.len() + 1 + claims_b64.len()];
    if !key.key.verifies(signing_input.as_bytes(), &signature) {
        return Err(ProofError::BadSignature);
    }
    let claims_json = B64.decode(claims_b64).map_err(|_| ProofError::Malformed)?;
    let claims: Claims = serde_json::from_slice(&claims_json).map_err(|_| ProofError::Malformed)?;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(ProofError::Malformed);
    }
    if claims.htm != request.method {
        return Err(ProofError::WrongMethod);
    }
    let wanted = normalise_htu(request.url).ok_or(ProofError::WrongUrl)?;
    if normalise_htu(&claims.htu).as_deref() != Some(wanted.as_str()) {
        return Err(ProofError::WrongUrl);
    }
    if claims.iat.abs_diff(request.now) > request.leeway_secs {
        return Err(ProofError::StaleOrEarly);
    }
    if let Some(token) = request.access_token
        && claims.ath.as_deref() != Some(ath_of(token).as_str())
    {
        return Err(ProofError::WrongAccessToken);
    }
    Ok(Proof {
        jkt: key.jkt.clone(),
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// How many proofs the Tessera server and a [`crate::verifier::Verifier`]
/// remember ([`ReplayCache::new`]): about 25 MB when full (~110–140 bytes a
/// proof, taken as proofs come). Each is kept for its window (`iat` ± the
/// leeway, 2 minutes by default), so every replay is refused up to ~1,600
/// proofs a second, all partners together; past that the oldest are
/// forgotten first (a shorter leeway shortens the window). Per process:
/// a proof replayed to another cluster node or replica within its window
/// is accepted there once more.
pub const PROOFS_REMEMBERED: usize = 200_000;

/// The `jti`s of proofs accepted lately, so each is accepted once within
/// its window (`iat` ± the leeway): bounded in memory ([`ReplayCache::new`]'s
/// capacity, about 60 bytes a proof; past it the least used are forgotten,
/// and with them the proofs they could refuse, which are then past their
/// window unless the cache is too small for the traffic — size it for
/// (proofs per second × twice the leeway)). Per process: each cluster node
/// keeps its own.
pub struct ReplayCache {
    /// [`ReplayCache::key`] of each proof → the end of its window.
    seen: quick_cache::sync::Cache<u128, u64>,
}

impl ReplayCache {
    /// A cache remembering up to `capacity` proofs (memory is taken as
    /// proofs come, not up front).
    pub fn new(capacity: usize) -> Self {
        Self {
            seen: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// A proof's place in the cache: 128 bits of SHA-256 over its key's
    /// thumbprint and its `jti` (a thumbprint is base64url, so `.` parts
    /// them unambiguously). A fixed 16 bytes instead of the two strings
    /// keeps ~2.5× more proofs in the same memory; two proofs sharing a
    /// place would need a SHA-256 collision on 128 bits, and would only
    /// refuse the second as a replay.
    fn key(proof: &Proof) -> u128 {
        let digest = Sha256::new()
            .chain_update(proof.jkt.as_bytes())
            .chain_update(b".")
            .chain_update(proof.jti.as_bytes())
            .finalize();
        let mut first = [0u8; 16];
        first.copy_from_slice(&digest[..16]);
        u128::from_le_bytes(first)
    }

    /// How many proofs are remembered now.
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// True when no proof is remembered.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    /// True the first time the proof `(jkt, jti)` is seen within its
    /// window ending at `until` (unix seconds); false for a replay. Two
    /// requests racing with one proof: one of them wins.
    pub fn first_use(&self, proof: &Proof, until: u64, now: u64) -> bool {
        use quick_cache::sync::GuardResult;
        let key = Self::key(proof);
        match self.seen.get_value_or_guard(&key, None) {
            GuardResult::Value(expires) if expires > now => false,
            GuardResult::Value(_) => {
                // Seen before, but past its window: a new proof now.
                self.seen.insert(key, until);
                true
            }
            GuardResult::Guard(slot) => {
                let _ = slot.insert(until);
                true
            }
            GuardResult::Timeout => false,
        }
    }
}

/// [`check_proof`], then [`ReplayCache::first_use`]: the whole check of a
/// proof.
pub fn check_proof_once(
    proof: &str,
    request: &Request<'_>,
    replays: &ReplayCache,
) -> Result<Proof, ProofError> {
    let checked = check_proof(proof, request)?;
    let until = checked
        .iat
        .saturating_add(request.leeway_secs)
        .saturating_add(1);
    if replays.first_use(&checked, until, request.now) {
        Ok(checked)
    } else {
        Err(ProofError::Replayed)
    }
}

/// Why a token was refused for how it was presented: a bound token
/// (`cnf.jkt`) must come as `DPoP` with a proof by its key, an unbound one
/// as `Bearer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BindingError {
    /// A bound token presented as `Bearer` (a downgrade).
    #[error("token is bound to a key; present it as DPoP with a proof")]
    BoundTokenAsBearer,
    /// An unbound token presented as `DPoP`.
    #[error("token is not bound to a key; present it as Bearer")]
    UnboundTokenAsDpop,
    /// The proof is by another key than the one the token is bound to.
    #[error("dpop proof is by another key than the token's")]
    OtherKey,
}

/// How a token came: `Authorization: Bearer`, or `Authorization: DPoP`
/// with a `DPoP` proof for the request it came with.
#[derive(Clone, Copy)]
pub enum Presented<'a> {
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// Not used but looked at by whoever holds it (RFC 7662 introspection
    /// by a resource server): no presentation rule applies.
    Inspected,
    /// `Authorization: DPoP <token>`.
    Dpop {
        /// The `DPoP` header (None: absent).
        proof: Option<&'a str>,
        /// The request the token came with (its `access_token` is ignored:
        /// the token itself is used for `ath`).
        request: Request<'a>,
        /// Where this process remembers the proofs it accepted.
        replays: &'a ReplayCache,
    },
}

impl<'a> Presented<'a> {
    /// A token sent as `DPoP` with `proof` on the request `method url` at
    /// `now`, proofs judged with `leeway_secs` and remembered in `replays`.
    pub fn dpop(
        proof: Option<&'a str>,
        method: &'a str,
        url: &'a str,
        now: u64,
        leeway_secs: u64,
        replays: &'a ReplayCache,
    ) -> Self {
        Self::Dpop {
            proof,
            request: Request {
                method,
                url,
                access_token: None,
                now,
                leeway_secs,
            },
            replays,
        }
    }
}

/// Either side of a refused presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PresentationError {
    /// The proof broke a rule (`error="invalid_dpop_proof"`).
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The token was presented the wrong way (`error="invalid_token"`).
    #[error(transparent)]
    Binding(#[from] BindingError),
}

/// The whole rule of how a verified token may be presented: a token
/// bound to `cnf_jkt` only as DPoP with a proof (for the request, with
/// `ath` of this token, not replayed) by that key; an unbound one only as
/// Bearer.
pub fn check_presentation(
    token: &str,
    cnf_jkt: Option<&str>,
    presented: Presented<'_>,
) -> Result<(), PresentationError> {
    match (cnf_jkt, presented) {
        (_, Presented::Inspected) | (None, Presented::Bearer) => Ok(()),
        (None, Presented::Dpop { .. }) => Err(BindingError::UnboundTokenAsDpop.into()),
        (Some(_), Presented::Bearer) => Err(BindingError::BoundTokenAsBearer.into()),
        (Some(_), Presented::Dpop { proof: None, .. }) => Err(ProofError::Malformed.into()),
        (
            Some(jkt),
            Presented::Dpop {
                proof: Some(proof),
                request,
                replays,
            },
        ) => {
            let request = Request {
                access_token: Some(token),
                ..request
            };
            // The key first: a proof by another key is not this token's,
            // whatever else it says, and must not use up a jti.
            let checked = check_proof(proof, &request)?;
            if checked.jkt != jkt {
                return Err(BindingError::OtherKey.into());
            }
            let until = checked
                .iat
                .saturating_add(request.leeway_secs)
                .saturating_add(1);
            if replays.first_use(&checked, until, request.now) {
                Ok(())
            } else {
                Err(ProofError::Replayed.into())
            }
        }
    }
}

#[cfg(test)]
mod tests;

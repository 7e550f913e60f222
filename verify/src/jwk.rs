//! The JWK form of Tessera's Ed25519 keys (RFC 8037 `OKP`/`Ed25519`), written
//! by the server's JWKS and read by the [`Verifier`](crate::Verifier), so
//! both sides agree on every field; and the RFC 7638 thumbprint that names
//! a key (`kid`).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One public key. Fields are in alphabetical order, the order the JWKS
/// has always been written in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// `EdDSA` for Tessera's keys; other publishers may leave it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// The curve: `Ed25519`.
    pub crv: String,
    /// The key's id, its RFC 7638 thumbprint.
    pub kid: String,
    /// The key type: `OKP`.
    pub kty: String,
    /// `sig` for Tessera's keys.
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// The public key, base64url without padding.
    pub x: String,
}

/// A JWK Set: `{"keys":[…]}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

impl Jwk {
    /// The JWK of an Ed25519 signing key's public half, named `kid`.
    pub fn ed25519(kid: &str, key: &VerifyingKey) -> Self {
        Self {
            alg: Some("EdDSA".into()),
            crv: "Ed25519".into(),
            kid: kid.into(),
            kty: "OKP".into(),
            use_: Some("sig".into()),
            x: B64.encode(key.as_bytes()),
        }
    }

    /// The Ed25519 key this JWK holds; `Ok(None)` for a key of another type
    /// or curve (a JWKS may hold those: they are skipped), an error naming
    /// the key when `x` is not a valid Ed25519 point.
    pub fn ed25519_key(&self) -> Result<Option<VerifyingKey>, String> {
        if self.kty != "OKP" || self.crv != "Ed25519" {
            return Ok(None);
        }
        let x: [u8; 32] = B64
            .decode(&self.x)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| format!("key {} is not 32 bytes", self.kid))?;
        VerifyingKey::from_bytes(&x)
            .map(Some)
            .map_err(|e| format!("key {}: {e}", self.kid))
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the canonical
/// JWK `{"crv":"Ed25519","kty":"OKP","x":"…"}`, base64url.
pub fn thumbprint(key: &VerifyingKey) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        B64.encode(key.as_bytes())
    );
    B64.encode(Sha256::digest(canonical.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    #[test]
    fn a_key_round_trips_through_its_jwk_in_the_servers_field_order() {
        let key = SigningKey::from_bytes(&[3; 32]).verifying_key();
        let jwk = Jwk::ed25519("k1", &key);
        let text = serde_json::to_string(&Jwks { keys: vec![jwk] }).unwrap();
        assert_eq!(
            text,
            format!(
                r#"{{"keys":[{{"alg":"EdDSA","crv":"Ed25519","kid":"k1","kty":"OKP","use":"sig","x":"{}"}}]}}"#,
                B64.encode(key.as_bytes())
            )
        );
        let back: Jwks = serde_json::from_str(&text).unwrap();
        assert_eq!(back.keys[0].ed25519_key().unwrap(), Some(key));
    }

    #[test]
    fn other_key_types_are_skipped_and_bad_points_named() {
        let other: Jwk =
            serde_json::from_str(r#"{"kty":"EC","crv":"P-256","kid":"e","x":"AA"}"#).unwrap();
        assert_eq!(other.ed25519_key(), Ok(None));
        let okp_other_curve: Jwk =
            serde_json::from_str(r#"{"kty":"OKP","crv":"X25519","kid":"x","x":"AA"}"#).unwrap();
        assert_eq!(okp_other_curve.ed25519_key(), Ok(None));
        let short: Jwk =
            serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","kid":"s","x":"AAAA"}"#).unwrap();
        assert_eq!(short.ed25519_key().unwrap_err(), "key s is not 32 bytes");
    }

    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        // RFC 8037 appendix A.3: the thumbprint of its example key.
        let x = B64
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        let key = VerifyingKey::from_bytes(&x.try_into().unwrap()).unwrap();
        assert_eq!(
            thumbprint(&key),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }
}

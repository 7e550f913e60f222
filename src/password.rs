//! Password hash schemes (SPEC §4). Generated passwords carry 122 random bits
//! and get a fast salted SHA-256; operator-chosen ones get Argon2id with the
//! OWASP parameters. The scheme is stored with each hash. Verification is
//! constant-time, and [`dummy_verify`] gives unknown usernames the same work
//! a wrong password would cost.

use std::sync::LazyLock;

use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash as Phc;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A stored password hash, tagged with its scheme: `{"<scheme>": {…}}`
/// (external tagging decodes without buffering, which the login path feels).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub enum PasswordHash {
    /// SHA-256(salt ‖ password); only for generated 122-bit secrets.
    #[serde(rename = "sha256-salted")]
    Sha256Salted {
        /// 16 random bytes, base64url.
        salt: String,
        /// The digest, base64url.
        hash: String,
    },
    /// Argon2id, as a PHC string (parameters and salt inside).
    #[serde(rename = "argon2id")]
    Argon2id {
        /// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
        phc: String,
    },
}

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.scheme())
    }
}

/// Hashing failed (the OS random source or Argon2 itself).
#[derive(Debug, thiserror::Error)]
#[error("could not hash a password: {0}")]
pub struct HashError(String);

impl PasswordHash {
    /// The scheme's stored name.
    pub fn scheme(&self) -> &'static str {
        match self {
            Self::Sha256Salted { .. } => "sha256-salted",
            Self::Argon2id { .. } => "argon2id",
        }
    }

    /// True when checking costs a slow memory-hard hash (run it on the
    /// bounded blocking pool, not on the async executor).
    pub fn is_slow(&self) -> bool {
        matches!(self, Self::Argon2id { .. })
    }

    /// Whether `password` matches, in time independent of where it differs.
    /// A corrupt stored hash never matches.
    pub fn verify(&self, password: &[u8]) -> bool {
        match self {
            Self::Sha256Salted { salt, hash } => {
                let (Ok(salt), Ok(expected)) = (B64.decode(salt), B64.decode(hash)) else {
                    return false;
                };
                salted_sha256(&salt, password)
                    .as_slice()
                    .ct_eq(&expected)
                    .into()
            }
            Self::Argon2id { phc } => match Phc::new(phc) {
                Ok(parsed) => Argon2::default().verify_password(password, &parsed).is_ok(),
                Err(_) => false,
            },
        }
    }
}

fn salted_sha256(salt: &[u8], password: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(salt);
    h.update(password);
    h.finalize().into()
}

/// A new generated password: a random UUID v4 (122 random bits).
pub fn generate() -> Result<String, HashError> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| HashError(e.to_string()))?;
    Ok(uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string())
}

/// Hashes a password that [`generate`] made, with the fast salted scheme.
pub fn hash_generated(password: &str) -> Result<PasswordHash, HashError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| HashError(e.to_string()))?;
    Ok(PasswordHash::Sha256Salted {
        salt: B64.encode(salt),
        hash: B64.encode(salted_sha256(&salt, password.as_bytes())),
    })
}

/// Hashes an operator-chosen password with Argon2id (about 20 ms: call it
/// off the async executor).
pub fn hash_chosen(password: &str) -> Result<PasswordHash, HashError> {
    let phc = Argon2::default()
        .hash_password(password.as_bytes())
        .map_err(|e| HashError(e.to_string()))?;
    Ok(PasswordHash::Argon2id {
        phc: phc.to_string(),
    })
}

/// True when `password` has the shape of a generated password (a lowercase
/// hyphenated UUID v4). Decides which dummy work an unknown user costs.
pub fn looks_generated(password: &str) -> bool {
    uuid::Uuid::try_parse(password)
        .is_ok_and(|u| u.get_version_num() == 4 && u.hyphenated().to_string() == password)
}

static DUMMY_SHA: LazyLock<PasswordHash> = LazyLock::new(|| PasswordHash::Sha256Salted {
    salt: B64.encode([0u8; 16]),
    hash: B64.encode([0u8; 32]),
});

static DUMMY_ARGON: LazyLock<PasswordHash> = LazyLock::new(|| {
    // Start-up cost of one hash; the parameters match every real hash.
    hash_chosen("tessera-dummy-password").unwrap_or_else(|_| DUMMY_SHA.clone())
});

/// The hash an unknown user is checked against so that it costs what a wrong
/// password for a real user costs: the fast scheme for guesses shaped like a
/// generated password, Argon2id for anything else.
pub fn dummy_for(password: &str) -> &'static PasswordHash {
    if looks_generated(password) {
        &DUMMY_SHA
    } else {
        &DUMMY_ARGON
    }
}

/// Runs the dummy check for an unknown user; always false.
pub fn dummy_verify(password: &str) -> bool {
    std::hint::black_box(dummy_for(password).verify(password.as_bytes()));
    false
}

/// Builds the Argon2id dummy hash now, so the first unknown-user login does
/// not pay for it.
pub fn warm_up() {
    LazyLock::force(&DUMMY_ARGON);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_passwords_are_uuid_v4_and_use_fast_hash() {
        let pw = generate().unwrap();
        assert!(looks_generated(&pw), "{pw}");
        let h = hash_generated(&pw).unwrap();
        assert!(!h.is_slow());
        assert!(h.verify(pw.as_bytes()));
        assert!(!h.verify(b"550e8400-e29b-41d4-a716-446655440000"));
        let h2 = hash_generated(&pw).unwrap();
        assert!(h != h2, "salts differ");
    }

    #[test]
    fn chosen_passwords_use_argon2id() {
        let h = hash_chosen("correct horse").unwrap();
        assert_eq!(h.scheme(), "argon2id");
        assert!(h.is_slow());
        assert!(h.verify(b"correct horse"));
        assert!(!h.verify(b"correct horse "));
    }

    #[test]
    fn dummy_work_matches_the_guess_shape() {
        assert_eq!(
            dummy_for("550e8400-e29b-41d4-a716-446655440000").scheme(),
            "sha256-salted"
        );
        assert_eq!(dummy_for("hunter2").scheme(), "argon2id");
        assert!(!looks_generated("550E8400-E29B-41D4-A716-446655440000"));
        assert!(!dummy_verify("hunter2"));
    }

    #[test]
    fn corrupt_hashes_never_match() {
        let h = PasswordHash::Argon2id { phc: "junk".into() };
        assert!(!h.verify(b"junk"));
        let h = PasswordHash::Sha256Salted {
            salt: "!".into(),
            hash: "!".into(),
        };
        assert!(!h.verify(b""));
    }
}

//! Password hash schemes (SPEC §4). The scheme follows from a password's
//! shape alone: a canonical UUID v4 (what Tessera generates: 122 random
//! bits) gets a fast salted SHA-256, anything else Argon2id with the OWASP
//! parameters. How a login attempt is checked against them, at equal work
//! whoever the user is, is [`super::login_check`].

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

/// The most Argon2id work an imported hash may ask for per login: memory
/// in KiB, passes and lanes — the server's own parameters (those of the
/// dummy hash an unknown user's login is checked against). A stronger
/// hash would make a known user's wrong password slower to answer than an
/// unknown user's, telling them apart (SPEC §4), and let one guess pin a
/// hash thread for seconds.
pub const MAX_ARGON2_M_KIB: u32 = argon2::Params::DEFAULT_M_COST;
/// The weakest Argon2id memory cost accepted from outside (KiB): that of
/// the dummy hash an unknown user's login is checked against (argon2's
/// defaults, the OWASP parameters), so no stored hash is cheaper to check
/// than a miss (SPEC §4's equal work).
pub const MIN_ARGON2_M_KIB: u32 = argon2::Params::DEFAULT_M_COST;
/// The weakest Argon2id time cost accepted from outside; see
/// [`MIN_ARGON2_M_KIB`].
pub const MIN_ARGON2_T: u32 = argon2::Params::DEFAULT_T_COST;
/// See [`MAX_ARGON2_M_KIB`].
pub const MAX_ARGON2_T: u32 = argon2::Params::DEFAULT_T_COST;
/// See [`MAX_ARGON2_M_KIB`].
pub const MAX_ARGON2_P: u32 = argon2::Params::DEFAULT_P_COST;

impl PasswordHash {
    /// Checks a hash that came from outside (an import, a declarative
    /// file): well-formed, and an Argon2id hash within the work limits.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Self::Sha256Salted { salt, hash } => {
                let salt_ok = B64.decode(salt).is_ok_and(|s| s.len() == 16);
                let hash_ok = B64.decode(hash).is_ok_and(|h| h.len() == 32);
                if salt_ok && hash_ok {
                    Ok(())
                } else {
                    Err(
                        "sha256-salted hash needs a 16-byte salt and a 32-byte digest, base64url"
                            .into(),
                    )
                }
            }
            Self::Argon2id { phc } => {
                let parsed =
                    Phc::new(phc).map_err(|e| format!("malformed argon2id hash string: {e}"))?;
                if parsed.algorithm.as_str() != "argon2id" {
                    return Err(format!(
                        "hash algorithm {} is not argon2id",
                        parsed.algorithm.as_str()
                    ));
                }
                if parsed.salt.is_none() || parsed.hash.is_none() {
                    return Err("argon2id hash string lacks its salt or digest".into());
                }
                let params = argon2::Params::try_from(&parsed)
                    .map_err(|e| format!("argon2id parameters: {e}"))?;
                let (m, t, p) = (params.m_cost(), params.t_cost(), params.p_cost());
                if m > MAX_ARGON2_M_KIB || t > MAX_ARGON2_T || p > MAX_ARGON2_P {
                    return Err(format!(
                        "argon2id parameters m={m},t={t},p={p} exceed the server's m={MAX_ARGON2_M_KIB},t={MAX_ARGON2_T},p={MAX_ARGON2_P}: a wrong password for this user would be answered slower than one for an unknown user, telling the two apart; import the user without its hash and set the password anew (it is then hashed with the server's parameters)"
                    ));
                }
                if m < MIN_ARGON2_M_KIB || t < MIN_ARGON2_T {
                    return Err(format!(
                        "argon2id parameters m={m},t={t},p={p} are weaker than m={MIN_ARGON2_M_KIB},t={MIN_ARGON2_T}: a wrong password for this user would be answered faster than one for an unknown user, telling the two apart; set the password anew (it is then hashed with the server's parameters)"
                    ));
                }
                Ok(())
            }
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

/// True when `password` has the shape of a generated password: a canonical
/// (lowercase, hyphenated) UUID v4, 122 random bits.
pub fn looks_generated(password: &str) -> bool {
    // Every login asks this, so it reads the bytes instead of parsing and
    // re-formatting a UUID: 8-4-4-4-12 lowercase hex, version nibble 4,
    // RFC 4122 variant (8, 9, a or b).
    let b = password.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            14 => c == b'4',
            19 => matches!(c, b'8' | b'9' | b'a' | b'b'),
            _ => c.is_ascii_digit() || (b'a'..=b'f').contains(&c),
        })
}

/// Which work a password costs, decided by its shape alone (SPEC §4): so
/// that the work for a login attempt depends only on the guess, never on
/// whether the user exists or which scheme the user has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A canonical UUID v4: one salted SHA-256.
    Fast,
    /// Anything else: one Argon2id.
    Argon2id,
}

impl Scheme {
    /// The scheme a password of this shape is stored and checked with.
    pub fn of(password: &str) -> Self {
        if looks_generated(password) {
            Self::Fast
        } else {
            Self::Argon2id
        }
    }

    /// The metric label, the same as [`PasswordHash::scheme`] of its hashes.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fast => "sha256-salted",
            Self::Argon2id => "argon2id",
        }
    }
}

/// Hashes a new password with the scheme its shape calls for: the fast
/// salted hash for a canonical UUID v4, Argon2id (about 20 ms: call it off
/// the async executor) for anything else.
pub fn hash_new(password: &str) -> Result<PasswordHash, HashError> {
    match Scheme::of(password) {
        Scheme::Fast => hash_generated(password),
        Scheme::Argon2id => hash_chosen(password),
    }
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

    const UUID: &str = "550e8400-e29b-41d4-a716-446655440000";

    #[test]
    fn the_scheme_follows_the_shape() {
        assert_eq!(Scheme::of(UUID), Scheme::Fast);
        assert_eq!(Scheme::of("hunter2"), Scheme::Argon2id);
        // Uppercase, unhyphenated, braced, another version or variant, a
        // hyphen moved, a non-hex letter: not generated.
        for other in [
            "550E8400-E29B-41D4-A716-446655440000",
            "550e8400e29b41d4a716446655440000",
            "{550e8400-e29b-41d4-a716-446655440000}",
            "550e8400-e29b-11d4-a716-446655440000",
            "550e8400-e29b-41d4-c716-446655440000",
            "550e8400-e29b-41d4-7716-446655440000",
            "550e8400e-29b-41d4-a716-446655440000",
            "550e8400-e29b-41d4-a716-44665544000g",
            "550e8400-e29b-41d4-a716-4466554400000",
            "550e8400-e29b-41d4-a716-44665544000",
        ] {
            assert_eq!(Scheme::of(other), Scheme::Argon2id, "{other}");
        }
        for variant in ['8', '9', 'a', 'b'] {
            let v = format!("550e8400-e29b-41d4-{variant}716-446655440000");
            assert_eq!(Scheme::of(&v), Scheme::Fast, "{v}");
        }
        for _ in 0..100 {
            let g = generate().unwrap();
            assert!(looks_generated(&g), "{g}");
            assert_eq!(
                uuid::Uuid::try_parse(&g).unwrap().hyphenated().to_string(),
                g
            );
        }
        assert_eq!(
            Scheme::of("0123456789-abcdef-4000-8000-000000000"),
            Scheme::Argon2id
        );
        assert_eq!(hash_new(UUID).unwrap().scheme(), "sha256-salted");
        assert_eq!(hash_new("hunter2").unwrap().scheme(), "argon2id");
        assert_eq!(Scheme::Fast.name(), "sha256-salted");
        assert_eq!(Scheme::Argon2id.name(), "argon2id");
    }

    #[test]
    fn imported_hashes_are_checked() {
        assert_eq!(hash_new(UUID).unwrap().validate(), Ok(()));
        assert_eq!(hash_new("hunter2").unwrap().validate(), Ok(()));
        let argon = |params: &str| PasswordHash::Argon2id {
            phc: format!(
                "$argon2id$v=19${params}$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g"
            ),
        };
        assert_eq!(
            argon("m=19456,t=2,p=1").validate(),
            Ok(()),
            "the server's own parameters pass"
        );
        for weak in ["m=8,t=1,p=1", "m=19455,t=2,p=1", "m=19456,t=1,p=1"] {
            let err = argon(weak).validate().unwrap_err();
            assert!(err.contains("weaker than m=19456,t=2"), "{weak}: {err}");
            assert!(!err.contains("c2FsdH"), "no salt or digest in {err}");
        }
        for over in [
            "m=262144,t=4,p=1",
            "m=19457,t=2,p=1",
            "m=19456,t=3,p=1",
            "m=19456,t=2,p=2",
            "m=19456,t=4294967295,p=1",
        ] {
            let err = argon(over).validate().unwrap_err();
            assert!(
                err.contains(&format!("{over} exceed the server's m=19456,t=2,p=1")),
                "{over}: {err}"
            );
        }
        let other = PasswordHash::Argon2id {
            phc: "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
        };
        assert!(other.validate().unwrap_err().contains("not argon2id"));
        assert!(
            PasswordHash::Argon2id { phc: "junk".into() }
                .validate()
                .is_err()
        );
        let no_hash = PasswordHash::Argon2id {
            phc: "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0".into(),
        };
        assert!(no_hash.validate().is_err());
        for (salt, hash) in [(16, 31), (15, 32), (16, 33)] {
            let h = PasswordHash::Sha256Salted {
                salt: B64.encode(vec![0u8; salt]),
                hash: B64.encode(vec![0u8; hash]),
            };
            assert!(h.validate().is_err(), "{salt} {hash}");
        }
        let h = PasswordHash::Sha256Salted {
            salt: "!".into(),
            hash: B64.encode([0u8; 32]),
        };
        assert!(h.validate().is_err());
    }

    #[test]
    fn debug_shows_the_scheme_never_the_hash() {
        let h = hash_new("hunter2").unwrap();
        assert_eq!(format!("{h:?}"), "argon2id");
        let h = hash_new(UUID).unwrap();
        assert_eq!(format!("{h:?}"), "sha256-salted");
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

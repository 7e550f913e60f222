//! The small values an operator sets, each checking its own rule once:
//! a user's [`Note`], a per-user [`TokenTtl`], and a revoked token's
//! [`Jti`]. The admin API, declarative files, the CLI and import all
//! build these, so a value one edge accepts every other edge accepts too.
//! Each error says what is allowed; the caller names the field.

use crate::token::MAX_JTI_LEN;

/// The longest `note`, in characters.
pub const MAX_NOTE_CHARS: usize = 1024;

/// The longest token TTL, per user or by default: 366 days.
pub const MAX_TOKEN_TTL_SECS: u64 = 366 * 86_400;

/// Free text about a user for operators: at most [`MAX_NOTE_CHARS`]
/// characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note(String);

impl Note {
    /// `text` as a note, if it is short enough.
    pub fn parse(text: String) -> Result<Self, String> {
        if text.chars().count() > MAX_NOTE_CHARS {
            return Err(format!("must be at most {MAX_NOTE_CHARS} characters"));
        }
        Ok(Self(text))
    }

    /// The text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

/// How long a user's tokens live: 1 s to [`MAX_TOKEN_TTL_SECS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenTtl(u64);

impl TokenTtl {
    /// `secs` as a TTL, if it is in range.
    pub fn from_secs(secs: u64) -> Result<Self, String> {
        if (1..=MAX_TOKEN_TTL_SECS).contains(&secs) {
            Ok(Self(secs))
        } else {
            Err(format!(
                "token_ttl_secs {secs} is outside 1-{MAX_TOKEN_TTL_SECS} (1 s to 366 days)"
            ))
        }
    }

    /// The seconds.
    pub fn secs(self) -> u64 {
        self.0
    }
}

/// A token id as revoked: 1 to [`MAX_JTI_LEN`] characters (any token
/// Tessera issued fits; a longer one could be no token of ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jti(String);

impl Jti {
    /// `text` as a `jti`, if its length is allowed.
    pub fn parse(text: String) -> Result<Self, String> {
        if text.is_empty() || text.chars().count() > MAX_JTI_LEN {
            return Err(format!("jti must be 1-{MAX_JTI_LEN} characters"));
        }
        Ok(Self(text))
    }

    /// The text.
    pub fn into_inner(self) -> String {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_note_is_at_most_1024_characters_counted_not_bytes() {
        assert!(Note::parse(String::new()).is_ok());
        assert!(Note::parse("é".repeat(MAX_NOTE_CHARS)).is_ok());
        let err = Note::parse("x".repeat(MAX_NOTE_CHARS + 1)).unwrap_err();
        assert_eq!(err, "must be at most 1024 characters");
        assert_eq!(Note::parse("hi".into()).unwrap().into_inner(), "hi");
    }

    #[test]
    fn a_ttl_is_one_second_to_366_days() {
        assert!(TokenTtl::from_secs(0).is_err());
        assert_eq!(TokenTtl::from_secs(1).unwrap().secs(), 1);
        assert_eq!(
            TokenTtl::from_secs(MAX_TOKEN_TTL_SECS).unwrap().secs(),
            31_622_400
        );
        let err = TokenTtl::from_secs(MAX_TOKEN_TTL_SECS + 1).unwrap_err();
        assert!(err.contains("outside 1-31622400"), "{err}");
    }

    #[test]
    fn a_jti_is_1_to_256_characters() {
        assert_eq!(MAX_JTI_LEN, 256);
        assert!(Jti::parse(String::new()).is_err());
        assert!(Jti::parse("a".repeat(MAX_JTI_LEN)).is_ok());
        assert!(Jti::parse("é".repeat(MAX_JTI_LEN)).is_ok());
        let err = Jti::parse("a".repeat(MAX_JTI_LEN + 1)).unwrap_err();
        assert_eq!(err, "jti must be 1-256 characters");
        assert_eq!(Jti::parse("j".into()).unwrap().into_inner(), "j");
    }
}

//! Scopes: which family of endpoints a partner may call. An operator grants
//! each user a set; a token carries the scopes it was issued with (claim
//! `scope`, space-separated and sorted, RFC 8693 §4.2); a verifier requires
//! some. What a token may do is its scopes **that the user still holds**
//! (the token's ∩ the user's current ones), so taking a scope away binds at
//! once for tokens already issued. The server and every verifier use these
//! rules; nothing else parses a scope.

use std::collections::BTreeSet;

/// The longest scope name.
pub const MAX_SCOPE_LEN: usize = 64;
/// The most scopes a user may hold.
pub const MAX_SCOPES: usize = 32;

/// Why a scope list was refused; `Display` names the offending scope.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ScopeError {
    /// A name that is empty, too long or has a character outside
    /// `A-Z a-z 0-9 : . _ -`.
    #[error("scope {0:?} is not 1-{MAX_SCOPE_LEN} characters of A-Z a-z 0-9 : . _ -")]
    BadName(String),
    /// More than [`MAX_SCOPES`].
    #[error("at most {MAX_SCOPES} scopes")]
    TooMany,
}

/// Whether `name` is a valid scope name.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_SCOPE_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b':' | b'.' | b'_' | b'-'))
}

/// A sorted, duplicate-free list of valid scope names.
///
/// ```
/// use tessera_verify::scope::Scopes;
/// let s = Scopes::new(["sync", "content", "sync"]).unwrap();
/// assert_eq!(s.to_claim().as_deref(), Some("content sync"));
/// assert!(Scopes::parse("content bad/name").is_err());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "Vec<String>", into = "Vec<String>")]
pub struct Scopes(BTreeSet<String>);

impl Scopes {
    /// Checks and sorts `names`, dropping duplicates.
    pub fn new<S: AsRef<str>>(names: impl IntoIterator<Item = S>) -> Result<Self, ScopeError> {
        let mut set = BTreeSet::new();
        for name in names {
            let name = name.as_ref();
            if !is_valid(name) {
                return Err(ScopeError::BadName(name.to_owned()));
            }
            set.insert(name.to_owned());
        }
        if set.len() > MAX_SCOPES {
            return Err(ScopeError::TooMany);
        }
        Ok(Self(set))
    }

    /// Reads a space-separated list (a `scope` parameter or claim); runs of
    /// spaces are one separator.
    pub fn parse(text: &str) -> Result<Self, ScopeError> {
        Self::new(text.split(' ').filter(|s| !s.is_empty()))
    }

    /// The scopes a login asks for: `None` when it asks for nothing in
    /// particular (no `scope`, or a blank one), which grants all the
    /// user's; the one reading of a requested scope for every login
    /// endpoint.
    pub fn requested(text: Option<&str>) -> Result<Option<Self>, ScopeError> {
        text.filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .transpose()
    }

    /// No scope at all.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `name` is among them.
    pub fn contains(&self, name: &str) -> bool {
        self.0.contains(name)
    }

    /// The names, sorted.
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    /// Those of `self` that `other` holds too.
    pub fn intersection(&self, other: &Self) -> Self {
        Self(self.0.intersection(&other.0).cloned().collect())
    }

    /// The first of `required` not among them, if any.
    pub fn first_missing<'r>(&self, required: &'r Self) -> Option<&'r str> {
        required.iter().find(|r| !self.contains(r))
    }

    /// Whether every one of `self` is in `other`.
    pub fn is_subset(&self, other: &Self) -> bool {
        self.0.is_subset(&other.0)
    }

    /// The `scope` claim: space-separated, sorted; None when empty.
    pub fn to_claim(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_string())
    }
}

impl std::fmt::Display for Scopes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, s) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            f.write_str(s)?;
        }
        Ok(())
    }
}

impl TryFrom<Vec<String>> for Scopes {
    type Error = ScopeError;

    fn try_from(names: Vec<String>) -> Result<Self, ScopeError> {
        Self::new(names)
    }
}

impl From<Scopes> for Vec<String> {
    fn from(s: Scopes) -> Self {
        s.0.into_iter().collect()
    }
}

/// What a token may do: the scopes of its `scope` claim that the user
/// still holds. A claim that does not parse grants nothing.
pub fn effective(claim: Option<&str>, held: &Scopes) -> Scopes {
    claim
        .and_then(|c| Scopes::parse(c).ok())
        .map(|granted| granted.intersection(held))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn asking_for_no_scope_asks_for_all() {
        assert_eq!(Scopes::requested(None), Ok(None));
        assert_eq!(Scopes::requested(Some("")), Ok(None));
        assert_eq!(Scopes::requested(Some("  ")), Ok(None));
        assert_eq!(
            Scopes::requested(Some("sync content")),
            Ok(Some(Scopes::new(["content", "sync"]).unwrap()))
        );
        assert!(Scopes::requested(Some("bad\u{7f}")).is_err());
    }

    #[test]
    fn names_are_checked_sorted_and_deduplicated() {
        let s = Scopes::new(["b", "a:x", "b", "c.d_e-f"]).unwrap();
        assert_eq!(s.iter().collect::<Vec<_>>(), ["a:x", "b", "c.d_e-f"]);
        assert_eq!(s.to_string(), "a:x b c.d_e-f");
        for bad in ["", "a b", "ü", "a/b", &"x".repeat(65)] {
            assert_eq!(
                Scopes::new([bad]),
                Err(ScopeError::BadName(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert!(Scopes::new(["x".repeat(64)]).is_ok());
        let many: Vec<String> = (0..33).map(|i| format!("s{i}")).collect();
        assert_eq!(Scopes::new(&many), Err(ScopeError::TooMany));
        assert!(Scopes::new(&many[..32]).is_ok());
    }

    #[test]
    fn a_claim_is_parsed_and_intersected_with_what_the_user_holds() {
        assert_eq!(Scopes::parse("  b  a ").unwrap().to_string(), "a b");
        assert_eq!(Scopes::parse("").unwrap().to_claim(), None);
        let held = Scopes::new(["a", "c"]).unwrap();
        assert_eq!(effective(Some("a b c"), &held).to_string(), "a c");
        assert!(effective(None, &held).is_empty());
        assert!(effective(Some("a b/"), &held).is_empty());
        let required = Scopes::new(["a", "b"]).unwrap();
        assert_eq!(held.first_missing(&required), Some("b"));
        assert_eq!(held.first_missing(&Scopes::new(["a"]).unwrap()), None);
        assert!(Scopes::new(["a"]).unwrap().is_subset(&held));
        assert!(!required.is_subset(&held));
    }

    #[test]
    fn serde_reads_and_checks_a_list() {
        let s: Scopes = serde_json::from_str(r#"["b","a","b"]"#).unwrap();
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"["a","b"]"#);
        assert!(serde_json::from_str::<Scopes>(r#"["a b"]"#).is_err());
    }
}

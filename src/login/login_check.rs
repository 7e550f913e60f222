//! A login's password checks (SPEC §4, §15): planned before any work is
//! done ([`Attempt::plan`], [`LoginCheck::plan`]) and run by [`check`],
//! they do the work of the guess's scheme whether or not the user exists,
//! whatever scheme the user has and however many secrets it holds, so
//! neither timing nor the work counted in metrics tells a known user from
//! an unknown one, or a user mid-rotation from one with one secret.

use std::sync::LazyLock;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use super::password::{PasswordHash, Scheme, hash_chosen};

static DUMMY_SHA: LazyLock<PasswordHash> = LazyLock::new(|| PasswordHash::Sha256Salted {
    salt: B64.encode([0u8; 16]),
    hash: B64.encode([0u8; 32]),
});

static DUMMY_ARGON: LazyLock<PasswordHash> = LazyLock::new(|| {
    // Start-up cost of one hash; the parameters match every real hash.
    hash_chosen("tessera-dummy-password").unwrap_or_else(|_| DUMMY_SHA.clone())
});

/// One login attempt's password check, planned before any work is done:
/// the hash the guess is checked against and whether a match counts.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    target: &'a PasswordHash,
    can_match: bool,
}

impl<'a> Attempt<'a> {
    /// Plans the check of `guess` against a user's `stored` hash (None for
    /// an unknown user). The user's own hash is used only when its scheme is
    /// the one the guess's shape calls for; otherwise the guess can not
    /// match (a password always has its shape's scheme), and a dummy hash of
    /// the guess's scheme costs the same work.
    pub fn plan(stored: Option<&'a PasswordHash>, guess: &str) -> Self {
        let scheme = Scheme::of(guess);
        match stored {
            Some(hash) if hash.scheme() == scheme.name() => Self {
                target: hash,
                can_match: true,
            },
            _ => Self {
                target: match scheme {
                    Scheme::Fast => &DUMMY_SHA,
                    Scheme::Argon2id => &DUMMY_ARGON,
                },
                can_match: false,
            },
        }
    }

    /// The hash the work is done against.
    pub fn target(&self) -> &'a PasswordHash {
        self.target
    }

    /// Whether a matching hash means the password is right.
    pub fn can_match(&self) -> bool {
        self.can_match
    }
}

/// Which of a user's secrets a login matched (counted by
/// `tessera_logins_total{secret}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// The newest secret.
    Current,
    /// The one a rotation replaced, still in its grace.
    Previous,
}

/// A login's password checks, planned before any work is done: one
/// against the user's current secret and one against its previous secret
/// (during a rotation's grace), each against a dummy of the guess's scheme
/// where there is no such secret or it has the other scheme. Every login
/// therefore does the work of exactly two hashes of its guess's scheme,
/// whether the user is unknown, holds one secret or two (SPEC §4, §15):
/// neither timing nor counted work tells them apart.
#[derive(Debug, Clone, Copy)]
pub struct LoginCheck<'a> {
    current: Attempt<'a>,
    previous: Attempt<'a>,
}

impl<'a> LoginCheck<'a> {
    /// Plans the checks of `guess` against a user's `current` and
    /// `previous` hashes (None: unknown user, or no previous secret).
    pub fn plan(
        current: Option<&'a PasswordHash>,
        previous: Option<&'a PasswordHash>,
        guess: &str,
    ) -> Self {
        Self {
            current: Attempt::plan(current, guess),
            previous: Attempt::plan(previous, guess),
        }
    }

    /// True when the checks cost the slow memory-hard hash (both do: both
    /// targets have the guess's scheme).
    pub fn is_slow(&self) -> bool {
        self.current.target.is_slow()
    }

    /// The scheme both checks hash with.
    pub fn scheme(&self) -> &'static str {
        self.current.target.scheme()
    }

    /// Runs both checks, always both, and answers which secret matched.
    pub fn run(&self, guess: &[u8]) -> Option<Which> {
        let current = check(self.current.target, self.current.can_match, guess);
        let previous = check(self.previous.target, self.previous.can_match, guess);
        if current {
            Some(Which::Current)
        } else if previous {
            Some(Which::Previous)
        } else {
            None
        }
    }

    /// The same checks owning copies of their hashes (for the hash pool).
    pub fn to_owned(&self) -> OwnedLoginCheck {
        OwnedLoginCheck {
            current: (self.current.target.clone(), self.current.can_match),
            previous: (self.previous.target.clone(), self.previous.can_match),
        }
    }
}

/// A [`LoginCheck`] that owns its hashes, to run on another thread.
#[derive(Debug, Clone)]
pub struct OwnedLoginCheck {
    current: (PasswordHash, bool),
    previous: (PasswordHash, bool),
}

impl OwnedLoginCheck {
    /// See [`LoginCheck::run`].
    pub fn run(&self, guess: &[u8]) -> Option<Which> {
        LoginCheck {
            current: Attempt {
                target: &self.current.0,
                can_match: self.current.1,
            },
            previous: Attempt {
                target: &self.previous.0,
                can_match: self.previous.1,
            },
        }
        .run(guess)
    }
}

/// Runs a planned check: always does the hash work, then answers whether
/// the password is right. Constant-time in where the guess differs.
pub fn check(target: &PasswordHash, can_match: bool, guess: &[u8]) -> bool {
    let matched = target.verify(guess);
    matched && can_match
}

/// Builds the Argon2id dummy hash now, so the first unknown-user login does
/// not pay for it.
pub fn warm_up() {
    LazyLock::force(&DUMMY_ARGON);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::login::password::{generate, hash_generated, hash_new};

    const UUID: &str = "550e8400-e29b-41d4-a716-446655440000";

    #[test]
    fn a_login_check_names_the_secret_that_matched_and_never_a_dummy() {
        let (current, previous) = (generate().unwrap(), generate().unwrap());
        let (hc, hp) = (
            hash_generated(&current).unwrap(),
            hash_generated(&previous).unwrap(),
        );
        let both = |guess: &str| LoginCheck::plan(Some(&hc), Some(&hp), guess);
        assert_eq!(both(&current).run(current.as_bytes()), Some(Which::Current));
        assert_eq!(
            both(&previous).run(previous.as_bytes()),
            Some(Which::Previous)
        );
        assert_eq!(
            both(&current).to_owned().run(current.as_bytes()),
            Some(Which::Current)
        );
        assert_eq!(
            both(&previous).to_owned().run(previous.as_bytes()),
            Some(Which::Previous)
        );
        let wrong = generate().unwrap();
        assert_eq!(both(&wrong).run(wrong.as_bytes()), None);
        assert_eq!(both(&wrong).to_owned().run(wrong.as_bytes()), None);
        // Without a previous secret, its check runs against a dummy that
        // never matches, even a guess equal to the dummy's preimage.
        let one = LoginCheck::plan(Some(&hc), None, &previous);
        assert_eq!(one.run(previous.as_bytes()), None);
        assert_eq!(
            LoginCheck::plan(None, None, &current).run(current.as_bytes()),
            None
        );
        // The scheme is the guess's: both checks cost the same work.
        assert!(!both(&current).is_slow());
        assert_eq!(both(&current).scheme(), "sha256-salted");
        let chosen = LoginCheck::plan(Some(&hc), Some(&hp), "a chosen password");
        assert!(chosen.is_slow());
        assert_eq!(chosen.scheme(), "argon2id");
        assert_eq!(chosen.run(b"a chosen password"), None);
    }

    #[test]
    fn the_work_follows_the_guess_not_the_user() {
        let fast = hash_new(UUID).unwrap();
        let slow = hash_new("hunter2").unwrap();
        for stored in [None, Some(&fast), Some(&slow)] {
            assert_eq!(
                Attempt::plan(stored, UUID).target().scheme(),
                "sha256-salted"
            );
            assert_eq!(
                Attempt::plan(stored, "hunter2").target().scheme(),
                "argon2id"
            );
        }
        let right = |stored: Option<&PasswordHash>, guess: &str| {
            let a = Attempt::plan(stored, guess);
            check(a.target(), a.can_match(), guess.as_bytes())
        };
        assert!(right(Some(&fast), UUID));
        assert!(right(Some(&slow), "hunter2"));
        assert!(!right(Some(&fast), "hunter2"));
        assert!(!right(Some(&slow), UUID));
        assert!(!right(None, UUID));
        assert!(!right(None, "hunter2"));
        assert!(
            !right(None, "tessera-dummy-password"),
            "the dummy never lets anyone in"
        );
        // An Argon2id hash of a UUID (written before the shape rule) can not
        // match: a UUID-shaped guess only ever costs the fast hash.
        let legacy = hash_chosen(UUID).unwrap();
        assert!(!Attempt::plan(Some(&legacy), UUID).can_match());
        assert!(!right(Some(&legacy), UUID));
    }

    #[test]
    fn check_does_the_work_even_when_it_can_not_match() {
        let slow = hash_new("hunter2").unwrap();
        assert!(check(&slow, true, b"hunter2"));
        assert!(!check(&slow, false, b"hunter2"));
        assert!(!check(&slow, true, b"hunter3"));
    }
}

//! The bearer secrets operators and verifiers hold — the admin token and
//! the feed token — checked under throttles of their own (SPEC §5, DESIGN
//! "One throttle per secret kind").
//!
//! Unlike a partner's password, these are 256-bit random tokens: no guess
//! succeeds, so there is no guess to keep unconfirmed. The right token is
//! therefore accepted before any throttle is consulted (a stranger on the
//! operator's address can never lock the operator out), and only wrong
//! ones are counted and slowed down (429 past the threshold). Each use
//! ([`SecretUse`]) counts apart, so a flood of wrong feed tokens never
//! touches the admin API, nor wrong introspection tokens the feed.

use std::time::{Duration, Instant};

use crate::login::client::ClientKey;
use crate::login::throttle::ThrottleConfig;
use crate::login::throttle::{self, Throttle};

/// Where a bearer secret is presented; each has its own failure count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    /// The admin token on the admin listener (counted by peer address).
    AdminApi,
    /// The admin token at `/oauth/introspect` on the partner listener.
    Introspection,
    /// The feed token at `/revocations`.
    Feed,
}

impl SecretUse {
    const ALL: [SecretUse; 3] = [Self::AdminApi, Self::Introspection, Self::Feed];

    /// What the secret is called in logs and answers.
    pub fn what(self) -> &'static str {
        match self {
            Self::AdminApi => "admin token",
            Self::Introspection => "admin token (introspection)",
            Self::Feed => "feed token",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One throttle per [`SecretUse`].
#[derive(Debug)]
pub struct SecretThrottles {
    tables: [Throttle; SecretUse::ALL.len()],
}

impl SecretThrottles {
    /// Throttles with the passwords' rules, each remembering at most
    /// [`throttle::DEFAULT_CAPACITY`] clients.
    pub fn new(config: ThrottleConfig) -> Self {
        Self {
            tables: SecretUse::ALL.map(|_| Throttle::new(config, throttle::DEFAULT_CAPACITY)),
        }
    }

    /// The verdict on a presented secret: `Ok(true)` for the right one
    /// (never throttled, never counted), `Ok(false)` for a wrong one that
    /// was counted, `Err(wait)` for a wrong one from a client that sent
    /// too many (answer 429 with `Retry-After`). `matches` is the
    /// constant-time comparison's answer.
    pub fn check(
        &self,
        used: SecretUse,
        client: &ClientKey,
        matches: bool,
        now: Instant,
    ) -> Result<bool, Duration> {
        if matches {
            return Ok(true);
        }
        let what = used.what();
        let charge = self.tables[used.index()].charge(client, now)?;
        tracing::info!(client = %client, what, "wrong bearer secret");
        if let Some(lockout) = charge.lockout {
            tracing::warn!(client = %client, seconds = lockout.as_secs(), what, "client slowed down after repeated wrong secrets");
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> ThrottleConfig {
        ThrottleConfig {
            failures: 2,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
        }
    }

    fn client() -> ClientKey {
        ClientKey::from_ip([127, 0, 0, 1].into())
    }

    #[test]
    fn the_right_secret_is_never_throttled() {
        let t = SecretThrottles::new(config());
        let now = Instant::now();
        assert_eq!(
            t.check(SecretUse::AdminApi, &client(), false, now),
            Ok(false)
        );
        assert_eq!(
            t.check(SecretUse::AdminApi, &client(), false, now),
            Ok(false)
        );
        assert_eq!(
            t.check(SecretUse::AdminApi, &client(), false, now),
            Err(Duration::from_secs(60)),
            "wrong ones past the threshold are slowed down"
        );
        assert_eq!(t.check(SecretUse::AdminApi, &client(), true, now), Ok(true));
    }

    #[test]
    fn each_use_counts_apart() {
        let t = SecretThrottles::new(config());
        let now = Instant::now();
        for _ in 0..5 {
            let _ = t.check(SecretUse::Feed, &client(), false, now);
        }
        for used in [SecretUse::AdminApi, SecretUse::Introspection] {
            assert_eq!(t.check(used, &client(), false, now), Ok(false), "{used:?}");
        }
        assert!(t.check(SecretUse::Feed, &client(), false, now).is_err());
    }

    #[test]
    fn names_say_which_secret() {
        assert_eq!(SecretUse::AdminApi.what(), "admin token");
        assert_eq!(SecretUse::Feed.what(), "feed token");
        assert_eq!(
            SecretUse::Introspection.what(),
            "admin token (introspection)"
        );
    }
}

//! Console sessions (SPEC §16): a random id in an `HttpOnly` cookie,
//! mapped in this node's memory to its times, its CSRF token and at most
//! one one-time password waiting to be shown. A session ends after
//! [`IDLE`] without a request, [`LONGEST`] after sign-in, or at sign-out;
//! a restart ends them all (they live in memory only). At most
//! [`MAX_SESSIONS`] live at once: signing in past that ends the session
//! idle longest.

use std::collections::HashMap;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// A session ends after this many seconds without a request.
pub const IDLE: u64 = 15 * 60;
/// A session ends this many seconds after sign-in, however busy.
pub const LONGEST: u64 = 8 * 3600;
/// Sessions held at once.
pub const MAX_SESSIONS: usize = 1024;
/// The session cookie's name.
pub const COOKIE: &str = "tessera_console";

/// A one-time password waiting to be shown once, on the page it belongs to.
pub struct Flash {
    /// The partner it belongs to.
    pub username: String,
    /// The password.
    pub password: Zeroizing<String>,
}

struct Session {
    csrf: String,
    signed_in: u64,
    last_seen: u64,
    flash: Option<Flash>,
}

/// What a live session lets a request do.
#[derive(Debug, Clone)]
pub struct Live {
    /// The key the session is held under (the SHA-256 of its cookie).
    key: [u8; 32],
    /// The session's CSRF token, for the forms of the page.
    pub csrf: String,
}

impl Live {
    /// Whether `presented` is this session's CSRF token (constant time).
    pub fn csrf_matches(&self, presented: &str) -> bool {
        self.csrf.as_bytes().ct_eq(presented.as_bytes()).into()
    }
}

/// Every console session of this node.
#[derive(Default)]
pub struct Sessions {
    by_key: parking_lot::Mutex<HashMap<[u8; 32], Session>>,
}

fn random_token() -> String {
    use rand::Rng as _;
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    B64.encode(bytes)
}

/// Sessions are held under the SHA-256 of their cookie: a lookup compares
/// digests, never the secret itself.
fn key_of(cookie: &str) -> [u8; 32] {
    Sha256::digest(cookie.as_bytes()).into()
}

impl Sessions {
    /// Starts a session at `now`; answers the cookie value.
    pub fn start(&self, now: u64) -> String {
        let cookie = random_token();
        let mut by_key = self.by_key.lock();
        by_key.retain(|_, s| alive(s, now));
        if by_key.len() >= MAX_SESSIONS
            && let Some(oldest) = by_key
                .iter()
                .min_by_key(|(_, s)| s.last_seen)
                .map(|(k, _)| *k)
        {
            by_key.remove(&oldest);
        }
        by_key.insert(
            key_of(&cookie),
            Session {
                csrf: random_token(),
                signed_in: now,
                last_seen: now,
                flash: None,
            },
        );
        cookie
    }

    /// The live session a cookie names at `now`, touched (its idle time
    /// starts again); an ended one is forgotten.
    pub fn find(&self, cookie: &str, now: u64) -> Option<Live> {
        let key = key_of(cookie);
        let mut by_key = self.by_key.lock();
        let session = by_key.get_mut(&key)?;
        if !alive(session, now) {
            by_key.remove(&key);
            return None;
        }
        session.last_seen = session.last_seen.max(now);
        Some(Live {
            key,
            csrf: session.csrf.clone(),
        })
    }

    /// Ends a session (sign-out): its cookie opens nothing from now on.
    pub fn end(&self, live: &Live) {
        self.by_key.lock().remove(&live.key);
    }

    /// Keeps a one-time password to show once on `username`'s page.
    pub fn set_flash(&self, live: &Live, flash: Flash) {
        if let Some(session) = self.by_key.lock().get_mut(&live.key) {
            session.flash = Some(flash);
        }
    }

    /// Takes the one-time password waiting for `username`'s page, if any:
    /// shown once, gone after a reload.
    pub fn take_flash(&self, live: &Live, username: &str) -> Option<Zeroizing<String>> {
        let mut by_key = self.by_key.lock();
        let session = by_key.get_mut(&live.key)?;
        match &session.flash {
            Some(f) if f.username == username => session.flash.take().map(|f| f.password),
            _ => None,
        }
    }
}

fn alive(s: &Session, now: u64) -> bool {
    now < s.last_seen.saturating_add(IDLE) && now < s.signed_in.saturating_add(LONGEST)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_idle_at_the_longest_or_at_sign_out() {
        let sessions = Sessions::default();
        let cookie = sessions.start(1000);
        let live = sessions.find(&cookie, 1000 + IDLE - 1).unwrap();
        assert!(live.csrf_matches(&live.csrf.clone()));
        assert!(!live.csrf_matches("another"));
        // Busy: never idle, but over at the longest.
        let mut t = 1000;
        while t + IDLE - 1 < 1000 + LONGEST {
            t += IDLE - 1;
            if t < 1000 + LONGEST {
                assert!(sessions.find(&cookie, t).is_some(), "{t}");
            }
        }
        assert!(sessions.find(&cookie, 1000 + LONGEST).is_none());
        let idle = sessions.start(5000);
        assert!(sessions.find(&idle, 5000 + IDLE).is_none(), "idle");
        let out = sessions.start(6000);
        let live = sessions.find(&out, 6000).unwrap();
        sessions.end(&live);
        assert!(sessions.find(&out, 6000).is_none(), "signed out");
        assert!(sessions.find("made-up", 6000).is_none());
    }

    #[test]
    fn a_one_time_password_is_shown_once_on_its_own_page() {
        let sessions = Sessions::default();
        let cookie = sessions.start(1);
        let live = sessions.find(&cookie, 1).unwrap();
        sessions.set_flash(
            &live,
            Flash {
                username: "acme".into(),
                password: Zeroizing::new("pw".into()),
            },
        );
        assert!(sessions.take_flash(&live, "other").is_none());
        assert_eq!(sessions.take_flash(&live, "acme").unwrap().as_str(), "pw");
        assert!(sessions.take_flash(&live, "acme").is_none());
    }

    #[test]
    fn sessions_are_bounded_and_the_one_idle_longest_goes_first() {
        let sessions = Sessions::default();
        let busy = sessions.start(1);
        let idle = sessions.start(1);
        for _ in 2..MAX_SESSIONS {
            sessions.start(2);
        }
        assert_eq!(sessions.by_key.lock().len(), MAX_SESSIONS);
        assert!(sessions.find(&busy, 3).is_some());
        sessions.start(4);
        assert_eq!(sessions.by_key.lock().len(), MAX_SESSIONS);
        assert!(sessions.find(&busy, 4).is_some(), "used lately: kept");
        assert!(sessions.find(&idle, 4).is_none(), "idle longest: ended");
    }
}

//! The one check of a bearer secret — the admin token (admin API and
//! introspection) and the feed token: which secret a use takes, the
//! constant-time comparison of its SHA-256, and the use's throttle
//! ([`crate::service::SecretUse`]: the right secret is never throttled,
//! wrong ones are counted). Each edge only words the refusal in its own
//! protocol.

use std::time::Duration;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use warp::http::HeaderMap;
use warp::http::header::AUTHORIZATION;

use super::filters::bearer;
use super::state::AppState;
use crate::login::client::ClientKey;
use crate::service::SecretUse;

/// SHA-256 of a bearer secret, the form it is kept and compared in.
pub fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Why a request does not get what a bearer secret opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretRefusal {
    /// No `Authorization` header at all: not counted as a guess.
    Absent,
    /// Not the secret this use takes (or none is configured for it).
    Wrong,
    /// This client sent wrong secrets too often; refused for this long.
    Throttled(Duration),
}

impl AppState {
    /// Checks the bearer secret `headers` present for `used`, counted
    /// under `client`.
    pub fn check_bearer_secret(
        &self,
        used: SecretUse,
        client: &ClientKey,
        headers: &HeaderMap,
    ) -> Result<(), SecretRefusal> {
        if !headers.contains_key(AUTHORIZATION) {
            return Err(SecretRefusal::Absent);
        }
        let presented = match bearer(headers) {
            Some(Ok(token)) => Some(token),
            _ => None,
        };
        self.check_secret_text(used, client, presented)
    }

    /// Checks a secret typed rather than sent as a header (the console's
    /// sign-in form takes the admin token), under the same throttle as
    /// the header of the same use. None: not the right shape (wrong).
    pub fn check_secret_text(
        &self,
        used: SecretUse,
        client: &ClientKey,
        presented: Option<&str>,
    ) -> Result<(), SecretRefusal> {
        let wanted = match used {
            SecretUse::AdminApi | SecretUse::Introspection => Some(&self.admin_token_digest),
            SecretUse::Feed => self.feed_token_digest.as_ref(),
        };
        let matches = match (presented, wanted) {
            (Some(token), Some(wanted)) => bool::from(token_digest(token).ct_eq(wanted)),
            _ => false,
        };
        match self.service.check_secret(used, client, matches) {
            Ok(true) => Ok(()),
            Ok(false) => Err(SecretRefusal::Wrong),
            Err(wait) => Err(SecretRefusal::Throttled(wait)),
        }
    }
}

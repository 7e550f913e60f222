//! How the CLI knows that the admin API named in `<data-dir>/admin.url` is
//! this data dir's server before it sends the admin token there. A server
//! that crashed leaves a stale `admin.url`; whatever listens on that port
//! later must not receive the token.
//!
//! `serve` writes a fresh random key beside the URL (the file is 0600, so
//! only the operator reads it) and answers `GET /instance?nonce=N` on the
//! admin listener, without the token, with `HMAC-SHA256(key, N)`. The CLI
//! sends a random nonce and goes on only if the answer checks out: nobody
//! without the file can produce it, and a replayed answer fits no other
//! nonce.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// The route the proof is asked on, on the admin listener.
pub const PATH: &str = "/instance";

/// What the key is mixed with, so the proof means nothing elsewhere.
const CONTEXT: &[u8] = b"tessera admin instance v1\0";

fn mac(key: &[u8], nonce: &str) -> Hmac<Sha256> {
    // HMAC takes keys of any length.
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    mac.update(CONTEXT);
    mac.update(nonce.as_bytes());
    mac
}

/// The server's answer for `nonce`, base64url.
pub fn proof(key: &[u8], nonce: &str) -> String {
    B64.encode(mac(key, nonce).finalize().into_bytes())
}

/// Whether `answer` is the proof for `nonce` under `key` (constant time).
pub fn verify(key: &[u8], nonce: &str, answer: &str) -> bool {
    B64.decode(answer.trim())
        .is_ok_and(|bytes| mac(key, nonce).verify_slice(&bytes).is_ok())
}

/// 32 fresh random bytes: a key, or a nonce.
pub fn random() -> Result<[u8; 32], getrandom::Error> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(bytes)
}

/// Encodes a key or nonce for the file and the query string.
pub fn encode(bytes: &[u8]) -> String {
    B64.encode(bytes)
}

/// Decodes a key read back from `admin.url`.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    B64.decode(text.trim()).ok().filter(|k| k.len() == 32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_key_holder_answers_and_only_for_that_nonce() {
        let key = random().unwrap();
        let other = random().unwrap();
        let answer = proof(&key, "n1");
        assert!(verify(&key, "n1", &answer));
        assert!(!verify(&key, "n2", &answer), "a replay fits no other nonce");
        assert!(!verify(&other, "n1", &answer), "another key");
        assert!(!verify(&key, "n1", "not base64!"));
        assert!(!verify(&key, "n1", ""));
        assert_eq!(decode(&encode(&key)).as_deref(), Some(&key[..]));
        assert_eq!(decode("c2hvcnQ"), None, "keys are 32 bytes");
    }
}

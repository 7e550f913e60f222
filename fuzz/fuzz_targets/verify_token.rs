//! Feeds arbitrary bytes to the token verifier: it must never panic and
//! never accept anything not signed by the key.
#![no_main]

use ed25519_dalek::SigningKey;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let vk = SigningKey::from_bytes(&[42; 32]).verifying_key();
    let verdict = tessera::token::verify(text, |_| Some(&vk), "tessera", 1_800_000_000);
    assert!(verdict.is_err(), "accepted an unsigned token: {text}");
});

//! `Verifier::verify` against raw `verify_strict` on one core: a distinct
//! token each time (signature checked), and one token repeated (served by
//! the per-keyring string cache); and a DPoP proof's check (SPEC §17):
//! the rules alone, and with the replay cache as `/verify` runs it.
//! Run: `cargo bench -p tessera-verify`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, Signer as _, SigningKey};
use tessera_verify::dpop::{self, Presented, ReplayCache, Request};
use tessera_verify::feed::RevocationState;
use tessera_verify::token::{self, Claims};
use tessera_verify::verifier::{Verifier, VerifierConfig};

fn verify(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[5; 32]);
    let vk = key.verifying_key();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = token::encoded_header("k");
    let mint = |jti: u64| {
        let claims = Claims {
            iss: "tessera".into(),
            sub: "channel_user".into(),
            iat: now,
            exp: now + 3600,
            jti: format!("{jti:022}"),
            generation: None,
            scope: None,
            cnf: None,
        };
        token::encode(&claims, &header, &key)
    };
    let v = Verifier::from_parts(
        VerifierConfig::new("http://unused"),
        HashMap::from([("k".to_owned(), vk)]),
        RevocationState::default(),
    );
    let t = &mint(0);
    let (input, sig) = t.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap(),
    )
    .unwrap();
    c.bench_function("raw verify_strict", |b| {
        b.iter(|| black_box(vk.verify_strict(black_box(input.as_bytes()), &sig)))
    });
    // Each iteration a token never seen before (signed outside the timing),
    // so the string cache never answers and every signature is checked.
    let mut next = 0u64;
    c.bench_function("Verifier::verify, distinct tokens", |b| {
        b.iter_batched(
            || {
                next += 1;
                mint(next)
            },
            |t| assert!(v.verify(&t).is_ok()),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("Verifier::verify, one token repeated", |b| {
        b.iter(|| black_box(v.verify(black_box(t)).is_ok()))
    });
}

const HTU: &str = "https://api.example.com/resource";

/// A fresh EdDSA proof for `GET HTU` with `ath` of `token`, made as a
/// partner's client makes one (outside the timing).
fn ed_proof(key: &SigningKey, jti: u64, now: u64, token: &str) -> String {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    let x = B64.encode(key.verifying_key().as_bytes());
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"EdDSA","jwk":{{"kty":"OKP","crv":"Ed25519","x":"{x}"}}}}"#
    );
    let claims = format!(
        r#"{{"jti":"{jti:022}","htm":"GET","htu":"{HTU}","iat":{now},"ath":"{}"}}"#,
        dpop::ath_of(token)
    );
    let input = format!("{}.{}", B64.encode(header), B64.encode(claims));
    let sig = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(sig.to_bytes()))
}

fn dpop_proofs(c: &mut Criterion) {
    let key = SigningKey::from_bytes(&[0x15; 32]);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let token = "eyJhbGciOiJFZERTQSJ9.eyJzdWIiOiJiZW5jaCJ9.c2lnbmF0dXJl";
    let request = Request {
        method: "GET",
        url: HTU,
        access_token: Some(token),
        now,
        leeway_secs: 60,
    };
    let jkt = dpop::check_proof(&ed_proof(&key, 0, now, token), &request)
        .unwrap()
        .jkt;
    let mut next = 0u64;
    c.bench_function("dpop check_proof", |b| {
        b.iter_batched(
            || {
                next += 1;
                ed_proof(&key, next, now, token)
            },
            |proof| assert!(dpop::check_proof(&proof, &request).is_ok()),
            BatchSize::SmallInput,
        )
    });
    let replays = ReplayCache::new(1 << 20);
    c.bench_function("dpop check_presentation (proof + replay cache)", |b| {
        b.iter_batched(
            || {
                next += 1;
                ed_proof(&key, next, now, token)
            },
            |proof| {
                let presented = Presented::dpop(Some(&proof), "GET", HTU, now, 60, &replays);
                assert!(dpop::check_presentation(token, Some(&jkt), presented).is_ok())
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, verify, dpop_proofs);
criterion_main!(benches);

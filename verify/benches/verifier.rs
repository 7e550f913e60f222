//! `Verifier::verify` against raw `verify_strict` on one core: a distinct
//! token each time (signature checked), and one token repeated (served by
//! the per-keyring string cache). Run: `cargo bench -p tessera-verify`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use ed25519_dalek::{Signature, SigningKey};
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

criterion_group!(benches, verify);
criterion_main!(benches);

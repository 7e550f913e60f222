//! `Verifier::verify` against raw `verify_strict` on one core: a distinct
//! token each time (signature checked), and one token repeated (served by
//! the per-keyring string cache). Run: `cargo bench -p tessera-verify`.

use std::collections::HashMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
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
    let tokens: Vec<String> = (0..20_000u32)
        .map(|i| {
            let claims = Claims {
                iss: "tessera".into(),
                sub: "channel_user".into(),
                iat: now,
                exp: now + 3600,
                jti: format!("{i:022}"),
                generation: None,
            };
            token::encode(&claims, &header, &key)
        })
        .collect();
    let v = Verifier::from_parts(
        VerifierConfig::new("http://unused"),
        HashMap::from([("k".to_owned(), vk)]),
        RevocationState::default(),
    );
    let t = &tokens[0];
    let (input, sig) = t.rsplit_once('.').unwrap();
    let sig = Signature::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, sig).unwrap(),
    )
    .unwrap();
    c.bench_function("raw verify_strict", |b| {
        b.iter(|| black_box(vk.verify_strict(black_box(input.as_bytes()), &sig)))
    });
    let mut i = 0;
    c.bench_function("Verifier::verify, distinct tokens", |b| {
        b.iter(|| {
            i = (i + 1) % tokens.len();
            black_box(v.verify(&tokens[i]).is_ok())
        })
    });
    c.bench_function("Verifier::verify, one token repeated", |b| {
        b.iter(|| black_box(v.verify(black_box(t)).is_ok()))
    });
}

criterion_group!(benches, verify);
criterion_main!(benches);

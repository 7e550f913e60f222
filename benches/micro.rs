//! Micro-benchmarks of the hot-path pieces: minting a token, verifying one,
//! checking each password scheme (and a login's two checks), a store lookup
//! among 100k users, the throttle, and `last_used_at` batched or not.
//! Run: `cargo bench --bench micro` (add `-- mint` to filter).

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use tessera::domain::keys::{self, Keyring};
use tessera::domain::user::{User, Username};
use tessera::login::{login_check, password};
use tessera::service::new_jti;
use tessera::store::{Audit, RedbStore, Store};
use tessera::token::{self, Claims};

fn claims() -> Claims {
    Claims {
        iss: "tessera".into(),
        sub: "channel_user_00000000000000000000".into(),
        iat: 1_800_000_000,
        exp: 1_800_003_600,
        jti: "AAAAAAAAAAAAAAAAAAAAAA".into(),
        generation: None,
        scope: None,
        cnf: None,
    }
}

fn tokens(c: &mut Criterion) {
    let ring = Keyring::load(&keys::initial_records(1_800_000_000).unwrap()).unwrap();
    let active = ring.active();
    c.bench_function("mint (claims + jti + sign)", |b| {
        b.iter(|| {
            let mut cl = claims();
            cl.jti = new_jti();
            black_box(token::encode(&cl, &active.header_b64, active))
        })
    });
    let t = token::encode(&claims(), &active.header_b64, active);
    c.bench_function("verify (parse + verify_strict + claims)", |b| {
        b.iter(|| {
            black_box(token::verify(
                black_box(&t),
                |kid| ring.verifying_key(kid),
                "tessera",
                1_800_000_001,
                60,
            ))
        })
    });
}

fn passwords(c: &mut Criterion) {
    let pw = password::generate().unwrap();
    let fast = password::hash_generated(&pw).unwrap();
    c.bench_function("password check, generated (salted SHA-256)", |b| {
        b.iter(|| black_box(fast.verify(black_box(pw.as_bytes()))))
    });
    // A login's whole check (SPEC §15): two hashes, whatever the user holds.
    let other = password::hash_generated(&password::generate().unwrap()).unwrap();
    c.bench_function(
        "login check, generated, user mid-rotation (two SHA-256)",
        |b| {
            b.iter(|| {
                let check =
                    login_check::LoginCheck::plan(Some(&fast), Some(&other), black_box(&pw));
                black_box(check.run(pw.as_bytes()))
            })
        },
    );
    let slow = password::hash_chosen("operator chosen").unwrap();
    let mut g = c.benchmark_group("argon2id");
    g.sample_size(10);
    g.bench_function("password check, chosen (Argon2id)", |b| {
        b.iter(|| black_box(slow.verify(black_box(b"operator chosen"))))
    });
    g.finish();
}

/// Users in the store-lookup bench: `TESSERA_BENCH_USERS` (default 100k),
/// so `bench/scale.sh` can run it at each scale.
fn bench_users() -> usize {
    std::env::var("TESSERA_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn store(c: &mut Criterion) {
    let n = bench_users();
    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let hash = password::hash_generated(&password::generate().unwrap()).unwrap();
    let mut lines = String::from(
        "{\"type\":\"header\",\"format\":\"tessera-export\",\"version\":1,\"exported_at\":\"2026-01-01T00:00:00Z\"}\n",
    );
    for r in keys::initial_records(1).unwrap() {
        lines.push_str(&serde_json::json!({"type": "key", "key": r}).to_string());
        lines.push('\n');
    }
    for i in 0..n {
        let name = Username::parse(&format!("user{i:07}")).unwrap();
        let u = User::new(&name, hash.clone(), 1, 0);
        lines.push_str(&serde_json::json!({"type": "user", "user": u}).to_string());
        lines.push('\n');
    }
    lines.push_str(&format!(
        "{{\"type\":\"end\",\"users\":{n},\"keys\":2,\"revocations\":0}}\n"
    ));
    store
        .import(
            &mut lines.lines().map(|l| Ok(l.as_bytes().to_vec())),
            &|_| Audit {
                at: 1,
                action: tessera::store::Action::StoreImport,
                target: "-".into(),
                detail: String::new(),
            },
        )
        .unwrap();
    let names: Vec<Username> = (0..n)
        .map(|i| Username::parse(&format!("user{i:07}")).unwrap())
        .collect();
    let mut i = 0usize;
    c.bench_function(&format!("store lookup, {n} users (get + decode)"), |b| {
        b.iter(|| {
            i = (i + 7919) % n;
            black_box(store.user(&names[i]).unwrap())
        })
    });
}

/// The throttle's work per login: one charge and one refund, for one
/// client (a partner logging in again and again) and for clients spread
/// over a full table (a flood of addresses).
fn throttle(c: &mut Criterion) {
    use std::net::{IpAddr, Ipv4Addr};
    use std::time::{Duration, Instant};

    use tessera::login::client::ClientKey;
    use tessera::login::throttle::{DEFAULT_CAPACITY, Throttle, ThrottleConfig};

    let config = ThrottleConfig {
        failures: 10,
        window: Duration::from_secs(300),
        lockout: Duration::from_secs(60),
        max_lockout: Duration::from_secs(3600),
    };
    let throttle = Throttle::new(config, DEFAULT_CAPACITY);
    let one = ClientKey::from_ip(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)));
    let now = Instant::now();
    c.bench_function("throttle charge + refund, one client", |b| {
        b.iter(|| {
            let charge = throttle.charge(black_box(&one), now).unwrap();
            throttle.refund(&one, charge);
        })
    });
    let many: Vec<ClientKey> = (0..DEFAULT_CAPACITY as u32 * 2)
        .map(|n| ClientKey::from_ip(IpAddr::V4(Ipv4Addr::from(n))))
        .collect();
    let mut i = 0usize;
    c.bench_function(
        "throttle charge + refund, clients past the table's size",
        |b| {
            b.iter(|| {
                i = (i + 7919) % many.len();
                let charge = throttle.charge(black_box(&many[i]), now).unwrap();
                throttle.refund(&many[i], charge);
            })
        },
    );
}

/// `last_used_at` (SPEC §15) with and without batching: what a login pays
/// to note its secret's use in memory, against one durable write per login
/// (what batching avoids), and one flush of many uses in one transaction.
fn last_used(c: &mut Criterion) {
    use tessera::domain::rotation::LoginUse;
    use tessera::domain::secrets::SecretId;
    use tessera::service::PendingUses;

    let names: Vec<Username> = (0..100_000)
        .map(|i| Username::parse(&format!("user{i:07}")).unwrap())
        .collect();
    let id = SecretId::random_except(None);
    let pending = PendingUses::default();
    let mut i = 0usize;
    let mut at = 1_800_000_000u64;
    c.bench_function("last_used: note a login in memory (batched)", |b| {
        b.iter(|| {
            i = (i + 7919) % names.len();
            at += 1;
            pending.note(black_box(&names[i]), id, at);
        })
    });

    let dir = tempfile::tempdir().unwrap();
    let store = RedbStore::open(dir.path()).unwrap();
    let hash = password::hash_generated(&password::generate().unwrap()).unwrap();
    let users: Vec<User> = names[..10_000]
        .iter()
        .map(|n| User::new(n, hash.clone(), 1, 0))
        .collect();
    for u in &users {
        store
            .create_user(
                u,
                Audit {
                    at: 1,
                    action: tessera::store::Action::UserCreate,
                    target: u.username.to_string(),
                    detail: String::new(),
                },
            )
            .unwrap();
    }
    let mut g = c.benchmark_group("last_used durable");
    g.sample_size(20);
    let mut k = 0usize;
    g.bench_function("a durable write per login (unbatched)", |b| {
        b.iter(|| {
            k = (k + 1) % users.len();
            at += 1;
            let one = LoginUse {
                username: users[k].username.clone(),
                id: users[k].secret.id,
                at,
            };
            store.record_secret_uses(&[one]).unwrap();
        })
    });
    g.sample_size(10);
    g.bench_function("one flush of 10,000 logins' uses", |b| {
        b.iter(|| {
            at += 1;
            let uses: Vec<LoginUse> = users
                .iter()
                .map(|u| LoginUse {
                    username: u.username.clone(),
                    id: u.secret.id,
                    at,
                })
                .collect();
            store.record_secret_uses(&uses).unwrap();
        })
    });
    g.finish();
}

criterion_group!(benches, tokens, passwords, store, throttle, last_used);
criterion_main!(benches);

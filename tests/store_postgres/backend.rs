//! The contract and the backend's own behaviour, one fresh database per
//! test on one server per test process.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tessera::domain::keys::KeyRecord;
use tessera::domain::user::Username;
use tessera::store::contract;
use tessera::store::postgres::{PostgresStore, SCHEMA};
use tessera::store::{Store, StoreError};
use tessera::store_contract_tests;

/// One throwaway PostgreSQL per test process (`scripts/pg.sh`, stopped
/// when this process exits), one fresh database per test.
fn server() -> &'static str {
    static URL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    URL.get_or_init(|| {
        let dir = format!("/tmp/tessera-pg-unit-{}", std::process::id());
        let out = std::process::Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
            .args(["start", &dir, &std::process::id().to_string()])
            .output()
            .expect("run scripts/pg.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    })
}

pub fn fresh_database() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let url = server();
    let name = format!("contract_{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
    });
    format!("{}/{name}", url.rsplit_once('/').unwrap().0)
}

store_contract_tests!(|| {
    let store: Box<dyn Store> =
        Box::new(PostgresStore::open(&fresh_database(), Duration::from_secs(300)).unwrap());
    ((), store)
});

#[test]
fn a_newer_schema_is_refused_with_the_fix_named() {
    let url = fresh_database();
    drop(PostgresStore::open(&url, Duration::from_secs(300)).unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("UPDATE tessera_meta SET value = 99 WHERE key = 'schema_version'")
            .await
            .unwrap();
    });
    let err = PostgresStore::open(&url, Duration::from_secs(300))
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("schema version 99") && err.contains("run a matching tessera build"),
        "{err}"
    );
}

#[test]
fn another_node_sees_a_commit_within_a_second() {
    let url = fresh_database();
    let a = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
    let b = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
    let user = contract::user("shared");
    assert!(
        a.create_user(&user, contract::audit("user.create", "shared"))
            .unwrap()
    );
    let started = std::time::Instant::now();
    while b.user(&user.username).unwrap().is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node b never saw the user"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    a.revoke("j9", u64::MAX / 4, contract::audit("token.revoke", "j9"))
        .unwrap();
    a.delete_user(&user.username, contract::audit("user.delete", "shared"))
        .unwrap();
    let started = std::time::Instant::now();
    while b.user(&user.username).unwrap().is_some() || !b.is_revoked("j9") {
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "node b never saw the delete"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn concurrent_first_starts_share_one_keyring() {
    let url = fresh_database();
    let a = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
    let b = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
    let ka = tessera::domain::keys::initial_records(1).unwrap();
    let kb = tessera::domain::keys::initial_records(1).unwrap();
    let (ra, rb) = std::thread::scope(|s| {
        let ha = s.spawn(|| a.init_keys(&ka).unwrap());
        let hb = s.spawn(|| b.init_keys(&kb).unwrap());
        (ha.join().unwrap(), hb.join().unwrap())
    });
    let kids = |r: &[KeyRecord]| r.iter().map(|k| k.kid.clone()).collect::<Vec<_>>();
    assert_eq!(kids(&ra), kids(&rb));
}

#[test]
fn a_schema_1_database_is_migrated_and_then_prunes_many_users() {
    let url = fresh_database();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        // What schema 1 created: tombstones keyed by version alone.
        let schema_1 = SCHEMA.replace(
            "version bigint NOT NULL, username text COLLATE \"C\" NOT NULL,\n    PRIMARY KEY (version, username)",
            "version bigint PRIMARY KEY, username text NOT NULL",
        );
        assert_ne!(schema_1, SCHEMA);
        client.batch_execute(&schema_1).await.unwrap();
        client
            .batch_execute("INSERT INTO tessera_meta VALUES ('schema_version', 1), ('generation', 0)")
            .await
            .unwrap();
    });
    let store = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
    contract::a_batch_deletes_any_number_of_users(&store);
}

/// More users than the per-call timeout allowed row by row (50,000 took
/// over 3 s and answered 503): the import streams them with COPY.
#[test]
fn an_import_of_fifty_thousand_users_streams_through() {
    use std::fmt::Write as _;
    let url = fresh_database();
    let store = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
    contract::populate(&store, &[]);
    let mut out = Vec::new();
    store.export(&mut out, 5).unwrap();
    let template = String::from_utf8(out).unwrap();
    let one = serde_json::to_value(contract::user("x")).unwrap();
    let mut text = String::new();
    let mut keys = 0;
    for line in template.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["type"].as_str() {
            Some("header") => writeln!(text, "{line}").unwrap(),
            Some("key") => {
                keys += 1;
                writeln!(text, "{line}").unwrap();
            }
            _ => {}
        }
    }
    const N: usize = 50_000;
    for i in 0..N {
        let mut user = one.clone();
        user["username"] = format!("bulk{i:05}").into();
        writeln!(
            text,
            "{}",
            serde_json::json!({"type": "user", "user": user})
        )
        .unwrap();
    }
    writeln!(
        text,
        "{}",
        serde_json::json!({"type": "end", "users": N, "keys": keys, "revocations": 0})
    )
    .unwrap();
    let counts = store
        .import(
            &mut text
                .as_bytes()
                .split(|&b| b == b'\n')
                .map(|l| Ok(l.to_vec())),
            &|_| contract::audit("store.import", "-"),
        )
        .unwrap();
    assert_eq!(counts.users, N as u64);
    assert_eq!(store.user_count().unwrap(), N as u64);
    let last = Username::parse(&format!("bulk{:05}", N - 1)).unwrap();
    assert!(store.user(&last).unwrap().is_some());
    // Another node sees them too, without loading them all.
    let other = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
    assert_eq!(other.user_count().unwrap(), N as u64);
    assert!(other.user(&last).unwrap().is_some());
}

#[test]
fn a_keyring_change_computed_from_a_stale_read_is_refused() {
    let url = fresh_database();
    let a = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
    let b = PostgresStore::open(&url, Duration::from_secs(300)).unwrap();
    a.init_keys(&tessera::domain::keys::initial_records(1).unwrap())
        .unwrap();
    let seen_by_a = a.keys().unwrap();
    let seen_by_b = b.keys().unwrap();
    b.replace_keys(&seen_by_b, None).unwrap();
    let err = a.replace_keys(&seen_by_a, None).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err:?}");
    assert!(err.to_string().contains("changed on another node"), "{err}");
    a.keys().unwrap();
    a.replace_keys(&seen_by_a, None).unwrap();
}

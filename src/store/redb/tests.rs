use super::*;
use crate::store::Store;
use crate::store::contract::{audit, name, populate, store_contract_tests, user};
use crate::store::redb::layout::{
    JTI_TO_EXP, KID_TO_KEY, META, SCHEMA_KEY, SEQ_TO_AUDIT, USERNAME_TO_USER,
};

store_contract_tests!(|| {
    let dir = tempfile::tempdir().unwrap();
    let store: Box<dyn Store> = Box::new(RedbStore::open(dir.path()).unwrap());
    (dir, store)
});

mod in_memory {
    use super::*;

    store_contract_tests!(|| {
        let store: Box<dyn Store> = Box::new(RedbStore::in_memory().unwrap());
        ((), store)
    });
}

#[test]
fn second_open_of_same_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _first = RedbStore::open(dir.path()).unwrap();
    let err = RedbStore::open(dir.path()).err().unwrap();
    assert!(
        err.to_string()
            .contains("is in use by another tessera process"),
        "{err}"
    );
}

#[test]
fn an_existing_open_data_dir_is_narrowed_to_0700() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    fs::create_dir(&data).unwrap();
    fs::set_permissions(&data, fs::Permissions::from_mode(0o755)).unwrap();
    let _store = RedbStore::open(&data).unwrap();
    assert_eq!(
        fs::metadata(&data).unwrap().permissions().mode() & 0o777,
        0o700
    );
}

#[test]
fn users_of_schemas_2_to_5_are_migrated_to_this_layout() {
    // The old records written field by field, as those schemas' structs
    // did (postcard serialises a struct as the tuple of its fields).
    let mut old = user("a");
    old.note = Some("kept".into());
    old.expires_at = Some(4_000_000_000);
    // Before schema 6 a secret had no id; it is dated at the last change.
    old.secret = crate::domain::secrets::SecretInfo {
        created_at: old.updated_at,
        ..Default::default()
    };
    let u = old.clone();
    let v2 = (
        &u.username,
        u.status,
        u.created_at,
        u.updated_at,
        u.expires_at,
        u.token_ttl_secs,
        u.tokens_valid_after,
        &u.note,
        &u.password,
    );
    let v2_bytes = postcard::to_allocvec(&v2).unwrap();
    let v3_bytes = postcard::to_allocvec(&(v2, 7u64)).unwrap();
    let scopes = tessera_verify::scope::Scopes::new(["sync"]).unwrap();
    let v4_bytes = postcard::to_allocvec(&((v2, 7u64), &scopes)).unwrap();
    let networks =
        crate::domain::networks::AllowedNetworks::parse(&["10.0.0.0/8".to_owned()]).unwrap();
    let rate = crate::domain::token_rate::TokenRate::parse("5/min").unwrap();
    let v5_bytes = postcard::to_allocvec(&(((v2, 7u64), &scopes), &networks, Some(rate))).unwrap();
    for (schema, generation, record) in [
        (5u64, 7u64, v5_bytes),
        (4, 7, v4_bytes),
        (3, 7, v3_bytes),
        (2, 0, v2_bytes),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut old = old.clone();
        old.generation = generation;
        if schema >= 4 {
            old.scopes = scopes.clone();
        }
        if schema == 5 {
            old.allowed_networks = networks.clone();
            old.token_rate = Some(rate);
        }
        {
            let db = Database::create(dir.path().join(DB_FILE)).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(SCHEMA_KEY, schema)
                .unwrap();
            tx.open_table(USERNAME_TO_USER)
                .unwrap()
                .insert("a", record.as_slice())
                .unwrap();
            tx.open_table(KID_TO_KEY).unwrap();
            tx.open_table(JTI_TO_EXP).unwrap();
            tx.open_table(SEQ_TO_AUDIT).unwrap();
            tx.commit().unwrap();
        }
        let store = RedbStore::open(dir.path()).unwrap();
        let name = Username::parse("a").unwrap();
        assert_eq!(store.user(&name).unwrap(), Some(old), "schema {schema}");
        drop(store);
        let db = Database::open(dir.path().join(DB_FILE)).unwrap();
        let tx = db.begin_read().unwrap();
        let found = tx
            .open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(found, SCHEMA_VERSION);
    }
}

#[test]
fn another_schema_version_is_refused_with_the_path() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dir.path().join(DB_FILE)).unwrap();
        let tx = db.begin_write().unwrap();
        tx.open_table(META).unwrap().insert(SCHEMA_KEY, 99).unwrap();
        tx.commit().unwrap();
    }
    let err = RedbStore::open(dir.path()).err().unwrap();
    let text = err.to_string();
    assert!(
        text.contains("schema version 99") && text.contains(DB_FILE),
        "{text}"
    );
}

#[test]
fn data_survives_reopen_and_files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = RedbStore::open(dir.path()).unwrap();
        s.create_user(&user("a"), audit("user.create", "a"))
            .unwrap();
        s.revoke("j", 100, audit("token.revoke", "j")).unwrap();
    }
    let s = RedbStore::open(dir.path()).unwrap();
    assert!(s.user(&name("a")).unwrap().is_some());
    assert!(s.is_revoked("j"), "the revocation set is loaded at open");
    let mode = fs::metadata(s.path()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn audit_events_written_as_rfc3339_text_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(dir.path()).unwrap();
    {
        let tx = s.db().unwrap().begin_write().unwrap();
        let old = br#"{"seq":1,"at":"2026-11-27T19:43:57Z","action":"user.create","target":"a","detail":""}"#;
        tx.open_table(SEQ_TO_AUDIT)
            .unwrap()
            .insert(1, old.as_slice())
            .unwrap();
        tx.commit().unwrap();
    }
    assert_eq!(s.audit_events(None, 1).unwrap()[0].at, 1_795_808_637);
}

/// Runs `first` with a pause between reading its committed state and
/// publishing it, and `second` during that pause; returns when both did.
fn race(
    s: &RedbStore,
    first: impl FnOnce(&RedbStore) + Send,
    second: impl FnOnce(&RedbStore) + Send,
) {
    s.pause_before_publish
        .store(true, std::sync::atomic::Ordering::SeqCst);
    std::thread::scope(|scope| {
        scope.spawn(|| first(s));
        std::thread::sleep(std::time::Duration::from_millis(50));
        scope.spawn(|| second(s));
    });
}

/// A write that commits after another is what readers see once both
/// returned, even when the earlier one publishes late. Without the
/// writer lock the earlier commit's snapshot overwrites the later one.
#[test]
fn a_later_commit_is_never_hidden_by_an_earlier_publish() {
    let dir = tempfile::tempdir().unwrap();
    let s = RedbStore::open(dir.path()).unwrap();
    populate(&s, &["u"]);
    let set = |at: u64| {
        move |s: &RedbStore| {
            s.update_user(
                &name("u"),
                Box::new(move |u| u.updated_at = at),
                audit("user.update", "u"),
            )
            .unwrap();
        }
    };
    race(&s, set(1), set(2));
    assert_eq!(s.user(&name("u")).unwrap().unwrap().updated_at, 2);
    let revoke = |jti: &'static str| {
        move |s: &RedbStore| {
            s.revoke(jti, 100, audit("token.revoke", jti)).unwrap();
        }
    };
    race(&s, revoke("a"), revoke("b"));
    assert!(
        s.is_revoked("a") && s.is_revoked("b"),
        "neither revocation is lost"
    );
}

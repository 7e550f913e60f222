//! The contract every [`Store`] backend must pass: each function takes a
//! fresh, empty store. A backend runs them all with
//! `store_contract_tests!(|| -> (guard, Box<dyn Store>))`, so a new backend
//! is held to exactly the same behaviour as the embedded one.

mod feed;
mod secrets;

pub use self::feed::{
    a_follower_of_changes_misses_nothing_while_writers_race,
    each_kind_of_mutation_reaches_a_follower_of_changes,
};
pub use self::secrets::{
    an_imported_previous_secret_still_ends,
    previous_secrets_end_once_and_uses_are_recorded_without_audit,
};
use super::snapshot::BadSnapshot;
use super::{Audit, Store, StoreError, UserWrite};
use crate::domain::keys::{self, KeyStatus};
use crate::domain::networks::AllowedNetworks;
use crate::domain::token_rate::TokenRate;
use crate::domain::user::{User, Username};

/// Generates one `#[test]` per contract function for a backend; `$fresh`
/// makes a fresh empty store as `(guard, Box<dyn Store>)`.
#[macro_export]
macro_rules! store_contract_tests {
    ($fresh:expr) => {
        store_contract_tests!(@each $fresh;
            users_crud_pagination_and_audit,
            a_batch_of_user_writes_is_one_audited_transaction,
            a_batch_deletes_any_number_of_users,
            a_read_after_each_kind_of_write_sees_it,
            a_users_login_policy_is_kept_whole,
            previous_secrets_end_once_and_uses_are_recorded_without_audit,
            an_imported_previous_secret_still_ends,
            revocations_are_kept_until_exp,
            keys_are_replaced_whole_and_ordered,
            the_ttl_high_water_mark_only_rises,
            generations_only_grow_also_past_an_import,
            the_audit_log_forgets_old_events_but_never_its_position,
            a_follower_of_changes_misses_nothing_while_writers_race,
            an_export_imports_into_an_empty_store,
            an_import_is_all_or_nothing,
            an_import_refuses_names_twice_and_broken_uploads,
            each_kind_of_mutation_reaches_a_follower_of_changes
        );
    };
    (@each $fresh:expr; $($name:ident),*) => {
        mod store_contract {
            use super::*;
            $(
                #[test]
                fn $name() {
                    let (_guard, store) = ($fresh)();
                    $crate::store::contract::$name(&*store);
                }
            )*
        }
    };
}
pub use store_contract_tests;

pub fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

pub fn user(n: &str) -> User {
    User::new(
        &name(n),
        crate::login::password::hash_new("550e8400-e29b-41d4-a716-446655440000").unwrap(),
        1,
        0,
    )
}

pub fn audit(action: &str, target: &str) -> Audit {
    Audit {
        at: 1,
        action: crate::store::Action::parse(action)
            .unwrap_or_else(|| panic!("{action} is no audit action")),
        target: target.into(),
        detail: String::new(),
    }
}

pub fn lines(bytes: &[u8]) -> impl Iterator<Item = Result<Vec<u8>, String>> + '_ {
    bytes.split(|&b| b == b'\n').map(|l| Ok(l.to_vec()))
}

/// Fills `s` with `users`, a fresh keyring and revocation `j1`.
pub fn populate(s: &dyn Store, users: &[&str]) {
    s.replace_keys(&keys::initial_records(1).unwrap(), None)
        .unwrap();
    for (i, u) in users.iter().enumerate() {
        let mut record = user(u);
        if i == 0 {
            // Kept by every store and by export/import.
            record.scopes = tessera_verify::scope::Scopes::new(["content", "sync"]).unwrap();
        }
        s.create_user(&record, audit("user.create", u)).unwrap();
    }
    s.revoke("j1", 100, audit("token.revoke", "j1")).unwrap();
}

pub fn export(s: &dyn Store) -> String {
    let mut out = Vec::new();
    s.export(&mut out, 5).unwrap();
    String::from_utf8(out).unwrap()
}

pub fn import(s: &dyn Store, text: &str) -> Result<super::snapshot::ImportCounts, StoreError> {
    s.import(&mut lines(text.as_bytes()), &|_| audit("store.import", "-"))
}

pub fn users_crud_pagination_and_audit(s: &dyn Store) {
    for n in ["c", "a", "b", "d"] {
        assert!(s.create_user(&user(n), audit("user.create", n)).unwrap());
    }
    assert!(
        !s.create_user(&user("a"), audit("user.create", "a"))
            .unwrap()
    );
    let p = s.list_users(None, 3).unwrap();
    let names: Vec<&str> = p.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
    assert_eq!(p.next.as_deref(), Some("c"));
    let p = s.list_users(Some("c"), 3).unwrap();
    assert_eq!(p.items.len(), 1);
    assert_eq!(p.next, None);
    let u = s
        .update_user(
            &name("b"),
            Box::new(|u| u.note = Some("hi".into())),
            audit("user.update", "b"),
        )
        .unwrap();
    assert_eq!(u.unwrap().note.as_deref(), Some("hi"));
    assert_eq!(
        s.user(&name("b")).unwrap().unwrap().note.as_deref(),
        Some("hi")
    );
    assert!(
        s.update_user(&name("zz"), Box::new(|_| {}), audit("user.update", "zz"))
            .unwrap()
            .is_none()
    );
    assert!(
        s.delete_user(&name("b"), audit("user.delete", "b"))
            .unwrap()
    );
    assert!(
        !s.delete_user(&name("b"), audit("user.delete", "b"))
            .unwrap()
    );
    assert!(s.user(&name("b")).unwrap().is_none());
    assert_eq!(s.user_count().unwrap(), 3);
    let events = s.audit_events(None, 100).unwrap();
    assert_eq!(events.len(), 6, "failed mutations are not audited");
    assert_eq!(events[0].action, "user.delete");
    assert_eq!(events[0].at, 1);
    assert!(
        events.windows(2).all(|w| w[0].seq > w[1].seq),
        "newest first"
    );
    assert_eq!(
        s.audit_events(Some(events[0].seq), 2).unwrap()[0].seq,
        events[1].seq
    );
}

pub fn a_batch_of_user_writes_is_one_audited_transaction(s: &dyn Store) {
    populate(s, &["keep", "gone"]);
    let before = s.audit_events(None, 1).unwrap()[0].seq;
    let mut changed = user("keep");
    changed.note = Some("from the file".into());
    s.write_users(vec![
        (
            UserWrite::Put(Box::new(user("new"))),
            audit("user.create", "new"),
        ),
        (
            UserWrite::Put(Box::new(changed)),
            audit("user.update", "keep"),
        ),
        (
            UserWrite::Delete(name("gone")),
            audit("user.delete", "gone"),
        ),
    ])
    .unwrap();
    assert!(s.user(&name("new")).unwrap().is_some());
    assert!(s.user(&name("gone")).unwrap().is_none());
    assert_eq!(
        s.user(&name("keep")).unwrap().unwrap().note.as_deref(),
        Some("from the file")
    );
    let events = s.audit_events(None, 10).unwrap();
    let actions: Vec<(&str, &str)> = events[..3]
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str()))
        .collect();
    assert_eq!(
        actions,
        [
            ("user.delete", "gone"),
            ("user.update", "keep"),
            ("user.create", "new")
        ]
    );
    assert!(events[2].seq > before);
    s.write_users(Vec::new()).unwrap();
    assert_eq!(
        s.audit_events(None, 1).unwrap()[0].seq,
        events[0].seq,
        "an empty batch writes nothing"
    );
}

/// `apply --prune` deletes every user the file lacks in one batch: the
/// deletes share one transaction (one version, in cluster mode).
pub fn a_batch_deletes_any_number_of_users(s: &dyn Store) {
    let names = ["p1", "p2", "p3", "p4", "p5"];
    populate(s, &names);
    let deletes = names
        .iter()
        .map(|n| (UserWrite::Delete(name(n)), audit("user.delete", n)))
        .collect();
    s.write_users(deletes).unwrap();
    for n in names {
        assert!(s.user(&name(n)).unwrap().is_none(), "{n} is gone");
    }
    assert_eq!(s.user_count().unwrap(), 0);
    // The names can come back, and go again in another batch.
    populate(s, &names[..2]);
    s.write_users(vec![
        (UserWrite::Delete(name("p1")), audit("user.delete", "p1")),
        (UserWrite::Delete(name("p2")), audit("user.delete", "p2")),
    ])
    .unwrap();
    assert_eq!(s.user_count().unwrap(), 0);
}

/// Every field of a user survives each kind of write and an export and
/// import: its allowed networks and token rate (SPEC §15) included.
pub fn a_users_login_policy_is_kept_whole(s: &dyn Store) {
    let mut pinned = user("p");
    pinned.allowed_networks = AllowedNetworks::parse(&["2001:db8::/32", "203.0.113.0/24"]).unwrap();
    pinned.token_rate = Some(TokenRate::parse("5/min").unwrap());
    assert!(s.create_user(&pinned, audit("user.create", "p")).unwrap());
    assert_eq!(s.user(&name("p")).unwrap().as_ref(), Some(&pinned));
    let narrowed = AllowedNetworks::parse(&["203.0.113.0/25"]).unwrap();
    let set = narrowed.clone();
    s.update_user(
        &name("p"),
        Box::new(move |u| {
            u.allowed_networks = set;
            u.token_rate = None;
        }),
        audit("user.update", "p"),
    )
    .unwrap();
    let read = s.user(&name("p")).unwrap().unwrap();
    assert_eq!((read.allowed_networks, read.token_rate), (narrowed, None));
    let mut again = pinned.clone();
    again.token_rate = Some(TokenRate::parse("1/h").unwrap());
    s.write_users(vec![(
        UserWrite::Put(Box::new(again.clone())),
        audit("user.update", "p"),
    )])
    .unwrap();
    assert_eq!(s.user(&name("p")).unwrap().as_ref(), Some(&again));
    let text = export(s);
    assert!(
        text.contains("203.0.113.0/24") && text.contains("1/h"),
        "{text}"
    );
}

/// Whatever a backend keeps of users between reads (the embedded store's
/// decoded-user cache, a cluster node's replica), a read after a write
/// sees the write: logins never use a changed password or generation late.
pub fn a_read_after_each_kind_of_write_sees_it(s: &dyn Store) {
    populate(s, &["c"]);
    let read = |s: &dyn Store| s.user(&name("c")).unwrap();
    assert_eq!(read(s).unwrap().generation, 0, "read once: now held");
    s.update_user(
        &name("c"),
        Box::new(|u| u.generation = 7),
        audit("user.revoke_tokens", "c"),
    )
    .unwrap();
    assert_eq!(read(s).unwrap().generation, 7, "an update");
    // A write to another table keeps what is held, and it stays right.
    s.revoke("j2", 100, audit("token.revoke", "j2")).unwrap();
    assert_eq!(read(s).unwrap().generation, 7, "after a revocation");
    let mut batch = user("c");
    batch.generation = 9;
    s.write_users(vec![(
        UserWrite::Put(Box::new(batch)),
        audit("user.update", "c"),
    )])
    .unwrap();
    assert_eq!(read(s).unwrap().generation, 9, "a batch");
    s.delete_user(&name("c"), audit("user.delete", "c"))
        .unwrap();
    assert!(read(s).is_none(), "a delete");
    s.create_user(&user("c"), audit("user.create", "c"))
        .unwrap();
    assert_eq!(read(s).unwrap().generation, 0, "a re-creation");
    let text = export(s);
    let mut changed = user("c");
    changed.generation = 11;
    s.write_users(vec![(
        UserWrite::Put(Box::new(changed)),
        audit("user.update", "c"),
    )])
    .unwrap();
    import(s, &text).unwrap();
    assert_eq!(read(s).unwrap().generation, 0, "an import");
}

pub fn revocations_are_kept_until_exp(s: &dyn Store) {
    s.revoke("j1", 100, audit("token.revoke", "j1")).unwrap();
    s.revoke("j2", 200, audit("token.revoke", "j2")).unwrap();
    assert!(s.is_revoked("j1") && s.is_revoked("j2") && !s.is_revoked("j3"));
    assert_eq!((s.revocation("j1"), s.revocation("j3")), (Some(100), None));
    assert_eq!(s.prune_revocations(99).unwrap(), 0);
    assert_eq!(s.prune_revocations(100).unwrap(), 1);
    let page = s.list_revocations(None, 10).unwrap();
    assert_eq!(page.items, vec![("j2".to_string(), 200)]);
    assert!(!s.is_revoked("j1") && s.is_revoked("j2"));
    assert_eq!(s.revocation_count(), 1);
    s.revoke("j0", 300, audit("token.revoke", "j0")).unwrap();
    let page = s.list_revocations(None, 1).unwrap();
    assert_eq!(page.next.as_deref(), Some("j0"), "sorted by jti");
    assert_eq!(s.list_revocations(Some("j0"), 1).unwrap().items[0].0, "j2");
}

pub fn keys_are_replaced_whole_and_ordered(s: &dyn Store) {
    assert!(s.keys().unwrap().is_empty());
    let first = keys::initial_records(1).unwrap();
    s.replace_keys(&first, None).unwrap();
    let rotated = keys::rotate(&first, 400, 3600, 300, false, 0).unwrap();
    s.replace_keys(&rotated, Some(audit("key.rotate", "k")))
        .unwrap();
    let stored = s.keys().unwrap();
    let statuses: Vec<KeyStatus> = stored.iter().map(|k| k.status).collect();
    assert_eq!(
        statuses,
        [KeyStatus::Retired, KeyStatus::Active, KeyStatus::Next]
    );
    assert_eq!(stored[0].kid, first[0].kid);
    assert_eq!(s.audit_events(None, 10).unwrap().len(), 1);
}

pub fn the_ttl_high_water_mark_only_rises(s: &dyn Store) {
    assert_eq!(s.ttl_high_water().unwrap(), 0);
    s.raise_ttl_high_water(600).unwrap();
    s.raise_ttl_high_water(60).unwrap();
    assert_eq!(s.ttl_high_water().unwrap(), 600);
}

pub fn generations_only_grow_also_past_an_import(s: &dyn Store) {
    populate(s, &["a"]);
    let first = s.next_generation().unwrap();
    let second = s.next_generation().unwrap();
    assert!(first >= 1 && second > first, "{first} then {second}");
    let mut u = user("g");
    u.generation = second + 1000;
    s.create_user(&u, audit("user.create", "g")).unwrap();
    assert_eq!(
        s.user(&name("g")).unwrap().unwrap().generation,
        second + 1000
    );
    let text = export(s);
    assert!(
        text.contains(&format!("\"generation\":{}", second + 1000)),
        "{text}"
    );
    import(s, &text).unwrap();
    assert!(
        s.next_generation().unwrap() > second + 1000,
        "a generation drawn after an import passes every imported one"
    );
}

pub fn the_audit_log_forgets_old_events_but_never_its_position(s: &dyn Store) {
    let at = |t: u64, action: &'static str, target: &str| Audit {
        at: t,
        ..audit(action, target)
    };
    for (i, t) in [100, 200, 300].into_iter().enumerate() {
        let name = format!("u{i}");
        s.create_user(&user(&name), at(t, "user.create", &name))
            .unwrap();
    }
    assert_eq!(
        s.prune_audit(200, 200).unwrap(),
        1,
        "only the event before 200"
    );
    let seqs: Vec<u64> = s
        .audit_events(None, 10)
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    assert_eq!(seqs, [3, 2]);
    assert_eq!(
        s.prune_audit(10_000, 10_000).unwrap(),
        1,
        "the newest is kept"
    );
    assert_eq!(s.audit_events(None, 10).unwrap()[0].seq, 3);
    s.revoke("j", 1, at(400, "token.revoke", "j")).unwrap();
    assert_eq!(
        s.audit_events(None, 1).unwrap()[0].seq,
        4,
        "the position goes on from where it was"
    );
    let c = s.changes(Some(1), 100, 0).unwrap();
    assert!(
        !c.delta,
        "a position before the retained log gets a full view"
    );
    assert_eq!(c.head, 4);
    // Partner-caused events go sooner: those older than `partner_before`,
    // among operator events kept; never the newest.
    for (t, action, target) in [
        (500, "token.self_revoke", "p1"),
        (510, "token.revoke", "o1"),
        (520, "token.self_revoke", "p2"),
        (600, "token.self_revoke", "p3"),
        (610, "token.self_revoke", "p4"),
    ] {
        s.revoke(target, 1, at(t, action, target)).unwrap();
    }
    assert_eq!(
        s.prune_audit(300, 600).unwrap(),
        2,
        "p1 and p2; u2, at 300 exactly, stays"
    );
    let left: Vec<String> = s
        .audit_events(None, 10)
        .unwrap()
        .into_iter()
        .map(|e| e.target)
        .collect();
    assert_eq!(left, ["p4", "p3", "o1", "j", "u2"]);
    assert_eq!(
        s.prune_audit(0, 10_000).unwrap(),
        1,
        "p3; the newest is kept"
    );
    assert_eq!(s.audit_events(None, 1).unwrap()[0].target, "p4");
}

pub fn an_export_imports_into_an_empty_store(s: &dyn Store) {
    populate(s, &["a", "b"]);
    let text = export(s);
    assert!(text.lines().count() == 7, "{text}");
    let counts = import(s, &text).unwrap();
    assert_eq!((counts.users, counts.keys, counts.revocations), (2, 2, 1));
    assert_eq!(export(s), text, "an import of an export changes nothing");
    assert!(text.contains(r#""scopes":["content","sync"]"#), "{text}");
    assert_eq!(
        s.user(&name("a")).unwrap().unwrap().scopes.to_string(),
        "content sync"
    );
    let last = s.audit_events(None, 1).unwrap();
    assert_eq!(last[0].action, "store.import");
}

pub fn an_import_is_all_or_nothing(s: &dyn Store) {
    populate(s, &["keep"]);
    let text = export(s);
    let user_line = text.lines().nth(1).unwrap();
    let broken = text.replacen(user_line, "{\"type\":\"user\",\"user\":{}}", 1);
    assert!(matches!(
        import(s, &broken),
        Err(StoreError::BadSnapshot(BadSnapshot { line: 2, .. }))
    ));
    assert!(s.user(&name("keep")).unwrap().is_some());
    s.create_user(&user("gone"), audit("user.create", "gone"))
        .unwrap();
    s.revoke("j9", 100, audit("token.revoke", "j9")).unwrap();
    import(s, &text).unwrap();
    assert!(s.user(&name("keep")).unwrap().is_some());
    assert!(
        s.user(&name("gone")).unwrap().is_none(),
        "replaced, not merged"
    );
    assert!(s.is_revoked("j1") && !s.is_revoked("j9"));
}

pub fn an_import_refuses_names_twice_and_broken_uploads(s: &dyn Store) {
    populate(s, &["a"]);
    let text = export(s);
    let all: Vec<&str> = text.lines().collect();
    let user_twice = [&all[..2], &all[1..]].concat().join("\n");
    let user_twice = user_twice.replace("\"users\":1", "\"users\":2");
    let err = import(s, &user_twice).unwrap_err().to_string();
    assert!(err.contains("import line 3: user a appears twice"), "{err}");
    let rev = all
        .iter()
        .position(|l| l.contains("\"revocation\""))
        .unwrap();
    let jti_twice = [&all[..=rev], &all[rev..]].concat().join("\n");
    let jti_twice = jti_twice.replace("\"revocations\":1", "\"revocations\":2");
    let err = import(s, &jti_twice).unwrap_err().to_string();
    assert!(
        err.contains(&format!("import line {}: jti j1 appears twice", rev + 2)),
        "{err}"
    );
    let mut broken = lines(text.as_bytes())
        .take(2)
        .chain(std::iter::once(Err("the upload broke off".to_string())));
    let err = s.import(&mut broken, &|_| audit("i", "-"));
    let err = err.unwrap_err().to_string();
    assert!(err.contains("import line 3: the upload broke off"), "{err}");
    assert!(s.user(&name("a")).unwrap().is_some(), "nothing changed");
    assert!(s.is_revoked("j1"));
}

//! The contract every backend keeps for followers of [`Store::changes`]
//! (the revocation feed): nothing missed while writers race, and every
//! kind of admin mutation — an import too — reaching them.

use super::{audit, export, lines, name, populate, user};
use crate::store::{Audit, Changes, Store, UserWrite};

/// SPEC §11: a follower that asks for `changes(since)` as often as it can,
/// while three writers revoke, update and delete, ends with exactly what a
/// full view holds: the position and the content of each answer agree.
pub fn a_follower_of_changes_misses_nothing_while_writers_race(s: &dyn Store) {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    let names: Vec<String> = (0..30).map(|i| format!("u{i}")).collect();
    populate(s, &names.iter().map(String::as_str).collect::<Vec<_>>());
    // Writers that have finished; once the follower has seen all three, its
    // next answer must hold everything.
    let finished = AtomicUsize::new(0);
    let full_state = |c: &Changes| {
        let users: HashMap<String, Option<u64>> = c
            .users
            .iter()
            .map(|(n, u, _)| (n.clone(), u.as_ref().map(|u| u.updated_at)))
            .collect();
        let revoked: HashMap<String, u64> = c.revoked.iter().cloned().collect();
        (users, revoked)
    };
    let (followed, polls) = std::thread::scope(|scope| {
        for w in 0..3u64 {
            let finished = &finished;
            scope.spawn(move || {
                for i in 0..60u64 {
                    let jti = format!("w{w}-{i:03}");
                    s.revoke(&jti, u64::MAX / 4, audit("token.revoke", &jti))
                        .unwrap();
                    let target = name(&format!("u{}", w * 10 + i % 10));
                    if i % 7 == 0 {
                        s.delete_user(&target, audit("user.delete", target.as_str()))
                            .unwrap();
                    } else {
                        s.update_user(
                            &target,
                            Box::new(move |u| u.updated_at = 1_000 + i),
                            audit("user.update", target.as_str()),
                        )
                        .unwrap();
                    }
                }
                finished.fetch_add(1, Ordering::SeqCst);
            });
        }
        let follower = scope.spawn(|| {
            let first = s.changes(None, 100_000, 0).unwrap();
            let (mut users, mut revoked) = full_state(&first);
            let mut seq = first.head;
            let mut polls = 0;
            loop {
                let last = finished.load(Ordering::SeqCst) == 3;
                let c = s.changes(Some(seq), 100_000, 0).unwrap();
                assert!(c.delta, "a delta from a position the store gave");
                assert!(c.head >= seq, "the position never goes back");
                for (n, u, _) in c.users {
                    users.insert(n, u.map(|u| u.updated_at));
                }
                revoked.extend(c.revoked);
                seq = c.head;
                polls += 1;
                if last {
                    return ((users, revoked), polls);
                }
            }
        });
        follower.join().unwrap()
    });
    let whole = full_state(&s.changes(None, 100_000, 0).unwrap());
    assert_eq!(whole.1.len(), 1 + 180, "every revocation is held");
    let present = |m: &HashMap<String, Option<u64>>| {
        let mut v: Vec<_> = m.iter().filter(|(_, u)| u.is_some()).collect();
        v.sort();
        v.into_iter()
            .map(|(n, u)| (n.clone(), *u))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        present(&followed.0),
        present(&whole.0),
        "after {polls} polls the follower holds the users a full view holds"
    );
    assert_eq!(followed.1, whole.1, "and every revocation");
}

/// Every kind of admin mutation reaches a follower of [`Store::changes`]:
/// as a delta while one can span it, and in the full view an import forces
/// (users it changed or removed named, though their records carry old
/// times), on every backend.
pub fn each_kind_of_mutation_reaches_a_follower_of_changes(s: &dyn Store) {
    populate(s, &["kept", "changed", "removed", "revoked"]);
    let named = |c: &Changes| -> Vec<(String, bool)> {
        c.users
            .iter()
            .map(|(n, u, _)| (n.clone(), u.is_some()))
            .collect()
    };
    let since = s.changes(None, 100, 0).unwrap().head;
    let mut record = user("updated");
    s.create_user(&record, audit("user.create", "updated"))
        .unwrap();
    s.update_user(
        &name("changed"),
        Box::new(|u| u.generation = 3),
        audit("user.update", "changed"),
    )
    .unwrap();
    s.update_user(
        &name("changed"),
        Box::new(|_| {}),
        audit("user.password", "changed"),
    )
    .unwrap();
    s.update_user(
        &name("revoked"),
        Box::new(|u| u.generation = 5),
        audit("user.revoke_tokens", "revoked"),
    )
    .unwrap();
    record.generation = 2;
    s.write_users(vec![(
        UserWrite::Put(Box::new(record)),
        audit("user.update", "updated"),
    )])
    .unwrap();
    s.revoke("j7", 100, audit("token.revoke", "j7")).unwrap();
    s.replace_keys(&s.keys().unwrap(), Some(audit("key.rotate", "k")))
        .unwrap();
    // A delta holds every event after `since` or is no delta at all.
    for max_events in [1, 6] {
        let cut = s.changes(Some(since), max_events, 0).unwrap();
        assert!(!cut.delta, "7 events do not fit in {max_events}");
    }
    let delta = s.changes(Some(since), 7, 0).unwrap();
    assert!(delta.delta);
    assert_eq!(
        named(&delta),
        [
            ("changed".into(), true),
            ("revoked".into(), true),
            ("updated".into(), true)
        ]
    );
    assert_eq!(delta.revoked, [("j7".to_owned(), 100)]);
    s.delete_user(&name("updated"), audit("user.delete", "updated"))
        .unwrap();
    let delta = s.changes(Some(delta.head), 100, 0).unwrap();
    assert_eq!(named(&delta), [("updated".into(), false)]);

    // An import: records keep their old times, so only its events say who
    // changed. Users are created at 1, before the horizon below.
    let mut text = String::new();
    for line in export(s).lines() {
        if line.contains(r#""username":"removed""#) {
            continue;
        }
        let line = line.replace(r#""users":4"#, r#""users":3"#);
        text.push_str(&line);
        text.push('\n');
    }
    s.update_user(
        &name("changed"),
        Box::new(|u| u.generation = 9),
        audit("user.update", "changed"),
    )
    .unwrap();
    let before = s.changes(None, 100, 0).unwrap().head;
    let at_10 = |_| Audit {
        at: 10,
        ..audit("store.import", "-")
    };
    s.import(&mut lines(text.as_bytes()), &at_10).unwrap();
    // The horizon is the import's own time: an event at it counts.
    let after = s.changes(Some(before), 100, 10).unwrap();
    assert!(!after.delta, "an import makes a full view");
    assert_eq!(
        named(&after),
        [("changed".into(), true), ("removed".into(), false)],
        "the changed and the removed user, not the unchanged ones"
    );
    let earlier = s.changes(Some(before), 100, 9).unwrap();
    assert_eq!(
        named(&earlier),
        named(&after),
        "events after the horizon count"
    );
    let events = s.audit_events(None, 3).unwrap();
    let events: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| (e.action.as_str(), e.target.as_str(), e.detail.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("store.import", "-", ""),
            ("user.import", "removed", "removed"),
            ("user.import", "changed", "changed")
        ]
    );
}

//! The contract of a store's secret bookkeeping (SPEC §15): previous
//! secrets end once, found wherever a write put them (an update, a batch,
//! an import), and logins' uses are recorded without audit events.

use super::{audit, export, import, name, populate, user};
use crate::domain::rotation::LoginUse;
use crate::domain::secrets::{Grace, SecretInfo};
use crate::domain::user::User;
use crate::store::{Store, UserWrite};

fn rotated(mut u: User, at: u64, grace: &str) -> User {
    let hash = u.password.clone();
    u.rotate(
        hash,
        SecretInfo::new(at, Some(u.secret.id)),
        Grace::parse(grace).unwrap(),
    );
    u
}

fn audit_count(s: &dyn Store) -> usize {
    s.audit_events(None, 1000).unwrap().len()
}

pub fn previous_secrets_end_once_and_uses_are_recorded_without_audit(s: &dyn Store) {
    for n in ["a", "b", "c"] {
        assert!(s.create_user(&user(n), audit("user.create", n)).unwrap());
    }
    // a by an update, b by a batch: both ways a rotation may be written.
    let a = rotated(user("a"), 100, "50s");
    let stored = a.clone();
    s.update_user(
        &name("a"),
        Box::new(move |u| *u = stored),
        audit("user.secret.rotate", "a"),
    )
    .unwrap();
    let b = rotated(user("b"), 100, "1000s");
    s.write_users(vec![(
        UserWrite::Put(Box::new(b.clone())),
        audit("user.secret.rotate", "b"),
    )])
    .unwrap();
    assert_eq!(s.expire_secrets(149).unwrap(), []);

    let events = audit_count(s);
    let a_previous = a.previous_secret.as_ref().unwrap().info.id;
    s.record_secret_uses(&[
        LoginUse {
            username: name("a"),
            id: a_previous,
            at: 120,
        },
        LoginUse {
            username: name("a"),
            id: a.secret.id,
            at: 130,
        },
        LoginUse {
            username: name("c"),
            id: s.user(&name("c")).unwrap().unwrap().secret.id,
            at: 140,
        },
        LoginUse {
            username: name("gone"),
            id: a.secret.id,
            at: 140,
        },
        LoginUse {
            username: name("b"),
            id: a.secret.id,
            at: 140,
        },
    ])
    .unwrap();
    assert_eq!(audit_count(s), events, "a login is no audited change");
    let read = s.user(&name("a")).unwrap().unwrap();
    assert_eq!(
        read.previous_secret.as_ref().unwrap().info.last_used_at,
        Some(120)
    );
    assert_eq!(read.secret.last_used_at, Some(130));
    assert_eq!(read.last_login_at, Some(130));
    assert_eq!(
        s.user(&name("c")).unwrap().unwrap().last_login_at,
        Some(140)
    );
    assert_eq!(
        s.user(&name("b")).unwrap().unwrap().last_login_at,
        None,
        "a secret b never held"
    );

    assert_eq!(s.expire_secrets(150).unwrap(), [name("a")]);
    assert_eq!(s.expire_secrets(150).unwrap(), [], "once");
    let read = s.user(&name("a")).unwrap().unwrap();
    assert!(read.previous_secret.is_none());
    assert_eq!(read.secret.last_used_at, Some(130), "the rest is kept");
    let newest = &s.audit_events(None, 1).unwrap()[0];
    assert_eq!(
        (newest.action.as_str(), newest.target.as_str()),
        ("user.secret.expire", "a")
    );
    assert!(
        newest.detail.contains(&a_previous.to_string()),
        "{}",
        newest.detail
    );

    // Rotated again after it was listed as due: the later grace holds.
    let again = rotated(read, 200, "10s");
    s.update_user(
        &name("a"),
        Box::new(move |u| *u = again),
        audit("user.secret.rotate", "a"),
    )
    .unwrap();
    assert_eq!(s.expire_secrets(209).unwrap(), []);
    assert_eq!(s.expire_secrets(210).unwrap(), [name("a")]);

    // A grace that ended long before the pass still ends (minutes late).
    let c = rotated(s.user(&name("c")).unwrap().unwrap(), 300, "10s");
    s.update_user(
        &name("c"),
        Box::new(move |u| *u = c),
        audit("user.secret.rotate", "c"),
    )
    .unwrap();
    assert_eq!(s.expire_secrets(1000).unwrap(), [name("c")]);

    // A deleted user's listing ends quietly.
    assert!(
        s.delete_user(&name("b"), audit("user.delete", "b"))
            .unwrap()
    );
    let events = audit_count(s);
    assert_eq!(s.expire_secrets(5000).unwrap(), []);
    assert_eq!(audit_count(s), events);
}

pub fn an_imported_previous_secret_still_ends(s: &dyn Store) {
    populate(s, &["a"]);
    let a = rotated(s.user(&name("a")).unwrap().unwrap(), 100, "50s");
    s.write_users(vec![(
        UserWrite::Put(Box::new(a)),
        audit("user.secret.rotate", "a"),
    )])
    .unwrap();
    let text = export(s);
    assert!(
        s.delete_user(&name("a"), audit("user.delete", "a"))
            .unwrap()
    );
    import(s, &text).unwrap();
    assert!(
        s.user(&name("a"))
            .unwrap()
            .unwrap()
            .previous_secret
            .is_some()
    );
    assert_eq!(s.expire_secrets(150).unwrap(), [name("a")]);
}

//! The use cases with a fixed clock: account rules, revoke-all in its own
//! second, re-created users, revocation pruning and key rotation pacing.
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;

use std::sync::Arc;

use super::*;
use crate::domain::user::{AccountError, AccountStatus, Username};
use crate::login::client::Client;
use crate::login::throttle::ThrottleConfig;
use crate::runtime::time::Clock;
use crate::store::RedbStore;
use crate::token::TokenError;

const T0: u64 = 1_900_000_000;

fn service(dir: &std::path::Path, clock: Clock) -> Service {
    service_with_queue(dir, clock, 64)
}

fn service_with_queue(dir: &std::path::Path, clock: Clock, hash_queue: usize) -> Service {
    let store = Arc::new(RedbStore::open(dir).unwrap());
    Service::start(
        store,
        Settings {
            issuer: "tessera".into(),
            default_ttl_secs: 3600,
            clock_leeway_secs: 60,
            audit_retention_secs: 400 * 86_400,
            throttle: ThrottleConfig {
                failures: 10,
                window: Duration::from_secs(300),
                lockout: Duration::from_secs(60),
                max_lockout: Duration::from_secs(3600),
            },
            hash_queue,
        },
        clock,
    )
    .unwrap()
}

fn name(n: &str) -> Username {
    Username::parse(n).unwrap()
}

fn local() -> Client {
    Client::from_ip(std::net::Ipv4Addr::LOCALHOST.into())
}

async fn user_with_token(s: &Service, name: &str) -> String {
    let (_, pw) = s
        .create_user(NewUser {
            username: name.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    s.issue_token(&local(), name, &pw.unwrap(), None, None)
        .await
        .unwrap()
        .token
}

#[tokio::test]
async fn issue_then_verify_and_account_rules() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0);
    let s = service(dir.path(), clock.clone());
    let t = user_with_token(&s, "alice").await;
    let c = s.verify_bearer(&t).unwrap();
    assert_eq!((c.sub.as_str(), c.iat, c.exp), ("alice", T0, T0 + 3600));

    s.patch_user(
        &name("alice"),
        UserPatch {
            status: Some(AccountStatus::Disabled),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Account(AccountError::Disabled))
    ));
    s.patch_user(
        &name("alice"),
        UserPatch {
            status: Some(AccountStatus::Active),
            expires_at: Some(Some(T0 + 10)),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(s.verify_bearer(&t).is_ok());
    clock.set(T0 + 10);
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Account(AccountError::Expired))
    ));
    s.patch_user(
        &name("alice"),
        UserPatch {
            expires_at: Some(None),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    clock.set(T0 + 3600);
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Token(TokenError::Expired))
    ));
}

#[tokio::test]
async fn recreated_user_does_not_revive_old_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0);
    let s = service(dir.path(), clock.clone());
    let t = user_with_token(&s, "bob").await;
    s.delete_user(&name("bob")).await.unwrap();
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Account(AccountError::Deleted))
    ));
    clock.set(T0 + 1);
    user_with_token(&s, "bob").await;
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Account(AccountError::Revoked))
    ));
}

#[tokio::test]
async fn revoke_all_kills_tokens_of_the_same_second() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0);
    let s = service(dir.path(), clock.clone());
    let t = user_with_token(&s, "carol").await;
    s.revoke_user_tokens(&name("carol")).await.unwrap();
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Account(AccountError::Revoked))
    ));
    clock.set(T0 + 1);
    let pw = s.set_password(&name("carol"), None).await.unwrap().unwrap();
    let t2 = s
        .issue_token(&local(), "carol", &pw, None, None)
        .await
        .unwrap()
        .token;
    assert!(s.verify_bearer(&t2).is_ok());
}

#[tokio::test]
async fn revoked_jti_is_refused_and_pruned_after_exp() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0);
    let s = service(dir.path(), clock.clone());
    let t = user_with_token(&s, "dave").await;
    s.revoke_token(RevokeTarget::Token(t.clone()))
        .await
        .unwrap();
    assert!(matches!(
        s.verify_bearer(&t),
        Err(VerifyError::Account(AccountError::Revoked))
    ));
    assert!(
        s.revoke_token(RevokeTarget::Token("junk".into()))
            .await
            .is_err()
    );
    assert_eq!(s.prune().await.revocations, 0);
    clock.set(T0 + 3600);
    assert_eq!(s.prune().await.revocations, 1);
    assert!(s.list_revocations(None, 10).unwrap().items.is_empty());
}

#[tokio::test]
async fn rotation_keeps_old_tokens_until_retention_ends() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0);
    let s = service(dir.path(), clock.clone());
    let old = user_with_token(&s, "erin").await;
    assert!(matches!(
        s.rotate_keys(false).await,
        Err(AdminError::Conflict(_))
    ));
    clock.set(T0 + JWKS_MAX_AGE_SECS);
    let keys = s.rotate_keys(false).await.unwrap();
    assert_eq!(keys.len(), 3);
    assert!(s.verify_bearer(&old).is_ok());
    let pw = s.set_password(&name("erin"), None).await.unwrap().unwrap();
    let new = s
        .issue_token(&local(), "erin", &pw, None, None)
        .await
        .unwrap()
        .token;
    assert_ne!(new.split('.').next(), old.split('.').next(), "new kid");
    clock.set(T0 + JWKS_MAX_AGE_SECS + 3600);
    let jwks_before: serde_json::Value = serde_json::from_str(&s.jwks()).unwrap();
    assert_eq!(jwks_before["keys"].as_array().unwrap().len(), 3);
    assert_eq!(s.prune().await.keys, 1);
    assert_eq!(s.keys().unwrap().len(), 2);
    let jwks: serde_json::Value = serde_json::from_str(&s.jwks()).unwrap();
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        2,
        "the dropped key leaves the JWKS"
    );
}

#[test]
fn jtis_are_128_random_bits() {
    let a = new_jti();
    let b = new_jti();
    assert_ne!(a, b);
    assert_eq!(B64.decode(&a).unwrap().len(), 16, "{a}");
    assert_eq!(a.len(), 22);
}

#[tokio::test]
async fn only_the_right_password_of_either_scheme_gets_a_token() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path(), Clock::fixed(T0));
    let (_, generated) = s
        .create_user(NewUser {
            username: "fast".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let generated = generated.unwrap();
    s.create_user(NewUser {
        username: "slow".into(),
        password: Some("operator-chosen".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    let issue = |user: &'static str, pw: String| {
        let s = &s;
        async move { s.issue_token(&local(), user, &pw, None, None).await }
    };
    assert!(issue("fast", generated.to_string()).await.is_ok());
    assert!(issue("slow", "operator-chosen".into()).await.is_ok());
    for (user, pw) in [
        ("fast", "1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
        ("fast", "not-a-uuid"),
        ("slow", "operator-chosen!"),
        ("slow", "1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
        ("nobody", "operator-chosen"),
        ("nobody", "1b4e28ba-2fa1-41d2-883f-0016d3cca427"),
    ] {
        assert!(
            matches!(
                issue(user, pw.into()).await,
                Err(IssueError::InvalidCredentials)
            ),
            "{user} / {pw}"
        );
    }
}

#[tokio::test]
async fn fast_logins_never_wait_behind_argon2id_work() {
    let dir = tempfile::tempdir().unwrap();
    let s = service_with_queue(dir.path(), Clock::fixed(T0), 1);
    let (_, generated) = s
        .create_user(NewUser {
            username: "fast".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    s.create_user(NewUser {
        username: "slow".into(),
        password: Some("operator-chosen".into()),
        ..Default::default()
    })
    .await
    .unwrap();
    // Occupy every hashing thread, then the one queue slot.
    let (release, released) = std::sync::mpsc::channel::<()>();
    let released = std::sync::Arc::new(std::sync::Mutex::new(released));
    let (started_tx, started) = std::sync::mpsc::channel::<()>();
    for _ in 0..crate::login::hash_pool::HashPool::default_threads() {
        let (released, started_tx) = (released.clone(), started_tx.clone());
        s.hash_pool.spawn(move || {
            started_tx.send(()).unwrap();
            let _ = released.lock().unwrap().recv();
        });
        started
            .recv_timeout(Duration::from_secs(10))
            .expect("a hashing thread took the blocker");
    }
    s.hash_pool.spawn(|| {});
    let fast = s
        .issue_token(&local(), "fast", &generated.unwrap(), None, None)
        .await;
    assert!(fast.is_ok(), "the fast scheme never touches the pool");
    let slow = s
        .issue_token(&local(), "slow", "operator-chosen", None, None)
        .await;
    assert!(matches!(slow, Err(IssueError::Busy)), "{slow:?}");
    drop(release);
}

/// A wall clock that steps back an hour must not block rotation for that
/// hour: the next key's age is also measured by a clock that never steps.
#[tokio::test(start_paused = true)]
async fn a_clock_stepped_back_delays_rotation_by_the_max_age_at_most() {
    let dir = tempfile::tempdir().unwrap();
    let clock = Clock::fixed(T0 + 3600);
    let s = service(dir.path(), clock.clone());
    clock.set(T0);
    assert!(
        matches!(s.rotate_keys(false).await, Err(AdminError::Conflict(_))),
        "published just now"
    );
    tokio::time::advance(Duration::from_secs(JWKS_MAX_AGE_SECS)).await;
    assert!(
        s.rotate_keys(false).await.is_ok(),
        "the next key has been published for the max-age, whatever the wall clock says"
    );
    // The new next key is measured from its own publication.
    assert!(matches!(
        s.rotate_keys(false).await,
        Err(AdminError::Conflict(_))
    ));
}

#[test]
fn the_longest_token_ttl_is_the_high_water_mark_never_below_the_default() {
    let settings = Settings {
        issuer: "tessera".into(),
        default_ttl_secs: 3600,
        clock_leeway_secs: 60,
        audit_retention_secs: 86_400,
        throttle: ThrottleConfig {
            failures: 10,
            window: Duration::from_secs(300),
            lockout: Duration::from_secs(60),
            max_lockout: Duration::from_secs(3600),
        },
        hash_queue: 1,
    };
    assert_eq!(settings.longest_token_ttl(0), 3600, "never recorded");
    assert_eq!(settings.longest_token_ttl(600), 3600);
    assert_eq!(settings.longest_token_ttl(7200), 7200);
}

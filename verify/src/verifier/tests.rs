use super::fetch::max_age;
use super::*;

#[tokio::test]
async fn unknown_kids_ask_for_the_jwks_at_most_every_30_seconds() {
    let v = Verifier::from_parts(
        VerifierConfig::new("http://unused"),
        HashMap::new(),
        RevocationState::default(),
    );
    async fn asked(v: &Verifier) -> bool {
        tokio::time::timeout(Duration::from_millis(20), v.wake.notified())
            .await
            .is_ok()
    }
    v.unknown_kid();
    assert!(asked(&v).await, "the first unknown kid wakes the poller");
    v.unknown_kid();
    assert!(!asked(&v).await, "a second one within 30 s does not");
    *v.last_kid_refetch.lock() = Some(Instant::now() - UNKNOWN_KID_REFETCH);
    v.unknown_kid();
    assert!(asked(&v).await, "after 30 s it does again");
}

#[test]
fn endpoints_are_joined_under_the_base_url_whatever_its_slashes() {
    let urls = |base: &str| {
        let (jwks, feed) = VerifierConfig::new(base).endpoints().unwrap();
        (jwks.to_string(), feed.to_string())
    };
    for base in ["https://auth.example.com", "https://auth.example.com/"] {
        assert_eq!(
            urls(base),
            (
                "https://auth.example.com/.well-known/jwks.json".into(),
                "https://auth.example.com/revocations".into()
            )
        );
    }
    for base in ["http://gw:8080/tessera", "http://gw:8080/tessera/"] {
        assert_eq!(
            urls(base),
            (
                "http://gw:8080/tessera/.well-known/jwks.json".into(),
                "http://gw:8080/tessera/revocations".into()
            )
        );
    }
    let bad = VerifierConfig::new("auth.example.com").endpoints();
    assert!(matches!(bad, Err(FetchError::Config(m)) if m.contains("auth.example.com")));
}

#[test]
fn max_age_is_read_from_cache_control() {
    assert_eq!(
        max_age(Some("public, max-age=300")),
        Some(Duration::from_secs(300))
    );
    assert_eq!(max_age(Some("no-store")), None);
    assert_eq!(max_age(None), None);
}

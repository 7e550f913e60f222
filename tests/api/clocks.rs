//! SPEC §10, clocks: whatever the issuer's, the revoker's and the
//! verifier's clocks do, a token issued before a revoke-all, delete or
//! re-creation is refused once it has propagated, and one issued after it
//! is accepted at once. The app's clock is stepped back here as NTP steps
//! a host that ran ahead; `tests/process/clocks.rs` does it to real
//! processes with libfaketime.

use std::sync::Arc;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::json;
use tessera_verify::verifier::{Verifier, VerifierConfig};

use crate::helpers::{TestApp, claims_of, spawn_app};

const HOUR: u64 = 3600;

/// A `tessera-verify` verifier of this app whose clock is `offset` seconds
/// off the app's (negative: behind).
async fn verifier_with_offset(app: &TestApp, offset: i64) -> Arc<Verifier> {
    let clock = app.clock_handle();
    let mut config = VerifierConfig::new(app.partner.clone());
    config.feed_token = Some(app.feed_token());
    config.clock = Arc::new(move || clock.now().saturating_add_signed(offset));
    config.max_staleness = Duration::from_secs(86_400);
    let v = Verifier::new(config);
    v.refresh().await.unwrap();
    v
}

#[tokio::test]
async fn a_fresh_login_verifies_after_the_clock_steps_back_an_hour() {
    let app = spawn_app().await;
    // The host ran an hour ahead while the user was made.
    app.advance(HOUR);
    let pw = app.create_user("ahead").await;
    let early = app.token_for("ahead", &pw).await;
    // NTP steps it back.
    app.step_back(HOUR);
    let fresh = app.token_for("ahead", &pw).await;
    assert_eq!(
        app.verify(&fresh).await.status(),
        StatusCode::OK,
        "a token issued now is good although its iat is before the user's created_at"
    );
    let v = verifier_with_offset(&app, 0).await;
    assert_eq!(
        v.verify(&fresh).unwrap().sub,
        "ahead",
        "and tessera-verify agrees"
    );
    // The token stamped by the clock that was ahead has an iat an hour in
    // the future now: past the leeway, it waits until the clock catches up.
    assert!(app.verify_rejection(&early).await.contains("not yet valid"));
}

#[tokio::test]
async fn a_revoke_all_while_the_clock_is_behind_kills_tokens_stamped_ahead() {
    let app = spawn_app().await;
    let pw = app.create_user("victim").await;
    app.advance(HOUR);
    let stamped_ahead: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(app.token_for("victim", &pw).await);
        }
        v
    };
    app.step_back(HOUR);
    let r = app
        .admin_post("/admin/users/victim/revoke", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let after = app.token_for("victim", &pw).await;
    let v = verifier_with_offset(&app, 0).await;
    // Once the clock has caught up, the earlier tokens must still be dead.
    app.advance(HOUR + 1);
    for t in &stamped_ahead {
        assert!(app.verify_rejection(t).await.contains("token revoked"));
        assert_eq!(v.verify(t).unwrap_err().to_string(), "token revoked");
    }
    // Same for delete and re-create under a clock that stepped back.
    let _ = after;
    app.step_back(2 * HOUR);
    app.admin_delete("/admin/users/victim").await;
    let pw = app.create_user("victim").await;
    let recreated = app.token_for("victim", &pw).await;
    assert_eq!(app.verify(&recreated).await.status(), StatusCode::OK);
    app.advance(2 * HOUR);
    for t in &stamped_ahead {
        assert!(app.verify_rejection(t).await.contains("token revoked"));
    }
}

#[tokio::test]
async fn a_verifier_whose_clock_is_behind_accepts_fresh_tokens_within_the_leeway() {
    let app = spawn_app().await;
    let pw = app.create_user("partner").await;
    let behind = verifier_with_offset(&app, -2).await;
    let far_behind = verifier_with_offset(&app, -61).await;
    for _ in 0..20 {
        let t = app.token_for("partner", &pw).await;
        assert_eq!(behind.verify(&t).unwrap().sub, "partner");
        assert_eq!(
            far_behind.verify(&t).unwrap_err().to_string(),
            "token not yet valid",
            "past the 60 s leeway"
        );
    }
    // exp stays strict: the leeway never stretches a token's life.
    let t = app.token_for("partner", &pw).await;
    let exp = claims_of(&t)["exp"].as_u64().unwrap();
    app.advance(exp - app.now());
    assert!(app.verify_rejection(&t).await.contains("expired"));
}

#[tokio::test]
async fn the_leeway_is_configurable() {
    let app = crate::helpers::spawn_app_with(&["--clock-leeway", "0s"]).await;
    let pw = app.create_user("strict").await;
    let t = app.token_for("strict", &pw).await;
    app.step_back(1);
    assert!(app.verify_rejection(&t).await.contains("not yet valid"));
}

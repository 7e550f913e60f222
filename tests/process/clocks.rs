//! SPEC §10 with real clocks: processes whose wall clock libfaketime moves
//! (`FAKETIME_DONT_FAKE_MONOTONIC=1`, so only the wall clock jumps, as NTP
//! makes it). A server that steps back an hour, and a partner service 2 s
//! behind Tessera; the two cluster nodes 2 s apart are in `cluster.rs`.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestProcess, spawn_on_with_env, spawn_process};

/// libfaketime, installed from Debian's `faketime` package when missing.
fn libfaketime() -> PathBuf {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ensure-tools.sh");
    let status = Command::new("bash")
        .args([script, "faketime=faketime"])
        .status()
        .expect("ensure-tools runs");
    assert!(status.success(), "installing faketime failed");
    let found = std::fs::read_dir("/usr/lib")
        .unwrap()
        .filter_map(Result::ok)
        .map(|d| d.path().join("faketime/libfaketimeMT.so.1"))
        .find(|p| p.exists());
    found.expect("libfaketimeMT.so.1 under /usr/lib/*/faketime")
}

/// A wall-clock offset for the processes started with [`FakeClock::env`],
/// which can be changed while they run (they re-read it within a second).
pub struct FakeClock {
    file: PathBuf,
    _dir: tempfile::TempDir,
    lib: PathBuf,
}

impl FakeClock {
    /// An offset such as `-2s` or `+1h`.
    pub fn new(offset: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("faketime");
        std::fs::write(&file, offset).unwrap();
        Self {
            file,
            _dir: dir,
            lib: libfaketime(),
        }
    }

    /// Moves the clock of every process using it.
    pub fn set(&self, offset: &str) {
        std::fs::write(&self.file, offset).unwrap();
    }

    /// The offset file (a helper process may move the clock through it).
    pub fn file(&self) -> &std::path::Path {
        &self.file
    }

    /// The environment that puts a process on this clock.
    pub fn env(&self) -> Vec<(&'static str, &str)> {
        vec![
            ("LD_PRELOAD", self.lib.to_str().unwrap()),
            ("FAKETIME_TIMESTAMP_FILE", self.file.to_str().unwrap()),
            ("FAKETIME_CACHE_DURATION", "1"),
            ("FAKETIME_DONT_FAKE_MONOTONIC", "1"),
        ]
    }
}

/// Unix seconds by the server's clock: the `iat` of a token it issues
/// now (hyper's `Date` header is cached until the clock passes its next
/// second, so it stands still for an hour after a step back).
async fn server_now(app: &TestProcess, clock_user: &(String, String)) -> u64 {
    let t = app.token_for(&clock_user.0, &clock_user.1).await;
    crate::http::claims_of(&t)["iat"].as_u64().unwrap()
}

fn real_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits (up to 10 s) until the server's clock is `offset` seconds off ours.
async fn until_offset(app: &TestProcess, clock_user: &(String, String), offset: i64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let off = server_now(app, clock_user).await as i64 - real_now() as i64;
        if (off - offset).abs() <= 2 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "clock offset {off}, wanted {offset}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_server_whose_clock_steps_back_an_hour_keeps_both_invariants() {
    let clock = FakeClock::new("+1h");
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let app = spawn_on_with_env(&data_dir, &["--token-ttl", "3h"], &clock.env())
        .unwrap_or_else(|(s, log)| panic!("did not start ({s:?}):\n{log}"));
    let clock_user = ("clock".to_owned(), app.create_user("clock").await);
    until_offset(&app, &clock_user, 3600).await;
    let pw = app.create_user("ahead").await;
    let stamped_ahead = app.token_for("ahead", &pw).await;

    clock.set("+0");
    until_offset(&app, &clock_user, 0).await;
    let fresh = app.token_for("ahead", &pw).await;
    assert_eq!(
        app.verify(&fresh).await.status(),
        StatusCode::OK,
        "a fresh login's token after the step back: {}",
        app.verify_rejection(&fresh).await
    );
    let r = app.admin_post("/admin/users/ahead/revoke", json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    let after = app.token_for("ahead", &pw).await;
    assert_eq!(app.verify(&after).await.status(), StatusCode::OK);

    // The clock runs ahead again: what the revoke-all killed stays dead.
    clock.set("+1h");
    until_offset(&app, &clock_user, 3600).await;
    for t in [&stamped_ahead, &fresh] {
        assert!(
            app.verify_rejection(t).await.contains("token revoked"),
            "{}",
            app.verify_rejection(t).await
        );
    }
}

#[tokio::test]
async fn a_partner_service_two_seconds_behind_accepts_fresh_tokens() {
    let app = spawn_process().await;
    let pw = app.create_user("partner").await;
    let clock = FakeClock::new("-2s");
    let (mut child, addr) =
        crate::partner_service::start_partner_service(&app, &[], &clock.env()).await;
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let whoami = format!("http://{addr}/whoami");
    let mut accepted = 0;
    for _ in 0..20 {
        let t = app.token_for("partner", &pw).await;
        let r = client.get(&whoami).bearer_auth(&t).send().await.unwrap();
        if r.status() == StatusCode::OK {
            accepted += 1;
        } else {
            eprintln!("refused: {:?}", r.headers().get("www-authenticate"));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        accepted, 20,
        "fresh tokens accepted by a service 2 s behind"
    );
}

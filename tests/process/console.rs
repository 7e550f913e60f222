//! The admin console in a real browser (SPEC §16): headless Chromium from
//! Debian's packages, driven by Playwright for Python by the names on the
//! page (`tests/console/browser.py`). Chromium and Playwright are installed
//! by the project's scripts when missing — never a reason to skip. The
//! screenshots land in `target/tmp/console-screenshots/` (the ones in
//! `docs/console/` were copied from a run).

use std::io::Write;
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::Value;

use crate::clocks::FakeClock;
use crate::helpers::spawn_process_with_env;

fn python_has_playwright() -> bool {
    Command::new("python3")
        .args(["-c", "import playwright.sync_api"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Debian's Chromium (its own package, no browser download) and
/// Playwright for Python.
fn ensure_browser() {
    let tools = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ensure-tools.sh");
    let status = Command::new("bash")
        .args([tools, "chromium=chromium"])
        .status()
        .expect("bash runs");
    assert!(status.success(), "could not install Debian's chromium");
    if !python_has_playwright() {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "playwright"])
            .output()
            .expect("python3 -m pip runs");
        assert!(
            out.status.success() && python_has_playwright(),
            "could not install Playwright for Python: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[tokio::test]
async fn an_operator_runs_the_console_in_a_real_browser() {
    tokio::task::spawn_blocking(ensure_browser).await.unwrap();
    // On a clock the browser script moves, to see an idle session end.
    let clock = FakeClock::new("+0s");
    let app = spawn_process_with_env(&clock.env()).await;
    let faketime = clock.file().to_str().unwrap().to_owned();
    for i in 0..55 {
        app.create_user(&format!("hotel{i:02}")).await;
    }
    let shots = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&shots).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/console/browser.py");
    let (base, token) = (app.admin.clone(), app.admin_token.clone());
    let shots_arg = shots.to_str().unwrap().to_owned();
    let out = tokio::task::spawn_blocking(move || {
        let mut child = Command::new("python3")
            .args([script, &base, &shots_arg, &faketime])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python3 runs");
        // The admin token through stdin, never argv.
        writeln!(child.stdin.take().unwrap(), "{token}").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the browser run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        seen["foreign_requests"],
        serde_json::json!([]),
        "nothing from another origin"
    );
    assert_eq!(
        seen["csp_reports"],
        serde_json::json!([]),
        "no CSP violation"
    );

    // What the browser was shown works as a partner's password.
    let rotated = seen["passwords"]["rotated"].as_str().unwrap();
    let created = seen["passwords"]["created"].as_str().unwrap();
    assert_ne!(rotated, created);
    let nojs = seen["passwords"]["without_javascript"].as_str().unwrap();
    assert_eq!(
        app.generate_token("nojs", nojs).await.status(),
        StatusCode::OK
    );
    // acme was deleted at the end of the run; the forged post made nothing.
    assert_eq!(
        app.admin_get("/admin/users/acme").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.admin_get("/admin/users/forged").await.status(),
        StatusCode::NOT_FOUND
    );
    for shot in [
        "sign-in",
        "partners",
        "new-password",
        "partner",
        "keys",
        "audit",
    ] {
        assert!(shots.join(format!("{shot}.png")).exists(), "{shot}.png");
    }
}

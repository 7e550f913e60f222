//! SPEC §8's sample service, `tessera-verify`'s `partner_service` example,
//! end to end against a real Tessera: a token passes `/whoami`, no token
//! gets the bare challenge, and once the token is revoked the service
//! refuses it after its next poll of the feed, without asking `/verify`.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestProcess, eventually, spawn_process};

/// The sample services: the warp one, and the axum one (feature `axum`).
const WARP: (&str, &str) = ("partner_service", "warp");
const AXUM: (&str, &str) = ("axum_service", "axum");

fn build_example((name, features): (&str, &str)) -> std::path::PathBuf {
    let out = Command::new(env!("CARGO"))
        .args([
            "build",
            "-q",
            "-p",
            "tessera-verify",
            "--features",
            features,
            "--example",
            name,
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target"));
    target.join("debug/examples").join(name)
}

/// Builds and starts `partner_service` against `app` (with its feed
/// token), with extra flags and environment; returns it and its address.
pub async fn start_partner_service(
    app: &TestProcess,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    start_sample(WARP, app, args, env).await
}

async fn start_sample(
    example: (&'static str, &'static str),
    app: &TestProcess,
    args: &[&str],
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let bin = tokio::task::spawn_blocking(move || build_example(example))
        .await
        .unwrap();
    let mut command = Command::new(bin);
    if !args.contains(&"--tessera-url") {
        command.args(["--tessera-url", &app.partner]);
    }
    let mut child = command
        .args(["--listen", "127.0.0.1:0"])
        .arg("--feed-token-file")
        .arg(app.data_dir.join("feed.token"))
        .args(args)
        .envs(env.iter().copied())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let addr = tokio::task::spawn_blocking(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .find_map(|l| l.split("listening addr=").nth(1).map(str::to_owned))
            .expect("the service logs its address")
    })
    .await
    .unwrap();
    (child, addr)
}

#[tokio::test]
async fn the_sample_service_verifies_offline_and_follows_the_feed() {
    sample_service_verifies_offline_and_follows_the_feed(WARP).await;
}

#[tokio::test]
async fn the_axum_sample_service_verifies_offline_and_follows_the_feed() {
    sample_service_verifies_offline_and_follows_the_feed(AXUM).await;
}

async fn sample_service_verifies_offline_and_follows_the_feed(
    example: (&'static str, &'static str),
) {
    let app = spawn_process().await;
    let pw = app.create_user("partner").await;
    let token = app.token_for("partner", &pw).await;
    let (mut child, addr) = start_sample(
        example,
        &app,
        &["--poll", "1s", "--max-staleness", "1m"],
        &[],
    )
    .await;
    let whoami = format!("http://{addr}/whoami");
    let client = reqwest::Client::builder().no_proxy().build().unwrap();
    let r = client
        .get(&whoami)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "partner");
    let r = client.get(&whoami).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], r#"Bearer realm="tessera""#);
    app.admin_post("/admin/revocations", json!({"token": token}))
        .await;
    let refused = eventually(10, || async {
        let r = client
            .get(&whoami)
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        r.status() == StatusCode::UNAUTHORIZED
            && r.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .contains("token revoked")
    })
    .await;
    assert!(
        refused,
        "the revocation reached the service through the feed"
    );
    // DPoP (SPEC §17): panva's client gets bound tokens and calls the
    // service; replays and downgrades are refused there too.
    let secret = app.create_user("dpop_partner").await;
    let seen = crate::deploy::run_dpop_client(&app, &whoami, "dpop_partner", &secret).await;
    assert_eq!(seen["Ed25519"]["ok_body"], "dpop_partner");
    let _ = child.kill();
    let _ = child.wait();
}

//! HTTPS on both listeners (`--tls-cert`/`--tls-key`, `--admin-tls-*`):
//! certificates from a CA this test makes with openssl, clients nobody
//! here wrote (curl, reqwest/rustls), the CLI trusting the CA with
//! `--ca-file`, and a reload on SIGHUP to a certificate from another CA
//! while a connection stays open.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::helpers::{TestProcess, spawn_process_with};

#[path = "../support/test_ca.rs"]
mod test_ca;
use test_ca::{make_ca, make_server_cert};

/// What the server certificates are for.
const SAN: &str = "IP:127.0.0.1,DNS:localhost";

fn ensure_tools() {
    test_ca::ensure_openssl();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ensure-tools.sh");
    let status = Command::new("bash")
        .args([script, "curl=curl"])
        .status()
        .expect("ensure-tools runs");
    assert!(status.success(), "installing curl failed");
}

/// The `host:port` of an `http://` base URL from the helpers.
fn addr(base: &str) -> &str {
    base.strip_prefix("http://").unwrap()
}

fn client_trusting(ca: &Path) -> reqwest::Client {
    let pem = std::fs::read(ca).unwrap();
    reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap()
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--noproxy", "*", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

fn cli(app: &TestProcess, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .env("TESSERA_DATA_DIR", &app.data_dir)
        .env_remove("TESSERA_ADMIN_URL")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    child.wait_with_output().unwrap()
}

/// Sends SIGHUP to `app` and waits (up to 10 s) for `times` more log lines
/// containing `what`.
async fn sighup_and_wait_for(app: &TestProcess, what: &str, times: usize) {
    let before = app.log().matches(what).count();
    let sent = Command::new("kill")
        .args(["-HUP", &app.pid().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.log().matches(what).count() < before + times {
        assert!(
            Instant::now() < deadline,
            "no {what:?} logged:\n{}",
            app.log()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn both_listeners_serve_https_and_a_sighup_reloads_the_certificate_without_dropping_connections()
 {
    ensure_tools();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ca1 = make_ca(dir, "ca1");
    let ca2 = make_ca(dir, "ca2");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    make_server_cert(dir, "ca1", SAN, &cert, &key);
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut app = spawn_process_with(&[
        "--tls-cert",
        cert_s,
        "--tls-key",
        key_s,
        "--admin-tls-cert",
        cert_s,
        "--admin-tls-key",
        key_s,
    ])
    .await;
    let partner = format!("https://{}", addr(&app.partner));
    let admin = format!("https://{}", addr(&app.admin));
    let ca1_s = ca1.to_str().unwrap();

    // The CLI reaches the admin API over HTTPS when told to trust the CA,
    // and says why not when it is not.
    let password = "0b7e4d3c-6f1c-4a52-9a51-2f8e7d6c5b4a";
    let refused = cli(&app, &["user", "list"], None);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("certificate") && stderr.contains("--ca-file"),
        "the refusal names the certificate problem and the flag: {stderr}"
    );
    assert!(!stderr.contains("may be stale"), "{stderr}");
    let added = cli(
        &app,
        &[
            "user",
            "add",
            "alice",
            "--password-stdin",
            "--ca-file",
            ca1_s,
        ],
        Some(password),
    );
    assert!(
        added.status.success(),
        "{}",
        String::from_utf8_lossy(&added.stderr)
    );

    // curl: a login over HTTPS, the seed's contract unchanged.
    let login = format!("{partner}/generateToken?username=alice&password={password}");
    let (ok, body) = curl(&["--cacert", ca1_s, "-X", "POST", &login]);
    assert!(ok && body.starts_with("eyJ"), "{body}");
    // Plain HTTP on the HTTPS port gets no answer.
    let (ok, _) = curl(&[&format!("http://{}/healthz", addr(&app.partner))]);
    assert!(!ok, "plain HTTP was answered on the HTTPS listener");

    // A Rust client (rustls) trusting only ca1; the metadata says https.
    let old_client = client_trusting(&ca1);
    let meta: serde_json::Value = old_client
        .get(format!("{partner}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for endpoint in ["token_endpoint", "jwks_uri", "revocation_endpoint"] {
        assert!(
            meta[endpoint].as_str().unwrap().starts_with(&partner),
            "{meta}"
        );
    }
    let admin_ok = old_client
        .get(format!("{admin}/metrics"))
        .bearer_auth(&app.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(admin_ok.status(), 200);

    // Reload to a certificate from ca2 while old_client keeps its
    // connections open.
    make_server_cert(dir, "ca2", SAN, &cert, &key);
    // Both listeners reload.
    sighup_and_wait_for(&app, "certificate reloaded", 2).await;
    // The open connection still answers (a new one could not: this client
    // trusts only ca1).
    let still = old_client
        .get(format!("{partner}/healthz"))
        .send()
        .await
        .expect("the connection opened before the reload still works");
    assert_eq!(still.status(), 200);
    // New connections get the new certificate.
    let (ok, body) = curl(&["--cacert", ca1_s, &format!("{partner}/healthz")]);
    assert!(!ok, "ca1 still accepted after the reload: {body}");
    let ca2_s = ca2.to_str().unwrap();
    let (ok, body) = curl(&["--cacert", ca2_s, &format!("{partner}/healthz")]);
    assert!(ok, "{body}");
    let (ok, body) = curl(&["--cacert", ca2_s, &format!("{admin}/readyz")]);
    assert!(ok, "{body}");
    let fresh = client_trusting(&ca2).post(&login).send().await.unwrap();
    assert_eq!(fresh.status(), 200);

    // tessera-verify's sample service follows keys and feed over HTTPS,
    // trusting the CA it is given.
    let token = fresh.text().await.unwrap();
    let (mut service, service_addr) = crate::partner_service::start_partner_service(
        &app,
        &[
            "--tessera-url",
            &partner,
            "--ca-file",
            ca2_s,
            "--poll",
            "1s",
        ],
        &[],
    )
    .await;
    let whoami = reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(format!("http://{service_addr}/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let _ = service.kill();
    let _ = service.wait();
    assert_eq!(whoami.status(), 200);
    assert_eq!(whoami.text().await.unwrap(), "alice");

    // A reload that fails keeps serving the last good certificate.
    std::fs::write(&cert, "garbage").unwrap();
    sighup_and_wait_for(&app, "certificate reload failed", 1).await;
    let (ok, body) = curl(&["--cacert", ca2_s, &format!("{partner}/healthz")]);
    assert!(ok, "{body}");
    assert!(app.log().contains("server.pem holds no PEM certificate"));
    let status = app.signal_and_wait("-TERM");
    assert!(status.success());
}

#[tokio::test]
async fn a_key_readable_by_everyone_or_half_a_pair_is_refused_at_start() {
    ensure_tools();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    make_ca(dir, "ca");
    let (cert, key) = (dir.join("server.pem"), dir.join("server.key"));
    make_server_cert(dir, "ca", SAN, &cert, &key);
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let data = dir.join("data");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_tessera"))
            .arg("serve")
            .arg("--data-dir")
            .arg(&data)
            .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("readable by everyone") && stderr.contains("chmod 600"),
        "{stderr}"
    );
    let out = run(&["--tls-cert", cert.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--tls-key"), "{stderr}");
}

//! OAuth 2.0 interop with Python's authlib (SPEC §7): a real process, a
//! client library nobody here wrote. authlib is installed from the Python
//! package registry when missing; a missing tool fails the test, never
//! skips it.

use std::process::Command;

use serde_json::Value;

use crate::helpers::spawn_process;

fn python_has_authlib() -> bool {
    Command::new("python3")
        .args(["-c", "import authlib, requests"])
        .status()
        .is_ok_and(|s| s.success())
}

fn ensure_authlib() {
    if python_has_authlib() {
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "authlib", "requests"])
        .output()
        .expect("python3 -m pip runs");
    assert!(
        out.status.success() && python_has_authlib(),
        "could not install authlib: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn authlib_fetches_introspects_and_revokes() {
    tokio::task::spawn_blocking(ensure_authlib).await.unwrap();
    let app = spawn_process().await;
    let secret = app.create_user("authlib_client").await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/interop/authlib_client.py"
    );
    // The secret goes through stdin, never argv (visible to every process).
    let out = run_python(
        script,
        vec![app.partner.clone(), "authlib_client".into()],
        secret,
    )
    .await;
    assert!(
        out.status.success(),
        "authlib run failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(&out.stdout).unwrap();
    for method in ["client_secret_basic", "client_secret_post"] {
        let m = &seen[method];
        assert_eq!(m["token_type"], "Bearer", "{method}: {seen}");
        assert_eq!(m["expires_in"], 3600, "{method}");
        assert_eq!(m["active_before"], true, "{method}");
        assert_eq!(m["sub"], "authlib_client", "{method}");
        assert_eq!(m["revoke_status"], 200, "{method}");
        assert_eq!(m["active_after"], false, "{method}");
    }
}

fn ensure_pyjwt() {
    let has = || {
        Command::new("python3")
            .args(["-c", "import jwt, cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if has() {
        return;
    }
    let out = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "pyjwt[crypto]"])
        .output()
        .expect("python3 -m pip runs");
    assert!(
        out.status.success() && has(),
        "could not install PyJWT: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn pyjwt_verifies_a_token_and_reads_its_scope_claim() {
    tokio::task::spawn_blocking(ensure_pyjwt).await.unwrap();
    let app = spawn_process().await;
    let body = serde_json::json!({"username": "scoped", "scopes": ["content", "calendar"]});
    let r = app.admin_post("/admin/users", body).await;
    let created: Value = r.json().await.unwrap();
    let token = app
        .token_for("scoped", created["password"].as_str().unwrap())
        .await;
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/pyjwt_scope.py");
    let out = run_python(script, vec![app.partner.clone()], token).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "calendar content"
    );
}

/// Runs a Python script with `args`, `stdin` on its standard input (where
/// secrets go: argv is visible to every process), off the async threads.
async fn run_python(
    script: &'static str,
    args: Vec<String>,
    stdin: String,
) -> std::process::Output {
    tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new("python3")
            .arg(script)
            .args(&args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap()
}

/// Python's `cryptography`, which `deploy/dpop_proof.py` uses.
fn ensure_cryptography() {
    let has = || {
        Command::new("python3")
            .args(["-c", "import cryptography"])
            .status()
            .is_ok_and(|s| s.success())
    };
    if !has() {
        let out = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "cryptography"])
            .output()
            .expect("python3 -m pip runs");
        assert!(
            out.status.success() && has(),
            "could not install cryptography: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The curl flow of docs/api.md ("Sender-constrained tokens"), run as
/// written with only the two URLs changed: a bound token, then a call with
/// it. The call goes to Tessera's `/verify`, with the `X-Forwarded-*`
/// headers a proxy would add for the documented URL.
#[tokio::test]
async fn the_documented_curl_flow_gets_and_uses_a_bound_token() {
    tokio::task::spawn_blocking(ensure_cryptography)
        .await
        .unwrap();
    let app = spawn_process().await;
    let secret = app.create_user("curl_partner").await;
    let docs =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/api.md")).unwrap();
    let start = docs
        .find("openssl genpkey -algorithm ed25519")
        .expect("the documented flow");
    let end = start
        + docs[start..]
            .find("curl -s -H @call.headers \"$URL\"")
            .unwrap();
    let script = docs[start..end]
        .replace(
            "AUTH=https://auth.example.com/oauth/token",
            &format!("AUTH={}/oauth/token", app.partner),
        )
        .replace(
            "} > call.headers",
            "  printf 'X-Forwarded-Method: GET\\nX-Forwarded-Proto: https\\nX-Forwarded-Host: api.example.com\\nX-Forwarded-Uri: /properties/7\\n'\n} > call.headers",
        )
        + &format!("curl -s -o /dev/null -w '%{{http_code}}' -H @call.headers {}/verify\n", app.partner);
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("deploy")).unwrap();
    std::fs::copy(
        concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/dpop_proof.py"),
        dir.path().join("deploy/dpop_proof.py"),
    )
    .unwrap();
    let out = Command::new("bash")
        .args(["-euo", "pipefail", "-c", &script])
        .current_dir(dir.path())
        .env("CLIENT_ID", "curl_partner")
        .env("CLIENT_SECRET", &secret)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200", "{script}");
    let token = std::fs::read_to_string(dir.path().join("token")).unwrap();
    let payload = token.trim().split('.').nth(1).unwrap();
    use base64::Engine as _;
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert!(claims["cnf"]["jkt"].is_string(), "{claims}");
}

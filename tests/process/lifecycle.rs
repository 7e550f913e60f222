//! The process: first start, files and modes, the data-dir lock, signals,
//! durability across SIGKILL, and what reaches the log.

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    spawn_on, spawn_process as spawn_app, spawn_process_with as spawn_app_with,
    spawn_process_with_env as spawn_app_with_env,
};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn first_start_creates_private_files() {
    let app = spawn_app().await;
    assert_eq!(mode(&app.data_dir), 0o700);
    assert_eq!(mode(&app.data_dir.join("tessera.redb")), 0o600);
    assert_eq!(mode(&app.data_dir.join("admin.token")), 0o600);
    assert!(!app.admin_token.is_empty());
    let log = app.log();
    assert!(log.contains("admin.token"), "the path is logged");
    assert!(!log.contains(&app.admin_token), "the token is not");
}

#[tokio::test]
async fn a_second_process_on_the_same_data_dir_fails_at_once() {
    let app = spawn_app().await;
    let started = std::time::Instant::now();
    let Err((status, log)) = spawn_on(&app.data_dir, &[]) else {
        panic!("second server started on the same data dir");
    };
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!status.expect("it exited").success());
    assert!(
        log.contains("is in use by another tessera process"),
        "{log}"
    );
}

#[tokio::test]
async fn an_existing_admin_token_file_is_used_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("my.token");
    crate::helpers::write_secret(&token_file, "  operator-chosen-admin-token\n");
    let app = spawn_app_with(&["--admin-token-file", token_file.to_str().unwrap()]).await;
    let r = app
        .client
        .get(format!("{}/admin/keys", app.admin))
        .bearer_auth("operator-chosen-admin-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn sigterm_and_sigint_drain_and_exit_zero() {
    for signal in ["-TERM", "-INT"] {
        let mut app = spawn_app().await;
        let status = app.signal_and_wait(signal);
        assert!(status.success(), "{signal}: {status:?}");
        assert!(app.log().contains("shutting down"));
    }
}

/// SIGHUP reloads certificates where there are any and never stops the
/// server: a renewal hook's `kill -HUP $(pidof tessera)` reaches plain
/// instances too. The server still answers, and SIGTERM still drains it
/// and removes `admin.url`.
#[tokio::test]
async fn sighup_never_stops_the_server() {
    let mut app = spawn_app().await;
    let pid = app.pid().to_string();
    for _ in 0..3 {
        let sent = std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
    }
    // Give a default-action SIGHUP time to end the process.
    for _ in 0..20 {
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
        let r = app.partner_get("/readyz").await;
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(app.admin_get("/admin/users").await.status(), StatusCode::OK);
    let status = app.signal_and_wait("-TERM");
    assert!(status.success(), "{status:?}");
    assert!(
        !app.data_dir.join("admin.url").exists(),
        "drained and tidied"
    );
}

/// A data dir or a token file owned by another user is refused at start
/// with the fix named (its owner could read the admin token or plant
/// files); a symlink planted at the old temp name of `admin.url` is never
/// written through.
#[tokio::test]
async fn files_owned_by_another_user_are_refused() {
    let other = 65534;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&data, Some(other), Some(other)).unwrap();
    let Err((_, log)) = spawn_on(&data, &[]) else {
        panic!("started on a data dir another user owns");
    };
    assert!(
        log.contains("belongs to uid 65534") && log.contains("chown"),
        "{log}"
    );

    let data = dir.path().join("data2");
    std::fs::create_dir(&data).unwrap();
    let token = dir.path().join("admin.token");
    crate::helpers::write_secret(&token, "operator-chosen-admin-token-0123456789");
    std::os::unix::fs::chown(&token, Some(other), Some(other)).unwrap();
    let Err((_, log)) = spawn_on(&data, &["--admin-token-file", token.to_str().unwrap()]) else {
        panic!("started with a token file another user owns");
    };
    assert!(
        log.contains("belongs to uid 65534") && log.contains("chown"),
        "{log}"
    );

    let data = dir.path().join("data3");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let victim = dir.path().join("victim");
    std::fs::write(&victim, "precious").unwrap();
    std::os::unix::fs::symlink(&victim, data.join(".admin.url.tmp")).unwrap();
    let mut app = spawn_on(&data, &[]).unwrap_or_else(|(_, log)| panic!("{log}"));
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(app.signal_and_wait("-TERM").success());
}

#[tokio::test]
async fn acknowledged_creates_survive_sigkill() {
    let mut app = spawn_app().await;
    let dir = app.keep_dir();
    let mut passwords = Vec::new();
    for i in 0..20 {
        passwords.push(app.create_user(&format!("durable{i}")).await);
    }
    let status = app.signal_and_wait("-KILL");
    assert!(!status.success());
    let data_dir = app.data_dir.clone();
    drop(app);
    let app = spawn_on(&data_dir, &[]).unwrap_or_else(|(_, log)| panic!("restart failed:\n{log}"));
    for (i, pw) in passwords.iter().enumerate() {
        assert_eq!(
            app.generate_token(&format!("durable{i}"), pw)
                .await
                .status(),
            StatusCode::OK
        );
    }
    drop(dir);
}

#[tokio::test]
async fn flags_and_env_are_validated() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--token-ttl", "soon"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("like 90s"));
    let app = spawn_app_with(&["--issuer", "acme", "--token-ttl", "15m"]).await;
    let pw = app.create_user("f").await;
    let c = crate::helpers::claims_of(&app.token_for("f", &pw).await);
    assert_eq!(c["iss"], "acme");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 900);
}

#[tokio::test]
async fn logs_never_contain_secrets() {
    let app = spawn_app().await;
    let generated = app.create_user("logged").await;
    let chosen = "operator-secret-password";
    app.create_user_with(json!({"username": "chosen", "password": chosen}))
        .await;
    let token = app.token_for("logged", &generated).await;
    app.verify(&token).await;
    app.generate_token("logged", "wrong-guess-password").await;
    app.generate_token("nobody", "another-guess").await;
    app.admin_post("/admin/revocations", json!({"token": token}))
        .await;
    app.verify(&token).await;
    let reset: serde_json::Value = app
        .admin_post("/admin/users/logged/password", json!({}))
        .await
        .json()
        .await
        .unwrap();
    app.admin_get("/admin/export").await;
    let log = app.log();
    assert!(log.contains("failed login"), "the log is captured:\n{log}");
    for secret in [
        generated.as_str(),
        chosen,
        token.as_str(),
        token.split('.').nth(2).unwrap(),
        app.admin_token.as_str(),
        "wrong-guess-password",
        "another-guess",
        reset["password"].as_str().unwrap(),
        "password=",
    ] {
        assert!(
            !log.contains(secret),
            "secret {secret:?} leaked into the log:\n{log}"
        );
    }
}

#[tokio::test]
async fn slow_loris_clients_are_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(&["--header-read-timeout", "1s"]).await;
    let addr = app.partner.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let mut closed = false;
    while started.elapsed() < std::time::Duration::from_secs(6) {
        // Trickle one header line at a time, never finishing the head.
        if stream.write_all(b"X-Slow: 1\r\n").await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(std::time::Duration::from_millis(200), stream.read(&mut buf))
            .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(_)) => {
                // A 408 before the close is fine too.
                closed = true;
                break;
            }
            Err(_) => {}
        }
    }
    assert!(closed, "a client trickling headers was not cut off");
    assert!(started.elapsed() < std::time::Duration::from_secs(4));
    // Normal clients are unaffected.
    let r = app.partner_get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn env_vars_configure_the_server_and_json_logs_are_json() {
    let app = spawn_app_with_env(&[
        ("TESSERA_ISSUER", "from-env"),
        ("TESSERA_TOKEN_TTL", "90s"),
        ("TESSERA_LOG_FORMAT", "json"),
    ])
    .await;
    let pw = app.create_user("e").await;
    let c = crate::helpers::claims_of(&app.token_for("e", &pw).await);
    assert_eq!(c["iss"], "from-env");
    assert_eq!(c["exp"].as_u64().unwrap() - c["iat"].as_u64().unwrap(), 90);
    let log = app.log();
    let mut lines = 0;
    for line in log.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string() && v["fields"].is_object(), "{line}");
        lines += 1;
    }
    assert!(lines > 0);
    assert!(log.contains(r#""message":"listening","partner":"127.0.0.1:"#));
}

#[tokio::test]
async fn trusting_every_address_is_warned_about() {
    for everyone in ["0.0.0.0/0", "10.0.0.1,::/0"] {
        let app = spawn_app_with(&["--trusted-proxies", everyone]).await;
        assert!(
            app.log().contains("any client can choose the address"),
            "{everyone}:\n{}",
            app.log()
        );
    }
    let app = spawn_app_with(&["--trusted-proxies", "10.0.0.0/8"]).await;
    assert!(!app.log().contains("any client can choose the address"));
}

/// SPEC §11: a token file that is short or readable by others is refused
/// at start, with the fix named.
#[tokio::test]
async fn a_weak_or_open_token_file_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    for (flag, file, text, mode, says) in [
        ("--admin-token-file", "short.token", "x", 0o600, "too short"),
        (
            "--admin-token-file",
            "open.token",
            "a-long-enough-admin-token-0123456789",
            0o644,
            "chmod 600",
        ),
        (
            "--feed-token-file",
            "open-feed.token",
            "a-long-enough-feed-token-0123456789",
            0o640,
            "chmod 600",
        ),
    ] {
        let path = dir.path().join(file);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        let Err((status, log)) = crate::helpers::spawn_on(&data, &[flag, path.to_str().unwrap()])
        else {
            panic!("{file}: serve started");
        };
        assert_eq!(status.and_then(|s| s.code()), Some(1), "{file}: {log}");
        assert!(
            log.contains(says) && log.contains(path.to_str().unwrap()),
            "{file}: {log}"
        );
        assert!(
            !log.contains(text) || text == "x",
            "{file}: the token is never logged"
        );
    }
}

/// SPEC §13: one structured line per change, with the action, its target,
/// the caller's address and what it was told; listener addresses as fields.
#[tokio::test]
async fn each_change_is_one_log_line_with_its_caller_and_outcome() {
    let app = spawn_app_with_env(&[("TESSERA_LOG_FORMAT", "json")]).await;
    app.create_user("audited").await;
    let again = app
        .admin_post("/admin/users", json!({"username": "audited"}))
        .await
        .status();
    assert_eq!(again, StatusCode::CONFLICT);
    app.admin_delete("/admin/users/audited").await;
    app.admin_get("/admin/users").await;
    // The server's stderr reaches the test through a reader thread: wait
    // (a bounded while) until the last change's line has arrived.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !app.log().contains(r#""action":"user.delete""#) && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let lines: Vec<serde_json::Value> = app
        .log()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let changes: Vec<(String, String, u64, String)> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "change")
        .map(|l| {
            let f = &l["fields"];
            assert!(
                f["source"].as_str().unwrap().starts_with("127.0.0.1:"),
                "{l}"
            );
            (
                f["action"].as_str().unwrap().to_owned(),
                f["target"].as_str().unwrap().to_owned(),
                f["status"].as_u64().unwrap(),
                f["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = |a: &str, t: &str, s: u64, o: &str| (a.to_owned(), t.to_owned(), s, o.to_owned());
    assert_eq!(
        changes,
        vec![
            expect("user.create", "audited", 201, "done"),
            expect("user.create", "audited", 409, "refused"),
            expect("user.delete", "audited", 204, "done"),
        ],
        "reads log no change"
    );
    let listening: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|l| l["fields"]["message"] == "listening")
        .collect();
    assert!(listening.iter().any(|l| l["fields"]["partner"].is_string()));
    assert!(listening.iter().any(|l| l["fields"]["admin"].is_string()));
}

#[tokio::test]
async fn the_access_log_has_every_request_and_no_secret() {
    let app = spawn_app_with_env(&[
        ("TESSERA_LOG_FORMAT", "json"),
        ("TESSERA_ACCESS_LOG", "true"),
    ])
    .await;
    let pw = app.create_user("logged").await;
    let token = app.token_for("logged", &pw).await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    let wrong = app.generate_token("logged", "not-the-password-0123").await;
    assert_eq!(wrong.status(), StatusCode::UNAUTHORIZED);
    let log = app.log();
    let requests: Vec<(String, String, u64)> = log
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["fields"]["message"] == "request")
        .map(|l| {
            let f = &l["fields"];
            assert!(
                f["source"].as_str().unwrap().starts_with("127.0.0.1:"),
                "{l}"
            );
            assert!(f["micros"].is_u64(), "{l}");
            (
                f["method"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap().to_owned(),
                f["status"].as_u64().unwrap(),
            )
        })
        .collect();
    let expect = |m: &str, p: &str, s: u64| (m.to_owned(), p.to_owned(), s);
    for line in [
        expect("POST", "/admin/users", 201),
        expect("POST", "/generateToken", 200),
        expect("GET", "/verify", 200),
        expect("POST", "/generateToken", 401),
    ] {
        assert!(requests.contains(&line), "{line:?} not in {requests:?}");
    }
    for secret in [
        pw.as_str(),
        "not-the-password-0123",
        &token,
        &app.admin_token,
    ] {
        assert!(!log.contains(secret), "a secret reached the log:\n{log}");
    }
}

/// Boolean environment variables take the usual spellings: 1/0,
/// true/false, yes/no, on/off (any case); anything else is refused.
#[tokio::test]
async fn boolean_env_vars_take_the_usual_spellings() {
    for (value, on) in [
        ("1", true),
        ("yes", true),
        ("On", true),
        ("0", false),
        ("off", false),
        ("no", false),
    ] {
        let app = spawn_app_with_env(&[("TESSERA_ACCESS_LOG", value)]).await;
        assert_eq!(app.partner_get("/healthz").await.status(), StatusCode::OK);
        let logged = eventually_logged(&app, "/healthz").await;
        assert_eq!(logged, on, "TESSERA_ACCESS_LOG={value}");
    }
    let dir = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(crate::helpers::tessera_bin())
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .env("TESSERA_ACCESS_LOG", "maybe")
        .env("TESSERA_DATA_DIR", dir.path().join("data"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("maybe"));
}

/// Whether `needle` appears in the log within a second.
async fn eventually_logged(app: &crate::helpers::TestProcess, needle: &str) -> bool {
    for _ in 0..20 {
        if app.log().contains(needle) {
            return true;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    false
}

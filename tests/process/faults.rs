//! SPEC §10 on a real process: a data dir on a small file system that fills
//! up (a tmpfs this test mounts; it runs as root, as CI does), and damaged
//! database files (truncated, zeroed header, garbage in the middle).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestProcess, spawn_on};

/// A tmpfs of `mib` MiB mounted on a fresh temp dir, unmounted on drop.
struct SmallDisk {
    mount: PathBuf,
    _dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount(mib: u64) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let mount = dir.path().join("disk");
        std::fs::create_dir(&mount).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={mib}m,mode=0700"),
                "tmpfs",
            ])
            .arg(&mount)
            .status()
            .expect("mount runs");
        assert!(
            status.success(),
            "mounting a tmpfs needs root (CI runs as root): {status}"
        );
        Self { mount, _dir: dir }
    }

    /// Fills the file system until only `leave` bytes are free; returns the
    /// filler to delete.
    fn fill(&self, leave: u64) -> PathBuf {
        let filler = self.mount.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = vec![0xA5u8; 64 * 1024];
        loop {
            let free = free_bytes(&self.mount);
            if free <= leave {
                break;
            }
            let n = chunk.len().min((free - leave) as usize);
            if f.write_all(&chunk[..n]).is_err() {
                break;
            }
        }
        let _ = f.sync_all();
        filler
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mount).status();
    }
}

fn free_bytes(path: &Path) -> u64 {
    let out = Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(path)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .nth(1)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn start(data_dir: &Path) -> TestProcess {
    spawn_on(data_dir, &[]).unwrap_or_else(|(s, log)| panic!("did not start ({s:?}):\n{log}"))
}

async fn feed_status(app: &TestProcess, data_dir: &Path) -> StatusCode {
    let token = std::fs::read_to_string(data_dir.join("feed.token")).unwrap();
    app.partner_request(reqwest::Method::GET, "/revocations")
        .bearer_auth(token.trim())
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn a_full_disk_refuses_changes_with_507_keeps_serving_and_recovers_without_restart() {
    let disk = SmallDisk::mount(24);
    let data_dir = disk.mount.join("data");
    let app = start(&data_dir);
    let pw = app.create_user("before").await;
    let token = app.token_for("before", &pw).await;
    let mut acknowledged = vec!["before".to_owned()];

    let filler = disk.fill(0);
    let r = app
        .admin_post("/admin/users", json!({"username": "during"}))
        .await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "storage_full", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("free space"),
        "{body}"
    );
    let r = app
        .admin_post("/admin/revocations", json!({"token": token}))
        .await;
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    // A partner revoking its own token: the same refusal, in OAuth's shape.
    let own = app.token_for("before", &pw).await;
    let r = app
        .partner_request(reqwest::Method::POST, "/oauth/revoke")
        .basic_auth("before", Some(&pw))
        .form(&[("token", own.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::INSUFFICIENT_STORAGE);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable", "{body}");
    assert_eq!(
        app.verify(&own).await.status(),
        StatusCode::OK,
        "not revoked"
    );
    // Nothing was changed, and everything that reads goes on.
    assert_eq!(
        app.admin_get("/admin/users/during").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    let fresh = app.token_for("before", &pw).await;
    assert_eq!(app.verify(&fresh).await.status(), StatusCode::OK);
    assert_eq!(
        app.partner_get("/.well-known/jwks.json").await.status(),
        StatusCode::OK
    );
    assert_eq!(feed_status(&app, &data_dir).await, StatusCode::OK);
    let ready = app.partner_get("/readyz").await;
    assert_eq!(ready.status(), StatusCode::OK);
    assert!(ready.text().await.unwrap().contains("storage full"));
    assert_eq!(app.metric("tessera_storage_writable").await, 0.0);

    // Room again: writes work without a restart.
    std::fs::remove_file(&filler).unwrap();
    let r = app
        .admin_post("/admin/users", json!({"username": "after"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    acknowledged.push("after".into());
    assert_eq!(app.metric("tessera_storage_writable").await, 1.0);
    let r = app
        .admin_post("/admin/revocations", json!({"token": token}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);

    // A change bigger than the room left fails inside the engine: it is
    // refused whole, and once there is room the engine is reopened.
    let filler = disk.fill(4 << 20 | 512 << 10);
    let mut snapshot = app.admin_get("/admin/export").await.text().await.unwrap();
    let end = snapshot.trim_end().rfind('\n').unwrap();
    let mut end_line: Value = serde_json::from_str(&snapshot[end + 1..]).unwrap();
    snapshot.truncate(end + 1);
    let user_line: Value = serde_json::from_str(
        snapshot
            .lines()
            .find(|l| l.contains("\"type\":\"user\""))
            .unwrap(),
    )
    .unwrap();
    let big_note = "n".repeat(1000);
    let mut extra = 0;
    for i in 0..4000 {
        let mut u = user_line.clone();
        u["user"]["username"] = json!(format!("bulk{i:05}"));
        u["user"]["note"] = json!(big_note);
        snapshot.push_str(&format!("{u}\n"));
        extra += 1;
    }
    end_line["users"] = json!(end_line["users"].as_u64().unwrap() + extra);
    snapshot.push_str(&format!("{end_line}\n"));
    let r = app
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(snapshot)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::INSUFFICIENT_STORAGE,
        "{:?}",
        r.text().await
    );
    std::fs::remove_file(&filler).unwrap();
    assert_eq!(app.verify(&fresh).await.status(), StatusCode::OK);
    let r = app
        .admin_post("/admin/users", json!({"username": "reopened"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED, "{:?}", r.text().await);
    acknowledged.push("reopened".into());
    assert!(
        app.log().contains("reopened the database"),
        "the import met the full disk inside the engine, which was then reopened:\n{}",
        app.log()
    );
    assert_eq!(
        app.admin_get("/admin/users/bulk00000").await.status(),
        StatusCode::NOT_FOUND,
        "the refused import changed nothing"
    );

    // A restart finds every acknowledged write.
    let mut app = app;
    assert!(app.signal_and_wait("-TERM").success());
    let app = start(&data_dir);
    for name in &acknowledged {
        assert_eq!(
            app.admin_get(&format!("/admin/users/{name}"))
                .await
                .status(),
            StatusCode::OK,
            "{name}"
        );
    }
    assert!(app.verify_rejection(&token).await.contains("token revoked"));
}

/// A data dir holding a database file, its server stopped.
async fn stopped_data_dir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("data");
    let mut app = start(&data_dir);
    for i in 0..200 {
        app.create_user(&format!("partner{i:03}")).await;
    }
    assert!(app.signal_and_wait("-TERM").success());
    (dir, data_dir)
}

fn tessera(args: &[&str], data_dir: &Path) -> std::process::Output {
    Command::new(crate::helpers::tessera_bin())
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .unwrap()
}

fn assert_refused_as_damaged(data_dir: &Path, what: &str) {
    let db = data_dir.join("tessera.redb");
    let before = std::fs::read(&db).unwrap();
    let (status, log) = match spawn_on(data_dir, &[]) {
        Ok(_) => panic!("{what}: serve started on a damaged file"),
        Err(e) => e,
    };
    let status = status.expect("serve exited");
    assert_eq!(status.code(), Some(1), "{what}: {log}");
    assert!(!log.contains("panicked"), "{what}: {log}");
    for needle in [db.to_str().unwrap(), "damaged", "import"] {
        assert!(
            log.contains(needle),
            "{what}: {needle:?} missing from:\n{log}"
        );
    }
    for args in [&["check"][..], &["user", "list"], &["export"]] {
        let out = tessera(args, data_dir);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{what}: tessera {args:?}: {stderr}"
        );
        assert!(
            stderr.contains("damaged") && !stderr.contains("panicked"),
            "{what}: tessera {args:?}: {stderr}"
        );
    }
    assert_eq!(
        std::fs::read(&db).unwrap(),
        before,
        "{what}: the damaged file was left as it was"
    );
}

#[tokio::test]
async fn a_sound_file_passes_tessera_check() {
    let (_dir, data_dir) = stopped_data_dir().await;
    let db = data_dir.join("tessera.redb");
    let before = std::fs::read(&db).unwrap();
    let out = tessera(&["check"], &data_dir);
    assert!(
        std::fs::read(&db).unwrap() == before,
        "tessera check changed the file it checked"
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("sound (200 users, 2 keys"), "{stdout}");
}

#[tokio::test]
async fn a_truncated_file_is_refused_with_the_fix_named() {
    let (_dir, data_dir) = stopped_data_dir().await;
    let db = data_dir.join("tessera.redb");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    assert_refused_as_damaged(&data_dir, "truncated");
}

#[tokio::test]
async fn a_file_with_a_zeroed_header_is_refused_with_the_fix_named() {
    let (_dir, data_dir) = stopped_data_dir().await;
    let db = data_dir.join("tessera.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    bytes[..4096].fill(0);
    std::fs::write(&db, bytes).unwrap();
    assert_refused_as_damaged(&data_dir, "zeroed header");
}

#[tokio::test]
async fn a_file_scribbled_on_in_the_middle_is_refused_without_a_panic() {
    let (_dir, data_dir) = stopped_data_dir().await;
    let db = data_dir.join("tessera.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    // Over pages that hold data (a user record), wherever the layout puts
    // them: bytes in free pages are no damage.
    let record = bytes
        .windows(b"partner100".len())
        .position(|w| w == b"partner100")
        .expect("a user record in the file");
    let page = record - record % 4096;
    let mut x: u32 = 0x9E37_79B9;
    for b in &mut bytes[page..page + 8192] {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = x as u8;
    }
    std::fs::write(&db, bytes).unwrap();
    assert_refused_as_damaged(&data_dir, "scribbled");
}

/// SPEC §10: a damaged file is never changed — also when the damage is in
/// the header the engine reads first (a few bytes flipped, not zeroed).
#[tokio::test]
async fn a_file_with_flipped_header_bytes_is_refused_unchanged() {
    let (_dir, data_dir) = stopped_data_dir().await;
    let db = data_dir.join("tessera.redb");
    let mut bytes = std::fs::read(&db).unwrap();
    for b in &mut bytes[64..128] {
        *b ^= 0x5A;
    }
    std::fs::write(&db, bytes).unwrap();
    assert_refused_as_damaged(&data_dir, "flipped header bytes");
}

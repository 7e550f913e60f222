//! Cluster mode (SPEC §9) with real processes on a throwaway PostgreSQL
//! (`scripts/pg.sh`): three nodes share one truth, each enforces what
//! another acknowledged within a second, survives the loss of the other
//! nodes, and rides out a database outage from memory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::clocks::FakeClock;
use crate::helpers::{TestProcess, spawn_on, spawn_on_with_env};

/// A throwaway PostgreSQL, removed when dropped.
struct Postgres {
    dir: PathBuf,
    url: String,
}

fn pg_script(args: &[&str]) -> String {
    let out = Command::new("bash")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pg.sh {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Postgres {
    fn start() -> Self {
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let dir = PathBuf::from(format!(
            "/tmp/tessera-pg-cluster-{}-{n}",
            std::process::id()
        ));
        let url = pg_script(&[
            "start",
            dir.to_str().unwrap(),
            &std::process::id().to_string(),
        ]);
        Self { dir, url }
    }

    fn stop(&self) {
        pg_script(&["kill", self.dir.to_str().unwrap()]);
    }

    fn restart(&self) {
        pg_script(&["restart", self.dir.to_str().unwrap()]);
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
            .args(["kill", self.dir.to_str().unwrap()])
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts a node on `url`; every node reads the same admin token file.
fn node(root: &Path, name: &str, url: &str) -> TestProcess {
    node_with_env(root, name, url, &[])
}

/// [`node`] with extra environment variables (a clock moved by libfaketime).
fn node_with_env(root: &Path, name: &str, url: &str, env: &[(&str, &str)]) -> TestProcess {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let token = dir.join("admin.token");
    crate::helpers::write_secret(&token, "one-admin-token-for-the-whole-cluster");
    spawn_on_with_env(
        &dir,
        &[
            "--database",
            url,
            "--admin-token-file",
            token.to_str().unwrap(),
        ],
        env,
    )
    .unwrap_or_else(|(status, log)| panic!("node {name} did not start ({status:?}):\n{log}"))
}

/// Waits up to a second for `check` to hold; returns how long it took.
async fn within_a_second<F, Fut>(what: &str, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    loop {
        if check().await {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{what}: not within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn kid_of(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(header)
        .unwrap();
    serde_json::from_slice::<Value>(&bytes).unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn three_nodes_share_one_truth_and_outlive_each_other_and_the_database() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let mut a = node(root.path(), "a", &pg.url);
    let mut b = node(root.path(), "b", &pg.url);
    let c = node(root.path(), "c", &pg.url);

    // A token from A verifies on B and C.
    let pw = a.create_user("channel_user").await;
    within_a_second("user reaches B", || async {
        b.generate_token("channel_user", &pw).await.status() == 200
    })
    .await;
    let token = a.token_for("channel_user", &pw).await;
    for n in [&b, &c] {
        assert_eq!(n.verify(&token).await.status(), StatusCode::OK);
    }

    // A revocation on A is enforced by B and C within a second.
    let r = a
        .admin_post("/admin/revocations", json!({ "token": token }))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for n in [&b, &c] {
        within_a_second("revocation", || async {
            n.verify(&token).await.status() == 401
        })
        .await;
    }

    // Disabling on A: B refuses the user's fresh token within a second.
    let fresh = b.token_for("channel_user", &pw).await;
    a.admin_patch("/admin/users/channel_user", json!({"status": "disabled"}))
        .await;
    within_a_second("disable", || async {
        b.verify(&fresh).await.status() == 401
    })
    .await;
    a.admin_patch("/admin/users/channel_user", json!({"status": "active"}))
        .await;

    // A rotation on A: within a second B and C sign with the new key.
    let rotated: Value = a
        .admin_post("/admin/keys/rotate?force=true", json!({}))
        .await
        .json()
        .await
        .unwrap();
    let active = rotated["keys"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["status"] == "active")
        .unwrap()["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    for n in [&b, &c] {
        within_a_second("rotation", || async {
            let r = n.generate_token("channel_user", &pw).await;
            r.status() == 200 && kid_of(&r.text().await.unwrap()) == active
        })
        .await;
    }

    // kill -9 A and B: C keeps serving.
    a.signal_and_wait("-KILL");
    b.signal_and_wait("-KILL");
    let from_c = c.token_for("channel_user", &pw).await;
    assert_eq!(c.verify(&from_c).await.status(), StatusCode::OK);

    // The database goes away: C keeps issuing and verifying from memory,
    // says it is not ready, and refuses admin mutations with 503.
    pg.stop();
    let during = c.token_for("channel_user", &pw).await;
    assert_eq!(c.verify(&during).await.status(), StatusCode::OK);
    let mutation = c
        .admin_post("/admin/users", json!({"username": "late"}))
        .await;
    assert_eq!(mutation.status(), StatusCode::SERVICE_UNAVAILABLE);
    let started = Instant::now();
    while c.partner_get("/readyz").await.status() != StatusCode::SERVICE_UNAVAILABLE {
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "/readyz never said 503"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // It comes back: C recovers without a restart.
    pg.restart();
    let started = Instant::now();
    loop {
        let r = c
            .admin_post("/admin/users", json!({"username": "after"}))
            .await;
        if r.status() == StatusCode::CREATED {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "admin API did not recover: {}",
            r.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    while c.partner_get("/readyz").await.status() != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "/readyz did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_redb_deployment_moves_to_postgres_with_its_passwords_and_tokens() {
    let source = crate::helpers::spawn_process().await;
    let pw = source.create_user("channel_user").await;
    let chosen = "a chosen password";
    source
        .create_user_with(json!({"username": "chosen", "password": chosen}))
        .await;
    let token = source.token_for("channel_user", &pw).await;
    let snapshot = source
        .admin_get("/admin/export")
        .await
        .bytes()
        .await
        .unwrap();

    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let target = node(root.path(), "target", &pg.url);
    let r = target
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(snapshot)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(target.verify(&token).await.status(), StatusCode::OK);
    assert_eq!(
        target.generate_token("channel_user", &pw).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        target.generate_token("chosen", chosen).await.status(),
        StatusCode::OK
    );
    // A second node started afterwards loads the same truth.
    let other = node(root.path(), "other", &pg.url);
    assert_eq!(other.verify(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn past_the_outage_grace_a_node_fails_closed_until_the_database_is_back() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("n");
    std::fs::create_dir_all(&dir).unwrap();
    let token_file = dir.join("admin.token");
    crate::helpers::write_secret(&token_file, "cluster-admin-token-of-this-test");
    let n = spawn_on(
        &dir,
        &[
            "--database",
            &pg.url,
            "--admin-token-file",
            token_file.to_str().unwrap(),
            "--db-outage-grace",
            "1s",
        ],
    )
    .unwrap_or_else(|(s, log)| panic!("{s:?}\n{log}"));
    let pw = n.create_user("u").await;
    let token = n.token_for("u", &pw).await;
    // The node caught up past the user's creation before it answered it
    // (a node's writes catch up before they return), so what this
    // verification reads stays in its memory.
    assert_eq!(n.verify(&token).await.status(), StatusCode::OK);
    pg.stop();
    assert_eq!(
        n.verify(&token).await.status(),
        StatusCode::OK,
        "within the grace: from memory"
    );
    let started = Instant::now();
    loop {
        let r = n.generate_token("u", &pw).await;
        if r.status() == StatusCode::SERVICE_UNAVAILABLE {
            assert_eq!(r.text().await.unwrap(), "server busy");
            break;
        }
        assert_eq!(r.status(), StatusCode::OK);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "never refused after the grace"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = n.verify(&token).await;
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "verification fails closed too, as unavailable: {:?}",
        r.headers()
    );
    assert_eq!(r.headers()["retry-after"], "1");
    pg.restart();
    let started = Instant::now();
    while n.generate_token("u", &pw).await.status() != StatusCode::OK {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(n.verify(&token).await.status(), StatusCode::OK);
}

/// SPEC §10 across hosts: two nodes whose clocks are 2 s apart accept each
/// other's fresh tokens, and a revoke-all sent to the node that is behind
/// kills every token the other node issued before it.
#[tokio::test]
async fn two_nodes_two_seconds_apart_agree_on_fresh_and_revoked_tokens() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let fast = node(root.path(), "fast", &pg.url);
    let behind = FakeClock::new("-2s");
    let slow = node_with_env(root.path(), "slow", &pg.url, &behind.env());
    let pw = fast.create_user("partner").await;
    within_a_second("the user reaches the slow node", || async {
        slow.generate_token("partner", &pw).await.status() == StatusCode::OK
    })
    .await;
    let mut issued = Vec::new();
    for _ in 0..20 {
        let t = fast.token_for("partner", &pw).await;
        assert_eq!(
            slow.verify(&t).await.status(),
            StatusCode::OK,
            "a node 2 s behind accepts a fresh token: {}",
            slow.verify_rejection(&t).await
        );
        issued.push(t);
    }
    let from_slow = slow.token_for("partner", &pw).await;
    assert_eq!(fast.verify(&from_slow).await.status(), StatusCode::OK);
    let r = slow
        .admin_post("/admin/users/partner/revoke", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    for t in issued.iter().chain([&from_slow]) {
        assert!(slow.verify_rejection(t).await.contains("token revoked"));
        within_a_second("the revoke-all reaches the fast node", || async {
            fast.verify(t).await.status() == StatusCode::UNAUTHORIZED
        })
        .await;
        assert!(fast.verify_rejection(t).await.contains("token revoked"));
    }
    let after = fast.token_for("partner", &pw).await;
    assert_eq!(fast.verify(&after).await.status(), StatusCode::OK);
    assert_eq!(slow.verify(&after).await.status(), StatusCode::OK);
}

/// A user's secrets as a node's admin API shows them.
async fn secrets_on(node: &TestProcess, name: &str) -> Vec<Value> {
    let u: Value = node
        .admin_get(&format!("/admin/users/{name}"))
        .await
        .json()
        .await
        .unwrap();
    u["secrets"].as_array().unwrap().clone()
}

#[tokio::test]
async fn a_rotation_on_one_node_binds_on_the_other_within_a_second() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let a = node(root.path(), "a", &pg.url);
    let mut b = node(root.path(), "b", &pg.url);
    let old = a.create_user("partner").await;
    within_a_second("the user reaches b", || async {
        b.generate_token("partner", &old).await.status() == StatusCode::OK
    })
    .await;

    // Rotated on a: b takes the new secret within a second, keeps the old.
    let r = a
        .admin_post("/admin/users/partner/secrets", json!({"grace": "1h"}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let answer: Value = r.json().await.unwrap();
    let new = answer["password"].as_str().unwrap().to_owned();
    within_a_second("the new secret reaches b", || async {
        b.generate_token("partner", &new).await.status() == StatusCode::OK
    })
    .await;
    assert_eq!(
        b.generate_token("partner", &old).await.status(),
        StatusCode::OK
    );

    // Ended early on b: a refuses the old secret within a second.
    let id = answer["previous"]["id"].as_str().unwrap();
    let r = b
        .admin_delete(&format!("/admin/users/partner/secrets/{id}"))
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    within_a_second("the ended secret is refused on a", || async {
        a.generate_token("partner", &old).await.status() == StatusCode::UNAUTHORIZED
    })
    .await;

    // A grace of a second runs out on both nodes by the clock alone.
    let r = b
        .admin_post("/admin/users/partner/secrets", json!({"grace": "1s"}))
        .await;
    let newest: Value = r.json().await.unwrap();
    let newest = newest["password"].as_str().unwrap().to_owned();
    within_a_second("the newest secret reaches a", || async {
        a.generate_token("partner", &newest).await.status() == StatusCode::OK
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for n in [&a, &b] {
        assert_eq!(
            n.generate_token("partner", &new).await.status(),
            StatusCode::UNAUTHORIZED
        );
    }
    assert_eq!(secrets_on(&a, "partner").await.len(), 1);

    // b's logins are written when it stops; a shows them.
    assert_eq!(
        b.generate_token("partner", &newest).await.status(),
        StatusCode::OK
    );
    assert!(b.signal_and_wait("-TERM").success());
    within_a_second("b's last use reaches a", || async {
        secrets_on(&a, "partner").await[0]["last_used_at"] != Value::Null
    })
    .await;
}

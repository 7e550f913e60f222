//! `spawn_app()` starts the real `tessera` binary on port 0 with a temp data
//! dir and captures its log; `TestApp` talks HTTP to it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// A running server.
pub struct TestApp {
    pub partner: String,
    pub admin: String,
    pub admin_token: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

/// Starts a server on a fresh temp data dir.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts a server on a fresh temp data dir with extra flags.
pub async fn spawn_app_with(args: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut app = spawn_on(&path, args)
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status:?}):\n{log}"));
    app._dir = Some(dir);
    app
}

/// Starts a server on a fresh temp data dir with extra environment variables.
pub async fn spawn_app_with_env(envs: &[(&str, &str)]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut app = spawn_on_with_env(&path, &[], envs)
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status:?}):\n{log}"));
    app._dir = Some(dir);
    app
}

/// Starts a server on `data_dir`; Err carries the exit status and log when it
/// does not come up.
pub fn spawn_on(data_dir: &Path, args: &[&str]) -> Result<TestApp, (Option<ExitStatus>, String)> {
    spawn_on_with_env(data_dir, args, &[])
}

fn spawn_on_with_env(
    data_dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<TestApp, (Option<ExitStatus>, String)> {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.arg("serve").arg("--data-dir").arg(data_dir);
    if !args.contains(&"--listen") {
        command.args(["--listen", "127.0.0.1:0"]);
    }
    let mut child = command
        .args(["--admin-listen", "127.0.0.1:0"])
        .args(args)
        .env("TESSERA_LOG", "debug")
        .envs(envs.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tessera");
    let stderr = child.stderr.take().unwrap();
    let log = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel();
    let sink = log.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            for (prefix, which) in [
                ("listening partner=", "partner"),
                ("listening admin=", "admin"),
            ] {
                if let Some(at) = line.find(prefix) {
                    let addr: String = line[at + prefix.len()..]
                        .chars()
                        .take_while(|c| !c.is_whitespace() && *c != '"')
                        .collect();
                    let _ = tx.send((which, addr));
                }
            }
            let mut l = sink.lock().unwrap();
            l.push_str(&line);
            l.push('\n');
        }
    });
    let (mut partner, mut admin) = (None, None);
    let deadline = Instant::now() + Duration::from_secs(20);
    while partner.is_none() || admin.is_none() {
        match rx.recv_timeout(Duration::from_millis(50)) {
            Ok(("partner", a)) => partner = Some(a),
            Ok((_, a)) => admin = Some(a),
            Err(_) => {
                if let Ok(Some(status)) = child.try_wait() {
                    std::thread::sleep(Duration::from_millis(100));
                    return Err((Some(status), log.lock().unwrap().clone()));
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    return Err((None, log.lock().unwrap().clone()));
                }
            }
        }
    }
    let token_file = data_dir.join("admin.token");
    let admin_token = std::fs::read_to_string(&token_file)
        .unwrap_or_default()
        .trim()
        .to_owned();
    Ok(TestApp {
        partner: format!("http://{}", partner.unwrap()),
        admin: format!("http://{}", admin.unwrap()),
        admin_token,
        data_dir: data_dir.to_owned(),
        client: reqwest::Client::builder().no_proxy().build().unwrap(),
        child: Some(child),
        log,
        _dir: None,
    })
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl TestApp {
    /// Everything the server logged so far.
    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Sends a signal and waits (up to 15 s) for the exit status.
    pub fn signal_and_wait(&mut self, signal: &str) -> ExitStatus {
        let mut child = self.child.take().unwrap();
        Command::new("kill")
            .args([signal, &child.id().to_string()])
            .status()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not exit after {signal}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// The server's resident set size in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// The value of one metric series, e.g.
    /// `tessera_password_checks_total{scheme="argon2id"}` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.admin_get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    /// Takes the data dir's ownership away so a restart can reuse it.
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }

    // ---- admin API ----

    pub fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.admin, path))
            .bearer_auth(&self.admin_token)
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.admin_request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.admin_request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> Response {
        self.admin_request(reqwest::Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_delete(&self, path: &str) -> Response {
        self.admin_request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Creates a user with a generated password; returns the password.
    pub async fn create_user(&self, username: &str) -> String {
        self.create_user_with(json!({ "username": username })).await["password"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a user from a full body; returns the response JSON.
    pub async fn create_user_with(&self, body: Value) -> Value {
        let r = self.admin_post("/admin/users", body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// The active key's signing key, read from an admin export.
    pub async fn active_signing_key(&self) -> (String, SigningKey) {
        let export = self.admin_get("/admin/export").await.text().await.unwrap();
        for line in export.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "key" && v["key"]["status"] == "active" {
                let seed: [u8; 32] = B64
                    .decode(v["key"]["seed"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                return (
                    v["key"]["kid"].as_str().unwrap().to_owned(),
                    SigningKey::from_bytes(&seed),
                );
            }
        }
        panic!("no active key in export")
    }

    // ---- partner API ----

    /// `POST /generateToken?username=…&password=…`.
    pub async fn generate_token(&self, username: &str, password: &str) -> Response {
        self.partner_request(reqwest::Method::POST, "/generateToken")
            .query(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// A token for valid credentials (asserts 200).
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let r = self.generate_token(username, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    }

    /// A request to the partner listener.
    pub fn partner_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.partner, path))
    }

    /// `GET` on the partner listener.
    pub async fn partner_get(&self, path: &str) -> Response {
        self.partner_request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// The JWKS document.
    pub async fn jwks(&self) -> Value {
        self.partner_get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap()
    }

    /// `GET /verify` with a bearer token.
    pub async fn verify(&self, token: &str) -> Response {
        self.partner_request(reqwest::Method::GET, "/verify")
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    /// The `WWW-Authenticate` of a `/verify` that must be refused.
    pub async fn verify_rejection(&self, token: &str) -> String {
        let r = self.verify(token).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "token should be refused: {token}"
        );
        r.headers()["www-authenticate"].to_str().unwrap().to_owned()
    }
}

/// Signs raw header and payload JSON with `key` into a compact JWS.
pub fn forge(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

/// Unix seconds now.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a token, decoded without checking anything.
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// Polls `check` until it is true or `secs` pass.
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

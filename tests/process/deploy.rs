//! What the README and docs/ tell an operator to paste, run against the real thing:
//! the systemd unit under `systemd-analyze verify`, the five-minute
//! walkthrough run verbatim, and the nginx and Caddy forward-auth snippets
//! in front of a real server. Missing tools are installed from Debian's
//! packages by `scripts/ensure-tools.sh`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use warp::Filter;

use crate::helpers::{TestProcess, spawn_process};

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap()
}

/// Installs the packages giving these commands when they are missing.
fn ensure_tools(pairs: &[&str]) {
    let status = Command::new("bash")
        .arg(repo("scripts/ensure-tools.sh"))
        .args(pairs)
        .status()
        .unwrap();
    assert!(status.success(), "could not install {pairs:?}");
}

/// The README or a page of `docs/` shows `path`'s text verbatim (so what
/// is tested is what is pasted).
fn assert_readme_shows(path: &str) {
    let mut readme = read("README.md");
    for page in std::fs::read_dir(repo("docs")).unwrap() {
        let page = page.unwrap().path();
        if page.extension().is_some_and(|e| e == "md") {
            readme.push_str(&std::fs::read_to_string(page).unwrap());
        }
    }
    let text = read(path);
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("#!"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(
        readme.contains(&body),
        "neither README.md nor docs/ shows {path} verbatim"
    );
}

#[test]
fn the_systemd_unit_passes_systemd_analyze_verify() {
    ensure_tools(&["systemd-analyze=systemd"]);
    let unit = read("deploy/tessera.service");
    for directive in [
        "DynamicUser=yes",
        "StateDirectory=tessera",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
        "SystemCallFilter=@system-service",
    ] {
        assert!(unit.lines().any(|l| l == directive), "{directive}");
    }
    // `verify` checks that ExecStart's binary exists: point it at this build.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tessera.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/tessera", env!("CARGO_BIN_EXE_tessera")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("tessera.service"), "{stderr}");
}

#[test]
fn the_five_minute_walkthrough_runs_as_written() {
    assert_readme_shows("deploy/five-minutes.sh");
    let stdout = run_walkthrough("deploy/five-minutes.sh");
    for expected in [
        "channel_user  active",
        "valid:       yes",
        "sub:         channel_user",
        "reason:  token revoked",
        "wrote backup.jsonl",
        "token.revoke",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
}

#[test]
fn the_https_walkthrough_runs_as_written() {
    ensure_tools(&["openssl=openssl", "curl=curl"]);
    assert_readme_shows("deploy/https.sh");
    let stdout = run_walkthrough("deploy/https.sh");
    for expected in [
        "verify over HTTPS: 200",
        "valid:       yes",
        "sub:         channel_user",
    ] {
        assert!(
            stdout.contains(expected),
            "{expected:?} missing from:\n{stdout}"
        );
    }
}

/// Runs a README walkthrough with this build's `tessera` first on PATH, in
/// a network namespace of its own (its :8080/:8081 are free there);
/// asserts it exits 0 and returns its stdout.
fn run_walkthrough(script: &str) -> String {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_tessera")).parent().unwrap();
    let path = format!("{}:{}", bin_dir.display(), std::env::var("PATH").unwrap());
    // Its own network namespace: the walkthrough's :8080/:8081 are free there.
    let unshare: &[&str] = if is_root() { &["--net"] } else { &["-rn"] };
    let out = Command::new("unshare")
        .args(unshare)
        .args(["bash", "-c", "ip link set lo up && exec bash \"$0\""])
        .arg(repo(script))
        .env("PATH", path)
        .env_remove("TESSERA_DATA_DIR")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    stdout.into_owned()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// A backend that answers with the partner headers the proxy passed on.
async fn echo_backend() -> String {
    let routes = warp::any()
        .and(warp::header::optional::<String>("x-partner"))
        .and(warp::header::optional::<String>("x-auth-subject"))
        .map(|partner: Option<String>, subject: Option<String>| {
            format!(
                "partner={} subject={}",
                partner.unwrap_or_default(),
                subject.unwrap_or_default()
            )
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    tokio::spawn(warp::serve(routes).incoming(listener).run());
    addr
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Kills the proxy when the test ends.
struct Proxy(Child);

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts a proxy (`start` spawns it listening on the port given) on a
/// port nobody holds. A port picked by binding and releasing it can be
/// taken by another process before the proxy binds it; the proxy then
/// exits (address in use) instead of listening, and is started again on
/// another port. Listening and still running is the proof it holds it.
async fn start_proxy(start: impl Fn(u16) -> Child) -> (Proxy, u16) {
    for _ in 0..5 {
        let port = free_port();
        let mut proxy = Proxy(start(port));
        if listens(port, &mut proxy).await {
            return (proxy, port);
        }
    }
    panic!("the proxy exited before it listened, five times on five ports");
}

/// Whether the proxy came to listen on `port` (false: it exited first).
async fn listens(port: u16, proxy: &mut Proxy) -> bool {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let connected = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok();
        if let Ok(Some(status)) = proxy.0.try_wait() {
            eprintln!("the proxy exited ({status}); trying another port");
            return false;
        }
        if connected {
            return true;
        }
        assert!(Instant::now() < deadline, "the proxy never listened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Through the proxy at `url`: no token and a bad token are refused, a
/// valid one reaches the backend with the partner's name, and a revoked
/// one is refused.
async fn check_forward_auth(tessera: &TestProcess, url: &str, header: &str) {
    let client = reqwest::Client::new();
    let get = |token: Option<String>| {
        let mut rq = client.get(url);
        if let Some(t) = token {
            rq = rq.bearer_auth(t);
        }
        rq.send()
    };
    assert_eq!(get(None).await.unwrap().status(), 401);
    assert_eq!(get(Some("not.a.token".into())).await.unwrap().status(), 401);
    let pw = tessera.create_user("channel_user").await;
    let token = tessera.token_for("channel_user", &pw).await;
    let ok = get(Some(token.clone())).await.unwrap();
    assert_eq!(ok.status(), 200);
    let body = ok.text().await.unwrap();
    assert!(body.contains(&format!("{header}=channel_user")), "{body}");
    let r = tessera
        .admin_post("/admin/revocations", serde_json::json!({ "token": token }))
        .await;
    assert_eq!(r.status(), 201);
    assert_eq!(get(Some(token)).await.unwrap().status(), 401);
    check_scoped_routes(tessera, url, header).await;
    check_dpop(tessera, url, header).await;
}

/// panva's `dpop` from npm, installed into a directory of the test's own.
fn dpop_client_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dpop-client");
    std::fs::create_dir_all(&dir).unwrap();
    // One installer at a time (both proxy tests run this).
    let lock = std::fs::File::create(dir.join(".lock")).unwrap();
    rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
    if !dir.join("node_modules/dpop/package.json").exists() {
        ensure_tools(&["npm=npm", "node=nodejs"]);
        let out = Command::new("npm")
            .args(["install", "--silent", "--no-audit", "--no-fund", "dpop@2"])
            .current_dir(&dir)
            .output()
            .expect("npm runs");
        assert!(
            out.status.success(),
            "npm install dpop: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    std::fs::copy(
        repo("tests/interop/dpop_client.mjs"),
        dir.join("dpop_client.mjs"),
    )
    .unwrap();
    dir
}

/// DPoP through the proxy at `url`: a client nobody here wrote gets a
/// bound token (Ed25519 and ES256) and reaches the backend with it; the
/// same proof replayed, and the token downgraded to Bearer, are refused.
async fn check_dpop(tessera: &TestProcess, url: &str, header: &str) {
    let secret = tessera.create_user("dpop_partner").await;
    let seen = run_dpop_client(tessera, url, "dpop_partner", &secret).await;
    for alg in ["Ed25519", "ES256"] {
        let body = seen[alg]["ok_body"].as_str().unwrap();
        assert!(
            body.contains(&format!("{header}=dpop_partner")),
            "{alg}: {body}"
        );
    }
}

/// Runs panva's `dpop` client as `client_id`: for each algorithm a bound
/// token from `tessera`, then `url` called rightly (200), with the same
/// proof again and downgraded to Bearer (401 each), and with a fresh
/// proof (200), all asserted here; answers what it saw.
pub async fn run_dpop_client(
    tessera: &TestProcess,
    url: &str,
    client_id: &str,
    secret: &str,
) -> serde_json::Value {
    let dir = tokio::task::spawn_blocking(dpop_client_dir).await.unwrap();
    let token_url = format!("{}/oauth/token", tessera.partner);
    let (url, client_id, secret) = (url.to_owned(), client_id.to_owned(), secret.to_owned());
    let out = tokio::task::spawn_blocking(move || {
        use std::io::Write as _;
        let mut child = Command::new("node")
            .args(["dpop_client.mjs", &token_url, &url, &client_id])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("node runs");
        // The secret through stdin, never argv.
        writeln!(child.stdin.take().unwrap(), "{secret}").unwrap();
        child.wait_with_output().unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "the dpop client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for alg in ["Ed25519", "ES256"] {
        let s = &seen[alg];
        assert_eq!(s["issued"], 200, "{alg}: {seen}");
        assert_eq!(s["token_type"], "DPoP", "{alg}: {seen}");
        assert_eq!(s["ok"], 200, "{alg}: {seen}");
        assert_eq!(s["replayed"], 401, "{alg}: a replayed proof: {seen}");
        assert_eq!(
            s["downgraded"], 401,
            "{alg}: a bound token as Bearer: {seen}"
        );
        assert_eq!(s["fresh"], 200, "{alg}: a fresh proof again: {seen}");
    }
    seen
}

/// Under the per-scope prefixes on `url`'s host (`/api/calendar/…`): a token
/// passes only where its user holds the scope, and a scope taken away
/// binds at once.
async fn check_scoped_routes(tessera: &TestProcess, url: &str, header: &str) {
    // `http://host:port`, whatever path `url` has.
    let base: String = url.splitn(4, '/').take(3).collect::<Vec<_>>().join("/");
    let client = reqwest::Client::new();
    let body = serde_json::json!({"username": "calendar_only", "scopes": ["calendar"]});
    let pw = tessera.create_user_with(body).await["password"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = tessera.token_for("calendar_only", &pw).await;
    let status = |path: &'static str| {
        let rq = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move { rq.send().await.unwrap() }
    };
    let calendar = status("/api/calendar/sync").await;
    assert_eq!(calendar.status(), 200);
    let echoed = calendar.text().await.unwrap();
    assert!(
        echoed.contains(&format!("{header}=calendar_only")),
        "{echoed}"
    );
    for other in ["/api/property/1", "/api/content/1"] {
        let refused = status(other).await;
        assert_eq!(refused.status(), 403, "{other}");
        // RFC 6750 §3.1: the challenge tells the partner which scope.
        let challenge: Vec<_> = refused
            .headers()
            .get_all("www-authenticate")
            .iter()
            .collect();
        assert_eq!(challenge.len(), 1, "{other}: one challenge: {challenge:?}");
        let challenge = challenge[0].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer ") && challenge.contains("error=\"insufficient_scope\""),
            "{other}: {challenge}"
        );
    }
    let anonymous = client
        .get(format!("{base}/api/calendar/sync"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
    let challenge: Vec<_> = anonymous
        .headers()
        .get_all("www-authenticate")
        .iter()
        .collect();
    assert_eq!(
        challenge.len(),
        1,
        "one challenge without a token: {challenge:?}"
    );
    assert_eq!(status("/api/bookings").await.status(), 200);
    let r = tessera
        .admin_patch(
            "/admin/users/calendar_only",
            serde_json::json!({"scopes": ["content"]}),
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(status("/api/calendar/sync").await.status(), 403);
}

#[tokio::test]
async fn the_nginx_snippet_guards_a_backend() {
    assert_readme_shows("deploy/nginx-forward-auth.conf");
    ensure_tools(&["nginx=nginx"]);
    let tessera = spawn_process().await;
    let backend = echo_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let snippet = read("deploy/nginx-forward-auth.conf")
        .replace(
            "127.0.0.1:8080",
            tessera.partner.trim_start_matches("http://"),
        )
        .replace("127.0.0.1:9000", &backend);
    let prefix = dir.path().display().to_string();
    let conf_path = dir.path().join("nginx.conf");
    let nginx = if Path::new("/usr/sbin/nginx").exists() {
        "/usr/sbin/nginx"
    } else {
        "nginx"
    };
    let (_proxy, port) = start_proxy(|port| {
        let conf = format!(
            "daemon off;\nmaster_process off;\npid {prefix}/nginx.pid;\nerror_log stderr warn;\n\
         events {{}}\nhttp {{\n  access_log off;\n  client_body_temp_path {prefix}/body;\n  \
         proxy_temp_path {prefix}/proxy;\n  fastcgi_temp_path {prefix}/fastcgi;\n  \
         uwsgi_temp_path {prefix}/uwsgi;\n  scgi_temp_path {prefix}/scgi;\n  \
         server {{\n    listen 127.0.0.1:{port};\n{snippet}\n  }}\n}}\n"
        );
        std::fs::write(&conf_path, conf).unwrap();
        Command::new(nginx)
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(&conf_path)
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    check_forward_auth(
        &tessera,
        &format!("http://127.0.0.1:{port}/api/bookings"),
        "partner",
    )
    .await;
}

#[tokio::test]
async fn the_caddy_snippet_guards_a_backend() {
    assert_readme_shows("deploy/Caddyfile");
    ensure_tools(&["caddy=caddy"]);
    let tessera = spawn_process().await;
    let backend = echo_backend().await;
    let dir = tempfile::tempdir().unwrap();
    let conf_path = dir.path().join("Caddyfile");
    let (_proxy, port) = start_proxy(|port| {
        let site = read("deploy/Caddyfile")
            .replace(
                "127.0.0.1:8080",
                tessera.partner.trim_start_matches("http://"),
            )
            .replace("127.0.0.1:9000", &backend)
            .replace(":8000", &format!("http://127.0.0.1:{port}"));
        // The test's own global options: no admin endpoint, state in the temp dir.
        let conf = format!(
            "{{\n\tadmin off\n\tstorage file_system {}\n}}\n\n{site}",
            dir.path().display()
        );
        std::fs::write(&conf_path, conf).unwrap();
        Command::new("caddy")
            .args(["run", "--adapter", "caddyfile", "--config"])
            .arg(&conf_path)
            .env("HOME", dir.path())
            .env("XDG_DATA_HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap()
    })
    .await;
    check_forward_auth(
        &tessera,
        &format!("http://127.0.0.1:{port}/bookings"),
        "subject",
    )
    .await;
}

//! `spawn_process()` starts the real `tessera` binary on port 0 with a temp
//! data dir and captures its log: for what only a real process shows
//! (signals, SIGKILL, the data-dir lock, the log, env vars, memory).

use std::io::{BufRead, BufReader};
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

pub use crate::http::*;

/// A running `tessera serve` process.
pub struct TestProcess {
    endpoints: Endpoints,
    pub data_dir: PathBuf,
    child: Option<Child>,
    log: Arc<Mutex<String>>,
    _dir: Option<tempfile::TempDir>,
}

/// Writes a secret file (an admin token) as an operator must: mode 0600.
pub fn write_secret(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// Starts a server on a fresh temp data dir.
pub async fn spawn_process() -> TestProcess {
    spawn_process_with(&[]).await
}

/// Starts a server on a fresh temp data dir with extra flags.
pub async fn spawn_process_with(args: &[&str]) -> TestProcess {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut app = spawn_on(&path, args)
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status:?}):\n{log}"));
    app._dir = Some(dir);
    app
}

/// Starts a server on a fresh temp data dir with extra environment variables.
pub async fn spawn_process_with_env(envs: &[(&str, &str)]) -> TestProcess {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data");
    let mut app = spawn_on_with_env(&path, &[], envs)
        .unwrap_or_else(|(status, log)| panic!("server did not start ({status:?}):\n{log}"));
    app._dir = Some(dir);
    app
}

/// Starts a server on `data_dir`; Err carries the exit status and log when it
/// does not come up.
pub fn spawn_on(
    data_dir: &Path,
    args: &[&str],
) -> Result<TestProcess, (Option<ExitStatus>, String)> {
    spawn_on_with_env(data_dir, args, &[])
}

/// The binary under test: this build's, or `TESSERA_TEST_BIN` to run the
/// process tests against another build (showing a new test failing on an
/// older release).
pub fn tessera_bin() -> std::path::PathBuf {
    std::env::var_os("TESSERA_TEST_BIN")
        .map(Into::into)
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_tessera").into())
}

/// [`spawn_on`] with extra environment variables (libfaketime's, say).
pub fn spawn_on_with_env(
    data_dir: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
) -> Result<TestProcess, (Option<ExitStatus>, String)> {
    let mut command = Command::new(tessera_bin());
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
                // --log-format json: {"message":"listening","partner":"…"}
                ("\"partner\":\"", "partner"),
                ("\"admin\":\"", "admin"),
            ] {
                if !line.contains("listening") {
                    continue;
                }
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
    Ok(TestProcess {
        endpoints: Endpoints::new(&partner.unwrap(), &admin.unwrap(), admin_token),
        data_dir: data_dir.to_owned(),
        child: Some(child),
        log,
        _dir: None,
    })
}

impl Drop for TestProcess {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl TestProcess {
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

    /// Takes the data dir's ownership away so a restart can reuse it.
    pub fn keep_dir(&mut self) -> Option<tempfile::TempDir> {
        self._dir.take()
    }
}

impl Deref for TestProcess {
    type Target = Endpoints;

    fn deref(&self) -> &Endpoints {
        &self.endpoints
    }
}

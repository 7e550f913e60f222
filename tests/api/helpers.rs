//! `spawn_app()` starts the whole app in this process on port 0 with a
//! temp data dir and a fixed clock (`TestApp::advance` moves it: nothing
//! sleeps for time to pass); `TestApp` talks HTTP to it like any client.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::Parser;
use tessera::app::App;
use tessera::cli::{Cli, Command};
use tessera::config::Config;
use tessera::runtime::time::Clock;
use tessera::service::{Pruned, Service};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub use crate::http::*;

/// A running app.
pub struct TestApp {
    endpoints: Endpoints,
    pub data_dir: PathBuf,
    clock: Clock,
    service: Arc<Service>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<()>>,
    dir: Option<tempfile::TempDir>,
}

impl Deref for TestApp {
    type Target = Endpoints;

    fn deref(&self) -> &Endpoints {
        &self.endpoints
    }
}

/// Starts an app on a fresh temp data dir.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(&[]).await
}

/// Starts an app on a fresh temp data dir with `tessera serve` flags.
pub async fn spawn_app_with(args: &[&str]) -> TestApp {
    let dir = tempfile::tempdir().unwrap();
    let mut app = spawn_on(&dir.path().join("data"), args, now())
        .await
        .unwrap_or_else(|e| panic!("app did not start: {e}"));
    app.dir = Some(dir);
    app
}

/// Starts an app on `data_dir` with its clock at `unix_secs`.
pub async fn spawn_on(
    data_dir: &Path,
    args: &[&str],
    unix_secs: u64,
) -> Result<TestApp, tessera::app::StartError> {
    let mut argv = vec!["tessera", "serve", "--data-dir"];
    let dir_text = data_dir.to_str().unwrap().to_owned();
    argv.push(&dir_text);
    if !args.contains(&"--listen") {
        argv.extend(["--listen", "127.0.0.1:0"]);
    }
    argv.extend(["--admin-listen", "127.0.0.1:0"]);
    argv.extend(args);
    let Command::Serve(serve) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!("the argv is a serve command")
    };
    let config = Config::from_args(*serve).unwrap();
    let clock = Clock::fixed(unix_secs);
    let app = App::build_with_clock(config, clock.clone()).await?;
    let admin_token = std::fs::read_to_string(data_dir.join("admin.token"))
        .unwrap_or_default()
        .trim()
        .to_owned();
    let endpoints = Endpoints::new(
        &app.partner_addr.to_string(),
        &app.admin_addr.expect("the admin API listens").to_string(),
        admin_token,
    );
    let service = app.service();
    let (stop, stopped) = oneshot::channel();
    let task = tokio::spawn(app.run(async {
        let _ = stopped.await;
    }));
    Ok(TestApp {
        endpoints,
        data_dir: data_dir.to_owned(),
        clock,
        service,
        stop: Some(stop),
        task: Some(task),
        dir: None,
    })
}

impl TestApp {
    /// Now, by the app's clock.
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The app's clock, to share with a client that must agree on "now".
    pub fn clock_handle(&self) -> Clock {
        self.clock.clone()
    }

    /// Moves the app's clock forward.
    pub fn advance(&self, secs: u64) {
        self.clock.set(self.clock.now() + secs);
    }

    /// Steps the app's clock back, as NTP does to a host that ran ahead.
    pub fn step_back(&self, secs: u64) {
        self.clock.set(self.clock.now() - secs);
    }

    /// The feed token the app created in its data dir.
    pub fn feed_token(&self) -> String {
        std::fs::read_to_string(self.data_dir.join("feed.token"))
            .expect("the app wrote its feed token")
            .trim()
            .to_owned()
    }

    /// `GET` the revocation feed (`path` from `/revocations` on) as a
    /// verifier does, with the feed token.
    pub async fn feed_get(&self, path: &str) -> reqwest::Response {
        self.partner_request(reqwest::Method::GET, path)
            .bearer_auth(self.feed_token())
            .send()
            .await
            .unwrap()
    }

    /// Writes the logins' secret uses noted so far, as the background
    /// flush does every few seconds; returns how many it wrote.
    pub async fn flush_secret_uses(&self) -> usize {
        self.service.flush_secret_uses().await.unwrap()
    }

    /// Runs one round of the background pruning now.
    pub async fn prune(&self) -> Pruned {
        self.service.prune().await
    }

    /// Stops the app gracefully and waits until it has closed its store;
    /// returns the data dir's owner so the dir can be reused.
    pub async fn stop(mut self) -> (PathBuf, Option<tempfile::TempDir>, u64) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        (self.data_dir.clone(), self.dir.take(), self.clock.now())
    }

    /// Stops the app (its listeners close) but keeps its clock to move.
    pub async fn stop_and_keep_clock(mut self) -> StoppedApp {
        let clock = self.clock.clone();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        StoppedApp { clock }
    }

    /// Stops the app and starts it again on the same data dir and clock.
    pub async fn restart(self, args: &[&str]) -> TestApp {
        let (data_dir, dir, at) = self.stop().await;
        // A blocking task of the old app (a feed rebuild, a write) may
        // still hold the database for a moment after its listeners closed.
        let mut tries = 0;
        let mut app = loop {
            match spawn_on(&data_dir, args, at).await {
                Ok(app) => break app,
                Err(e) if e.to_string().contains("in use") && tries < 100 => {
                    tries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Err(e) => panic!("restart failed: {e}"),
            }
        };
        app.dir = dir;
        app
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// An app that was stopped; only its clock is left.
pub struct StoppedApp {
    clock: Clock,
}

impl StoppedApp {
    /// Moves the clock forward.
    pub fn advance(&self, secs: u64) {
        self.clock.set(self.clock.now() + secs);
    }
}

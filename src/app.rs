//! Start-up and the run loop: open the store, load or create the admin
//! token, start the service, bind both listeners ([`App::build`]); then serve
//! until the shutdown future resolves, drain, and close the store
//! ([`App::run`]).

use std::fs;
use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;

use crate::config::{Config, Storage};
use crate::http;
use crate::http::server::ConnectionLimits;
use crate::http::state::AppState;
use crate::http::tls::TlsListener;
use crate::runtime::data_dir::{self, AdminUrlFile, NoRandomness, SecretFileError};
use crate::runtime::time::Clock;
use crate::service::{FLUSH_EVERY, InternalError, Service, Settings};
use crate::store::{PostgresStore, RedbStore, Store, StoreError};

/// How often expired revocations and retired keys are swept.
const PRUNE_INTERVAL: Duration = Duration::from_secs(60);

/// Why the server could not start. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The store could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The service could not load its state.
    #[error("could not load keys and revocations: {0}")]
    Service(#[from] InternalError),
    /// A listener could not bind.
    #[error(
        "could not listen on {addr}: {source}; pick a free address with --listen/--admin-listen"
    )]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The cause.
        source: std::io::Error,
    },
    /// The `--seed` file could not be read or applied.
    #[error("seed file {path}: {reason}")]
    Seed {
        /// The file.
        path: PathBuf,
        /// What is wrong, naming the user and field.
        reason: String,
    },
    /// `<data-dir>/admin.url` could not be written.
    #[error("could not write {path}: {source}; check the data dir's permissions")]
    AdminUrl {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A `--tls-cert`/`--tls-key` (or admin) pair could not be loaded.
    #[error("HTTPS: {0}")]
    Tls(String),
    /// A token file (admin or feed) could not be read or written.
    #[error(transparent)]
    SecretFile(#[from] SecretFileError),
    /// The OS random source failed.
    #[error(transparent)]
    NoRandomness(#[from] NoRandomness),
}

/// A built server, listeners bound, not yet serving.
pub struct App {
    state: Arc<AppState>,
    partner: TcpListener,
    admin: Option<TcpListener>,
    admin_url_file: Option<AdminUrlFile>,
    limits: ConnectionLimits,
    partner_tls: Option<Arc<TlsListener>>,
    admin_tls: Option<Arc<TlsListener>>,
    /// The partner listener's bound address.
    pub partner_addr: SocketAddr,
    /// The admin listener's bound address; None when the admin API is off
    /// (`--ephemeral` without `--admin-token-file`).
    pub admin_addr: Option<SocketAddr>,
}

async fn bind(addr: SocketAddr) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| StartError::Bind { addr, source })?;
    let bound = listener
        .local_addr()
        .map_err(|source| StartError::Bind { addr, source })?;
    Ok((listener, bound))
}

/// Reads and applies a `--seed` file (creating and updating, never
/// deleting). Passwords it generates are printed once on stdout.
async fn seed(service: &Service, path: &Path) -> Result<(), StartError> {
    let err = |reason: String| StartError::Seed {
        path: path.to_owned(),
        reason,
    };
    let text = fs::read_to_string(path).map_err(|e| err(format!("could not read it: {e}")))?;
    let file = crate::domain::declaration::parse_toml(&text).map_err(err)?;
    let desired = crate::domain::declaration::check_all(&file.users).map_err(err)?;
    let report = service
        .apply(desired, false, false)
        .await
        .map_err(|e| err(e.to_string()))?;
    for (user, password) in &report.passwords {
        println!("password for {user}: {password}");
    }
    tracing::info!(summary = %report.summary(), "applied seed file");
    Ok(())
}

impl App {
    /// Opens the store (failing at once if another process has it), loads or
    /// creates keys and the admin token, applies `--seed`, and binds both
    /// listeners.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// [`App::build`] with the clock every rule reads: tests pass a fixed
    /// one and move it instead of sleeping.
    pub async fn build_with_clock(config: Config, clock: Clock) -> Result<Self, StartError> {
        let store: Arc<dyn Store> = match &config.storage {
            Storage::DataDir(dir) => Arc::new(RedbStore::open(dir)?),
            Storage::Memory => Arc::new(RedbStore::in_memory()?),
            Storage::Postgres { url, outage_grace } => {
                let (url, grace) = (url.clone(), *outage_grace);
                // It blocks on its own runtime: open it off this one.
                Arc::new(
                    tokio::task::spawn_blocking(move || PostgresStore::open(&url, grace))
                        .await
                        .map_err(|e| StoreError::Backend(Box::new(e)))??,
                )
            }
        };
        tracing::info!(path = %store.describe(), "opened database");
        let admin_token = config
            .admin_token_file
            .as_deref()
            .map(data_dir::load_or_create_admin_token)
            .transpose()?;
        let feed_token = config
            .feed_token_file
            .as_deref()
            .map(data_dir::load_or_create_feed_token)
            .transpose()?;
        if feed_token.is_none() {
            tracing::info!(
                "revocation feed closed: pass --feed-token-file to let verifiers read GET /revocations"
            );
        }
        let service = Service::start(
            store,
            Settings {
                issuer: config.issuer.clone(),
                default_ttl_secs: config.token_ttl_secs,
                clock_leeway_secs: config.clock_leeway_secs,
                audit_retention_secs: config.audit_retention_secs,
                throttle: config.throttle,
                hash_queue: config.hash_queue,
            },
            clock,
        )?;
        if let Some(path) = &config.seed {
            seed(&service, path).await?;
        }
        if crate::login::client::trusts_everyone(&config.trusted_proxies) {
            tracing::warn!(
                "--trusted-proxies includes 0.0.0.0/0 or ::/0: any client can choose the address its failed logins are counted under; list only your proxies"
            );
        }
        let load_tls = |files: &Option<crate::config::TlsFiles>| {
            files
                .clone()
                .map(TlsListener::load)
                .transpose()
                .map_err(StartError::Tls)
        };
        let partner_tls = load_tls(&config.tls)?;
        let admin_tls = load_tls(&config.admin_tls)?;
        let (partner, partner_addr) = bind(config.listen).await?;
        let (admin, admin_addr) = match &admin_token {
            Some(_) => {
                let (listener, addr) = bind(config.admin_listen).await?;
                (Some(listener), Some(addr))
            }
            None => (None, None),
        };
        let instance_key =
            crate::runtime::instance::random().map_err(|e| NoRandomness::from(e.to_string()))?;
        let admin_url_file = match (&config.storage, admin_addr) {
            (Storage::DataDir(dir), Some(addr)) => Some(
                AdminUrlFile::write(
                    dir,
                    &data_dir::admin_base_url(addr, admin_tls.is_some()),
                    &instance_key,
                )
                .map_err(|(path, source)| StartError::AdminUrl { path, source })?,
            ),
            _ => None,
        };
        let state = Arc::new(AppState {
            service: Arc::new(service),
            trusted_proxies: config.trusted_proxies.clone(),
            // With the admin API off no token can match: the digest of a
            // fresh random value nobody holds.
            admin_token_digest: match &admin_token {
                Some(token) => http::secrets::token_digest(token),
                None => http::secrets::token_digest(&data_dir::unguessable()?),
            },
            feed_token_digest: feed_token
                .as_deref()
                .map(|t| http::secrets::token_digest(t)),
            instance_key: admin_url_file.as_ref().map(|_| instance_key),
            body_read_timeout: config.body_read_timeout,
            public_url: config.public_url.clone().unwrap_or_else(|| {
                let scheme = if partner_tls.is_some() {
                    "https"
                } else {
                    "http"
                };
                format!("{scheme}://{partner_addr}")
            }),
            console: http::console::session::Sessions::default(),
            console_secure_cookie: admin_tls.is_some(),
        });
        tracing::info!(partner = %partner_addr, https = partner_tls.is_some(), "listening");
        match admin_addr {
            Some(addr) => tracing::info!(admin = %addr, https = admin_tls.is_some(), "listening"),
            None => tracing::info!("admin API off: --ephemeral without --admin-token-file"),
        }
        Ok(Self {
            state,
            partner,
            admin,
            admin_url_file,
            partner_tls,
            admin_tls,
            limits: ConnectionLimits {
                header_read_timeout: config.header_read_timeout,
                max_connections: config.max_connections,
                max_connections_per_address: config.max_connections_per_address,
                uncapped: Arc::from(config.trusted_proxies.as_slice()),
                access_log: config.access_log,
            },
            partner_addr,
            admin_addr,
        })
    }

    /// With HTTPS on a listener: a task that reloads every certificate on
    /// SIGHUP, logging each outcome (a failed reload keeps the old one).
    fn tls_reloader(&self) -> Option<tokio::task::JoinHandle<()>> {
        let listeners: Vec<(&'static str, Arc<TlsListener>)> = [
            ("partner", self.partner_tls.clone()),
            ("admin", self.admin_tls.clone()),
        ]
        .into_iter()
        .filter_map(|(name, tls)| Some((name, tls?)))
        .collect();
        if listeners.is_empty() {
            return None;
        }
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => signal,
            Err(e) => {
                tracing::warn!(error = %e, "no SIGHUP handler: certificates reload only on restart");
                return None;
            }
        };
        Some(tokio::spawn(async move {
            while hangup.recv().await.is_some() {
                for (listener, tls) in &listeners {
                    match tls.reload() {
                        Ok(()) => tracing::info!(
                            listener,
                            cert = %tls.files().cert.display(),
                            "certificate reloaded"
                        ),
                        Err(e) => tracing::error!(
                            listener,
                            error = %e,
                            "certificate reload failed; still serving the previous one"
                        ),
                    }
                }
            }
        }))
    }

    /// The use cases this app serves (tests drive background work with it).
    pub fn service(&self) -> Arc<Service> {
        self.state.service.clone()
    }

    /// Serves both listeners until `shutdown` resolves, then stops accepting,
    /// lets in-flight requests finish (up to 10 s) and closes the store.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send + 'static) {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let stopped = move || {
            let mut rx = stop_rx.clone();
            async move {
                let _ = rx.wait_for(|s| *s).await;
            }
        };
        let reloader = self.tls_reloader();
        let partner = tokio::spawn(http::server::serve(
            self.partner,
            http::partner_routes(&self.state),
            self.limits.clone(),
            self.partner_tls,
            stopped(),
        ));
        let admin = self.admin.map(|listener| {
            tokio::spawn(http::server::serve(
                listener,
                http::admin_routes(&self.state),
                ConnectionLimits {
                    // The admin listener believes no proxy: every peer is capped.
                    uncapped: Arc::from([]),
                    ..self.limits
                },
                self.admin_tls,
                stopped(),
            ))
        });
        let keyring_follower = self.state.service.follow_keyring_changes();
        let service = self.state.service.clone();
        let pruner = tokio::spawn(async move {
            let mut tick = tokio::time::interval(PRUNE_INTERVAL);
            loop {
                tick.tick().await;
                service.prune().await;
            }
        });
        let service = self.state.service.clone();
        let use_flusher = tokio::spawn(async move {
            let mut tick = tokio::time::interval(FLUSH_EVERY);
            loop {
                tick.tick().await;
                service.flush_secret_uses_in_background().await;
            }
        });
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests");
        let _ = stop_tx.send(true);
        let _ = partner.await;
        if let Some(admin) = admin {
            let _ = admin.await;
        }
        pruner.abort();
        let _ = pruner.await;
        use_flusher.abort();
        let _ = use_flusher.await;
        // The logins of the last seconds, drained above, reach the store.
        self.state.service.flush_secret_uses_in_background().await;
        if let Some(reloader) = reloader {
            reloader.abort();
        }
        if let Some(follower) = keyring_follower {
            follower.abort();
        }
        drop(self.admin_url_file);
        tracing::info!("stopped");
    }
}

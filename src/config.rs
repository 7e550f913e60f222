//! `tessera serve` flags and environment variables (SPEC §1), validated into
//! a [`Config`]: durations parsed with humantime, addresses and proxy lists
//! checked, paths resolved.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, ValueEnum};
use ipnet::IpNet;

use crate::login::throttle::ThrottleConfig;
use crate::runtime::time::parse_duration;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The flags of `tessera serve`; each has an env var.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// Directory for tessera.redb and admin.token (created 0700 if missing).
    #[arg(long, env = "TESSERA_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Partner API address (port 0 picks a free port).
    #[arg(long, env = "TESSERA_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Admin API address; keep it on a private interface.
    #[arg(long, env = "TESSERA_ADMIN_LISTEN", default_value = "127.0.0.1:8081")]
    pub admin_listen: SocketAddr,
    /// The `iss` claim of issued tokens.
    #[arg(long, env = "TESSERA_ISSUER", default_value = "tessera")]
    pub issuer: String,
    /// Token lifetime when a user has no token_ttl_secs (e.g. 90s, 15m, 1h, 7d).
    #[arg(long, env = "TESSERA_TOKEN_TTL", default_value = "1h", value_parser = parse_duration)]
    pub token_ttl: Duration,
    /// Admin bearer token file [default: <data-dir>/admin.token].
    #[arg(long, env = "TESSERA_ADMIN_TOKEN_FILE")]
    pub admin_token_file: Option<PathBuf>,
    /// Comma-separated IPs/CIDRs whose X-Forwarded-For is believed.
    #[arg(long, env = "TESSERA_TRUSTED_PROXIES", value_delimiter = ',', value_parser = parse_proxy)]
    pub trusted_proxies: Vec<IpNet>,
    /// Log line format.
    #[arg(long, env = "TESSERA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// How long a client may take to send its request headers (slow-loris guard).
    #[arg(long, env = "TESSERA_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub header_read_timeout: Duration,
    /// The partner API's URL as clients see it, for the OAuth server metadata
    /// [default: http://<partner listen address>].
    #[arg(long, env = "TESSERA_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long a client may take to send a request body once its head arrived
    /// (408 after; for /admin/import, the longest pause between two chunks).
    #[arg(long, env = "TESSERA_BODY_READ_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub body_read_timeout: Duration,
    /// Connections served at once per listener; more wait in the kernel's accept queue.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Connections one client address (an IPv6 /64) may hold at once per listener; more are closed at once. --trusted-proxies are exempt on the partner listener.
    #[arg(long, env = "TESSERA_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,
    /// Argon2id login checks that may wait for a hashing thread; more get 503 `server busy`.
    #[arg(long, env = "TESSERA_HASH_QUEUE", default_value_t = 64)]
    pub hash_queue: usize,
    /// Failed logins from one address within --throttle-window that trigger throttling.
    #[arg(long, env = "TESSERA_THROTTLE_FAILURES", default_value_t = 10)]
    pub throttle_failures: u32,
    /// Window in which failures are counted.
    #[arg(long, env = "TESSERA_THROTTLE_WINDOW", default_value = "5m", value_parser = parse_duration)]
    pub throttle_window: Duration,
    /// First lockout; doubles for repeat offenders up to --throttle-max-lockout.
    #[arg(long, env = "TESSERA_THROTTLE_LOCKOUT", default_value = "1m", value_parser = parse_duration)]
    pub throttle_lockout: Duration,
    /// Longest lockout.
    #[arg(long, env = "TESSERA_THROTTLE_MAX_LOCKOUT", default_value = "1h", value_parser = parse_duration)]
    pub throttle_max_lockout: Duration,
    /// Keep the database and keys in memory; nothing is written to a data
    /// dir and all is gone at exit (test environments). The admin API
    /// listens only when --admin-token-file is given.
    #[arg(long, env = "TESSERA_EPHEMERAL", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub ephemeral: bool,
    /// Cluster mode: keep everything in this PostgreSQL database
    /// (postgres://user:password@host:port/db), shared by every node;
    /// needs --admin-token-file (the same file on every node).
    #[arg(
        long = "database",
        env = "TESSERA_DATABASE_URL",
        hide_env_values = true
    )]
    pub database: Option<String>,
    /// Cluster mode: how long a node keeps issuing and verifying from memory
    /// while the database is unreachable; after that it refuses (fails closed).
    /// During the grace it can not learn of revocations made on other nodes,
    /// and /readyz answers 503 so load balancers send traffic elsewhere.
    #[arg(long, env = "TESSERA_DB_OUTAGE_GRACE", default_value = "60s", value_parser = parse_duration)]
    pub db_outage_grace: Duration,
    /// How far in the future a token's iat may lie before it counts as not
    /// yet valid, for hosts whose clocks disagree (exp gets no leeway).
    #[arg(long, env = "TESSERA_CLOCK_LEEWAY", default_value = "60s", value_parser = parse_leeway)]
    pub clock_leeway: Duration,
    /// How long admin and partner actions stay in the audit log (the
    /// newest event is always kept).
    #[arg(long, env = "TESSERA_AUDIT_RETENTION", default_value = "400d", value_parser = parse_duration)]
    pub audit_retention: Duration,
    /// The token verifiers present to read the revocation feed
    /// [default: <data-dir>/feed.token, created if missing; with --database
    /// or --ephemeral the feed stays closed unless this is given].
    #[arg(long, env = "TESSERA_FEED_TOKEN_FILE")]
    pub feed_token_file: Option<PathBuf>,
    /// Serve the partner API over HTTPS with this PEM certificate chain
    /// (leaf first); needs --tls-key. Reloaded on SIGHUP.
    #[arg(long, env = "TESSERA_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (not readable by everyone).
    #[arg(long, env = "TESSERA_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Serve the admin API over HTTPS with this PEM certificate chain; needs
    /// --admin-tls-key. Reloaded on SIGHUP. The CLI trusts its CA with
    /// --ca-file.
    #[arg(long, env = "TESSERA_ADMIN_TLS_CERT", requires = "admin_tls_key")]
    pub admin_tls_cert: Option<PathBuf>,
    /// The PEM private key of --admin-tls-cert.
    #[arg(long, env = "TESSERA_ADMIN_TLS_KEY", requires = "admin_tls_cert")]
    pub admin_tls_key: Option<PathBuf>,
    /// Log one line per request (method, path, status, duration, caller);
    /// never a query string or a header, so no password or token.
    #[arg(long, env = "TESSERA_ACCESS_LOG", action = clap::ArgAction::SetTrue, value_parser = clap::builder::BoolishValueParser::new())]
    pub access_log: bool,
    /// A declarative TOML file of users, applied before the listeners open.
    #[arg(long, env = "TESSERA_SEED")]
    pub seed: Option<PathBuf>,
}

/// Where the database lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Storage {
    /// `<dir>/tessera.redb`, with `admin.token` and `admin.url` beside it.
    DataDir(PathBuf),
    /// In memory only (`--ephemeral`).
    Memory,
    /// A PostgreSQL database shared by every node (`--database`).
    Postgres {
        /// The connection URL.
        url: String,
        /// `--db-outage-grace`.
        outage_grace: Duration,
    },
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

impl TlsFiles {
    fn pair(cert: Option<PathBuf>, key: Option<PathBuf>) -> Option<Self> {
        Some(Self {
            cert: cert?,
            key: key?,
        })
    }
}

fn parse_proxy(text: &str) -> Result<IpNet, String> {
    let text = text.trim();
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR (e.g. 10.0.0.1 or 10.0.0.0/8)"))
}

/// A validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the database lives.
    pub storage: Storage,
    /// Partner listener.
    pub listen: SocketAddr,
    /// Admin listener.
    pub admin_listen: SocketAddr,
    /// `iss` claim.
    pub issuer: String,
    /// Default token TTL in whole seconds.
    pub token_ttl_secs: u64,
    /// Where the admin token lives; None (only with `--ephemeral`) keeps
    /// the admin listener off.
    pub admin_token_file: Option<PathBuf>,
    /// `--seed`: a declarative file applied before the listeners open.
    pub seed: Option<PathBuf>,
    /// Proxies whose X-Forwarded-For is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Log format.
    pub log_format: LogFormat,
    /// Throttling.
    pub throttle: ThrottleConfig,
    /// Header-read timeout of both listeners.
    pub header_read_timeout: Duration,
    /// Body-read timeout of both listeners.
    pub body_read_timeout: Duration,
    /// Connections served at once per listener.
    pub max_connections: usize,
    /// Connections one address may hold at once per listener.
    pub max_connections_per_address: usize,
    /// Argon2id login checks that may wait for a thread.
    pub hash_queue: usize,
    /// `--public-url`, if given.
    pub public_url: Option<String>,
    /// `--clock-leeway` in whole seconds.
    pub clock_leeway_secs: u64,
    /// `--audit-retention` in whole seconds.
    pub audit_retention_secs: u64,
    /// Where the feed token lives; None keeps the revocation feed closed.
    pub feed_token_file: Option<PathBuf>,
    /// HTTPS on the partner listener.
    pub tls: Option<TlsFiles>,
    /// HTTPS on the admin listener.
    pub admin_tls: Option<TlsFiles>,
    /// `--access-log`.
    pub access_log: bool,
}

pub use crate::domain::values::MAX_TOKEN_TTL_SECS;

impl Config {
    /// Validates the flags.
    pub fn from_args(args: ServeArgs) -> Result<Self, String> {
        if args.issuer.is_empty() || args.issuer.len() > 256 {
            return Err("--issuer must be 1-256 characters".into());
        }
        if args.token_ttl.as_secs() > MAX_TOKEN_TTL_SECS {
            return Err("--token-ttl must be at most 366d".into());
        }
        if let Some(url) = &args.public_url
            && !(url.starts_with("http://") || url.starts_with("https://"))
        {
            return Err(format!(
                "--public-url {url:?} must start with http:// or https://"
            ));
        }
        if args.throttle_failures == 0 {
            return Err("--throttle-failures must be at least 1".into());
        }
        let feed_token_file = match (&args.feed_token_file, &args.database, args.ephemeral) {
            (Some(f), _, _) => Some(f.clone()),
            (None, None, false) => Some(
                args.data_dir
                    .join(crate::runtime::data_dir::FEED_TOKEN_FILE),
            ),
            (None, _, _) => None,
        };
        let (storage, admin_token_file) = if let Some(url) = args.database {
            if args.ephemeral {
                return Err("--database and --ephemeral exclude each other".into());
            }
            if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
                return Err("--database must be a postgres:// URL".into());
            }
            let Some(file) = args.admin_token_file else {
                return Err("--database needs --admin-token-file: every node of a cluster must accept the same admin token".into());
            };
            (
                Storage::Postgres {
                    url,
                    outage_grace: args.db_outage_grace,
                },
                Some(file),
            )
        } else if args.ephemeral {
            (Storage::Memory, args.admin_token_file)
        } else {
            let file = args.admin_token_file.unwrap_or_else(|| {
                args.data_dir
                    .join(crate::runtime::data_dir::ADMIN_TOKEN_FILE)
            });
            (Storage::DataDir(args.data_dir), Some(file))
        };
        Ok(Self {
            storage,
            seed: args.seed,
            listen: args.listen,
            admin_listen: args.admin_listen,
            issuer: args.issuer,
            token_ttl_secs: args.token_ttl.as_secs(),
            admin_token_file,
            trusted_proxies: args.trusted_proxies,
            log_format: args.log_format,
            header_read_timeout: args.header_read_timeout,
            body_read_timeout: args.body_read_timeout,
            max_connections: args.max_connections as usize,
            max_connections_per_address: args.max_connections_per_address as usize,
            hash_queue: args.hash_queue,
            public_url: args.public_url,
            clock_leeway_secs: args.clock_leeway.as_secs(),
            audit_retention_secs: args.audit_retention.as_secs(),
            feed_token_file,
            tls: TlsFiles::pair(args.tls_cert, args.tls_key),
            admin_tls: TlsFiles::pair(args.admin_tls_cert, args.admin_tls_key),
            access_log: args.access_log,
            throttle: ThrottleConfig {
                failures: args.throttle_failures,
                window: args.throttle_window,
                lockout: args.throttle_lockout,
                max_lockout: args.throttle_max_lockout.max(args.throttle_lockout),
            },
        })
    }
}

/// A `--clock-leeway`: a humantime duration from 0 s to 1 h.
fn parse_leeway(text: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{text:?} is not a duration like 60s or 2m ({e})"))?;
    if d > Duration::from_secs(3600) {
        return Err("the clock leeway must be at most 1h".into());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partitioned_node_serves_from_memory_for_a_minute_by_default() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Serve {
            #[command(flatten)]
            args: ServeArgs,
        }
        let serve = Serve::try_parse_from(["serve"]).unwrap();
        assert_eq!(serve.args.db_outage_grace, Duration::from_secs(60));
    }

    #[test]
    fn durations_and_proxies() {
        assert_eq!(parse_duration("90s").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("7d").unwrap().as_secs(), 7 * 86400);
        assert!(parse_duration("0s").is_err());
        assert!(parse_duration("soon").unwrap_err().contains("like 90s"));
        assert_eq!(parse_proxy("10.0.0.1").unwrap().to_string(), "10.0.0.1/32");
        assert_eq!(
            parse_proxy(" 10.0.0.0/8").unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert!(parse_proxy("example.com").is_err());
        assert_eq!(parse_leeway("0s").unwrap().as_secs(), 0);
        assert_eq!(parse_leeway("1h").unwrap().as_secs(), 3600);
        assert!(parse_leeway("61m").is_err());
    }
}

//! Which way a command reaches the admin API (SPEC §6 "Online or offline,
//! same result"): `--admin-url` always goes over HTTP; otherwise the
//! command opens the data dir's database itself, and when a running server
//! holds it, goes through that server's admin API, whose URL the server
//! wrote to `<data-dir>/admin.url`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use clap::Args;
use zeroize::Zeroizing;

use super::api::{AdminApi, CallError, Chunks, Method, Sink};
use super::local::InProcess;
use super::remote::OverHttp;
use crate::runtime::data_dir::{ADMIN_TOKEN_FILE, ADMIN_URL_FILE, DB_FILE};
use crate::store::{RedbStore, StoreError};

/// Flags every admin command takes.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The data dir (as `serve`): opened directly, or through the server
    /// that holds it.
    #[arg(
        long,
        env = "TESSERA_DATA_DIR",
        default_value = "./data",
        global = true
    )]
    pub data_dir: PathBuf,
    /// Go through the admin API at this URL (a server on another host).
    #[arg(long, env = "TESSERA_ADMIN_URL", global = true)]
    pub admin_url: Option<String>,
    /// Admin token file for the API [default: <data-dir>/admin.token].
    #[arg(long, env = "TESSERA_ADMIN_TOKEN_FILE", global = true)]
    pub admin_token_file: Option<PathBuf>,
    /// The `iss` tokens must carry (`token check` on a data dir).
    #[arg(long, env = "TESSERA_ISSUER", default_value = "tessera", global = true)]
    pub issuer: String,
    /// Print the admin API's JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Trust the CA certificates in this PEM file (besides the public
    /// roots) for an admin API served over HTTPS (`serve --admin-tls-cert`).
    #[arg(long, env = "TESSERA_CA_FILE", global = true)]
    pub ca_file: Option<PathBuf>,
}

/// The HTTP client every online command uses: the public roots plus
/// `--ca-file`'s certificates, a 5 s connect timeout.
fn http_client(common: &Common) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().connect_timeout(std::time::Duration::from_secs(5));
    if let Some(path) = &common.ca_file {
        let pem = std::fs::read(path)
            .map_err(|e| format!("--ca-file {}: could not read it: {e}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .map_err(|e| format!("--ca-file {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!(
                "--ca-file {} holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
                path.display()
            ));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder
        .build()
        .map_err(|e| format!("could not set up the HTTP client: {e}"))
}

/// The admin API, reached one way or the other.
pub enum Backend {
    /// The data dir, opened by this process.
    Offline(InProcess),
    /// A running server's admin API.
    Online(OverHttp),
}

/// Whether a command may create the database when the data dir has none
/// (provisioning before the first `serve`) or needs an existing one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// Reads: a missing database is an error, not a new empty one.
    Existing,
    /// Writes: a missing database is created.
    CreateIfMissing,
}

fn read_token(common: &Common) -> Result<Zeroizing<String>, String> {
    let path = common
        .admin_token_file
        .clone()
        .unwrap_or_else(|| common.data_dir.join(ADMIN_TOKEN_FILE));
    let text = Zeroizing::new(std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "admin token file {} unreadable: {e}; pass --admin-token-file",
            path.display()
        )
    })?);
    let token = text.trim();
    if token.is_empty() {
        return Err(format!("admin token file {} is empty", path.display()));
    }
    Ok(Zeroizing::new(token.to_owned()))
}

/// The URL and instance key `serve` wrote to `<data-dir>/admin.url`.
fn admin_url(data_dir: &Path) -> Result<(String, Option<Vec<u8>>), String> {
    let path = data_dir.join(ADMIN_URL_FILE);
    match std::fs::read_to_string(&path) {
        Ok(text) if !text.trim().is_empty() => {
            let mut lines = text.lines();
            let url = lines.next().unwrap_or_default().trim().to_owned();
            let key = lines.next().and_then(crate::runtime::instance::decode);
            Ok((url, key))
        }
        _ => Err(format!(
            "data dir {} is in use by another process, and {} does not say where its admin API is: start `tessera serve` with the admin API on, or pass --admin-url",
            data_dir.display(),
            path.display()
        )),
    }
}

/// The certificate problem behind a failed request, when a server's TLS
/// certificate was refused (the fix is `--ca-file`, not another URL).
fn untrusted_certificate(e: &reqwest::Error) -> Option<String> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        // An I/O error's `source` skips the error it wraps: look inside.
        let mut inner = c;
        while let Some(wrapped) = inner
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
        {
            inner = wrapped;
        }
        if let Some(rustls::Error::InvalidCertificate(why)) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(format!("{why:?}"));
        }
        cause = c.source();
    }
    None
}

/// Asks the admin API at `url` to prove it holds `key` (the one in
/// `admin.url`) before the admin token is sent there: a stale file left by
/// a server that crashed may name a port someone else listens on now.
async fn confirm_instance(
    client: &reqwest::Client,
    url: &str,
    key: Option<&[u8]>,
    data_dir: &Path,
) -> Result<(), String> {
    let refuse = |why: String| {
        format!(
            "not sending the admin token to {url}: it could not prove it is the server holding {} ({why}); {} may be stale, left by a server that stopped uncleanly. Find what holds the data dir, or pass --admin-url",
            data_dir.display(),
            data_dir.join(ADMIN_URL_FILE).display()
        )
    };
    let Some(key) = key else {
        return Err(refuse(
            "the file holds no instance key; restart the server to rewrite it".into(),
        ));
    };
    let nonce = crate::runtime::instance::encode(
        &crate::runtime::instance::random().map_err(|e| format!("no OS randomness: {e}"))?,
    );
    let answer = client
        .get(format!(
            "{}{}?nonce={nonce}",
            url.trim_end_matches('/'),
            crate::runtime::instance::PATH
        ))
        .timeout(std::time::Duration::from_secs(10))
        .send()
        .await
        .map_err(|e| match untrusted_certificate(&e) {
            Some(why) => format!(
                "not sending the admin token to {url}: its TLS certificate is not trusted ({why}); pass --ca-file CA.pem (or set TESSERA_CA_FILE) naming the CA that signed the admin API's certificate"
            ),
            None => refuse(format!(
                "unreachable: {}",
                crate::runtime::error_chain::with_causes(&e)
            )),
        })?;
    if !answer.status().is_success() {
        return Err(refuse(format!("it answered {}", answer.status())));
    }
    let body = answer
        .text()
        .await
        .map_err(|e| refuse(format!("no answer: {e}")))?;
    if crate::runtime::instance::verify(key, &nonce, &body) {
        Ok(())
    } else {
        Err(refuse("its proof does not match".into()))
    }
}

/// Opens the data dir, or finds the server that holds it (and makes sure
/// it is that server before trusting it with the admin token).
pub async fn connect(common: &Common, needs: Needs) -> Result<Backend, String> {
    if let Some(url) = &common.admin_url {
        return Ok(Backend::Online(OverHttp::new(
            url,
            read_token(common)?,
            http_client(common)?,
        )));
    }
    let dir = &common.data_dir;
    if needs == Needs::Existing && !dir.join(DB_FILE).exists() {
        return Err(format!(
            "no Tessera database in {}: pass --data-dir, or --admin-url for a server elsewhere",
            dir.display()
        ));
    }
    match RedbStore::open(dir) {
        Ok(store) => Ok(Backend::Offline(InProcess::start(
            Arc::new(store),
            common.issuer.clone(),
        )?)),
        Err(StoreError::InUse(_)) => {
            let (url, key) = admin_url(dir)?;
            let client = http_client(common)?;
            confirm_instance(&client, &url, key.as_deref(), dir).await?;
            Ok(Backend::Online(OverHttp::new(
                &url,
                read_token(common)?,
                client,
            )))
        }
        Err(e) => Err(e.to_string()),
    }
}

impl AdminApi for Backend {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, CallError> {
        match self {
            Self::Offline(api) => api.call(method, path, body).await,
            Self::Online(api) => api.call(method, path, body).await,
        }
    }

    async fn download(&self, path: &str, sink: Sink<'_>) -> Result<(), CallError> {
        match self {
            Self::Offline(api) => api.download(path, sink).await,
            Self::Online(api) => api.download(path, sink).await,
        }
    }

    async fn upload(&self, path: &str, chunks: Chunks) -> Result<Bytes, CallError> {
        match self {
            Self::Offline(api) => api.upload(path, chunks).await,
            Self::Online(api) => api.upload(path, chunks).await,
        }
    }
}

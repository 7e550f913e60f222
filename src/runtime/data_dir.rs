//! The data dir: which files live in it, who may read them, and how each is
//! created. Everything in it is private to the server's user: the dir is
//! 0700 and every file 0600, because it holds the signing keys and the
//! bearer secrets. The CLI reads the same names from here, so the server
//! and its tools can never disagree on where a file is.

use std::fs;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use zeroize::{Zeroize, Zeroizing};

/// The embedded database: users, keys, revocations, audit.
pub const DB_FILE: &str = "tessera.redb";
/// The admin API's bearer secret (`--admin-token-file`'s default).
pub const ADMIN_TOKEN_FILE: &str = "admin.token";
/// The revocation feed's bearer secret (`--feed-token-file`'s default).
pub const FEED_TOKEN_FILE: &str = "feed.token";
/// The file `serve` writes the admin API's base URL to, so the CLI on the
/// same host can reach the server that holds the data dir.
pub const ADMIN_URL_FILE: &str = "admin.url";

/// The shortest admin or feed token accepted: 22 base64 characters are 128
/// bits, the least an unguessable secret should hold.
pub const MIN_TOKEN_CHARS: usize = 22;

/// Creates the data dir (0700) if missing. An existing one must belong to
/// the server's user (whoever owns it can read the admin token and the
/// keys, or plant files in it): one owned by another user is refused with
/// the fix named. One that others could read or write is narrowed to 0700;
/// if that is not allowed, a warning says so and start-up goes on.
pub fn prepare(dir: &Path) -> std::io::Result<()> {
    if !dir.exists() {
        return fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir);
    }
    let meta = fs::symlink_metadata(dir)?;
    let owner = meta.uid();
    let me = rustix::process::geteuid().as_raw();
    if owner != me {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "the data dir {} belongs to uid {owner}, not to this server's user (uid {me}): whoever owns it can read the admin token and the signing keys; run the server as its owner, or `chown -R {me} {}`",
                dir.display(),
                dir.display()
            ),
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        match fs::set_permissions(dir, fs::Permissions::from_mode(0o700)) {
            Ok(()) => {
                tracing::info!(path = %dir.display(), from = format!("{mode:o}"), "narrowed data dir permissions to 0700")
            }
            Err(e) => {
                tracing::warn!(path = %dir.display(), error = %e, "data dir is readable by others and could not be narrowed to 0700; fix its permissions")
            }
        }
    }
    Ok(())
}

/// A new private file (0600) beside `path`, under a random name created
/// with `O_EXCL`: never opened through a planted symlink, never a file
/// someone else created. Fill it, then [`commit_private`] it over `path`;
/// dropped before that, it is removed and `path` is untouched.
pub fn private_file_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut prefix = std::ffi::OsString::from(".");
    prefix.push(
        path.file_name()
            .unwrap_or_else(|| std::ffi::OsStr::new("file")),
    );
    prefix.push(".");
    tempfile::Builder::new()
        .prefix(&prefix)
        .suffix(".tmp")
        .permissions(fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
}

/// Makes a [`private_file_beside`] durable and renames it over `path` (a
/// symlink there is replaced, not followed).
pub fn commit_private(file: tempfile::NamedTempFile, path: &Path) -> std::io::Result<()> {
    file.as_file().sync_all()?;
    file.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Writes a private file as a whole through [`private_file_beside`] and
/// [`commit_private`].
pub fn write_private(
    path: &Path,
    write: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let mut file = private_file_beside(path)?;
    write(file.as_file_mut())?;
    commit_private(file, path)
}

/// A token file that could not be read, created or trusted.
#[derive(Debug, thiserror::Error)]
#[error("token file {path}: {reason}")]
pub struct SecretFileError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong and what to do.
    pub reason: String,
}

/// Reads the admin token from `path`, or creates one (mode 0600) if the file
/// does not exist. Logs the path, never the token.
pub fn load_or_create_admin_token(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    load_or_create_token(path, "admin token")
}

/// Reads the feed token (what verifiers present to `GET /revocations`)
/// from `path`, or creates one (mode 0600) if the file does not exist.
pub fn load_or_create_feed_token(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    load_or_create_token(path, "feed token")
}

/// Reads a bearer secret from `path`, or creates an unguessable one there
/// (mode 0600) if the file does not exist. Logs the path, never the secret.
/// Refuses a file others can read, an empty one and one too short to be
/// unguessable, each with the fix.
fn load_or_create_token(
    path: &Path,
    what: &'static str,
) -> Result<Zeroizing<String>, SecretFileError> {
    let err = |reason: String| SecretFileError {
        path: path.to_owned(),
        reason,
    };
    match fs::read_to_string(path) {
        Ok(text) => {
            let text = Zeroizing::new(text);
            let token = text.trim();
            if token.is_empty() {
                return Err(err(
                    "the file is empty; put a token in it or delete it to have one generated"
                        .into(),
                ));
            }
            let meta = fs::metadata(path).map_err(|e| err(format!("could not read it: {e}")))?;
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                return Err(err(format!(
                    "the {what} is readable by others (mode {mode:o}); run: chmod 600 {}",
                    path.display()
                )));
            }
            let owner = meta.uid();
            let me = rustix::process::geteuid().as_raw();
            if owner != me {
                return Err(err(format!(
                    "the file belongs to uid {owner}, not to this server's user (uid {me}), who could then read or replace the {what}; run: chown {me} {}",
                    path.display()
                )));
            }
            if token.chars().count() < MIN_TOKEN_CHARS {
                return Err(err(format!(
                    "the {what} is {} characters, too short to be unguessable; put at least {MIN_TOKEN_CHARS} random characters in it (e.g. `openssl rand -base64 32`), or delete the file to have one generated",
                    token.chars().count()
                )));
            }
            Ok(Zeroizing::new(token.to_owned()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let token = unguessable().map_err(|e| err(e.to_string()))?;
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| err(format!("could not create it: {e}")))?;
            file.write_all(token.as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| err(format!("could not write it: {e}")))?;
            tracing::info!(path = %path.display(), "created {what} file");
            Ok(token)
        }
        Err(e) => Err(err(format!("could not read it: {e}"))),
    }
}

/// The OS random source failed.
#[derive(Debug, thiserror::Error)]
#[error("no OS randomness: {0}")]
pub struct NoRandomness(String);

impl From<String> for NoRandomness {
    fn from(why: String) -> Self {
        Self(why)
    }
}

/// 32 random bytes, base64url: an admin token or a value nobody holds.
pub fn unguessable() -> Result<Zeroizing<String>, NoRandomness> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| NoRandomness(e.to_string()))?;
    let token = Zeroizing::new(B64.encode(bytes));
    bytes.zeroize();
    Ok(token)
}

/// The admin base URL clients on this host use for a bound address: an
/// unspecified IP (`0.0.0.0`, `::`) is reached on loopback; `https` when
/// the admin listener serves TLS.
pub fn admin_base_url(addr: SocketAddr, https: bool) -> String {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    let scheme = if https { "https" } else { "http" };
    format!("{scheme}://{}", SocketAddr::new(ip, addr.port()))
}

/// `<data-dir>/admin.url` (the admin URL and the instance key the CLI
/// checks it against), written 0600 in one rename (replacing a stale one)
/// once the admin listener is bound, and removed when dropped after a
/// clean stop.
pub struct AdminUrlFile(PathBuf);

impl AdminUrlFile {
    /// Writes it, durable before it is renamed into place.
    pub fn write(
        data_dir: &Path,
        url: &str,
        key: &[u8; 32],
    ) -> Result<Self, (PathBuf, std::io::Error)> {
        let path = data_dir.join(ADMIN_URL_FILE);
        let written = write_private(&path, |file| {
            writeln!(file, "{url}")?;
            writeln!(file, "{}", crate::runtime::instance::encode(key))
        });
        match written {
            Ok(()) => Ok(Self(path)),
            Err(e) => Err((path, e)),
        }
    }
}

impl Drop for AdminUrlFile {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.0);
    }
}

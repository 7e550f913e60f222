//! HTTPS on a listener (`--tls-cert`/`--tls-key`, `--admin-tls-cert`/
//! `--admin-tls-key`): rustls with its safe defaults (TLS 1.2 and 1.3,
//! ring), HTTP/1.1 announced by ALPN. The certificate is reloaded from the
//! same files on SIGHUP ([`TlsListener::reload`]): each new connection
//! takes the acceptor current when it arrives, so connections already open
//! keep theirs and none is dropped; a reload that fails keeps the old
//! certificate and says why.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

pub use crate::config::TlsFiles;

/// The TLS side of one listener: its files and the acceptor built from
/// them, swapped whole by a reload.
pub struct TlsListener {
    files: TlsFiles,
    acceptor: ArcSwap<TlsAcceptor>,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("files", &self.files)
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    /// Reads the files; an error names the file and what to do.
    pub fn load(files: TlsFiles) -> Result<Arc<Self>, String> {
        let acceptor = acceptor(&files)?;
        Ok(Arc::new(Self {
            files,
            acceptor: ArcSwap::from_pointee(acceptor),
        }))
    }

    /// Reads the files again; on error the current certificate stays.
    pub fn reload(&self) -> Result<(), String> {
        self.acceptor.store(Arc::new(acceptor(&self.files)?));
        Ok(())
    }

    /// The acceptor for a connection arriving now.
    pub fn acceptor(&self) -> Arc<TlsAcceptor> {
        self.acceptor.load_full()
    }

    /// The files it serves.
    pub fn files(&self) -> &TlsFiles {
        &self.files
    }
}

fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, String> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up failed: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "{} and {} do not make a usable certificate ({e}); check that the key belongs to the certificate",
                files.cert.display(),
                files.key.display()
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("could not read the TLS certificate {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "{} holds no PEM certificate (-----BEGIN CERTIFICATE-----); give the certificate chain, leaf first",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(path)
        .map_err(|e| format!("could not read the TLS key {}: {e}", path.display()))?
        .permissions()
        .mode();
    if mode & 0o004 != 0 {
        return Err(format!(
            "the TLS key {} is readable by everyone (mode {:o}); run: chmod 600 {0}",
            path.display(),
            mode & 0o777
        ));
    }
    PrivateKeyDer::from_pem_file(path).map_err(|e| {
        format!(
            "could not read a PEM private key from {}: {e}",
            path.display()
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_a_certificate_and_key_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not pem").unwrap();
        std::fs::write(&key, "not pem").unwrap();
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
        };
        let e = TlsListener::load(files.clone()).unwrap_err();
        assert!(e.contains("cert.pem holds no PEM certificate"), "{e}");
        let missing = TlsFiles {
            cert: dir.path().join("nothing.pem"),
            key,
        };
        let e = TlsListener::load(missing).unwrap_err();
        assert!(
            e.contains("could not read the TLS certificate") && e.contains("nothing.pem"),
            "{e}"
        );
    }
}

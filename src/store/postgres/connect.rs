//! How a node reaches PostgreSQL: the `--database` URL read once into a
//! tokio-postgres configuration, the TLS its `sslmode` asks for (rustls,
//! for the pool and the LISTEN connection alike), and the description logs
//! show, which never holds a password.
//!
//! `sslmode` means what it means to libpq, so a URL that works with `psql`
//! works here:
//!
//! | `sslmode`          | TLS                      | server certificate checked            |
//! |--------------------|--------------------------|---------------------------------------|
//! | `disable`          | never                    | —                                     |
//! | `prefer` (default) | if the server offers it  | no                                    |
//! | `require`          | always                   | no (as `verify-ca` with `sslrootcert`) |
//! | `verify-ca`        | always                   | chain to the CA                       |
//! | `verify-full`      | always                   | chain to the CA and the host name     |
//!
//! The CA is the PEM file `sslrootcert` names, or the Mozilla roots
//! (`webpki-roots`) when the URL names none or says `sslrootcert=system`.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What the URL's `sslmode` asks for (libpq's names and meanings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    /// Plain TCP.
    Disable,
    /// TLS when the server offers it, without checking its certificate.
    Prefer,
    /// TLS always; the certificate is checked only against `sslrootcert`
    /// when one is given (then as `verify-ca`).
    Require,
    /// TLS always, the certificate chained to the CA.
    VerifyCa,
    /// TLS always, the certificate chained to the CA and naming the host.
    VerifyFull,
}

impl TlsMode {
    fn parse(value: &str) -> Result<Self, String> {
        Ok(match value {
            "disable" => Self::Disable,
            "allow" | "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(format!(
                    "sslmode={other} is not one of disable, prefer, require, verify-ca, verify-full"
                ));
            }
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }
}

/// A `--database` URL, read: where to connect, how, and how to say so.
pub struct Target {
    /// The connection settings, `sslmode` mapped to what tokio-postgres
    /// knows (it negotiates; the connector below checks).
    pub config: tokio_postgres::Config,
    /// The TLS connector for every connection of this node.
    pub tls: MakeRustlsConnect,
    /// The URL as logs show it: user, hosts, database and `sslmode`,
    /// never a password.
    pub described: String,
}

impl Target {
    /// Reads a `postgres://` (or `postgresql://`) URL. Errors say what is
    /// wrong with it without repeating it (it may hold a password).
    pub fn parse(url: &str) -> Result<Self, String> {
        let mut parsed = url::Url::parse(url).map_err(|e| {
            format!(
                "--database is not a URL ({e}); expected postgres://USER@HOST[:PORT]/DB[?sslmode=…]"
            )
        })?;
        if !matches!(parsed.scheme(), "postgres" | "postgresql") {
            return Err(format!(
                "--database has scheme {}:// ; expected postgres://USER@HOST[:PORT]/DB",
                parsed.scheme()
            ));
        }
        let mut mode = TlsMode::Prefer;
        let mut root_cert: Option<String> = None;
        let mut rest: Vec<(String, String)> = Vec::new();
        for (key, value) in parsed.query_pairs() {
            match &*key {
                "sslmode" => mode = TlsMode::parse(&value)?,
                "sslrootcert" => root_cert = Some(value.into_owned()),
                _ => rest.push((key.into_owned(), value.into_owned())),
            }
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(&rest);
        }
        let mut config = tokio_postgres::Config::from_str(parsed.as_str())
            .map_err(|e| format!("--database URL refused by the PostgreSQL driver: {e}"))?;
        config.ssl_mode(match mode {
            TlsMode::Disable => SslMode::Disable,
            TlsMode::Prefer => SslMode::Prefer,
            _ => SslMode::Require,
        });
        let tls = connector(mode, root_cert.as_deref())?;
        let described = describe(&config, mode);
        Ok(Self {
            config,
            tls,
            described,
        })
    }
}

/// The URL as logs show it, rebuilt from the parsed settings (so no form of
/// password — userinfo, `password=` — can slip through).
fn describe(config: &tokio_postgres::Config, mode: TlsMode) -> String {
    let user = config.get_user().unwrap_or("");
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            };
            match config.get_ports().get(i) {
                Some(port) => format!("{name}:{port}"),
                None => name,
            }
        })
        .collect();
    let db = config.get_dbname().unwrap_or("");
    format!(
        "postgres://{user}@{}/{db}?sslmode={}",
        hosts.join(","),
        mode.name()
    )
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The roots `sslrootcert` names: a PEM file, or `system` (and none given)
/// for the Mozilla roots.
fn roots(root_cert: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root_cert {
        None | Some("system") => {
            store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        Some(path) => {
            let path = PathBuf::from(path);
            let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&path)
                .and_then(|certs| certs.collect::<Result<_, _>>())
                .map_err(|e| {
                    format!(
                        "sslrootcert {}: can't read PEM certificates ({e}); give the CA that signed the server's certificate",
                        path.display()
                    )
                })?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!(
                    "sslrootcert {}: holds no usable certificate",
                    path.display()
                ));
            }
        }
    }
    Ok(store)
}

fn connector(mode: TlsMode, root_cert: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let checked = |name_too: bool| -> Result<Arc<dyn ServerCertVerifier>, String> {
        let webpki = WebPkiServerVerifier::builder_with_provider(
            Arc::new(roots(root_cert)?),
            provider.clone(),
        )
        .build()
        .map_err(|e| format!("TLS set-up: {e}"))?;
        Ok(if name_too {
            webpki
        } else {
            Arc::new(ChainOnly(webpki))
        })
    };
    let verifier: Arc<dyn ServerCertVerifier> = match (mode, root_cert) {
        (TlsMode::VerifyFull, _) => checked(true)?,
        (TlsMode::VerifyCa, _) | (TlsMode::Require, Some(_)) => checked(false)?,
        (TlsMode::Disable | TlsMode::Prefer | TlsMode::Require, _) => {
            Arc::new(Unchecked(provider.signature_verification_algorithms))
        }
    };
    let config = builder
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// `verify-ca`: the chain must lead to the CA; the name is not checked.
#[derive(Debug)]
struct ChainOnly(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for ChainOnly {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `prefer` and `require` without a CA, as in libpq: encrypted, but the
/// certificate is not checked (the handshake's signatures still are).
#[derive(Debug)]
struct Unchecked(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn described(url: &str) -> String {
        Target::parse(url).map(|t| t.described).unwrap()
    }

    #[test]
    fn no_form_of_password_reaches_the_description() {
        for url in [
            "postgres://u:secret@db:5432/t",
            "postgres://u@db:5432/t?password=secret",
            "postgresql://u:secret@db:5432/t?password=secret&application_name=x",
        ] {
            let d = described(url);
            assert!(!d.contains("secret"), "{d}");
            assert!(d.starts_with("postgres://u@db:5432/t"), "{d}");
        }
        assert_eq!(
            described("postgres://u@db/t?sslmode=disable"),
            "postgres://u@db:5432/t?sslmode=disable"
        );
    }

    #[test]
    fn sslmode_and_sslrootcert_are_read_like_libpq() {
        let t = Target::parse("postgres://u@db/t").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Prefer, "libpq's default");
        let t = Target::parse("postgres://u@db/t?sslmode=verify-full").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Require);
        assert!(t.described.ends_with("sslmode=verify-full"));
        let t = Target::parse("postgres://u@db/t?sslmode=disable").unwrap();
        assert_eq!(t.config.get_ssl_mode(), SslMode::Disable);
        let bad = Target::parse("postgres://u:secret@db/t?sslmode=sometimes")
            .err()
            .unwrap();
        assert!(
            bad.contains("sslmode=sometimes") && !bad.contains("secret"),
            "{bad}"
        );
        let missing =
            Target::parse("postgres://u@db/t?sslmode=verify-ca&sslrootcert=/nonexistent/ca.pem")
                .err()
                .unwrap();
        assert!(missing.contains("/nonexistent/ca.pem"), "{missing}");
        let other = Target::parse("mysql://u:secret@db/t").err().unwrap();
        assert!(!other.contains("secret"), "{other}");
    }
}

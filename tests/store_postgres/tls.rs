//! TLS to PostgreSQL (`sslmode`, `sslrootcert`) against a real server with
//! `ssl=on` and a CA these tests make with openssl.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use tessera::runtime::error_chain::with_causes;
use tessera::store::Store;
use tessera::store::postgres::{PostgresStore, Target};

#[path = "../support/test_ca.rs"]
mod test_ca;

/// A CA (`ca.pem`) and a server certificate it signed for `localhost` only
/// (no IP address in it): `server.crt`, `server.key`, in `dir`.
fn make_ca(dir: &Path) {
    test_ca::ensure_openssl();
    test_ca::make_ca(dir, "ca");
    test_ca::make_server_cert(
        dir,
        "ca",
        "DNS:localhost",
        &dir.join("server.crt"),
        &dir.join("server.key"),
    );
}

/// A PostgreSQL with `ssl=on` (certificate for `localhost`), its port,
/// and the CA's path.
fn tls_server() -> &'static (u16, PathBuf) {
    static SERVER: std::sync::OnceLock<(u16, PathBuf)> = std::sync::OnceLock::new();
    SERVER.get_or_init(|| {
        let pki = PathBuf::from(format!("/tmp/tessera-pg-tls-pki-{}", std::process::id()));
        std::fs::create_dir_all(&pki).unwrap();
        make_ca(&pki);
        let dir = format!("/tmp/tessera-pg-tls-{}", std::process::id());
        let out = Command::new("bash")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg.sh"))
            .args(["start", &dir, &std::process::id().to_string()])
            .env("PG_SSL_DIR", &pki)
            .output()
            .expect("run scripts/pg.sh");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let url = String::from_utf8(out.stdout).unwrap();
        let port = url
            .trim()
            .rsplit_once(':')
            .unwrap()
            .1
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        (port, pki.join("ca.pem"))
    })
}

/// Connects with `url` through [`Target`] and asks the server whether
/// this connection is encrypted.
fn encrypted(url: &str) -> Result<bool, String> {
    let target = Target::parse(url)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (client, conn) = target
            .config
            .connect(target.tls)
            .await
            .map_err(|e| with_causes(&e))?;
        tokio::spawn(conn);
        let row = client
            .query_one(
                "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .map_err(|e| e.to_string())?;
        Ok(row.get(0))
    })
}

#[test]
fn verify_full_connects_over_tls_to_the_name_in_the_certificate() {
    let (port, ca) = tls_server();
    let url = format!(
        "postgres://tessera@localhost:{port}/tessera?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    assert_eq!(encrypted(&url), Ok(true));
    // The whole store (its pool and its LISTEN connection) too.
    let store = PostgresStore::open(&url, Duration::from_secs(60)).unwrap();
    assert!(
        store.describe().ends_with("sslmode=verify-full"),
        "{}",
        store.describe()
    );
    store
        .init_keys(&tessera::domain::keys::initial_records(1).unwrap())
        .unwrap();
}

#[test]
fn verify_full_refuses_a_host_the_certificate_does_not_name() {
    let (port, ca) = tls_server();
    let url = format!(
        "postgres://tessera@127.0.0.1:{port}/tessera?sslmode=verify-full&sslrootcert={}",
        ca.display()
    );
    let err = encrypted(&url).unwrap_err();
    assert!(err.contains("not valid for name"), "{err}");
    let err = PostgresStore::open(&url, Duration::from_secs(60))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("not valid for name"), "{err}");
    // verify-ca checks the chain only: the same address is fine.
    let url = url.replace("verify-full", "verify-ca");
    assert_eq!(encrypted(&url), Ok(true));
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let (port, _) = tls_server();
    let other = PathBuf::from(format!("/tmp/tessera-pg-tls-other-{}", std::process::id()));
    std::fs::create_dir_all(&other).unwrap();
    make_ca(&other);
    let url = format!(
        "postgres://tessera@localhost:{port}/tessera?sslmode=verify-ca&sslrootcert={}",
        other.join("ca.pem").display()
    );
    let err = encrypted(&url).unwrap_err();
    assert!(
        err.contains("invalid peer certificate: UnknownIssuer"),
        "{err}"
    );
    // `require` without a CA encrypts without checking, as libpq does.
    let url = format!("postgres://tessera@localhost:{port}/tessera?sslmode=require");
    assert_eq!(encrypted(&url), Ok(true));
    let url = format!("postgres://tessera@localhost:{port}/tessera?sslmode=disable");
    assert_eq!(encrypted(&url), Ok(false));
}

#[test]
fn require_refuses_a_server_without_tls() {
    let plain = crate::backend::fresh_database();
    let err = encrypted(&format!("{plain}?sslmode=require")).unwrap_err();
    assert!(err.contains("TLS"), "{err}");
    // prefer (the default) falls back to plain TCP.
    assert_eq!(encrypted(&plain), Ok(false));
}

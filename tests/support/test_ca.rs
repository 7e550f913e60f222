//! Certificates for tests, made with openssl (installed on demand by
//! `scripts/ensure-tools.sh`): a CA, and a server certificate it signs.
//! Shared by the PostgreSQL TLS tests (a unit test module) and the HTTPS
//! process tests, each including this file with `#[path]`.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Installs openssl if it is missing.
pub fn ensure_openssl() {
    let status = Command::new("bash")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/ensure-tools.sh"
        ))
        .arg("openssl=openssl")
        .status()
        .expect("ensure-tools runs");
    assert!(status.success(), "installing openssl failed");
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A P-256 CA good for two days: `<name>.pem` and `<name>.key` in `dir`;
/// answers the certificate's path.
pub fn make_ca(dir: &Path, name: &str) -> PathBuf {
    let (pem, key) = (format!("{name}.pem"), format!("{name}.key"));
    let subject = format!(
        "/CN={name} {}",
        dir.file_name().unwrap_or_default().to_string_lossy()
    );
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            &key,
            "-out",
            &pem,
            "-days",
            "2",
            "-subj",
            &subject,
        ],
    );
    dir.join(pem)
}

/// A server certificate for `subject_alt_name` (e.g. `DNS:localhost` or
/// `IP:127.0.0.1,DNS:localhost`) signed by the CA `ca` of [`make_ca`],
/// written to `cert` and `key` (0600), each renamed into place as a
/// certificate manager does.
pub fn make_server_cert(dir: &Path, ca: &str, subject_alt_name: &str, cert: &Path, key: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-keyout",
            "server.key.new",
            "-out",
            "server.csr",
            "-subj",
            "/CN=tessera test server",
        ],
    );
    std::fs::write(
        dir.join("san.ext"),
        format!("subjectAltName={subject_alt_name}\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}.key"),
            "-CAcreateserial",
            "-out",
            "server.pem.new",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
    );
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(
        dir.join("server.key.new"),
        std::fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    std::fs::rename(dir.join("server.key.new"), key).unwrap();
    std::fs::rename(dir.join("server.pem.new"), cert).unwrap();
}

//! The operator CLI (SPEC §6) as operators run it: the real binary, offline
//! on a data dir and online through the server that holds it, with the
//! same output both ways; exit codes; `admin.url`; `--ephemeral`;
//! completions.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use crate::helpers::{spawn_on, spawn_process_with};

const ALICE_PW: &str = "6f1c8a52-0b7e-4d3c-9a51-2f8e7d6c5b4a";

/// What one command did.
#[derive(Debug, PartialEq, Eq)]
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `tessera ARGS` in `cwd` with `--data-dir data`, feeding `stdin`.
fn tessera_in(cwd: &Path, args: &[&str], stdin: Option<&str>) -> Ran {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(args)
        .current_dir(cwd)
        .env("TESSERA_DATA_DIR", "data")
        .env_remove("TESSERA_ADMIN_URL")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run tessera");
    let mut input = child.stdin.take().unwrap();
    if let Some(text) = stdin {
        input.write_all(text.as_bytes()).unwrap();
    }
    drop(input);
    let out = child.wait_with_output().unwrap();
    Ran {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8(out.stdout).unwrap(),
        stderr: String::from_utf8(out.stderr).unwrap(),
    }
}

fn ok(cwd: &Path, args: &[&str]) -> String {
    let ran = tessera_in(cwd, args, None);
    assert_eq!(ran.code, 0, "tessera {args:?}: {ran:?}");
    ran.stdout
}

/// Replaces what differs between two equal runs a second apart: times
/// within a day of now, generated UUIDs, new key ids and secret ids
/// (8 hex digits).
fn normalize(text: &str) -> String {
    let now = std::time::SystemTime::now();
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    let mut i = 0;
    let is_b64 = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    while i < chars.len() {
        let take = |n: usize| {
            chars[i..(i + n).min(chars.len())]
                .iter()
                .collect::<String>()
        };
        let t20 = take(20);
        if let Ok(t) = humantime::parse_rfc3339(&t20) {
            let close = match now.duration_since(t) {
                Ok(d) => d.as_secs() < 86_400,
                Err(e) => e.duration().as_secs() < 86_400,
            };
            if close {
                out.push_str("<now>");
                i += 20;
                continue;
            }
        }
        let t36 = take(36);
        if uuid::Uuid::parse_str(&t36).is_ok() && t36.len() == 36 {
            out.push_str("<uuid>");
            i += 36;
            continue;
        }
        let starts_word = i == 0 || !is_b64(chars[i - 1]);
        let word: String = chars[i..].iter().take_while(|c| is_b64(**c)).collect();
        if starts_word && word.chars().count() == 43 {
            out.push_str("<kid>");
            i += 43;
            continue;
        }
        if starts_word && word.len() == 8 && word.bytes().all(|b| b.is_ascii_hexdigit()) {
            out.push_str("<secret-id>");
            i += 8;
            continue;
        }
        out.push(chars[i]);
        i += 1;
    }
    out
}

async fn token(app: &crate::helpers::TestProcess, user: &str, pw: &str) -> String {
    let r = app.generate_token(user, pw).await;
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test]
async fn every_command_prints_the_same_online_and_offline() {
    // A source deployment with users, keys and two tokens of alice's.
    let root = tempfile::tempdir().unwrap();
    let source = root.path().join("source");
    std::fs::create_dir(&source).unwrap();
    let add = tessera_in(
        &source,
        &["user", "add", "alice", "--password-stdin"],
        Some(ALICE_PW),
    );
    assert_eq!(add.code, 0, "{add:?}");
    ok(&source, &["user", "add", "bob", "--note", "calendar sync"]);
    let (t1, t2) = {
        let mut server = spawn_on(&source.join("data"), &[]).unwrap();
        let tokens = (
            token(&server, "alice", ALICE_PW).await,
            token(&server, "alice", ALICE_PW).await,
        );
        assert!(server.signal_and_wait("-TERM").success());
        tokens
    };
    ok(&source, &["export", "-o", "snapshot.jsonl"]);
    let snapshot = source.join("snapshot.jsonl");

    // Two copies of it: one used offline, one through its running server.
    let offline = root.path().join("offline");
    let online = root.path().join("online");
    for dir in [&offline, &online] {
        std::fs::create_dir(dir).unwrap();
        ok(dir, &["import", snapshot.to_str().unwrap()]);
    }
    let server = spawn_on(&online.join("data"), &[]).unwrap();
    assert!(online.join("data/admin.url").exists());

    std::fs::write(
        offline.join("users.toml"),
        "[[user]]\nusername = \"alice\"\n\n[[user]]\nusername = \"carol\"\npassword = \"0b3e5b8c-7d2a-4f1e-9c6b-5a4d3e2f1a0b\"\ntoken_ttl = \"15m\"\n",
    )
    .unwrap();
    std::fs::copy(offline.join("users.toml"), online.join("users.toml")).unwrap();
    std::fs::write(
        offline.join("bad.toml"),
        "[[user]]\nusername = \"x\"\ntoken_ttl = \"never\"\n",
    )
    .unwrap();
    std::fs::copy(offline.join("bad.toml"), online.join("bad.toml")).unwrap();

    let steps: Vec<(Vec<&str>, Option<&str>)> = vec![
        (vec!["user", "list"], None),
        (vec!["user", "list", "--json"], None),
        (vec!["user", "list", "--limit", "1"], None),
        (vec!["user", "list", "--after", "alice"], None),
        (vec!["user", "show", "bob"], None),
        (vec!["user", "show", "bob", "--json"], None),
        (vec!["user", "show", "nobody"], None),
        (
            vec!["user", "add", "dave", "--ttl", "15m", "--note", "n"],
            None,
        ),
        (vec!["user", "add", "dave"], None),
        (
            vec!["user", "add", "erin", "--password-stdin", "--json"],
            Some("a chosen password\n"),
        ),
        (vec!["user", "add", "bad name"], None),
        (
            vec![
                "user",
                "set",
                "dave",
                "--expires-at",
                "2099-06-30T00:00:00Z",
                "--ttl",
                "1h",
            ],
            None,
        ),
        (
            vec![
                "user",
                "set",
                "dave",
                "--expires-at",
                "never",
                "--ttl",
                "default",
                "--note",
                "",
            ],
            None,
        ),
        (vec!["user", "set", "dave", "--expires-at", "soon"], None),
        (vec!["user", "disable", "dave"], None),
        (vec!["user", "enable", "dave", "--json"], None),
        (vec!["user", "passwd", "dave"], None),
        (
            vec!["user", "passwd", "dave", "--password-stdin"],
            Some("another chosen one\n"),
        ),
        (vec!["user", "passwd", "nobody"], None),
        (vec!["token", "check", &t1], None),
        (vec!["token", "check", "-", "--json"], Some(&t1)),
        (vec!["token", "revoke", &t1], None),
        (vec!["token", "check", &t1], None),
        (vec!["token", "check", "not.a.token"], None),
        (
            vec![
                "token",
                "revoke",
                "--jti",
                "some-jti",
                "--exp",
                "4000000000",
                "--json",
            ],
            None,
        ),
        (vec!["user", "revoke", "alice"], None),
        (vec!["token", "check", &t2, "--json"], None),
        (vec!["revocations"], None),
        (vec!["revocations", "--json"], None),
        (vec!["user", "delete", "dave"], None),
        (vec!["user", "delete", "dave"], None),
        (vec!["key", "list"], None),
        (vec!["key", "rotate", "--force"], None),
        (vec!["key", "list", "--json"], None),
        (vec!["apply", "users.toml", "--dry-run"], None),
        (vec!["apply", "users.toml"], None),
        (vec!["apply", "users.toml", "--json"], None),
        (vec!["apply", "users.toml", "--prune", "--dry-run"], None),
        (vec!["apply", "users.toml", "--prune"], None),
        (vec!["apply", "bad.toml"], None),
        (vec!["apply", "missing.toml"], None),
        (vec!["audit", "--limit", "100"], None),
        (
            vec!["audit", "--limit", "2", "--before", "5", "--json"],
            None,
        ),
        (vec!["export", "-o", "again.jsonl"], None),
        (vec!["import", "again.jsonl"], None),
        (vec!["import", "-", "--json"], Some("not a snapshot\n")),
        (vec!["user", "list"], None),
    ];
    for (args, stdin) in steps {
        let off = tessera_in(&offline, &args, stdin);
        let on = tessera_in(&online, &args, stdin);
        assert_eq!(
            (off.code, normalize(&off.stdout), normalize(&off.stderr)),
            (on.code, normalize(&on.stdout), normalize(&on.stderr)),
            "tessera {args:?}"
        );
        assert!(
            !off.stderr.contains("in use"),
            "the offline copy is opened directly: {off:?}"
        );
    }
    // The online copy really went through the server's admin API.
    let applied = server
        .metric("tessera_http_request_duration_seconds_count{listener=\"admin\",route=\"apply\"}")
        .await;
    assert_eq!(
        applied, 5.0,
        "every valid apply step went through the server"
    );
}

#[tokio::test]
async fn outputs_and_exit_codes_read_as_documented() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    let added = ok(dir, &["user", "add", "alice"]);
    assert!(
        added.starts_with("created user alice\npassword: "),
        "{added}"
    );
    assert_eq!(added.lines().nth(1).unwrap().len(), "password: ".len() + 36);
    let list = ok(dir, &["user", "list"]);
    assert_eq!(
        list,
        "USERNAME  STATUS  EXPIRES_AT  TTL_SECS  NOTE\nalice     active  -           -         -\n"
    );
    let missing = tessera_in(dir, &["user", "show", "bob"], None);
    assert_eq!(missing.code, 1);
    assert_eq!(missing.stderr, "error: no user named \"bob\"\n");
    assert_eq!(missing.stdout, "");
    let check = tessera_in(dir, &["token", "check", "x.y.z"], None);
    assert_eq!(
        (check.code, check.stdout.as_str()),
        (1, "valid:   no\nreason:  malformed token\n")
    );
    for usage in [
        vec!["user"],
        vec!["user", "add"],
        vec!["user", "add", "a", "--password", "secret"],
        vec!["token", "revoke"],
        vec!["token", "revoke", "--jti", "j"],
        vec!["user", "set", "alice"],
        vec!["user", "set", "alice", "--ttl", "forever"],
        vec!["completions", "tcsh"],
    ] {
        let ran = tessera_in(dir, &usage, None);
        assert_eq!(ran.code, 2, "tessera {usage:?}: {ran:?}");
    }
    let no_password = tessera_in(dir, &["user", "add", "b", "--password-stdin"], Some(""));
    assert_eq!(no_password.code, 1);
    assert!(
        no_password.stderr.contains("stdin held no password"),
        "{no_password:?}"
    );
}

#[tokio::test]
async fn read_commands_never_create_a_data_dir() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        vec!["user", "list"],
        vec!["user", "show", "a"],
        vec!["key", "list"],
        vec!["audit"],
        vec!["revocations"],
        vec!["export"],
        vec!["token", "check", "x"],
    ] {
        let ran = tessera_in(root.path(), &args, None);
        assert_eq!(ran.code, 1, "{args:?}");
        assert!(
            ran.stderr.contains("no Tessera database in data"),
            "{ran:?}"
        );
        assert!(!root.path().join("data").exists());
    }
}

/// What changes nothing, or fails, creates nothing: a dry run, an apply
/// or import of a missing or broken file leave no `./data` behind; an
/// offline command that does create a database says so.
#[tokio::test]
async fn what_changes_nothing_or_fails_creates_nothing() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    std::fs::write(dir.join("users.toml"), "[[user]]\nusername = \"a\"\n").unwrap();
    std::fs::write(dir.join("broken.jsonl"), "{\"type\":\"header\"}\n").unwrap();
    for args in [
        &["apply", "users.toml", "--dry-run"][..],
        &["apply", "missing.toml"],
        &["import", "missing.jsonl"],
        &["import", "broken.jsonl"],
    ] {
        let ran = tessera_in(dir, args, None);
        assert_ne!(ran.code, 0, "{args:?}: {ran:?}");
        assert!(
            !dir.join("data").exists(),
            "{args:?} created a data dir: {ran:?}"
        );
    }
    let ran = tessera_in(dir, &["apply", "users.toml"], None);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(ran.stderr.contains("created a new one"), "{ran:?}");
    assert!(dir.join("data/tessera.redb").exists());
    let ran = tessera_in(dir, &["apply", "users.toml", "--dry-run"], None);
    assert_eq!((ran.code, ran.stderr.as_str()), (0, ""), "{ran:?}");
}

#[tokio::test]
async fn admin_url_is_written_private_and_removed_on_a_clean_stop() {
    use std::os::unix::fs::PermissionsExt;
    let mut server = spawn_process_with(&[]).await;
    let file = server.data_dir.join("admin.url");
    let text = std::fs::read_to_string(&file).unwrap();
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some(server.admin.as_str()), "the URL first");
    assert_eq!(
        lines.next().map(str::len),
        Some(43),
        "then the instance key the CLI checks the server by"
    );
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(server.signal_and_wait("-TERM").success());
    assert!(!file.exists(), "a clean stop removes admin.url");
}

#[tokio::test]
async fn after_kill_9_a_stale_admin_url_does_not_get_in_the_way() {
    let mut server = spawn_process_with(&[]).await;
    let cwd = server.data_dir.parent().unwrap().to_owned();
    let _dir = server.keep_dir();
    ok(&cwd, &["user", "add", "a"]);
    server.signal_and_wait("-KILL");
    assert!(cwd.join("data/admin.url").exists());
    assert!(
        ok(&cwd, &["user", "list"]).contains("a "),
        "the CLI opens the dir itself"
    );
}

#[tokio::test]
async fn a_server_that_is_not_there_is_named_with_what_to_do() {
    let root = tempfile::tempdir().unwrap();
    let token = root.path().join("token");
    std::fs::write(&token, "t").unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let ran = tessera_in(
        root.path(),
        &[
            "user",
            "list",
            "--admin-url",
            &url,
            "--admin-token-file",
            token.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr.contains(&format!(
            "server at {url} unreachable: is `tessera serve` running?"
        )),
        "{ran:?}"
    );
    let ran = tessera_in(root.path(), &["user", "list", "--admin-url", &url], None);
    assert_eq!(ran.code, 1);
    assert!(
        ran.stderr
            .contains("admin token file data/admin.token unreadable")
            && ran.stderr.contains("--admin-token-file"),
        "{ran:?}"
    );
}

#[tokio::test]
async fn an_ephemeral_server_writes_nothing_and_serves_its_seed() {
    let root = tempfile::tempdir().unwrap();
    let seed = root.path().join("seed.toml");
    std::fs::write(
        &seed,
        format!("[[user]]\nusername = \"seeded\"\npassword = \"{ALICE_PW}\"\n"),
    )
    .unwrap();
    let token_file = root.path().join("admin.token");
    crate::helpers::write_secret(&token_file, "an-admin-token-for-tests");
    let data = root.path().join("data");
    let mut server = spawn_on(
        &data,
        &[
            "--ephemeral",
            "--seed",
            seed.to_str().unwrap(),
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    )
    .unwrap();
    let t = token(&server, "seeded", ALICE_PW).await;
    assert_eq!(server.verify(&t).await.status(), 200);
    let listed = ok(
        root.path(),
        &[
            "user",
            "list",
            "--admin-url",
            server.admin.as_str(),
            "--admin-token-file",
            token_file.to_str().unwrap(),
        ],
    );
    assert!(listed.contains("seeded"), "{listed}");
    assert!(server.log().contains("path=in memory"), "{}", server.log());
    assert!(server.signal_and_wait("-TERM").success());
    assert!(!data.exists(), "--ephemeral wrote to {}", data.display());
}

#[tokio::test]
async fn completions_are_generated_for_each_shell() {
    let root = tempfile::tempdir().unwrap();
    for shell in ["bash", "zsh", "fish"] {
        let script = ok(root.path(), &["completions", shell]);
        assert!(
            script.contains("tessera") && script.contains("revocations"),
            "{shell}"
        );
    }
}

#[tokio::test]
async fn import_and_export_print_nothing_extra_when_stderr_is_not_a_terminal() {
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["user", "add", "a"]);
    let export = tessera_in(root.path(), &["export"], None);
    assert_eq!((export.code, export.stderr.as_str()), (0, ""));
    assert!(
        export.stdout.starts_with("{\"type\":\"header\""),
        "{}",
        export.stdout
    );
    let import = tessera_in(root.path(), &["import", "-"], Some(&export.stdout));
    assert_eq!((import.code, import.stderr.as_str()), (0, ""), "{import:?}");
    assert_eq!(import.stdout, "imported 1 users, 2 keys, 0 revocations\n");
}

/// SPEC §11: a stale `admin.url` (left by a server that crashed) while
/// something else holds the data dir: the CLI asks the listener to prove it
/// is this data dir's server and, when it can't, never sends it the admin
/// token.
#[tokio::test]
async fn the_admin_token_never_goes_to_a_listener_that_is_not_this_servers() {
    use std::io::Read;
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("data");
    let store = tessera::store::RedbStore::open(&data).unwrap();
    crate::helpers::write_secret(&data.join("admin.token"), "the-real-admin-token-0123456789");
    // Whatever listens on the port the crashed server had: it records
    // everything it is sent and answers like an admin API would.
    let impostor = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = impostor.local_addr().unwrap();
    std::fs::write(
        data.join("admin.url"),
        format!("http://{addr}\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n"),
    )
    .unwrap();
    let heard = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let sink = heard.clone();
    std::thread::spawn(move || {
        for stream in impostor.incoming() {
            let Ok(mut stream) = stream else { break };
            let mut buf = [0u8; 4096];
            let n = stream.read(&mut buf).unwrap_or(0);
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
            let _ = std::io::Write::write_all(
                &mut stream,
                b"HTTP/1.1 200 OK\r\ncontent-length: 12\r\nconnection: close\r\n\r\n{\"users\":[]}",
            );
        }
    });
    let ran = tessera_in(root.path(), &["user", "list"], None);
    assert_eq!(ran.code, 1, "{ran:?}");
    assert!(
        ran.stderr.contains("not sending the admin token") && ran.stderr.contains("admin.url"),
        "{ran:?}"
    );
    let heard = heard.lock().unwrap().clone();
    assert!(
        heard.contains("GET /instance?nonce="),
        "it was asked to prove itself: {heard}"
    );
    assert!(
        !heard.contains("the-real-admin-token"),
        "the token never reached it: {heard}"
    );
    drop(store);
}

/// SPEC §11: an export over an existing world-readable file leaves it 0600
/// (it holds signing keys and password hashes).
#[tokio::test]
async fn export_over_an_existing_open_file_makes_it_private() {
    use std::os::unix::fs::PermissionsExt;
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["user", "add", "a"]);
    let out = root.path().join("backup.jsonl");
    std::fs::write(&out, "old").unwrap();
    std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o644)).unwrap();
    ok(root.path(), &["export", "-o", "backup.jsonl"]);
    assert_eq!(
        std::fs::metadata(&out).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("\"type\":\"key\"")
    );
}

/// `export -o` writes a new file and renames it into place: a symlink
/// planted at the path is replaced, not followed (its target keeps its
/// bytes), and a file another user owns is replaced by one of ours.
#[tokio::test]
async fn export_never_writes_through_a_symlink_or_into_anothers_file() {
    use std::os::unix::fs::MetadataExt;
    let root = tempfile::tempdir().unwrap();
    ok(root.path(), &["user", "add", "a"]);
    let victim = root.path().join("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let out = root.path().join("backup.jsonl");
    std::os::unix::fs::symlink(&victim, &out).unwrap();
    ok(root.path(), &["export", "-o", "backup.jsonl"]);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
    assert!(
        !std::fs::symlink_metadata(&out)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&out)
            .unwrap()
            .contains("\"type\":\"key\"")
    );
    // A file someone else created (and could keep open) is not reused.
    std::fs::remove_file(&out).unwrap();
    std::fs::write(&out, "theirs").unwrap();
    let other = 65534;
    std::os::unix::fs::chown(&out, Some(other), Some(other)).unwrap();
    let inode = std::fs::metadata(&out).unwrap().ino();
    ok(root.path(), &["export", "-o", "backup.jsonl"]);
    let meta = std::fs::metadata(&out).unwrap();
    assert_ne!(meta.ino(), inode, "a new file");
    assert_eq!(meta.uid(), rustix_uid(), "owned by the exporter");
    let leftovers: Vec<_> = std::fs::read_dir(root.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

fn rustix_uid() -> u32 {
    use std::os::unix::fs::MetadataExt;
    let probe = tempfile::tempfile().unwrap();
    probe.metadata().unwrap().uid()
}

/// With `--json`, a usage error clap finds is the same one JSON object as
/// every other error (`"error": "usage"`, exit 2); without it, clap's text.
#[tokio::test]
async fn usage_errors_under_json_are_json() {
    let root = tempfile::tempdir().unwrap();
    for args in [
        &["user", "list", "--json", "--limit", "abc"][..],
        &["user", "add", "--json"],
        &["--json", "no-such-command"],
    ] {
        let ran = tessera_in(root.path(), args, None);
        assert_eq!(ran.code, 2, "{args:?}: {ran:?}");
        let v: serde_json::Value = serde_json::from_str(ran.stderr.trim())
            .unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {}", ran.stderr));
        assert_eq!(v["error"], "usage", "{args:?}");
        assert!(!v["message"].as_str().unwrap().is_empty());
    }
    let ran = tessera_in(root.path(), &["user", "list", "--limit", "abc"], None);
    assert_eq!(ran.code, 2);
    assert!(ran.stderr.starts_with("error: "), "{}", ran.stderr);
    let ran = tessera_in(root.path(), &["--help"], None);
    assert_eq!(ran.code, 0, "{ran:?}");
    assert!(
        !root.path().join("data").exists(),
        "a usage error creates nothing"
    );
}

#[tokio::test]
async fn errors_speak_the_clis_language_and_json_when_asked() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    ok(dir, &["user", "add", "alice"]);
    // --json: the error is one JSON object on stderr, nothing on stdout.
    let missing = tessera_in(dir, &["user", "show", "bob", "--json"], None);
    assert_eq!((missing.code, missing.stdout.as_str()), (1, ""));
    let error: serde_json::Value = serde_json::from_str(missing.stderr.trim())
        .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", missing.stderr));
    assert_eq!(error["error"], "not_found", "{error}");
    assert_eq!(error["message"], "no user named \"bob\"", "{error}");
    // A refusal's advice names the CLI's flag, not the API's parameter.
    // (A fresh keyring's next key was published a moment ago.)
    let again = tessera_in(dir, &["key", "rotate"], None);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.stderr.contains("--force") && !again.stderr.contains("?force=true"),
        "{again:?}"
    );
}

#[tokio::test]
async fn a_reader_that_closes_the_pipe_early_ends_the_command_quietly() {
    let root = tempfile::tempdir().unwrap();
    for args in [vec!["completions", "bash"], vec!["--help"]] {
        let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
            .args(&args)
            .current_dir(root.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -0`: the reader goes away before reading a byte.
        drop(child.stdout.take());
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "tessera {args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn the_configuration_page_lists_every_serve_flag_with_its_env_var() {
    let help = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    let page = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/docs/configuration.md"
    ))
    .unwrap();
    let table = page
        .split("## Configuration")
        .nth(1)
        .and_then(|s| s.split("\n## ").next())
        .expect("docs/configuration.md has a Configuration section");
    let mut flags = Vec::new();
    let mut flag = None;
    for line in help.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("--") {
            flag = rest.split_whitespace().next().map(|f| format!("--{f}"));
        } else if let Some(env) = line.strip_prefix("[env: ") {
            let env = env.split(['=', ']']).next().unwrap();
            let f = flag.take().expect("an env line follows its flag");
            let row = format!("| `{f}` | `{env}` |");
            assert!(table.contains(&row), "docs/configuration.md lacks {row}");
            flags.push(f);
        }
    }
    assert!(flags.len() >= 25, "only {flags:?} parsed from serve --help");
}

#[tokio::test]
async fn scopes_are_set_by_add_set_and_apply_and_shown() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    ok(
        dir,
        &["user", "add", "cm", "--scope", "sync", "--scope", "content"],
    );
    let scopes_of = |name: &str| {
        ok(dir, &["user", "show", name])
            .lines()
            .find_map(|l| l.strip_prefix("scopes:").map(|v| v.trim().to_owned()))
            .expect("user show prints scopes")
    };
    assert_eq!(scopes_of("cm"), "content sync");
    ok(dir, &["user", "set", "cm", "--scopes", "property, sync"]);
    assert_eq!(scopes_of("cm"), "property sync");
    ok(dir, &["user", "set", "cm", "--scopes", ""]);
    assert_eq!(scopes_of("cm"), "-");
    let bad = tessera_in(dir, &["user", "add", "x", "--scope", "a/b"], None);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("a/b"), "{bad:?}");
    std::fs::write(
        dir.join("users.toml"),
        "[[user]]\nusername = \"cm\"\nscopes = [\"sync\"]\n[[user]]\nusername = \"bad\"\nscopes = [\"no spaces\"]\n",
    )
    .unwrap();
    let refused = tessera_in(dir, &["apply", "users.toml"], None);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(
        refused.stderr.contains("users.toml")
            && refused.stderr.contains("bad")
            && refused.stderr.contains("scopes"),
        "{refused:?}"
    );
    std::fs::write(
        dir.join("users.toml"),
        "[[user]]\nusername = \"cm\"\nscopes = [\"sync\"]\n",
    )
    .unwrap();
    ok(dir, &["apply", "users.toml"]);
    assert_eq!(scopes_of("cm"), "sync");
}

#[tokio::test]
async fn networks_and_token_rates_are_set_by_add_set_and_apply_and_shown() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    ok(
        dir,
        &[
            "user",
            "add",
            "cm",
            "--allow-network",
            "203.0.113.0/24",
            "--allow-network",
            "2001:DB8::/32",
            "--token-rate",
            "10/min",
        ],
    );
    let field = |name: &str, key: &str| {
        ok(dir, &["user", "show", name])
            .lines()
            .find_map(|l| {
                l.strip_prefix(key)
                    .map(|v| v.trim_start_matches(':').trim().to_owned())
            })
            .unwrap_or_else(|| panic!("user show prints {key}"))
    };
    let set_policy = |networks: &str, rate: &str| {
        ok(
            dir,
            &[
                "user",
                "set",
                "cm",
                "--networks",
                networks,
                "--token-rate",
                rate,
            ],
        );
    };
    let policy = |name: &str| (field(name, "allowed_networks"), field(name, "token_rate"));
    assert_eq!(
        policy("cm"),
        ("203.0.113.0/24,2001:db8::/32".into(), "10/min".into())
    );
    set_policy("10.0.0.0/8, 192.0.2.1", "1/s");
    assert_eq!(
        policy("cm"),
        ("10.0.0.0/8,192.0.2.1/32".into(), "1/s".into())
    );
    set_policy("", "none");
    assert_eq!(policy("cm"), ("- (anywhere)".into(), "-".into()));
    let bad = tessera_in(
        dir,
        &["user", "set", "cm", "--networks", "10.1.2.3/8"],
        None,
    );
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("10.0.0.0/8"),
        "the network it would mean: {bad:?}"
    );
    let bad = tessera_in(dir, &["user", "add", "x", "--token-rate", "10/day"], None);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(bad.stderr.contains("N/s, N/min or N/h"), "{bad:?}");
    std::fs::write(
        dir.join("users.toml"),
        "[[user]]\nusername = \"cm\"\nallowed_networks = [\"198.51.100.0/24\"]\ntoken_rate = \"2/h\"\n",
    )
    .unwrap();
    ok(dir, &["apply", "users.toml"]);
    assert_eq!(policy("cm"), ("198.51.100.0/24".into(), "2/h".into()));
    let json = ok(dir, &["user", "--json", "show", "cm"]);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(
        v["allowed_networks"],
        serde_json::json!(["198.51.100.0/24"])
    );
    assert_eq!(v["token_rate"], "2/h");
}

#[tokio::test]
async fn secrets_are_rotated_listed_and_ended_from_the_cli() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path();
    ok(dir, &["user", "add", "cm"]);
    let rotated = tessera_in(
        dir,
        &["user", "rotate", "cm", "--grace", "2h", "--password-stdin"],
        Some("a chosen secret for the rotation\n"),
    );
    assert_eq!(rotated.code, 0, "{rotated:?}");
    assert!(
        rotated.stdout.contains("still valid until"),
        "{}",
        rotated.stdout
    );
    assert!(
        !rotated.stdout.contains("password:"),
        "a chosen password is never printed: {}",
        rotated.stdout
    );
    let generated = ok(dir, &["user", "rotate", "cm"]);
    assert!(generated.contains("password: "), "{generated}");

    let shown: serde_json::Value =
        serde_json::from_str(&ok(dir, &["user", "show", "cm", "--json"])).unwrap();
    let secrets = shown["secrets"].as_array().unwrap();
    assert_eq!(secrets.len(), 2, "never more than two: {shown}");
    let text = ok(dir, &["user", "show", "cm"]);
    for s in secrets {
        assert!(text.contains(s["id"].as_str().unwrap()), "{text}");
    }
    assert!(text.contains("LAST_USED_AT"), "{text}");

    let previous = secrets[1]["id"].as_str().unwrap();
    ok(dir, &["user", "end-secret", "cm", previous]);
    let only = secrets[0]["id"].as_str().unwrap();
    let refused = tessera_in(dir, &["user", "end-secret", "cm", only], None);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("only secret"), "{}", refused.stderr);
    let refused = tessera_in(dir, &["user", "rotate", "cm", "--grace", "31d"], None);
    assert_eq!(refused.code, 1, "{refused:?}");
    assert!(refused.stderr.contains("grace: "), "{}", refused.stderr);

    // DPoP required (SPEC §17), set and shown.
    ok(dir, &["user", "set", "cm", "--dpop-required", "true"]);
    let shown = ok(dir, &["user", "show", "cm"]);
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("dpop_required:") && l.ends_with("true")),
        "{shown}"
    );
    ok(dir, &["user", "add", "bound", "--dpop-required"]);
    let shown: serde_json::Value =
        serde_json::from_str(&ok(dir, &["user", "show", "bound", "--json"])).unwrap();
    assert_eq!(shown["dpop_required"], true);

    let audit = ok(dir, &["audit"]);
    for action in ["user.secret.rotate", "user.secret.delete"] {
        assert!(audit.contains(action), "{audit}");
    }
    assert!(!audit.contains("a chosen secret"), "{audit}");
}

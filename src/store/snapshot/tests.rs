use super::*;
use crate::domain::values::{MAX_NOTE_CHARS, MAX_TOKEN_TTL_SECS};
use crate::token::MAX_JTI_LEN;

#[test]
fn parser_messages_never_carry_a_hash() {
    let line = br#"{"type":"user","user":{"username":"a","status":"active","created_at":1,"updated_at":1,"expires_at":null,"token_ttl_secs":null,"tokens_valid_after":null,"note":null,"password":"$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaA"}}"#;
    let mut reader = Reader::new();
    reader
        .read(br#"{"type":"header","format":"tessera-export","version":1,"exported_at":"2026-12-02T17:11:57Z"}"#)
        .unwrap();
    let err = reader.read(line).unwrap_err().to_string();
    assert!(
        !err.contains("argon2id$") && !err.contains("c2FsdH"),
        "{err}"
    );
}
use crate::domain::keys::{KeyStatus, initial_records};
use crate::domain::user::Username;
use crate::login::password::hash_new;

fn user(name: &str) -> User {
    let name = Username::parse(name).unwrap();
    User::new(
        &name,
        hash_new("550e8400-e29b-41d4-a716-446655440000").unwrap(),
        1,
        0,
    )
}

/// A snapshot of `users` and a fresh keyring, as text lines.
fn snapshot(users: Vec<User>, keys: Vec<KeyRecord>, revs: &[(&str, u64)]) -> Vec<u8> {
    let mut w = Writer::header(Vec::new(), 5).unwrap();
    for u in users {
        w.user(u).unwrap();
    }
    for k in keys {
        w.key(k).unwrap();
    }
    for (j, e) in revs {
        w.revocation((*j).to_owned(), *e).unwrap();
    }
    let counts = w.counts;
    let mut out = w.out;
    serde_json::to_writer(
        &mut out,
        &Line::End {
            users: counts.users,
            keys: counts.keys,
            revocations: counts.revocations,
        },
    )
    .unwrap();
    out.push(b'\n');
    out
}

fn read_all(bytes: &[u8]) -> Result<(Vec<Item>, Summary), BadSnapshot> {
    let mut r = Reader::new();
    let mut items = Vec::new();
    for line in bytes.split(|&b| b == b'\n') {
        if let Some(item) = r.read(line)? {
            items.push(item);
        }
    }
    Ok((items, r.finish()?))
}

fn refused(bytes: &[u8]) -> String {
    read_all(bytes).expect_err("should be refused").to_string()
}

#[test]
fn a_written_snapshot_reads_back() {
    let keys = initial_records(1).unwrap();
    let mut u = user("a");
    u.token_ttl_secs = Some(600);
    let bytes = snapshot(vec![u, user("b")], keys, &[("j", 9)]);
    let (items, summary) = read_all(&bytes).unwrap();
    assert_eq!(items.len(), 5);
    assert_eq!(
        summary.counts,
        ImportCounts {
            users: 2,
            keys: 2,
            revocations: 1
        }
    );
    assert_eq!(summary.max_ttl_secs, 600);
}

#[test]
fn the_keyring_must_start() {
    let keys = initial_records(1).unwrap();
    let mut retired_copy = keys[0].clone();
    retired_copy.status = KeyStatus::Retired;
    let doubled = [keys.clone(), vec![retired_copy]].concat();
    assert!(refused(&snapshot(vec![], doubled, &[])).contains("appears twice"));
    assert!(refused(&snapshot(vec![], keys[..1].to_vec(), &[])).contains("0 next"));
    let mut forged = keys.clone();
    forged[1].kid = "not-the-thumbprint".into();
    assert!(refused(&snapshot(vec![], forged, &[])).contains("thumbprint"));
}

#[test]
fn out_of_range_values_are_refused() {
    let keys = || initial_records(1).unwrap();
    let far = time::MAX_UNIX_SECS + 1;
    let mut cases: Vec<(User, &str)> = Vec::new();
    for field in [
        "created_at",
        "updated_at",
        "expires_at",
        "tokens_valid_after",
    ] {
        let mut u = user("a");
        match field {
            "created_at" => u.created_at = far,
            "updated_at" => u.updated_at = far,
            "expires_at" => u.expires_at = Some(far),
            _ => u.tokens_valid_after = Some(far),
        }
        cases.push((u, field));
    }
    for ttl in [0, MAX_TOKEN_TTL_SECS + 1] {
        let mut u = user("a");
        u.token_ttl_secs = Some(ttl);
        cases.push((u, "token_ttl_secs"));
    }
    let mut u = user("a");
    u.note = Some("n".repeat(MAX_NOTE_CHARS + 1));
    cases.push((u, "note"));
    let mut u = user("a");
    u.password = crate::login::password::PasswordHash::Argon2id {
        phc: "$argon2id$v=19$m=19456,t=4294967295,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
    };
    cases.push((u, "exceed"));
    for (u, what) in cases {
        let why = refused(&snapshot(vec![u], keys(), &[]));
        assert!(
            why.contains(what) && why.contains("line 2"),
            "{what}: {why}"
        );
    }
    let mut ok = user("a");
    ok.token_ttl_secs = Some(MAX_TOKEN_TTL_SECS);
    ok.expires_at = Some(time::MAX_UNIX_SECS);
    ok.note = Some("n".repeat(MAX_NOTE_CHARS));
    assert!(
        read_all(&snapshot(vec![ok], keys(), &[])).is_ok(),
        "the limits pass"
    );
    let mut k = keys();
    k[0].created_at = far;
    assert!(refused(&snapshot(vec![], k, &[])).contains("created_at"));
    assert!(refused(&snapshot(vec![], keys(), &[("j", far)])).contains("exp"));
    assert!(refused(&snapshot(vec![], keys(), &[("", 5)])).contains("jti"));
    let long = "j".repeat(MAX_JTI_LEN + 1);
    assert!(refused(&snapshot(vec![], keys(), &[(&long, 5)])).contains("jti"));
    let longest = "j".repeat(MAX_JTI_LEN);
    assert!(read_all(&snapshot(vec![], keys(), &[(&longest, 5)])).is_ok());
}

#[test]
fn framing_is_checked() {
    let full = snapshot(vec![user("a")], initial_records(1).unwrap(), &[]);
    let text = String::from_utf8(full.clone()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let without_end = lines[..lines.len() - 1].join("\n");
    assert!(refused(without_end.as_bytes()).contains("truncated"));
    let without_header = lines[1..].join("\n");
    assert!(refused(without_header.as_bytes()).contains("header"));
    assert!(refused(b"").contains("no export header"));
    let late_header = format!("\n{text}");
    assert!(refused(late_header.as_bytes()).contains("first line, once"));
    let header_twice = format!("{}\n{text}", lines[0]);
    assert!(refused(header_twice.as_bytes()).contains("once"));
    let after_end = format!("{text}{}\n", lines[1]);
    assert!(refused(after_end.as_bytes()).contains("follow the end"));
    let miscounted = text.replace("\"users\":1", "\"users\":2");
    assert!(refused(miscounted.as_bytes()).contains("end line counts"));
    let other = text.replace("\"version\":1", "\"version\":2");
    assert!(refused(other.as_bytes()).contains("version 2"));
}

fn split(chunks: &[&[u8]]) -> Vec<Result<Vec<u8>, String>> {
    Lines::new(chunks.iter().map(|c| Ok::<_, String>(c.to_vec()))).collect()
}

#[test]
fn an_import_line_may_hold_64_kib() {
    assert_eq!(MAX_LINE_BYTES, 65_536, "the limit the README documents");
}

#[test]
fn lines_are_split_across_chunks() {
    let got = split(&[b"ab", b"c\nde", b"\n\nf"]);
    let want: Vec<Result<Vec<u8>, String>> = vec![
        Ok(b"abc".to_vec()),
        Ok(b"de".to_vec()),
        Ok(b"".to_vec()),
        Ok(b"f".to_vec()),
    ];
    assert_eq!(got, want);
    assert!(split(&[]).is_empty());
    let long = vec![b'x'; MAX_LINE_BYTES + 1];
    let got = split(&[&long, b"\n"]);
    assert_eq!(got.len(), 1);
    assert!(got[0].as_ref().unwrap_err().contains("longer"));
    let exact = vec![b'x'; MAX_LINE_BYTES];
    let got = split(&[&exact[..10], &exact[10..], b"\n"]);
    assert_eq!(got, vec![Ok(exact.clone())]);
    let broken: Vec<_> =
        Lines::new([Ok(b"a\nb".to_vec()), Err("gone".to_string())].into_iter()).collect();
    assert_eq!(broken, vec![Ok(b"a".to_vec()), Err("gone".to_string())]);
}

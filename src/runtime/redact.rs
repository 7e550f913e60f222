//! Secrets out of messages an operator reads: parser errors quote the
//! values they choke on, and in a snapshot or a declarative file those can
//! be password hashes, salts or key seeds.

/// A parser's message with every quoted value that could be a secret (a
/// password hash, a salt, a digest, a key seed) replaced by `<redacted>`:
/// import errors go to operators' terminals and logs.
pub fn without_secrets(message: &str) -> String {
    let looks_secret = |v: &str| {
        v.starts_with('$')
            || (v.len() >= 16
                && v.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'=' | b'+' | b'/')
                }))
    };
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find(['`', '"']) {
        let quote = rest.as_bytes()[open] as char;
        out.push_str(&rest[..=open]);
        let after = &rest[open + 1..];
        match after.find(quote) {
            Some(close) => {
                let value = &after[..close];
                out.push_str(if looks_secret(value) {
                    "<redacted>"
                } else {
                    value
                });
                out.push(quote);
                rest = &after[close + 1..];
            }
            None => {
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Every string or number held under a key starting with `password`
/// (`password`, `password_hash`, at any depth: an exported hash's salt and
/// digest too) in a document an operator wrote (a TOML file read as JSON,
/// or an apply body).
pub fn passwords_in(document: &serde_json::Value) -> Vec<String> {
    fn walk(value: &serde_json::Value, secret: bool, out: &mut Vec<String>) {
        match value {
            serde_json::Value::String(s) if secret => out.push(s.clone()),
            serde_json::Value::Number(n) if secret => out.push(n.to_string()),
            serde_json::Value::Object(o) => o
                .iter()
                .for_each(|(k, v)| walk(v, secret || k.starts_with("password"), out)),
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, secret, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(document, false, &mut out);
    out
}

/// [`without_secrets`], and each of `secrets` replaced by `<redacted>`
/// wherever it stands.
pub fn without_these(message: &str, secrets: &[String]) -> String {
    let mut out = without_secrets(message);
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(secret.as_str(), "<redacted>");
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{passwords_in, without_secrets, without_these};

    #[test]
    fn quoted_secrets_go_and_names_stay() {
        assert_eq!(
            without_secrets("unknown field `colour`, expected `status` at line 1"),
            "unknown field `colour`, expected `status` at line 1",
            "names of fields stay"
        );
        assert_eq!(
            without_secrets(r#"invalid value "AAAAAAAAAAAAAAAAAAAAAA" here"#),
            r#"invalid value "<redacted>" here"#
        );
        assert_eq!(
            without_secrets(r#"bad "$argon2id$v=19$m=1" and `x`"#),
            r#"bad "<redacted>" and `x`"#
        );
        assert_eq!(
            without_secrets("cut \"AAAAAAAAAAAAAAAAAAAA"),
            "cut \"AAAAAAAAAAAAAAAAAAAA"
        );
    }

    #[test]
    fn passwords_at_any_depth_are_found_and_taken_out() {
        let document = json!({"user": [
            {"username": "a", "password": "pw-1", "note": "kept"},
            {"username": "b", "password_hash": {"argon2id": {"salt": "s4lt", "m": 19456}}},
        ]});
        assert_eq!(passwords_in(&document), ["pw-1", "19456", "s4lt"]);
        assert_eq!(
            without_these("a pw-1, b s4lt, note kept", &passwords_in(&document)),
            "a <redacted>, b <redacted>, note kept"
        );
        assert_eq!(
            without_these("x", &[String::new()]),
            "x",
            "an empty one is nothing"
        );
    }
}

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

#[cfg(test)]
mod tests {
    use super::without_secrets;

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
}

//! Strict `application/x-www-form-urlencoded` decoding for query strings,
//! form bodies and path segments. Unlike lenient decoders it refuses a `%`
//! not followed by two hex digits and bytes that are not UTF-8, so bad input
//! gets a clear 400 instead of a silently altered credential.

/// Why a form or path could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A `%` without two hex digits after it.
    #[error("bad percent-encoding")]
    BadPercent,
    /// The decoded bytes are not UTF-8.
    #[error("not valid UTF-8")]
    NotUtf8,
}

use std::borrow::Cow;

/// Percent-decodes `raw`; with `plus_is_space`, `+` means a space (forms).
pub fn percent_decode(raw: &str, plus_is_space: bool) -> Result<String, FormError> {
    decode(raw, plus_is_space).map(Cow::into_owned)
}

/// [`percent_decode`], borrowing `raw` when it holds nothing to decode (no
/// allocation for the common `username=…&password=<uuid>`).
fn decode(raw: &str, plus_is_space: bool) -> Result<Cow<'_, str>, FormError> {
    if !raw
        .bytes()
        .any(|b| b == b'%' || (plus_is_space && b == b'+'))
    {
        return Ok(Cow::Borrowed(raw));
    }
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).ok_or(FormError::BadPercent)?;
                let hi = (hex[0] as char).to_digit(16).ok_or(FormError::BadPercent)?;
                let lo = (hex[1] as char).to_digit(16).ok_or(FormError::BadPercent)?;
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map(Cow::Owned)
        .map_err(|_| FormError::NotUtf8)
}

/// Decodes `a=1&b=2` into pairs, in order. Empty pieces are skipped; a piece
/// without `=` is a name with an empty value.
pub fn parse_pairs(raw: &str) -> Result<Vec<(String, String)>, FormError> {
    pairs(raw)
        .map(|pair| pair.map(|(name, value)| (name.into_owned(), value.into_owned())))
        .collect()
}

/// [`parse_pairs`] as an iterator of borrowed-when-possible pairs.
fn pairs(raw: &str) -> impl Iterator<Item = Result<(Cow<'_, str>, Cow<'_, str>), FormError>> {
    raw.split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = piece.split_once('=').unwrap_or((piece, ""));
            Ok((decode(name, true)?, decode(value, true)?))
        })
}

/// The credentials of a `/generateToken` call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    /// `username`, matched case-insensitively; None when absent.
    pub username: Option<String>,
    /// `password`, matched case-insensitively; None when absent.
    pub password: Option<String>,
    /// `scope` (space-separated), matched case-insensitively; None when
    /// absent.
    pub scope: Option<String>,
}

impl Credentials {
    /// Takes `username`, `password` and `scope` from `raw` (a later one
    /// wins); only those values are ever copied.
    fn absorb(&mut self, raw: &str) -> Result<(), FormError> {
        for pair in pairs(raw) {
            let (name, value) = pair?;
            if name.eq_ignore_ascii_case("username") {
                self.username = Some(value.into_owned());
            } else if name.eq_ignore_ascii_case("password") {
                self.password = Some(value.into_owned());
            } else if name.eq_ignore_ascii_case("scope") {
                self.scope = Some(value.into_owned());
            }
        }
        Ok(())
    }
}

/// Every `scope` value of a query string (space-separated lists), for
/// `/verify?scope=`.
pub fn scope_values(raw: &str) -> Result<Vec<String>, FormError> {
    let mut values = Vec::new();
    for pair in pairs(raw) {
        let (name, value) = pair?;
        if name.eq_ignore_ascii_case("scope") {
            values.push(value.into_owned());
        }
    }
    Ok(values)
}

/// Reads credentials from the query string and the form body; a field in
/// both is taken from the body.
pub fn credentials(query: &str, body: &str) -> Result<Credentials, FormError> {
    let mut c = Credentials::default();
    c.absorb(query)?;
    c.absorb(body)?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_example_parses() {
        let c = credentials(
            "username=channel_user&password=550e8400-e29b-41d4-a716-446655440000",
            "",
        )
        .unwrap();
        assert_eq!(c.username.as_deref(), Some("channel_user"));
        assert_eq!(
            c.password.as_deref(),
            Some("550e8400-e29b-41d4-a716-446655440000")
        );
    }

    #[test]
    fn names_are_case_insensitive_and_body_wins() {
        let c = credentials("Username=q&PASSWORD=qp", "password=bp").unwrap();
        assert_eq!(c.username.as_deref(), Some("q"));
        assert_eq!(c.password.as_deref(), Some("bp"));
    }

    #[test]
    fn decoding_is_strict() {
        assert_eq!(percent_decode("a%40b+c", true).unwrap(), "a@b c");
        assert_eq!(percent_decode("a+b", false).unwrap(), "a+b");
        assert_eq!(percent_decode("%zz", true), Err(FormError::BadPercent));
        assert_eq!(percent_decode("%4", true), Err(FormError::BadPercent));
        assert_eq!(percent_decode("%ff", true), Err(FormError::NotUtf8));
        assert_eq!(percent_decode("%C3%BC", true).unwrap(), "ü");
    }

    #[test]
    fn odd_shapes() {
        let c = credentials("&&username&password=", "").unwrap();
        assert_eq!(c.username.as_deref(), Some(""));
        assert_eq!(c.password.as_deref(), Some(""));
        let c = credentials("password=a=b", "").unwrap();
        assert_eq!(c.password.as_deref(), Some("a=b"));
    }
}

//! How commands print: the admin API's JSON verbatim with `--json`, else
//! text — aligned tables for lists, `field: value` lines for one record.

use std::io::Write;

use bytes::Bytes;
use serde::de::DeserializeOwned;

use super::api::CallError;

/// Where a command's answer goes.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// `--json`: print the API's answer as it came.
    pub json: bool,
}

impl Output {
    /// Prints what [`Output::render`] makes of an answer.
    pub fn emit(
        &self,
        body: &Bytes,
        human: impl FnOnce() -> Result<String, CallError>,
    ) -> Result<(), CallError> {
        let text = self.render(body, human)?;
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())
            .and_then(|()| out.flush())
            .map_err(|e| CallError::Io(format!("could not write to stdout: {e}")))
    }

    /// `body` as it came, ending in one newline (with `--json`; an empty
    /// body, a 204, stays empty), or the text `human` makes of it.
    pub fn render(
        &self,
        body: &Bytes,
        human: impl FnOnce() -> Result<String, CallError>,
    ) -> Result<String, CallError> {
        if !self.json {
            return human();
        }
        let mut text = String::from_utf8_lossy(body).into_owned();
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        Ok(text)
    }
}

/// Writes `bytes` to stdout; a reader that closed the pipe early (`| head`)
/// ends the command quietly with exit 0, as Unix tools do.
pub fn write_stdout(bytes: &[u8]) -> std::process::ExitCode {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: could not write to stdout: {e}");
            std::process::ExitCode::from(1)
        }
    }
}

/// Reads an admin API answer.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, CallError> {
    serde_json::from_slice(body)
        .map_err(|e| CallError::Io(format!("unexpected answer from the admin API: {e}")))
}

/// Lines of `field: value`, the names padded to one width.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len() + 1).max().unwrap_or(0);
    rows.iter()
        .map(|(k, v)| format!("{:width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// An aligned table with a header row; the last column is not padded.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (i, (cell, w)) in cells.iter().zip(&widths).enumerate() {
            if i == last {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<w$}  "));
            }
        }
        text.trim_end().to_owned() + "\n"
    };
    let mut text = line(header.to_vec());
    for row in rows {
        text.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    text
}

/// `-` for a missing value.
pub fn or_dash(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}

/// Percent-encodes a path segment or query value (anything but
/// `A-Z a-z 0-9 - . _ ~`), so a name can never change the path it is sent to.
pub fn encode(text: &str) -> String {
    percent_encoding::utf8_percent_encode(text, NOT_UNRESERVED).to_string()
}

/// Every byte but RFC 3986's unreserved characters.
const NOT_UNRESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// `?a=1&b=x` from the pairs that are set.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_every_column_but_the_last() {
        let t = table(
            &["NAME", "STATUS", "NOTE"],
            &[
                vec!["a".into(), "active".into(), "x y".into()],
                vec!["longer".into(), "-".into(), "-".into()],
            ],
        );
        assert_eq!(
            t,
            "NAME    STATUS  NOTE\na       active  x y\nlonger  -       -\n"
        );
    }

    #[test]
    fn json_is_the_body_as_it_came_and_text_is_the_renderers() {
        let json = Output { json: true };
        let text = Output { json: false };
        let human = || Ok("human\n".to_owned());
        assert_eq!(
            json.render(&Bytes::from_static(b"{\"a\":1}"), human)
                .unwrap(),
            "{\"a\":1}\n"
        );
        assert_eq!(
            json.render(&Bytes::from_static(b"{}\n"), human).unwrap(),
            "{}\n"
        );
        assert_eq!(json.render(&Bytes::new(), human).unwrap(), "");
        assert_eq!(
            text.render(&Bytes::from_static(b"{}"), human).unwrap(),
            "human\n"
        );
    }

    #[test]
    fn missing_values_show_as_a_dash() {
        assert_eq!(or_dash(None::<u64>), "-");
        assert_eq!(or_dash(Some(900)), "900");
        assert_eq!(or_dash(Some("x")), "x");
    }

    #[test]
    fn fields_pad_names() {
        assert_eq!(
            fields(&[("a", "1".into()), ("long", "2".into())]),
            "a:     1\nlong:  2\n"
        );
    }

    #[test]
    fn encoding_keeps_names_inside_their_segment() {
        assert_eq!(encode("a.b_c-d~9"), "a.b_c-d~9");
        assert_eq!(encode("bob/../x y@z"), "bob%2F..%2Fx%20y%40z");
        assert_eq!(
            query(&[("limit", Some("5".into())), ("after", None)]),
            "?limit=5"
        );
        assert_eq!(query(&[("after", None)]), "");
        assert_eq!(
            query(&[("limit", Some("5".into())), ("after", Some("a&b".into()))]),
            "?limit=5&after=a%26b"
        );
    }
}

//! What lets a console request through (SPEC §16): a live session for
//! every page but sign-in, and for every state-changing POST also the
//! session's CSRF token and a same-origin request. The browser's own
//! signals decide "same origin": `Sec-Fetch-Site` (when sent) must be
//! `same-origin` or `none`, and `Origin` (when sent) must name this
//! console's host — or be `null`, which Chromium sends for a form post
//! under `Referrer-Policy: no-referrer` and which is then trusted only
//! with the right token (checked by the caller) and no contrary
//! `Sec-Fetch-Site`.

use warp::http::HeaderMap;
use warp::http::header::{COOKIE, HOST, ORIGIN};

use super::session::COOKIE as SESSION_COOKIE;

/// The session cookie's value, if the request carries one.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (name, value) = pair.trim().split_once('=')?;
            (name == SESSION_COOKIE && !value.is_empty()).then_some(value)
        })
}

/// Whether a state-changing request comes from the console's own pages,
/// as far as the browser says.
pub fn same_origin(headers: &HeaderMap) -> bool {
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let fetch_site = header("sec-fetch-site");
    if fetch_site.is_some_and(|s| s != "same-origin" && s != "none") {
        return false;
    }
    match header(ORIGIN.as_str()) {
        None => true,
        Some("null") => true,
        Some(origin) => {
            let host = header(HOST.as_str()).unwrap_or("");
            let authority = origin
                .strip_prefix("https://")
                .or_else(|| origin.strip_prefix("http://"));
            !host.is_empty() && authority == Some(host)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "a=1; tessera_console=abc; b=2")]);
        assert_eq!(session_cookie(&h), Some("abc"));
        let h = headers(&[("cookie", "a=1"), ("cookie", "tessera_console=xyz")]);
        assert_eq!(session_cookie(&h), Some("xyz"));
        assert_eq!(
            session_cookie(&headers(&[("cookie", "tessera_console=")])),
            None
        );
        assert_eq!(
            session_cookie(&headers(&[("cookie", "xtessera_console=1")])),
            None
        );
        assert_eq!(session_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn only_the_consoles_own_origin_may_post() {
        let host = ("host", "127.0.0.1:8081");
        assert!(same_origin(&headers(&[host])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8081")
        ])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "https://127.0.0.1:8081")
        ])));
        assert!(same_origin(&headers(&[host, ("origin", "null")])));
        assert!(same_origin(&headers(&[
            host,
            ("origin", "null"),
            ("sec-fetch-site", "same-origin")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            host,
            ("origin", "http://127.0.0.1:8082")
        ])));
        assert!(
            !same_origin(&headers(&[("origin", "http://127.0.0.1:8081")])),
            "no Host"
        );
        for site in ["cross-site", "same-site"] {
            assert!(!same_origin(&headers(&[host, ("sec-fetch-site", site)])));
            assert!(!same_origin(&headers(&[
                host,
                ("origin", "null"),
                ("sec-fetch-site", site)
            ])));
        }
        assert!(same_origin(&headers(&[host, ("sec-fetch-site", "none")])));
    }
}

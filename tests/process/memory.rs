//! Memory under hostile input, read from the process (SPEC §5
//! "Authenticate before reading").

use std::io::Write;

use reqwest::StatusCode;

use crate::helpers::{raw_request, spawn_process as spawn_app};

#[tokio::test]
async fn a_strangers_admin_body_is_never_read() {
    let app = spawn_app().await;
    // Settle start-up allocations first: the Argon2id warm-up (a login with
    // a non-UUID guess waits behind it) and a first refused admin request.
    app.generate_token("nobody", "not-a-uuid").await;
    let r = app
        .client
        .post(format!("{}/admin/import", app.admin))
        .body("x")
        .send()
        .await;
    assert_eq!(r.unwrap().status(), StatusCode::UNAUTHORIZED);
    let rss_before = app.rss_kib();
    let admin = app.admin.clone();
    let (response, sent) = tokio::task::spawn_blocking(move || {
        let (mut stream, response) = raw_request(
            &admin,
            "POST /admin/import HTTP/1.1\r\nHost: t\r\nContent-Length: 314572800\r\n\r\n",
        );
        // The answer came before any of the body was sent; now try to send
        // 300 MB anyway: the server has closed and buffers none of it.
        let chunk = vec![b'x'; 1 << 20];
        let mut sent = 0usize;
        while sent < 300 << 20 {
            if stream.write_all(&chunk).is_err() {
                break;
            }
            sent += chunk.len();
        }
        (response, sent)
    })
    .await
    .unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("connection: close"),
        "{response}"
    );
    assert!(
        sent < 300 << 20,
        "the server kept reading a stranger's body"
    );
    let grown = app.rss_kib().saturating_sub(rss_before);
    assert!(grown < 8 * 1024, "RSS grew by {grown} KiB");
    assert_eq!(app.partner_get("/healthz").await.status(), StatusCode::OK);
}

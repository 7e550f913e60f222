//! SPEC §4 and §5 against the real binary: no user enumeration by work,
//! authentication before any admin body is read, slow bodies, client
//! addresses behind proxies, bounded hashing, throttling under concurrency,
//! imports that can not brick a restart, and far-future numbers.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{TestApp, raw_request, spawn_app, spawn_app_with};

const ARGON: &str = "tessera_password_checks_total{scheme=\"argon2id\"}";
const FAST: &str = "tessera_password_checks_total{scheme=\"sha256-salted\"}";

async fn checks(app: &TestApp) -> (f64, f64) {
    (app.metric(FAST).await, app.metric(ARGON).await)
}

#[tokio::test]
async fn the_work_of_a_guess_never_depends_on_the_user() {
    let app = spawn_app_with(&["--throttle-failures", "1000"]).await;
    app.create_user("generated").await; // fast scheme
    app.create_user_with(json!({"username": "chosen", "password": "operator-chosen"}))
        .await; // Argon2id
    app.create_user_with(json!({
        "username": "chosen_uuid",
        "password": "0b5c6a1e-3f4d-4e2a-9b8c-7d6e5f4a3b2c"
    }))
    .await; // a UUID chosen by the operator: fast scheme too
    let uuid_guess = "1b4e28ba-2fa1-41d2-883f-0016d3cca427";
    for guess in [uuid_guess, "not-a-uuid-guess"] {
        let mut deltas = Vec::new();
        for user in [
            "generated",
            "chosen",
            "chosen_uuid",
            "nobody",
            "no such user!",
        ] {
            let before = checks(&app).await;
            let r = app.generate_token(user, guess).await;
            assert_eq!(r.status(), StatusCode::UNAUTHORIZED, "{user}");
            let after = checks(&app).await;
            deltas.push((user, after.0 - before.0, after.1 - before.1));
        }
        let want = if guess == uuid_guess {
            (1.0, 0.0)
        } else {
            (0.0, 1.0)
        };
        for (user, fast, argon) in deltas {
            assert_eq!((fast, argon), want, "{user} / {guess}");
        }
    }
    // The scheme follows the password's shape, also for a chosen UUID.
    let r = app
        .generate_token("chosen_uuid", "0b5c6a1e-3f4d-4e2a-9b8c-7d6e5f4a3b2c")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let audit = app
        .admin_get("/admin/audit")
        .await
        .json::<Value>()
        .await
        .unwrap();
    let detail = |target: &str| {
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["target"] == target)
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(detail("chosen_uuid"), "password sha256-salted");
    assert_eq!(detail("chosen"), "password argon2id");
}

#[tokio::test]
async fn a_body_that_does_not_arrive_in_time_gets_408() {
    let app = spawn_app_with(&["--body-read-timeout", "1s"]).await;
    for (addr, path) in [
        (&app.partner, "/generateToken"),
        (&app.admin, "/admin/users"),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\nusername=",
            app.admin_token
        );
        let addr = addr.clone();
        let response = tokio::task::spawn_blocking(move || raw_request(&addr, &head).1)
            .await
            .unwrap();
        assert!(response.starts_with("HTTP/1.1 408"), "{path}: {response}");
    }
    // The streamed import: a pause longer than the timeout between chunks.
    let head = format!(
        "POST /admin/import HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer {}\r\nContent-Length: 100000\r\n\r\n{{\"type\":\"header\"",
        app.admin_token
    );
    let admin = app.admin.clone();
    let response = tokio::task::spawn_blocking(move || raw_request(&admin, &head).1)
        .await
        .unwrap();
    assert!(response.starts_with("HTTP/1.1 408"), "import: {response}");
    assert_eq!(app.admin_get("/admin/users").await.status(), StatusCode::OK);
}

#[tokio::test]
async fn connections_beyond_the_cap_wait_for_a_free_slot() {
    let app = spawn_app_with(&["--max-connections", "2"]).await;
    let partner = app.partner.trim_start_matches("http://").to_owned();
    // Each connection is answered once and then idles (keep-alive): both
    // hold a slot, with no guessing how long accepting them takes.
    let mut idle = Vec::new();
    for _ in 0..2 {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(&partner).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 1024];
        let n = stream.read(&mut answer).await.unwrap();
        assert!(
            answer[..n].starts_with(b"HTTP/1.1 200"),
            "{:?}",
            &answer[..n]
        );
        idle.push(stream);
    }
    let third = app
        .client
        .get(format!("{}/healthz", app.partner))
        .timeout(Duration::from_millis(700))
        .send()
        .await;
    assert!(
        third.is_err(),
        "a third connection is not served while two are open"
    );
    drop(idle);
    let r = app.partner_get("/healthz").await;
    assert_eq!(r.status(), StatusCode::OK, "served once a slot is free");
}

/// One address can not take every slot: with 300 slots, 300 idle
/// connections from 127.0.0.1 (no request, no handshake) leave room for
/// another address, answered within a second, on both listeners; the
/// flooding address's connections past `--max-connections-per-address`
/// (256 by default) are closed at once.
#[tokio::test]
async fn one_address_cannot_take_every_connection() {
    let app = spawn_app_with(&["--max-connections", "300"]).await;
    for base in [&app.partner, &app.admin] {
        let addr = base.trim_start_matches("http://").to_owned();
        let mut flood = Vec::new();
        for _ in 0..300 {
            flood.push(tokio::net::TcpStream::connect(&addr).await.unwrap());
        }
        // Once the server has taken all 300, those past the cap are closed.
        let mut closed = 0;
        for _ in 0..25 {
            closed = closed_count(&mut flood).await;
            if closed == 300 - 256 {
                break;
            }
        }
        assert_eq!(
            closed,
            300 - 256,
            "{base}: the connections past the cap were closed"
        );
        let other = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .timeout(Duration::from_secs(1))
            .build()
            .unwrap();
        let r = other.get(format!("{base}/healthz")).send().await;
        let status = r.map(|r| r.status());
        assert!(
            matches!(status, Ok(s) if s == StatusCode::OK || s == StatusCode::NOT_FOUND || s == StatusCode::UNAUTHORIZED),
            "{base}: another address is answered: {status:?}"
        );
    }
}

/// How many of `streams` the server has closed (a read ends, or fails,
/// within 200 ms; an open idle one just waits).
async fn closed_count(streams: &mut [tokio::net::TcpStream]) -> usize {
    let reads = streams.iter_mut().map(|s| async move {
        let mut byte = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(s, &mut byte);
        let read = tokio::time::timeout(Duration::from_millis(200), read).await;
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    });
    futures_util::future::join_all(reads)
        .await
        .into_iter()
        .filter(|closed| *closed)
        .count()
}

#[tokio::test]
async fn forwarded_ports_and_mapped_peers_count_the_client_not_the_proxy() {
    for listen in ["127.0.0.1:0", "[::]:0"] {
        let app = spawn_app_with(&[
            "--listen",
            listen,
            "--trusted-proxies",
            "127.0.0.1",
            "--throttle-failures",
            "3",
        ])
        .await;
        // Connect over IPv4 even to [::], so the peer is ::ffff:127.0.0.1.
        let port = app.partner.rsplit(':').next().unwrap().to_owned();
        let base = format!("http://127.0.0.1:{port}");
        let pw = app.create_user("partner").await;
        let login = |xff: &'static str, pw: String| {
            app.client
                .post(format!("{base}/generateToken"))
                .query(&[("username", "partner"), ("password", pw.as_str())])
                .header("x-forwarded-for", xff)
                .send()
        };
        for _ in 0..4 {
            login("203.0.113.9:5555", "guess".into()).await.unwrap();
        }
        let r = login("203.0.113.9:5555", pw.clone()).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{listen}: attacker"
        );
        let r = login("198.51.100.7:777", pw.clone()).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{listen}: the partner is not locked out"
        );
        let r = login(" [2001:db8::7]:443 ", pw.clone()).await.unwrap();
        assert_eq!(
            r.status(),
            StatusCode::OK,
            "{listen}: bracketed IPv6 with a port"
        );
    }
}

#[tokio::test]
async fn unparsed_forwarded_entries_do_not_share_the_proxys_bucket() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1", "--throttle-failures", "2"]).await;
    let pw = app.create_user("partner").await;
    for _ in 0..3 {
        app.login_from("garbage", "partner", "guess").await;
    }
    assert_eq!(
        app.login_from("garbage", "partner", &pw).await.status(),
        StatusCode::TOO_MANY_REQUESTS
    );
    assert_eq!(
        app.login_from("198.51.100.7", "partner", &pw)
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .partner_request(reqwest::Method::POST, "/generateToken")
        .query(&[("username", "partner"), ("password", pw.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "the proxy's own bucket is clean"
    );
}

#[tokio::test]
async fn ipv6_clients_are_throttled_per_64() {
    let app = spawn_app_with(&["--trusted-proxies", "127.0.0.1", "--throttle-failures", "3"]).await;
    let pw = app.create_user("partner").await;
    for host in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"] {
        app.login_from(host, "partner", "guess").await;
    }
    let r = app.login_from("2001:db8:1:2::99", "partner", &pw).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "one /64 is one client"
    );
    let r = app.login_from("2001:db8:1:3::1", "partner", &pw).await;
    assert_eq!(r.status(), StatusCode::OK, "the next /64 is another client");
}

#[tokio::test]
async fn concurrent_guesses_get_no_more_checks_than_sequential_ones() {
    let app = spawn_app_with(&["--throttle-failures", "3"]).await;
    app.create_user_with(json!({"username": "chosen", "password": "operator-chosen"}))
        .await;
    let before = app.metric(ARGON).await;
    let guesses = (0..12).map(|i| {
        app.partner_request(reqwest::Method::POST, "/generateToken")
            .query(&[("username", "chosen"), ("password", &format!("guess-{i}"))])
            .send()
    });
    let statuses: Vec<StatusCode> = futures_util::future::join_all(guesses)
        .await
        .into_iter()
        .map(|r| r.unwrap().status())
        .collect();
    let checked = app.metric(ARGON).await - before;
    assert_eq!(checked, 3.0, "{statuses:?}");
    assert_eq!(
        statuses
            .iter()
            .filter(|s| **s == StatusCode::UNAUTHORIZED)
            .count(),
        3
    );
    assert!(
        statuses
            .iter()
            .all(|s| matches!(*s, StatusCode::UNAUTHORIZED | StatusCode::TOO_MANY_REQUESTS))
    );
}

#[tokio::test]
async fn a_full_hash_queue_answers_503_and_admin_work_goes_on() {
    let app = spawn_app_with(&["--hash-queue", "1", "--throttle-failures", "100000"]).await;
    let started = std::time::Instant::now();
    let flood = (0..40).map(|i| {
        app.partner_request(reqwest::Method::POST, "/generateToken")
            .query(&[
                ("username", format!("nobody{i}")),
                ("password", "not-a-uuid".into()),
            ])
            .send()
    });
    let flood = futures_util::future::join_all(flood);
    let admin = async {
        // Once the queue is refusing logins, the operator's work must go on.
        while app
            .metric("tessera_token_requests_total{endpoint=\"generate_token\",outcome=\"busy\"}")
            .await
            == 0.0
        {
            tokio::task::yield_now().await;
        }
        app.admin_post(
            "/admin/users",
            json!({"username": "made_during_flood", "password": "operator-chosen"}),
        )
        .await
        .status()
    };
    let (responses, admin_status) = tokio::join!(flood, admin);
    assert_eq!(
        admin_status,
        StatusCode::CREATED,
        "admin hashing is not queued behind logins"
    );
    let mut busy = 0;
    for r in responses {
        let r = r.unwrap();
        match r.status() {
            StatusCode::UNAUTHORIZED => {}
            StatusCode::SERVICE_UNAVAILABLE => {
                busy += 1;
                assert_eq!(r.headers()["retry-after"], "1");
                assert_eq!(r.text().await.unwrap(), "server busy");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(busy > 0, "a queue of one can not hold 40 checks");
    assert!(
        started.elapsed() >= tessera::service::BUSY_PAUSE,
        "a refusal is answered after the pause that slows a flood down"
    );
    let refused = app
        .metric("tessera_token_requests_total{endpoint=\"generate_token\",outcome=\"busy\"}")
        .await;
    assert_eq!(refused, f64::from(busy));
    let r = app
        .generate_token("made_during_flood", "operator-chosen")
        .await;
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_client_that_hangs_up_before_its_check_costs_nothing() {
    let app = spawn_app_with(&["--throttle-failures", "100000"]).await;
    app.create_user_with(json!({"username": "chosen", "password": "operator-chosen"}))
        .await;
    let before = app.metric(ARGON).await;
    let impatient = (0..16).map(|i| {
        app.partner_request(reqwest::Method::POST, "/generateToken")
            .query(&[
                ("username", format!("nobody{i}")),
                ("password", "not-a-uuid".into()),
            ])
            .timeout(Duration::from_millis(30))
            .send()
    });
    let gave_up = futures_util::future::join_all(impatient)
        .await
        .iter()
        .filter(|r| r.is_err())
        .count();
    // The queue is FIFO: once this check has run, every job queued before it
    // has either run or been skipped.
    let r = app.generate_token("chosen", "operator-chosen").await;
    assert_eq!(r.status(), StatusCode::OK);
    let ran = app.metric(ARGON).await - before - 1.0;
    assert!(gave_up >= 8, "only {gave_up} clients hung up");
    assert!(
        ran < 16.0 - 4.0,
        "{ran} of 16 checks ran although {gave_up} clients had hung up"
    );
}

/// An export of `app` as lines of JSON.
async fn export_lines(app: &TestApp) -> Vec<Value> {
    let text = app.admin_get("/admin/export").await.text().await.unwrap();
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn to_jsonl(lines: &[Value]) -> String {
    lines.iter().map(|l| format!("{l}\n")).collect()
}

/// Fixes the end line's counts after lines were added or removed.
fn recount(lines: &mut [Value]) {
    let count = |t: &str| lines.iter().filter(|l| l["type"] == t).count();
    let (u, k, r) = (count("user"), count("key"), count("revocation"));
    let end = lines.last_mut().unwrap();
    end["users"] = json!(u);
    end["keys"] = json!(k);
    end["revocations"] = json!(r);
}

#[tokio::test]
async fn an_import_that_could_brick_a_restart_is_refused() {
    let app = spawn_app().await;
    let pw = app.create_user("alice").await;
    app.create_user_with(json!({"username": "bob", "password": "operator-chosen"}))
        .await;
    let good = export_lines(&app).await;
    let user = |name: &str| {
        good.iter()
            .position(|l| l["user"]["username"] == name)
            .unwrap()
    };
    let active = good
        .iter()
        .position(|l| l["key"]["status"] == "active")
        .unwrap();
    let (alice, bob) = (user("alice"), user("bob"));
    type Edit = Box<dyn Fn(&mut Vec<Value>)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "appears twice",
            Box::new(move |l| {
                let mut copy = l[active].clone();
                copy["key"]["status"] = json!("retired");
                copy["key"]["retired_at"] = json!(1);
                copy["key"]["drop_after"] = json!(2);
                l.insert(active + 1, copy);
            }),
        ),
        (
            "thumbprint",
            Box::new(move |l| {
                l[active]["key"]["kid"] = json!("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")
            }),
        ),
        (
            "0 active",
            Box::new(move |l| l[active]["key"]["status"] = json!("retired")),
        ),
        (
            "exceed",
            Box::new(move |l| {
                let phc = l[bob]["user"]["password"]["argon2id"]["phc"]
                    .as_str()
                    .unwrap()
                    .replace("t=2", "t=4294967295");
                l[bob]["user"]["password"]["argon2id"]["phc"] = json!(phc);
            }),
        ),
        (
            "malformed argon2id",
            Box::new(move |l| {
                l[bob]["user"]["password"]["argon2id"]["phc"] = json!("$argon2id$junk")
            }),
        ),
        (
            "token_ttl_secs",
            Box::new(move |l| l[alice]["user"]["token_ttl_secs"] = json!(0)),
        ),
        (
            "token_ttl_secs",
            Box::new(move |l| l[alice]["user"]["token_ttl_secs"] = json!(366 * 86400 + 1)),
        ),
        (
            "9999-12-31",
            Box::new(move |l| l[alice]["user"]["expires_at"] = json!(253402300800u64)),
        ),
        (
            "user alice appears twice",
            Box::new(move |l| {
                let copy = l[alice].clone();
                l.insert(alice, copy);
            }),
        ),
        (
            "revocation \"j\": exp",
            Box::new(move |l| {
                let end = l.len() - 1;
                l.insert(
                    end,
                    json!({"type": "revocation", "jti": "j", "exp": 253402300800u64}),
                );
            }),
        ),
    ];
    for (why, edit) in cases {
        let mut lines = good.clone();
        edit(&mut lines);
        recount(&mut lines);
        let r = app
            .admin_request(reqwest::Method::POST, "/admin/import")
            .body(to_jsonl(&lines))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{why}");
        let body: Value = r.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(why),
            "{why}: {body}"
        );
    }
    assert_eq!(
        export_lines(&app).await.len(),
        good.len(),
        "nothing changed"
    );
    let token = app.token_for("alice", &pw).await;
    // The far end of the ranges is accepted and survives a restart.
    let mut edge = good.clone();
    edge[alice]["user"]["expires_at"] = json!(253402300799u64);
    edge[alice]["user"]["token_ttl_secs"] = json!(366 * 86400);
    let r = app
        .admin_request(reqwest::Method::POST, "/admin/import")
        .body(to_jsonl(&edge))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let listed = app.admin_get("/admin/users/alice").await;
    assert_eq!(listed.status(), StatusCode::OK);
    assert_eq!(
        listed.json::<Value>().await.unwrap()["expires_at"],
        "9999-12-31T23:59:59Z"
    );
    let app = app.restart(&[]).await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn far_future_numbers_get_an_answer() {
    let app = spawn_app().await;
    let r = app
        .admin_post(
            "/admin/revocations",
            json!({"jti": "x", "exp": 253402300800u64}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_post("/admin/revocations", json!({"jti": "x", "exp": u64::MAX}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_post(
            "/admin/revocations",
            json!({"jti": "y", "exp": 253402300799u64}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    for path in [
        "/admin/revocations",
        "/admin/audit",
        "/admin/export",
        "/metrics",
    ] {
        assert_eq!(app.admin_get(path).await.status(), StatusCode::OK, "{path}");
    }
    let r = app
        .admin_post(
            "/admin/users",
            json!({"username": "u", "token_ttl_secs": u64::MAX}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_post(
            "/admin/users",
            json!({"username": "u", "token_ttl_secs": 1e30}),
        )
        .await;
    assert_eq!(r.status().as_u16() / 100, 4);
    let r = app
        .admin_post(
            "/admin/users",
            json!({"username": "u", "expires_at": "9999-12-31T23:59:59Z", "token_ttl_secs": 366 * 86400}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app
        .admin_post(
            "/admin/users",
            json!({"username": "v", "expires_at": "10000-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.admin_get("/admin/users").await.status(), StatusCode::OK);
}

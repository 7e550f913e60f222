//! The admin API of SPEC §3: auth, user lifecycle, revocations, keys, audit,
//! export/import and metrics.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{claims_of, spawn_app, spawn_app_with};

#[tokio::test]
async fn every_route_needs_the_admin_token() {
    // Wrong admin tokens are throttled like passwords; this test sends 36.
    let app = spawn_app_with(&["--throttle-failures", "100"]).await;
    let routes = [
        (Method::POST, "/admin/users"),
        (Method::GET, "/admin/users"),
        (Method::GET, "/admin/users/a"),
        (Method::PATCH, "/admin/users/a"),
        (Method::DELETE, "/admin/users/a"),
        (Method::POST, "/admin/users/a/password"),
        (Method::POST, "/admin/users/a/revoke"),
        (Method::POST, "/admin/revocations"),
        (Method::GET, "/admin/revocations"),
        (Method::GET, "/admin/keys"),
        (Method::POST, "/admin/keys/rotate"),
        (Method::GET, "/admin/audit"),
        (Method::GET, "/admin/export"),
        (Method::POST, "/admin/import"),
        (Method::POST, "/admin/apply"),
        (Method::POST, "/admin/tokens/check"),
        (Method::GET, "/metrics"),
        (Method::GET, "/no/such/route"),
    ];
    for (method, path) in routes {
        for auth in [None, Some("Bearer wrong-token"), Some("Basic abc")] {
            let mut rq = app
                .client
                .request(method.clone(), format!("{}{}", app.admin, path));
            if let Some(a) = auth {
                rq = rq.header("authorization", a);
            }
            let r = rq.send().await.unwrap();
            assert_eq!(
                r.status(),
                StatusCode::UNAUTHORIZED,
                "{method} {path} {auth:?}"
            );
            let v: Value = r.json().await.unwrap();
            assert_eq!(v["error"], "unauthorized");
        }
    }
}

#[tokio::test]
async fn create_user_returns_a_generated_password_once() {
    let app = spawn_app().await;
    let v = app
        .create_user_with(json!({"username": "gen", "note": "hotel 7"}))
        .await;
    let pw = v["password"].as_str().unwrap();
    assert_eq!(pw.len(), 36);
    assert_eq!(&pw[14..15], "4", "UUID v4");
    assert_eq!(v["status"], "active");
    assert_eq!(v["note"], "hotel 7");
    for field in ["created_at", "updated_at"] {
        assert!(v[field].as_str().unwrap().ends_with('Z'));
    }
    for field in ["expires_at", "token_ttl_secs", "tokens_valid_after"] {
        assert!(v[field].is_null(), "{field}");
    }
    let got: Value = app
        .admin_get("/admin/users/gen")
        .await
        .json()
        .await
        .unwrap();
    assert!(got.get("password").is_none(), "never shown again");
    let r = app
        .admin_post("/admin/users", json!({"username": "gen"}))
        .await;
    assert_eq!(r.status(), StatusCode::CONFLICT);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"], "conflict");
}

#[tokio::test]
async fn bad_admin_input_is_a_clear_4xx() {
    let app = spawn_app().await;
    let cases = [
        (
            json!({"username": "bad name"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (json!({"username": ""}), StatusCode::UNPROCESSABLE_ENTITY),
        (
            json!({"username": "a".repeat(129)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "a", "password": ""}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "a", "password": "p".repeat(1025)}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "a", "token_ttl_secs": 0}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "a", "expires_at": "tomorrow"}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        (
            json!({"username": "a", "surprise": 1}),
            StatusCode::BAD_REQUEST,
        ),
        (json!({"username": 5}), StatusCode::BAD_REQUEST),
        (json!({}), StatusCode::BAD_REQUEST),
    ];
    for (body, status) in cases {
        let r = app.admin_post("/admin/users", body.clone()).await;
        assert_eq!(r.status(), status, "{body}");
        let v: Value = r.json().await.unwrap();
        assert!(v["error"].is_string() && v["message"].is_string(), "{v}");
    }
    let r = app
        .admin_request(Method::POST, "/admin/users")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .admin_request(Method::POST, "/admin/users")
        .body(vec![b' '; 70 * 1024])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = app.admin_get("/admin/users/nobody").await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = app.admin_get("/admin/users?limit=0").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app.admin_get("/admin/users?limit=1001").await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_request(Method::PUT, "/admin/users")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn list_users_paginates_in_username_order() {
    let app = spawn_app().await;
    let mut names: Vec<String> = (0..7).map(|i| format!("user{}", (7 - i) * 3)).collect();
    for n in &names {
        app.create_user(n).await;
    }
    names.sort();
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/admin/users?limit=3&after={a}"),
            None => "/admin/users?limit=3".to_owned(),
        };
        let v: Value = app.admin_get(&path).await.json().await.unwrap();
        pages += 1;
        for u in v["users"].as_array().unwrap() {
            seen.push(u["username"].as_str().unwrap().to_owned());
        }
        match v["next"].as_str() {
            Some(n) => after = Some(n.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, names);
}

#[tokio::test]
async fn patch_sets_and_clears_fields() {
    let app = spawn_app().await;
    app.create_user("p").await;
    let r = app
        .admin_patch(
            "/admin/users/p",
            json!({"expires_at": "2030-01-01T00:00:00Z", "token_ttl_secs": 60, "note": "n", "status": "disabled"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(v["token_ttl_secs"], 60);
    assert_eq!(v["status"], "disabled");
    let v: Value = app
        .admin_patch("/admin/users/p", json!({"expires_at": null, "note": null}))
        .await
        .json()
        .await
        .unwrap();
    assert!(v["expires_at"].is_null());
    assert!(v["note"].is_null());
    assert_eq!(v["token_ttl_secs"], 60, "absent fields stay");
    let r = app
        .admin_patch("/admin/users/p", json!({"status": "gone"}))
        .await;
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    let r = app
        .admin_patch("/admin/users/p", json!({"status": null}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_patch("/admin/users/p", json!({"token_ttl_secs": 0}))
        .await;
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let r = app
        .admin_patch("/admin/users/nobody", json!({"note": "x"}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn password_change_takes_effect_at_once() {
    let app = spawn_app().await;
    let old = app.create_user("pw").await;
    let r = app.admin_post("/admin/users/pw/password", json!({})).await;
    assert_eq!(r.status(), StatusCode::OK);
    let new: Value = r.json().await.unwrap();
    let new = new["password"].as_str().unwrap().to_owned();
    assert_eq!(
        app.generate_token("pw", &old).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.generate_token("pw", &new).await.status(),
        StatusCode::OK
    );
    let r = app
        .admin_post(
            "/admin/users/pw/password",
            json!({"password": "chosen by operator"}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        app.generate_token("pw", &new).await.status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        app.generate_token("pw", "chosen by operator")
            .await
            .status(),
        StatusCode::OK
    );
    let r = app
        .admin_post("/admin/users/nobody/password", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn revoke_all_kills_earlier_tokens_but_not_later_ones() {
    let app = spawn_app().await;
    let pw = app.create_user("r").await;
    let before = app.token_for("r", &pw).await;
    let r = app.admin_post("/admin/users/r/revoke", json!({})).await;
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(
        app.verify_rejection(&before)
            .await
            .contains("token revoked")
    );
    // A token issued after the revoke-all lives at once, even in the
    // revoke's own second: the account's generation decides, not the clock.
    let same_second = app.token_for("r", &pw).await;
    assert_eq!(app.verify(&same_second).await.status(), StatusCode::OK);
    let v: Value = app.admin_get("/admin/users/r").await.json().await.unwrap();
    let next_second = humantime::format_rfc3339_seconds(
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(app.now() + 1),
    )
    .to_string();
    assert_eq!(v["tokens_valid_after"], next_second.as_str());
    app.advance(1);
    let after = app.token_for("r", &pw).await;
    assert_eq!(app.verify(&after).await.status(), StatusCode::OK);
    assert_eq!(app.verify(&before).await.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn delete_makes_tokens_invalid() {
    let app = spawn_app().await;
    let pw = app.create_user("d").await;
    let t = app.token_for("d", &pw).await;
    assert_eq!(
        app.admin_delete("/admin/users/d").await.status(),
        StatusCode::NO_CONTENT
    );
    assert!(app.verify_rejection(&t).await.contains("account deleted"));
    assert_eq!(
        app.admin_delete("/admin/users/d").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        app.generate_token("d", &pw).await.status(),
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn revocations_by_token_or_jti() {
    let app = spawn_app().await;
    let pw = app.create_user("rv").await;
    let t1 = app.token_for("rv", &pw).await;
    let t2 = app.token_for("rv", &pw).await;
    let r = app
        .admin_post("/admin/revocations", json!({"token": t1}))
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let c2 = claims_of(&t2);
    let r = app
        .admin_post(
            "/admin/revocations",
            json!({"jti": c2["jti"], "exp": c2["exp"]}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    assert!(app.verify_rejection(&t1).await.contains("token revoked"));
    assert!(app.verify_rejection(&t2).await.contains("token revoked"));
    let v: Value = app
        .admin_get("/admin/revocations?limit=1")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v["revocations"].as_array().unwrap().len(), 1);
    let next = v["next"].as_str().unwrap();
    let v2: Value = app
        .admin_get(&format!("/admin/revocations?limit=1&after={next}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(v2["revocations"].as_array().unwrap().len(), 1);
    assert!(v2["next"].is_null());
    // Junk can not fill the table.
    for body in [
        json!({"token": "not.a.token"}),
        json!({"token": t1, "jti": "x", "exp": 1}),
        json!({"jti": "x"}),
        json!({}),
    ] {
        let r = app.admin_post("/admin/revocations", body.clone()).await;
        assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    }
}

#[tokio::test]
async fn key_rotation_cycle() {
    let app = spawn_app().await;
    let pw = app.create_user("kr").await;
    let old = app.token_for("kr", &pw).await;
    let keys: Value = app.admin_get("/admin/keys").await.json().await.unwrap();
    let statuses: Vec<&str> = keys["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["active", "next"]);
    let next_kid = keys["keys"][1]["kid"].as_str().unwrap().to_owned();

    let r = app.admin_post("/admin/keys/rotate", json!({})).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "the next key was just published"
    );
    let r = app
        .admin_post("/admin/keys/rotate?force=true", json!({}))
        .await;
    assert_eq!(r.status(), StatusCode::OK);
    let keys: Value = r.json().await.unwrap();
    let keys = keys["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 3);
    let active = keys.iter().find(|k| k["status"] == "active").unwrap();
    assert_eq!(
        active["kid"],
        next_kid.as_str(),
        "the pre-published key becomes active"
    );
    assert!(
        keys.iter()
            .any(|k| k["status"] == "retired" && k["retired_at"].is_string())
    );

    assert_eq!(
        app.verify(&old).await.status(),
        StatusCode::OK,
        "old tokens keep verifying"
    );
    let new = app.token_for("kr", &pw).await;
    let kid_of = |t: &str| -> Value {
        let h = base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            t.split('.').next().unwrap(),
        )
        .unwrap();
        serde_json::from_slice::<Value>(&h).unwrap()["kid"].clone()
    };
    assert_eq!(kid_of(&new), json!(next_kid));
    let jwks: Value = app.jwks().await;
    assert_eq!(
        jwks["keys"].as_array().unwrap().len(),
        3,
        "retired, active, next"
    );
}

#[tokio::test]
async fn audit_lists_mutations_newest_first_without_secrets() {
    let app = spawn_app().await;
    let pw = app.create_user("au").await;
    app.admin_patch("/admin/users/au", json!({"note": "x"}))
        .await;
    app.admin_post(
        "/admin/users/au/password",
        json!({"password": "s3cret-operator-pw"}),
    )
    .await;
    app.admin_delete("/admin/users/au").await;
    let v: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    let events = v["events"].as_array().unwrap();
    let actions: Vec<&str> = events
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["user.delete", "user.password", "user.update", "user.create"]
    );
    assert!(
        events
            .iter()
            .all(|e| e["target"] == "au" && e["at"].as_str().unwrap().ends_with('Z'))
    );
    let text = v.to_string();
    assert!(!text.contains(&pw) && !text.contains("s3cret-operator-pw"));
    let first = events[0]["seq"].as_u64().unwrap();
    let older: Value = app
        .admin_get(&format!("/admin/audit?limit=2&before={first}"))
        .await
        .json()
        .await
        .unwrap();
    let older: Vec<&str> = older["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(older, ["user.password", "user.update"]);
}

#[tokio::test]
async fn export_then_import_into_a_fresh_server_keeps_passwords_and_tokens() {
    let source = spawn_app().await;
    let generated = source.create_user("gen").await;
    source
        .create_user_with(json!({"username": "chosen", "password": "operator pick"}))
        .await;
    let token = source.token_for("gen", &generated).await;
    let revoked = source.token_for("gen", &generated).await;
    source
        .admin_post("/admin/revocations", json!({"token": revoked}))
        .await;
    let r = source.admin_get("/admin/export").await;
    assert_eq!(r.status(), StatusCode::OK);
    let snapshot = r.text().await.unwrap();
    let header: Value = serde_json::from_str(snapshot.lines().next().unwrap()).unwrap();
    assert_eq!(header["type"], "header");
    assert_eq!(header["version"], 1);

    let target = spawn_app().await;
    target.create_user("to_be_replaced").await;
    let r = target
        .admin_request(Method::POST, "/admin/import")
        .body(snapshot.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let counts: Value = r.json().await.unwrap();
    assert_eq!(counts["users"], 2);
    assert_eq!(
        target.generate_token("gen", &generated).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        target
            .generate_token("chosen", "operator pick")
            .await
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        target.verify(&token).await.status(),
        StatusCode::OK,
        "old token verifies on the new server"
    );
    assert!(
        target
            .verify_rejection(&revoked)
            .await
            .contains("token revoked")
    );
    assert_eq!(
        target
            .admin_get("/admin/users/to_be_replaced")
            .await
            .status(),
        StatusCode::NOT_FOUND
    );

    // A broken snapshot changes nothing.
    let broken = format!("{snapshot}{{\"type\":\"user\"}}\n");
    let r = target
        .admin_request(Method::POST, "/admin/import")
        .body(broken)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        target.generate_token("gen", &generated).await.status(),
        StatusCode::OK
    );
    let r = target
        .admin_request(Method::POST, "/admin/import")
        .body("")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    // A snapshot cut short (no end line) is refused too.
    let lines: Vec<&str> = snapshot.lines().collect();
    assert!(lines.last().unwrap().contains("\"type\":\"end\""));
    let truncated = lines[..lines.len() - 1].join("\n");
    let r = target
        .admin_request(Method::POST, "/admin/import")
        .body(truncated)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = r.json().await.unwrap();
    assert!(v["message"].as_str().unwrap().contains("truncated"), "{v}");
}

#[tokio::test]
async fn metrics_in_prometheus_text_format() {
    let app = spawn_app().await;
    let pw = app.create_user("m").await;
    let t = app.token_for("m", &pw).await;
    app.generate_token("m", "wrong").await;
    app.verify(&t).await;
    app.verify("junk").await;
    let r = app.admin_get("/metrics").await;
    assert_eq!(r.status(), StatusCode::OK);
    let text = r.text().await.unwrap();
    for needle in [
        "tessera_token_requests_total{endpoint=\"generate_token\",outcome=\"issued\"} 1",
        "tessera_token_requests_total{endpoint=\"generate_token\",outcome=\"invalid_credentials\"} 1",
        "tessera_verify_requests_total{outcome=\"valid\"} 1",
        "tessera_verify_requests_total{outcome=\"malformed\"} 1",
        "tessera_users 1",
        "tessera_revocations 0",
        "tessera_build_info{version=",
        "tessera_http_request_duration_seconds_bucket{le=",
    ] {
        assert!(text.contains(needle), "missing {needle} in\n{text}");
    }
}

#[tokio::test]
async fn rotation_is_paced_and_old_keys_and_revocations_are_pruned_by_the_clock() {
    let app = spawn_app().await;
    let pw = app.create_user("clock").await;
    let old = app.token_for("clock", &pw).await;
    let r = app
        .admin_post(
            "/admin/revocations",
            json!({"jti": "gone-soon", "exp": app.now() + 30}),
        )
        .await;
    assert_eq!(r.status(), StatusCode::CREATED);
    let r = app.admin_post("/admin/keys/rotate", json!({})).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "the next key was just published"
    );
    app.advance(299);
    let r = app.admin_post("/admin/keys/rotate", json!({})).await;
    assert_eq!(
        r.status(),
        StatusCode::CONFLICT,
        "one second short of the JWKS max-age"
    );
    app.advance(1);
    let r = app.admin_post("/admin/keys/rotate", json!({})).await;
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "rotation once the JWKS max-age has passed"
    );
    assert_eq!(app.prune().await.revocations, 1, "its exp has passed");
    let revs: Value = app
        .admin_get("/admin/revocations")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(revs["revocations"], json!([]));
    // The retired key verifies until its last token (1 h TTL) can have expired.
    app.advance(3599);
    assert_eq!(app.prune().await.keys, 0);
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 3);
    app.advance(1);
    assert_eq!(app.prune().await.keys, 1);
    assert_eq!(app.jwks().await["keys"].as_array().unwrap().len(), 2);
    assert!(
        app.verify_rejection(&old).await.contains("unknown key"),
        "its key is gone"
    );
}

/// SPEC §11: wrong admin tokens are throttled, on the admin listener and
/// at introspection, each in its own count: after `--throttle-failures`
/// wrong ones an address gets 429 for the next wrong one, while the right
/// token (256 random bits: nothing to confirm) keeps working from it.
/// Partners' failed logins from the same address touch neither count.
#[tokio::test]
async fn wrong_admin_tokens_are_throttled_like_passwords() {
    let app = spawn_app_with(&["--throttle-failures", "3"]).await;
    let pw = app.create_user("partner").await;
    let token = app.token_for("partner", &pw).await;
    for _ in 0..5 {
        app.generate_token("partner", "wrong-password").await;
    }
    assert_eq!(
        app.admin_get("/admin/users").await.status(),
        StatusCode::OK,
        "failed partner logins do not lock the admin API"
    );
    let introspect = |bearer: String| {
        let app = &app;
        let token = token.clone();
        async move {
            app.partner_request(reqwest::Method::POST, "/oauth/introspect")
                .bearer_auth(bearer)
                .form(&[("token", token.as_str())])
                .send()
                .await
                .unwrap()
        }
    };
    let wrong_admin = || {
        app.client
            .get(format!("{}/admin/users", app.admin))
            .bearer_auth("not-the-admin-token")
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            wrong_admin().await.unwrap().status(),
            StatusCode::UNAUTHORIZED
        );
    }
    let r = wrong_admin().await.unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    let r = app.admin_get("/admin/users").await;
    assert_eq!(r.status(), StatusCode::OK, "the right token still works");
    let r = introspect(app.admin_token.clone()).await;
    assert_eq!(r.status(), StatusCode::OK, "introspection counts apart");
    for _ in 0..3 {
        let r = introspect("not-the-admin-token".into()).await;
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let r = introspect("not-the-admin-token".into()).await;
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    let r = introspect(app.admin_token.clone()).await;
    assert_eq!(r.status(), StatusCode::OK);
}

/// `--audit-retention`: the background pruner forgets events older than
/// it, and keeps the newer ones.
#[tokio::test]
async fn the_audit_log_keeps_events_for_the_retention() {
    let app = spawn_app_with(&["--audit-retention", "1d"]).await;
    app.create_user("old").await;
    app.advance(2 * 86_400);
    app.create_user("new").await;
    assert_eq!(app.prune().await.audit_events, 1);
    let audit: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    let targets: Vec<&str> = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["target"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["new"]);
}

/// Partners can not grow the audit log: their self-revocations are kept
/// only while the tokens they name may live (the longest TTL plus the
/// clock leeway), not for `--audit-retention`; operators' events stay.
#[tokio::test]
async fn partner_self_revocations_leave_the_audit_log_with_their_tokens() {
    let app = spawn_app().await;
    let pw = app.create_user("partner").await;
    for _ in 0..5 {
        let token = app.token_for("partner", &pw).await;
        let r = app
            .partner_request(Method::POST, "/oauth/revoke")
            .basic_auth("partner", Some(&pw))
            .form(&[("token", token.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
    }
    assert_eq!(audit_actions(&app).await.len(), 6);
    assert_eq!(app.prune().await.audit_events, 0, "their tokens still live");
    app.admin_post("/admin/users", json!({"username": "later"}))
        .await;
    app.advance(3600 + 60 + 1);
    app.prune().await;
    assert_eq!(
        audit_actions(&app).await,
        ["user.create", "user.create"],
        "the operator's events stay for --audit-retention"
    );
}

/// The audit log's actions, newest first.
async fn audit_actions(app: &crate::helpers::TestApp) -> Vec<String> {
    let audit: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap().to_owned())
        .collect()
}

//! The admin console (SPEC §16) over HTTP, as a browser without script
//! would use it: sign-in and sessions on a controlled clock, the headers
//! on every page, CSRF and origin refusals that change nothing, and each
//! action making the API's change and audit event. The same pages are
//! driven in a real browser by `tests/process/console.rs`.

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::Value;

use crate::helpers::{TestApp, spawn_app, spawn_app_with};

/// A browser's view of the console: its own cookie, no redirects followed.
struct Console<'a> {
    app: &'a TestApp,
    http: reqwest::Client,
    cookie: Option<String>,
}

/// A console answer: status, headers and the page.
struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    fn location(&self) -> &str {
        self.headers
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The CSRF token of the page's forms.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find(r#"name="csrf" value=""#)
            .expect("a form with a CSRF token");
        let rest = &self.body[at + r#"name="csrf" value=""#.len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    /// The one-time password on the page, if shown.
    fn new_password(&self) -> Option<String> {
        let at = self.body.find(r#"aria-label="New password""#)?;
        let rest = &self.body[at..];
        let code = rest.find("<code>").unwrap() + "<code>".len();
        Some(rest[code..code + rest[code..].find('<').unwrap()].to_owned())
    }
}

impl<'a> Console<'a> {
    fn new(app: &'a TestApp) -> Self {
        Self {
            app,
            http: reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header("cookie", format!("tessera_console={c}")),
            None => req,
        };
        let r = req.send().await.unwrap();
        let (status, headers) = (r.status(), r.headers().clone());
        for set in headers.get_all(SET_COOKIE) {
            let set = set.to_str().unwrap();
            let value = set
                .split(';')
                .next()
                .unwrap()
                .trim_start_matches("tessera_console=");
            self.cookie = (!value.is_empty()).then(|| value.to_owned());
        }
        Page {
            status,
            headers,
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.app.admin));
        self.send(req).await
    }

    /// A form post as the console's own page sends it (`Origin: null`
    /// under `no-referrer`, `Sec-Fetch-Site: same-origin`).
    async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Page {
        self.post_with(
            path,
            form,
            &[("origin", "null"), ("sec-fetch-site", "same-origin")],
        )
        .await
    }

    async fn post_with(
        &mut self,
        path: &str,
        form: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.app.admin))
            .form(form);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req).await
    }

    async fn sign_in(&mut self) -> Page {
        let token = self.app.admin_token.clone();
        let page = self.post("/console/sign-in", &[("token", &token)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page
    }

    /// The CSRF token of a signed-in page.
    async fn csrf(&mut self) -> String {
        self.get("/console/users").await.csrf()
    }
}

async fn audit(app: &TestApp) -> Vec<(String, String, String)> {
    let v: Value = app.admin_get("/admin/audit").await.json().await.unwrap();
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            (s("action"), s("target"), s("detail"))
        })
        .collect()
}

#[tokio::test]
async fn the_console_lives_on_the_admin_listener_behind_its_own_sign_in() {
    let app = spawn_app().await;
    let r = app.partner_get("/console/").await;
    assert_eq!(
        r.status(),
        StatusCode::NOT_FOUND,
        "never on the partner listener"
    );

    let mut c = Console::new(&app);
    let page = c.get("/console").await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/console/")
    );
    let page = c.get("/console/").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">Admin token</label>") && page.body.contains(">Sign in</button>"));
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        ("cache-control", "no-store"),
    ] {
        assert_eq!(page.headers[name], value, "{name}");
    }
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"));
    assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));

    // Pages need a session: without one they lead to the sign-in form.
    let page = c.get("/console/users").await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/console/")
    );

    let page = c.sign_in().await;
    assert_eq!(page.location(), "/console/users");
    let set = page.headers[SET_COOKIE].to_str().unwrap();
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
        assert!(set.contains(flag), "{set}");
    }
    assert!(!set.contains("Secure"), "plain HTTP: {set}");
    let page = c.get("/console/users").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<h1>Partners</h1>"));
    assert_eq!(page.headers["cache-control"], "no-store");

    // A console session never opens the admin API.
    let cookie = c.cookie.clone().unwrap();
    let r = app
        .client
        .get(format!("{}/admin/users", app.admin))
        .header("cookie", format!("tessera_console={cookie}"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Sign out ends the session on the server: the old cookie opens nothing.
    let csrf = c.csrf().await;
    let page = c.post("/console/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/console/")
    );
    assert!(c.cookie.is_none(), "the cookie is cleared");
    c.cookie = Some(cookie);
    assert_eq!(c.get("/console/users").await.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn wrong_tokens_count_toward_the_admin_tokens_throttle() {
    let app = spawn_app_with(&["--throttle-failures", "2"]).await;
    let mut c = Console::new(&app);
    for _ in 0..2 {
        let page = c.post("/console/sign-in", &[("token", "not-it")]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
        assert!(page.body.contains("not the admin token"), "{}", page.body);
        assert!(page.body.contains(">Sign in</button>"), "the form again");
        assert!(c.cookie.is_none());
    }
    let page = c.post("/console/sign-in", &[("token", "not-it")]).await;
    assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(page.headers.contains_key("retry-after"));
    // The right token is never refused, and the admin API counts the same.
    c.sign_in().await;
    let r = app
        .client
        .get(format!("{}/admin/users", app.admin))
        .bearer_auth("still-not-it")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
}

#[tokio::test]
async fn sessions_end_after_fifteen_idle_minutes_and_eight_hours_at_most() {
    let app = spawn_app().await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    app.advance(15 * 60 - 1);
    assert_eq!(c.get("/console/users").await.status, StatusCode::OK);
    app.advance(15 * 60);
    assert_eq!(
        c.get("/console/users").await.status,
        StatusCode::SEE_OTHER,
        "idle"
    );

    c.sign_in().await;
    for _ in 0..(8 * 60 / 14) {
        app.advance(14 * 60);
        assert_eq!(c.get("/console/users").await.status, StatusCode::OK);
    }
    app.advance(14 * 60);
    assert_eq!(
        c.get("/console/users").await.status,
        StatusCode::SEE_OTHER,
        "8 h"
    );
}

#[tokio::test]
async fn a_post_without_the_sessions_token_or_from_elsewhere_changes_nothing() {
    let app = spawn_app().await;
    let mut other = Console::new(&app);
    other.sign_in().await;
    let others_token = other.csrf().await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let csrf = c.csrf().await;
    let same = [("origin", "null"), ("sec-fetch-site", "same-origin")];
    type Pairs<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Pairs, Pairs)> = vec![
        (vec![("username", "x1")], same.to_vec()),
        (vec![("username", "x2"), ("csrf", "wrong")], same.to_vec()),
        (
            vec![("username", "x3"), ("csrf", &others_token)],
            same.to_vec(),
        ),
        (
            vec![("username", "x4"), ("csrf", &csrf)],
            vec![("origin", "http://evil.example")],
        ),
        (
            vec![("username", "x5"), ("csrf", &csrf)],
            vec![("sec-fetch-site", "cross-site")],
        ),
        (
            vec![("username", "x6"), ("csrf", &csrf)],
            vec![("origin", "null"), ("sec-fetch-site", "cross-site")],
        ),
    ];
    let before = audit(&app).await.len();
    for (form, headers) in &cases {
        let page = c.post_with("/console/users", form, headers).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{form:?} {headers:?}");
    }
    let mut signed_out = Console::new(&app);
    let page = signed_out
        .post("/console/users", &[("username", "x7")])
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = c
        .post_with(
            "/console/sign-in",
            &[("token", &app.admin_token)],
            &[("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::FORBIDDEN,
        "no sign-in from elsewhere"
    );
    assert_eq!(audit(&app).await.len(), before, "nothing changed");
    let r = app
        .admin_get("/admin/users")
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(r["users"], serde_json::json!([]));

    // The console's own origin, named, is accepted.
    let origin = app.admin.clone();
    let page = c
        .post_with(
            "/console/users",
            &[("username", "ok"), ("csrf", &csrf)],
            &[("origin", &origin), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

/// Every form the console serves, as its page would post it (the fields
/// a person fills in), without the session's CSRF token.
const EVERY_FORM: [(&str, &[(&str, &str)]); 8] = [
    ("/console/users", &[("username", "forged")]),
    ("/console/users/acme", &[("note", "forged"), ("scopes", "")]),
    ("/console/users/acme/status", &[("status", "disabled")]),
    ("/console/users/acme/revoke", &[]),
    ("/console/users/acme/rotate", &[("grace", "0s")]),
    ("/console/users/acme/delete", &[]),
    ("/console/keys/rotate", &[]),
    ("/console/sign-out", &[]),
];

#[tokio::test]
async fn every_form_without_the_sessions_token_or_with_a_wrong_one_changes_nothing() {
    let app = spawn_app().await;
    app.create_user("acme").await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let csrf = c.csrf().await;
    let before = audit(&app).await;
    let user_before: Value = app
        .admin_get("/admin/users/acme")
        .await
        .json()
        .await
        .unwrap();
    let jwks_before = app.admin_get("/admin/keys").await.text().await.unwrap();
    for (path, fields) in EVERY_FORM {
        for token in [None, Some("wrong"), Some(&csrf[..csrf.len() - 1])] {
            let mut form = fields.to_vec();
            if let Some(t) = token {
                form.push(("csrf", t));
            }
            let page = c.post(path, &form).await;
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{path} {token:?}");
        }
    }
    assert_eq!(audit(&app).await, before, "no audit event");
    let user_after: Value = app
        .admin_get("/admin/users/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user_after, user_before, "the partner unchanged");
    assert_eq!(
        app.admin_get("/admin/keys").await.text().await.unwrap(),
        jwks_before,
        "the keys unchanged"
    );
    // The session still stands (sign-out without the token did not end
    // it), and the same forms with the token do go through.
    assert_eq!(c.get("/console/users").await.status, StatusCode::OK);
    let page = c
        .post("/console/users/acme/revoke", &[("csrf", &csrf)])
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
}

#[tokio::test]
async fn a_partner_is_created_with_a_password_shown_once_and_the_apis_audit_event() {
    let app = spawn_app().await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let page = c.get("/console/users/new").await;
    for name in ["Username", "Note", "Scopes", "Expires at"] {
        assert!(page.body.contains(&format!(">{name}</label>")), "{name}");
    }
    let csrf = page.csrf();
    let page = c
        .post(
            "/console/users",
            &[
                ("csrf", &csrf),
                ("username", "acme"),
                ("note", "hotel chain <b>"),
                ("scopes", "content, sync"),
                ("expires_at", ""),
            ],
        )
        .await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/console/users/acme")
    );
    let page = c.get("/console/users/acme").await;
    let password = page.new_password().expect("shown once");
    assert!(page.body.contains("hotel chain &lt;b&gt;"), "escaped");
    assert_eq!(
        app.generate_token("acme", &password).await.status(),
        StatusCode::OK
    );
    let again = c.get("/console/users/acme").await;
    assert_eq!(again.new_password(), None, "gone after a reload");
    assert!(!again.body.contains(&password));

    let user: Value = app
        .admin_get("/admin/users/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(user["scopes"], serde_json::json!(["content", "sync"]));
    assert_eq!(
        audit(&app).await[0],
        (
            "user.create".into(),
            "acme".into(),
            "password sha256-salted".into()
        )
    );

    // A refusal is shown in the form, which keeps what was typed.
    let page = c
        .post(
            "/console/users",
            &[("csrf", &csrf), ("username", "acme"), ("note", "kept")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    assert!(page.body.contains("already exists") && page.body.contains(r#"value="kept""#));
    let page = c
        .post(
            "/console/users",
            &[("csrf", &csrf), ("username", "b"), ("scopes", "bad scope!")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Scopes: "), "{}", page.body);
}

#[tokio::test]
async fn every_action_on_a_partners_page_makes_the_apis_change() {
    let app = spawn_app().await;
    let old = app.create_user("acme").await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let page = c.get("/console/users/acme").await;
    let csrf = page.csrf();
    for name in [
        "Grace period",
        "Scopes",
        "Note",
        "Allowed networks",
        "Token rate",
        "Expires at",
    ] {
        assert!(page.body.contains(&format!(">{name}</label>")), "{name}");
    }
    for button in ["Rotate secret", "Save", "Disable", "Revoke all tokens"] {
        assert!(
            page.body.contains(&format!(">{button}</button>")),
            "{button}"
        );
    }

    // Save: only what changed is patched and audited.
    let page = c
        .post(
            "/console/users/acme",
            &[
                ("csrf", &csrf),
                ("scopes", "sync"),
                ("note", ""),
                ("allowed_networks", "127.0.0.0/8, 2001:DB8::/32"),
                ("token_rate", "10/min"),
                ("expires_at", "2030-01-01T00:00:00Z"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let user: Value = app
        .admin_get("/admin/users/acme")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        user["allowed_networks"],
        serde_json::json!(["127.0.0.0/8", "2001:db8::/32"])
    );
    assert_eq!(user["token_rate"], "10/min");
    assert_eq!(user["expires_at"], "2030-01-01T00:00:00Z");
    assert_eq!(
        audit(&app).await[0].2,
        "changed expires_at, scopes, allowed_networks, token_rate"
    );
    let page = c
        .post(
            "/console/users/acme",
            &[("csrf", &csrf), ("token_rate", "10/day")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("Token rate: "), "{}", page.body);

    // Rotate: the new password once; the old one keeps its grace.
    let page = c
        .post(
            "/console/users/acme/rotate",
            &[("csrf", &csrf), ("grace", "1h")],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    let page = c.get("/console/users/acme").await;
    let new = page.new_password().expect("the rotated password, once");
    assert_eq!(
        app.generate_token("acme", &new).await.status(),
        StatusCode::OK
    );
    assert_eq!(
        app.generate_token("acme", &old).await.status(),
        StatusCode::OK
    );
    assert_eq!(audit(&app).await[0].0, "user.secret.rotate");

    // Disable, enable, revoke.
    let token = app.token_for("acme", &new).await;
    c.post(
        "/console/users/acme/status",
        &[("csrf", &csrf), ("status", "disabled")],
    )
    .await;
    assert!(
        c.get("/console/users/acme")
            .await
            .body
            .contains(">Enable</button>")
    );
    assert_eq!(app.verify(&token).await.status(), StatusCode::UNAUTHORIZED);
    c.post(
        "/console/users/acme/status",
        &[("csrf", &csrf), ("status", "active")],
    )
    .await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::OK);
    c.post("/console/users/acme/revoke", &[("csrf", &csrf)])
        .await;
    assert_eq!(app.verify(&token).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(audit(&app).await[0].0, "user.revoke_tokens");

    // Delete, then Confirm delete.
    let page = c.get("/console/users/acme/delete").await;
    assert!(page.body.contains(">Confirm delete</button>"));
    let page = c
        .post("/console/users/acme/delete", &[("csrf", &csrf)])
        .await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/console/users")
    );
    assert_eq!(
        app.admin_get("/admin/users/acme").await.status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        c.get("/console/users/acme").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn partners_are_searched_by_prefix_and_paged_with_next() {
    let app = spawn_app().await;
    for i in 0..55 {
        app.create_user(&format!("hotel{i:02}")).await;
    }
    app.create_user("hostel").await;
    app.create_user("inn").await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let page = c.get("/console/users?search=hotel").await;
    assert!(page.body.contains(">hotel00</a>") && page.body.contains(">hotel49</a>"));
    assert!(!page.body.contains(">hotel50</a>") && !page.body.contains(">hostel</a>"));
    let next = page.body.find(">Next</a>").expect("a Next link");
    let href_at = page.body[..next].rfind("href=\"").unwrap() + 6;
    let href = page.body[href_at..next - 1].replace("&amp;", "&");
    let page = c.get(&href).await;
    assert!(page.body.contains(">hotel50</a>") && page.body.contains(">hotel54</a>"));
    assert!(!page.body.contains(">inn</a>") && !page.body.contains(">Next</a>"));
    let page = c.get("/console/users?search=inn").await;
    assert!(page.body.contains(">inn</a>") && !page.body.contains(">hotel"));
}

#[tokio::test]
async fn keys_rotate_and_a_refusal_says_how_long_to_wait() {
    let app = spawn_app().await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let page = c.get("/console/keys").await;
    assert!(page.body.contains(">Rotate keys</button>") && page.body.contains("active"));
    let csrf = page.csrf();
    let page = c.post("/console/keys/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(
        page.status,
        StatusCode::CONFLICT,
        "the next key is too young"
    );
    assert!(page.body.contains("role=\"alert\""), "{}", page.body);
    app.advance(301);
    let page = c.post("/console/keys/rotate", &[("csrf", &csrf)]).await;
    assert_eq!(
        (page.status, page.location()),
        (StatusCode::SEE_OTHER, "/console/keys")
    );
    assert_eq!(audit(&app).await[0].0, "key.rotate");
}

#[tokio::test]
async fn the_audit_page_filters_by_target_and_action() {
    let app = spawn_app().await;
    app.create_user("acme").await;
    app.create_user("other").await;
    app.admin_post("/admin/users/acme/secrets", serde_json::json!({}))
        .await;
    let mut c = Console::new(&app);
    c.sign_in().await;
    let page = c.get("/console/audit?target=acme&action=user.secret").await;
    assert!(page.body.contains("user.secret.rotate"));
    assert!(!page.body.contains(">user.create<"), "{}", page.body);
    let page = c.get("/console/audit?target=other").await;
    assert!(page.body.contains(">user.create<") && !page.body.contains("user.secret"));
    for name in ["Target", "Action"] {
        assert!(page.body.contains(&format!(">{name}</label>")));
    }
}

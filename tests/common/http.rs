//! Talking to a Tessera server the way its users do: admin and partner
//! requests over HTTP, shared by the in-process API tests (`tests/api`) and
//! the process tests (`tests/process`).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::{Signer, SigningKey};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

/// Where a server listens and how to reach it.
pub struct Endpoints {
    /// `http://` + the partner listener.
    pub partner: String,
    /// `http://` + the admin listener.
    pub admin: String,
    /// The admin bearer token.
    pub admin_token: String,
    /// A client with no proxy.
    pub client: reqwest::Client,
}

#[allow(dead_code)]
impl Endpoints {
    /// Endpoints for the logged/bound addresses and the admin token.
    pub fn new(partner: &str, admin: &str, admin_token: String) -> Self {
        Self {
            partner: format!("http://{partner}"),
            admin: format!("http://{admin}"),
            admin_token,
            client: reqwest::Client::builder().no_proxy().build().unwrap(),
        }
    }

    /// `POST /generateToken` as a trusted proxy would forward it.
    pub async fn login_from(&self, xff: &str, user: &str, pw: &str) -> Response {
        self.partner_request(reqwest::Method::POST, "/generateToken")
            .query(&[("username", user), ("password", pw)])
            .header("x-forwarded-for", xff)
            .send()
            .await
            .unwrap()
    }

    /// The value of one metric series, e.g.
    /// `tessera_password_checks_total{scheme="argon2id"}` (0 when absent).
    pub async fn metric(&self, series: &str) -> f64 {
        let text = self.admin_get("/metrics").await.text().await.unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    // ---- admin API ----

    pub fn admin_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.admin, path))
            .bearer_auth(&self.admin_token)
    }

    pub async fn admin_get(&self, path: &str) -> Response {
        self.admin_request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_post(&self, path: &str, body: Value) -> Response {
        self.admin_request(reqwest::Method::POST, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_patch(&self, path: &str, body: Value) -> Response {
        self.admin_request(reqwest::Method::PATCH, path)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn admin_delete(&self, path: &str) -> Response {
        self.admin_request(reqwest::Method::DELETE, path)
            .send()
            .await
            .unwrap()
    }

    /// Creates a user with a generated password; returns the password.
    pub async fn create_user(&self, username: &str) -> String {
        self.create_user_with(json!({ "username": username })).await["password"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Creates a user from a full body; returns the response JSON.
    pub async fn create_user_with(&self, body: Value) -> Value {
        let r = self.admin_post("/admin/users", body).await;
        assert_eq!(r.status(), StatusCode::CREATED);
        r.json().await.unwrap()
    }

    /// The active key's signing key, read from an admin export.
    pub async fn active_signing_key(&self) -> (String, SigningKey) {
        let export = self.admin_get("/admin/export").await.text().await.unwrap();
        for line in export.lines() {
            let v: Value = serde_json::from_str(line).unwrap();
            if v["type"] == "key" && v["key"]["status"] == "active" {
                let seed: [u8; 32] = B64
                    .decode(v["key"]["seed"].as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap();
                return (
                    v["key"]["kid"].as_str().unwrap().to_owned(),
                    SigningKey::from_bytes(&seed),
                );
            }
        }
        panic!("no active key in export")
    }

    // ---- partner API ----

    /// `POST /generateToken?username=…&password=…`.
    pub async fn generate_token(&self, username: &str, password: &str) -> Response {
        self.partner_request(reqwest::Method::POST, "/generateToken")
            .query(&[("username", username), ("password", password)])
            .send()
            .await
            .unwrap()
    }

    /// A token for valid credentials (asserts 200).
    pub async fn token_for(&self, username: &str, password: &str) -> String {
        let r = self.generate_token(username, password).await;
        assert_eq!(r.status(), StatusCode::OK);
        r.text().await.unwrap()
    }

    /// A request to the partner listener.
    pub fn partner_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, format!("{}{}", self.partner, path))
    }

    /// `GET` on the partner listener.
    pub async fn partner_get(&self, path: &str) -> Response {
        self.partner_request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }

    /// The JWKS document.
    pub async fn jwks(&self) -> Value {
        self.partner_get("/.well-known/jwks.json")
            .await
            .json()
            .await
            .unwrap()
    }

    /// `GET /verify` with a bearer token.
    pub async fn verify(&self, token: &str) -> Response {
        self.partner_request(reqwest::Method::GET, "/verify")
            .header("Authorization", format!("Bearer {token}"))
            .send()
            .await
            .unwrap()
    }

    /// The `WWW-Authenticate` of a `/verify` that must be refused.
    pub async fn verify_rejection(&self, token: &str) -> String {
        let r = self.verify(token).await;
        assert_eq!(
            r.status(),
            StatusCode::UNAUTHORIZED,
            "token should be refused: {token}"
        );
        r.headers()["www-authenticate"].to_str().unwrap().to_owned()
    }
}

/// Signs raw header and payload JSON with `key` into a compact JWS.
#[allow(dead_code)]
pub fn forge(header: &str, payload: &str, key: &SigningKey) -> String {
    let input = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64.encode(signature.to_bytes()))
}

/// Unix seconds now.
#[allow(dead_code)]
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The claims of a token, decoded without checking anything.
#[allow(dead_code)]
pub fn claims_of(token: &str) -> Value {
    let payload = token.split('.').nth(1).unwrap();
    serde_json::from_slice(&B64.decode(payload).unwrap()).unwrap()
}

/// Polls `check` until it is true or `secs` pass.
#[allow(dead_code)]
pub async fn eventually<F, Fut>(secs: u64, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// Sends a request head and returns the first response bytes.
#[allow(dead_code)]
pub fn raw_request(addr: &str, head: &str) -> (TcpStream, String) {
    let addr = addr.trim_start_matches("http://");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut buf = [0u8; 4096];
    let n = stream.read(&mut buf).unwrap();
    (stream, String::from_utf8_lossy(&buf[..n]).into_owned())
}

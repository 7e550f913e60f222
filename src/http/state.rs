//! What every handler of both listeners shares: the service, the admin
//! and feed token digests, the trusted proxies, and the rule for which
//! client a request is counted under.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use warp::http::HeaderMap;

use crate::login::client::{self, Client, ClientKey};
use crate::service::Service;

/// What every handler needs, shared by both listeners.
pub struct AppState {
    /// The use cases.
    pub service: Arc<Service>,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// SHA-256 of the admin token (compared in constant time).
    pub admin_token_digest: [u8; 32],
    /// The key `GET /instance` proves this server holds ([`crate::runtime::instance`]);
    /// None when no `admin.url` names this server.
    pub instance_key: Option<[u8; 32]>,
    /// SHA-256 of the feed token, which `GET /revocations` requires; None
    /// keeps the feed closed to everyone.
    pub feed_token_digest: Option<[u8; 32]>,
    /// How long a request body may take to arrive (for the streamed import:
    /// the longest pause between two chunks).
    pub body_read_timeout: Duration,
    /// Where clients reach the partner API (`--public-url`), for the OAuth
    /// server metadata.
    pub public_url: String,
    /// The admin console's sessions (SPEC §16), in this node's memory.
    pub console: crate::http::console::session::Sessions,
    /// Whether the console's cookie is `Secure` (the admin listener serves
    /// HTTPS).
    pub console_secure_cookie: bool,
}

impl AppState {
    /// The client a request comes from, as the throttle counts it (SPEC
    /// §5 "Client addresses") and the allowed networks see it (§15).
    pub fn client(&self, peer: SocketAddr, headers: &HeaderMap) -> Client {
        let forwarded = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(|v| v.to_str().unwrap_or("\u{fffd}"));
        client::client(peer.ip(), forwarded, &self.trusted_proxies)
    }

    /// The key a request is counted under for throttling.
    pub fn client_key(&self, peer: SocketAddr, headers: &HeaderMap) -> ClientKey {
        self.client(peer, headers).key().clone()
    }

    /// The client a request to the admin listener is counted under: its
    /// TCP peer alone. The admin listener is the operator's; it believes no
    /// `X-Forwarded-For`, so rotating one buys no fresh attempts there.
    pub fn admin_client_key(peer: SocketAddr) -> ClientKey {
        ClientKey::from_ip(peer.ip())
    }

    /// The URL of a partner endpoint (`path` from `/`) under `--public-url`:
    /// what a login's DPoP proof must name as `htu`.
    pub fn public_endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.public_url.trim_end_matches('/'))
    }

    /// Records one request's latency under its listener and route.
    pub fn observe(&self, listener: &'static str, route: &'static str, started: Instant) {
        self.service
            .metrics()
            .observe(listener, route, started.elapsed().as_secs_f64());
    }
}

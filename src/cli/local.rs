//! Offline: the admin API served inside this process over a data dir the
//! command opened itself. Requests run through the admin listener's own
//! warp routes ([`http::admin_routes`]) with a one-time token, so parsing,
//! rules, durable commits and the JSON rendered are exactly the server's.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use warp::http::{HeaderValue, Request, header};
use zeroize::Zeroizing;

use super::api::{AdminApi, CallError, Chunks, Method, Sink};
use crate::http;
use crate::http::state::AppState;
use crate::login::throttle::ThrottleConfig;
use crate::runtime::time::Clock;
use crate::service::{Service, Settings};
use crate::store::Store;

/// The admin API over a store this process holds.
pub struct InProcess {
    state: Arc<AppState>,
    /// Sent with every request; lives only in this process.
    token: Zeroizing<String>,
}

impl InProcess {
    /// Starts the service over `store` (creating the keyring on a new
    /// database). `issuer` is what `token check` expects in `iss`.
    pub fn start(store: Arc<dyn Store>, issuer: String) -> Result<Self, String> {
        let service = Service::start(
            store,
            Settings {
                issuer,
                // Only raises the retained-key horizon, never lowers it.
                default_ttl_secs: 1,
                clock_leeway_secs: crate::token::DEFAULT_LEEWAY_SECS,
                // The offline CLI never prunes.
                audit_retention_secs: u64::MAX,
                throttle: ThrottleConfig {
                    failures: u32::MAX,
                    window: std::time::Duration::from_secs(1),
                    lockout: std::time::Duration::from_secs(1),
                    max_lockout: std::time::Duration::from_secs(1),
                },
                hash_queue: 1,
            },
            Clock::system(),
        )
        .map_err(|e| format!("could not load keys and revocations: {e}"))?;
        let token = Zeroizing::new(uuid::Uuid::new_v4().to_string());
        let state = Arc::new(AppState {
            service: Arc::new(service),
            trusted_proxies: Vec::new(),
            admin_token_digest: http::secrets::token_digest(&token),
            feed_token_digest: None,
            instance_key: None,
            body_read_timeout: std::time::Duration::from_secs(60),
            public_url: String::new(),
            console: http::console::session::Sessions::default(),
            console_secure_cookie: false,
        });
        Ok(Self { state, token })
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Chunks,
    ) -> Result<warp::reply::Response, CallError> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .body(body)
            .map_err(|e| CallError::Io(format!("bad request path {path:?}: {e}")))?;
        let bearer = HeaderValue::from_str(&format!("Bearer {}", self.token.as_str()))
            .map_err(|e| CallError::Io(e.to_string()))?;
        request.headers_mut().insert(header::AUTHORIZATION, bearer);
        request.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        let mut service = warp::service(http::admin_routes(&self.state));
        let Ok(response) = tower_service::Service::call(&mut service, request).await;
        Ok(response)
    }
}

async fn collect(response: warp::reply::Response) -> Result<Bytes, CallError> {
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| CallError::Io(e.to_string()))?
        .to_bytes();
    CallError::check(status, body)
}

impl AdminApi for InProcess {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, CallError> {
        collect(self.send(method, path, Chunks::once(body)).await?).await
    }

    async fn download(&self, path: &str, sink: Sink<'_>) -> Result<(), CallError> {
        let response = self.send(Method::GET, path, Chunks::once(None)).await?;
        if !response.status().is_success() {
            return collect(response).await.map(|_| ());
        }
        let mut body = response.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| CallError::Io(format!("export stopped: {e}")))?;
            if let Ok(data) = frame.into_data() {
                sink(&data).map_err(|e| CallError::Io(e.to_string()))?;
            }
        }
        Ok(())
    }

    async fn upload(&self, path: &str, chunks: Chunks) -> Result<Bytes, CallError> {
        collect(self.send(Method::POST, path, chunks).await?).await
    }
}

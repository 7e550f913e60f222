//! Online: the admin API of a running server over HTTP(S) (rustls), found
//! through `<data-dir>/admin.url` or given with `--admin-url`.

use bytes::Bytes;
use futures_util::StreamExt;
use zeroize::Zeroizing;

use super::api::{AdminApi, CallError, Chunks, Method, Sink};

/// The admin API at a base URL, with the admin token.
pub struct OverHttp {
    base: String,
    token: Zeroizing<String>,
    client: reqwest::Client,
}

impl OverHttp {
    /// `client` calling `base` (`http://127.0.0.1:8081`) with `token`.
    pub fn new(base: &str, token: Zeroizing<String>, client: reqwest::Client) -> Self {
        Self {
            base: base.trim_end_matches('/').to_owned(),
            token,
            client,
        }
    }

    fn unreachable(&self, e: &reqwest::Error) -> CallError {
        CallError::Unreachable {
            url: self.base.clone(),
            reason: crate::runtime::error_chain::with_causes(e),
        }
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        body: Option<reqwest::Body>,
    ) -> Result<reqwest::Response, CallError> {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(self.token.as_str())
            .header("content-type", "application/json");
        if let Some(body) = body {
            request = request.body(body);
        }
        request.send().await.map_err(|e| self.unreachable(&e))
    }

    async fn collect(&self, response: reqwest::Response) -> Result<Bytes, CallError> {
        let status = response.status().as_u16();
        let body = response.bytes().await.map_err(|e| self.unreachable(&e))?;
        CallError::check(status, body)
    }
}

impl AdminApi for OverHttp {
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, CallError> {
        let response = self
            .send(method, path, body.map(reqwest::Body::from))
            .await?;
        self.collect(response).await
    }

    async fn download(&self, path: &str, sink: Sink<'_>) -> Result<(), CallError> {
        let response = self.send(Method::GET, path, None).await?;
        if !response.status().is_success() {
            return self.collect(response).await.map(|_| ());
        }
        let mut body = response.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| CallError::Io(format!("export stopped: {e}")))?;
            sink(&chunk).map_err(|e| CallError::Io(e.to_string()))?;
        }
        Ok(())
    }

    async fn upload(&self, path: &str, chunks: Chunks) -> Result<Bytes, CallError> {
        let response = self
            .send(Method::POST, path, Some(reqwest::Body::wrap_stream(chunks)))
            .await?;
        self.collect(response).await
    }
}

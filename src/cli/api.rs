//! The one seam every admin command talks to: [`AdminApi`], the admin API
//! of SPEC §3 as requests and JSON answers. Two implementations:
//! [`InProcess`](super::local::InProcess) runs the admin listener's own
//! routes over a data dir this process opened (offline), and
//! [`OverHttp`](super::remote::OverHttp) sends the same requests to a
//! running server (online). Because both answer with the bytes the admin
//! routes rendered, a command prints the same thing either way, and
//! `--json` prints exactly the admin API's JSON.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::Deserialize;
use tokio::sync::mpsc;

pub use warp::http::Method;

/// Why an admin call did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The admin API answered with an error (not found, conflict, invalid …).
    #[error("{message}")]
    Refused {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`not_found`, `conflict`, `invalid`, …).
        code: String,
        /// The API's message.
        message: String,
    },
    /// No server answered at the URL.
    #[error("server at {url} unreachable: is `tessera serve` running? ({reason})")]
    Unreachable {
        /// The admin base URL.
        url: String,
        /// The transport's error.
        reason: String,
    },
    /// The command line asks for something that can not be done (exit 2).
    #[error("{0}")]
    Usage(String),
    /// Reading or writing a local file or stream failed.
    #[error("{0}")]
    Io(String),
}

impl CallError {
    /// A refusal with its message rewritten for this command (its file
    /// named, its own flag names); other errors as they are.
    pub fn reworded(self, reword: impl FnOnce(String) -> String) -> Self {
        match self {
            Self::Refused {
                status,
                code,
                message,
            } => Self::Refused {
                status,
                code,
                message: reword(message),
            },
            other => other,
        }
    }
}

#[derive(Deserialize)]
struct ErrorBody {
    error: String,
    message: String,
}

impl CallError {
    /// The body of a 2xx answer, or the error any other status stands for.
    pub fn check(status: u16, body: Bytes) -> Result<Bytes, CallError> {
        if (200..300).contains(&status) {
            Ok(body)
        } else {
            Err(Self::from_answer(status, &body))
        }
    }

    /// The error an admin API answer with a non-2xx `status` stands for.
    pub fn from_answer(status: u16, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorBody>(body) {
            Ok(e) => Self::Refused {
                status,
                code: e.error,
                message: e.message,
            },
            Err(_) => Self::Refused {
                status,
                code: "http".into(),
                message: format!(
                    "the admin API answered {status}: {}",
                    String::from_utf8_lossy(body).trim()
                ),
            },
        }
    }
}

/// A request body sent chunk by chunk (an import), fed by another task; an
/// `Err` chunk aborts the upload.
pub struct Chunks(pub mpsc::Receiver<std::io::Result<Bytes>>);

impl futures_util::Stream for Chunks {
    type Item = std::io::Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_recv(cx)
    }
}

impl http_body::Body for Chunks {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|chunk| chunk.map(|c| c.map(http_body::Frame::data)))
    }
}

impl Chunks {
    /// A body of one chunk (or none).
    pub fn once(body: Option<Vec<u8>>) -> Self {
        let (tx, rx) = mpsc::channel(1);
        if let Some(body) = body {
            let _ = tx.try_send(Ok(Bytes::from(body)));
        }
        Self(rx)
    }
}

/// Where a download's chunks go, in order.
pub type Sink<'a> = &'a mut (dyn FnMut(&[u8]) -> std::io::Result<()> + Send);

/// The admin API, however it is reached. Paths are the API's own
/// (`/admin/users?limit=10`); each method authenticates itself.
/// The futures carry no `Send` bound: commands run them with `block_on`.
#[allow(async_fn_in_trait)]
pub trait AdminApi {
    /// One request with an optional JSON body; the body of a 2xx answer
    /// (empty for 204), or the API's error.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<Bytes, CallError>;

    /// `GET path`, its body handed to `sink` chunk by chunk as it arrives.
    async fn download(&self, path: &str, sink: Sink<'_>) -> Result<(), CallError>;

    /// `POST path` with a body streamed from `chunks`.
    async fn upload(&self, path: &str, chunks: Chunks) -> Result<Bytes, CallError>;
}

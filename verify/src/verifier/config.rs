//! How a [`Verifier`](super::Verifier) reaches Tessera and how strict it is: the URL and
//! its two endpoints, the issuer, poll and staleness limits, leeway, the
//! feed token, and the HTTP client's trust.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::FetchError;
use crate::token::DEFAULT_LEEWAY_SECS;

/// What to do with tokens while the revocation state is stale.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WhenStale {
    /// Refuse them (`revocation state stale`): the default, fail closed.
    Refuse,
    /// Accept them on the last known state.
    Accept,
}

/// How a [`Verifier`](super::Verifier) reaches Tessera and how strict it is.
#[derive(Clone)]
pub struct VerifierConfig {
    /// Tessera's partner URL, e.g. `https://auth.example.com`.
    pub tessera_url: String,
    /// The `iss` tokens must carry.
    pub issuer: String,
    /// How often the feed is polled (default 10 s).
    pub poll: Duration,
    /// How long the feed may go unrefreshed (default 5 min).
    pub max_staleness: Duration,
    /// What happens past `max_staleness`.
    pub when_stale: WhenStale,
    /// How far in the future a token's `iat` (and how far back a newer
    /// feed's `iat`) may lie, for clocks that disagree (default 60 s).
    /// `exp` is never given leeway.
    pub leeway: Duration,
    /// The deployment's feed token, sent as `Authorization: Bearer` to
    /// `GET /revocations` (Tessera writes it to `<data-dir>/feed.token`).
    /// Without it the feed answers 401 and tokens are refused as stale.
    pub feed_token: Option<String>,
    /// Now, in unix seconds: the system clock unless a test moves its own.
    pub clock: Clock,
    /// Where clients reach this service (`https://api.example.com`): the
    /// adapters check a DPoP proof's `htu` against this and the request's
    /// path. None: `http://` and the request's `Host` (set it behind TLS).
    pub public_url: Option<String>,
    /// A client the caller built ([`VerifierConfig::http_client`]).
    pub(super) http_client: Option<reqwest::Client>,
    /// CAs trusted besides the Mozilla roots ([`VerifierConfig::root_ca_pem`]).
    pub(super) roots: Vec<reqwest::Certificate>,
}

/// The source of "now" for token times, in unix seconds.
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

impl std::fmt::Debug for VerifierConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifierConfig")
            .field("tessera_url", &self.tessera_url)
            .field("issuer", &self.issuer)
            .field("poll", &self.poll)
            .field("max_staleness", &self.max_staleness)
            .field("when_stale", &self.when_stale)
            .field("leeway", &self.leeway)
            .field("public_url", &self.public_url)
            .field("feed_token", &self.feed_token.as_ref().map(|_| "<secret>"))
            .field("http_client", &self.http_client.is_some())
            .field("extra_roots", &self.roots.len())
            .finish_non_exhaustive()
    }
}

impl VerifierConfig {
    /// The defaults of SPEC §8 for a Tessera at `tessera_url`.
    pub fn new(tessera_url: impl Into<String>) -> Self {
        Self {
            tessera_url: tessera_url.into(),
            issuer: "tessera".into(),
            poll: Duration::from_secs(10),
            max_staleness: Duration::from_secs(300),
            when_stale: WhenStale::Refuse,
            leeway: Duration::from_secs(DEFAULT_LEEWAY_SECS),
            feed_token: None,
            clock: Arc::new(unix_now),
            public_url: None,
            http_client: None,
            roots: Vec::new(),
        }
    }

    /// Trusts the CA certificates of `pem` (one or more PEM blocks) too,
    /// for a Tessera behind a private CA.
    ///
    /// ```
    /// # use tessera_verify::VerifierConfig;
    /// let config = VerifierConfig::new("https://auth.internal");
    /// assert!(config.root_ca_pem(b"not a certificate").is_err());
    /// ```
    pub fn root_ca_pem(mut self, pem: &[u8]) -> Result<Self, FetchError> {
        let certs = reqwest::Certificate::from_pem_bundle(pem)
            .map_err(|e| FetchError::Config(format!("root CA: {e}")))?;
        if certs.is_empty() {
            return Err(FetchError::Config(
                "root CA: no PEM certificate found".into(),
            ));
        }
        self.roots.extend(certs);
        Ok(self)
    }

    /// Uses `client` for every fetch (proxies, client certificates, its
    /// own roots and timeouts); [`VerifierConfig::root_ca_pem`] then does
    /// not apply. Build it with the re-exported [`crate::reqwest`].
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// The JWKS and feed URLs under `tessera_url` (a trailing slash or a
    /// path prefix both work).
    pub(super) fn endpoints(&self) -> Result<(url::Url, url::Url), FetchError> {
        let mut base = url::Url::parse(&self.tessera_url)
            .map_err(|e| FetchError::Config(format!("tessera_url {:?}: {e}", self.tessera_url)))?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        let join = |p: &str| {
            base.join(p)
                .map_err(|e| FetchError::Config(format!("tessera_url {:?}: {e}", self.tessera_url)))
        };
        Ok((join(".well-known/jwks.json")?, join("revocations")?))
    }

    /// Reads the feed token from a file (surrounding whitespace trimmed),
    /// as `partner_service --feed-token-file` does.
    pub fn feed_token_file(mut self, path: &std::path::Path) -> std::io::Result<Self> {
        let text = std::fs::read_to_string(path)?;
        self.feed_token = Some(text.trim().to_owned());
        Ok(self)
    }
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

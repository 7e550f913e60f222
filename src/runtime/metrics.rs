//! Prometheus metrics, kept with `prometheus-client` and rendered in its text
//! format: token and verify outcomes, per-route latency, user and revocation
//! gauges (read at scrape time) and build info.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;

type Outcome = [(&'static str, &'static str); 1];
type Route = [(&'static str, &'static str); 2];

fn latency_histogram() -> Histogram {
    // 50 µs … ~1.6 s, doubling.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// A labelled counter family with its hot series resolved once, so the
/// request path increments an atomic instead of hashing labels under a lock.
struct Outcomes {
    family: Family<Outcome, Counter>,
    hot: Vec<(&'static str, Counter)>,
}

impl Outcomes {
    fn new(label: &'static str, hot: &[&'static str]) -> Self {
        let family = Family::<Outcome, Counter>::default();
        let hot = hot
            .iter()
            .map(|v| (*v, family.get_or_create(&[(label, *v)]).clone()))
            .collect();
        Self { family, hot }
    }

    fn counter(&self, label: &'static str, value: &'static str) -> Counter {
        match self.hot.iter().find(|(v, _)| *v == value) {
            Some((_, c)) => c.clone(),
            None => self.family.get_or_create(&[(label, value)]).clone(),
        }
    }

    fn inc(&self, label: &'static str, value: &'static str) {
        match self.hot.iter().find(|(v, _)| *v == value) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                self.family.get_or_create(&[(label, value)]).inc();
            }
        }
    }
}

/// Partner routes whose latency series are resolved once.
const HOT_ROUTES: [&str; 2] = ["generate_token", "verify"];

/// Every metric Tessera exports.
pub struct Metrics {
    registry: Registry,
    token_requests: Family<Route, Counter>,
    hot_token_requests: Vec<(&'static str, &'static str, Counter)>,
    verify_requests: Outcomes,
    password_checks: Outcomes,
    request_seconds: Family<Route, Histogram, fn() -> Histogram>,
    hot_routes: Vec<(&'static str, Histogram)>,
    users: Gauge,
    revocations: Gauge,
    storage_writable: Gauge,
    pruned: Family<Outcome, Counter>,
    background_errors: Family<Outcome, Counter>,
    logins_refused: Family<Outcome, Counter>,
    /// `tessera_logins_total{secret="current"}` and `{secret="previous"}`,
    /// resolved once: a login counts without a label lookup.
    logins_by_secret: [Counter; 2],
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `tessera_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let token_requests = Family::<Route, Counter>::default();
        let mut hot_token_requests = Vec::new();
        for endpoint in ["generate_token", "oauth_token"] {
            for outcome in [
                "issued",
                "invalid_credentials",
                "account_refused",
                "throttled",
                "busy",
                "bad_request",
            ] {
                let c = token_requests
                    .get_or_create(&[("endpoint", endpoint), ("outcome", outcome)])
                    .clone();
                hot_token_requests.push((endpoint, outcome, c));
            }
        }
        let verify_requests =
            Outcomes::new("outcome", &["valid", "no_token", "expired", "malformed"]);
        let password_checks = Outcomes::new("scheme", &["sha256-salted", "argon2id"]);
        let request_seconds =
            Family::<Route, Histogram, fn() -> Histogram>::new_with_constructor(latency_histogram);
        let hot_routes = HOT_ROUTES
            .iter()
            .map(|r| {
                let h = request_seconds
                    .get_or_create(&[("listener", "partner"), ("route", *r)])
                    .clone();
                (*r, h)
            })
            .collect();
        let users = Gauge::default();
        let revocations = Gauge::default();
        let storage_writable = Gauge::default();
        registry.register(
            "storage_writable",
            "1 while an admin change can be made durable; 0 while the disk is full (changes answer 507)",
            storage_writable.clone(),
        );
        let pruned = Family::<Outcome, Counter>::default();
        let background_errors = Family::<Outcome, Counter>::default();
        let logins_refused = Family::<Outcome, Counter>::default();
        let logins = Family::<Outcome, Counter>::default();
        registry.register(
            "logins",
            "Logins with a right password, by the secret that matched (current, previous: still in a rotation's grace)",
            logins.clone(),
        );
        let logins_by_secret =
            ["current", "previous"].map(|which| logins.get_or_create(&[("secret", which)]).clone());
        registry.register(
            "logins_refused",
            "Logins with the right password refused by the user's policy, by reason (network, token_rate)",
            logins_refused.clone(),
        );
        registry.register(
            "pruned",
            "Records removed by background pruning, by kind",
            pruned.clone(),
        );
        registry.register(
            "background_errors",
            "Background task failures, by task (each logged; retried next round)",
            background_errors.clone(),
        );
        registry.register(
            "token_requests",
            "Token requests by endpoint (generate_token, oauth_token) and outcome",
            token_requests.clone(),
        );
        registry.register(
            "verify_requests",
            "GET /verify requests by outcome",
            verify_requests.family.clone(),
        );
        registry.register(
            "password_checks",
            "Password hash checks by the scheme whose work ran, dummy checks included; counted when the work runs",
            password_checks.family.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "Time from request to response, by listener and route",
            request_seconds.clone(),
        );
        registry.register("users", "Users in the store", users.clone());
        registry.register(
            "revocations",
            "Revoked token ids not yet expired",
            revocations.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Self {
            registry,
            token_requests,
            hot_token_requests,
            verify_requests,
            password_checks,
            request_seconds,
            hot_routes,
            users,
            revocations,
            storage_writable,
            pruned,
            background_errors,
            logins_refused,
            logins_by_secret,
        }
    }

    /// Counts a login whose password matched the user's current secret,
    /// or (`previous_secret`) the one a rotation replaced.
    pub fn login_matched(&self, previous_secret: bool) {
        self.logins_by_secret[usize::from(previous_secret)].inc();
    }

    /// Counts a login whose password matched but whose user's policy
    /// refused it (`network`, `token_rate`).
    pub fn login_refused(&self, reason: &'static str) {
        self.logins_refused
            .get_or_create(&[("reason", reason)])
            .inc();
    }

    /// Counts what one round of pruning removed.
    pub fn pruned(&self, revocations: u64, keys: u64, audit_events: u64) {
        self.pruned
            .get_or_create(&[("kind", "revocations")])
            .inc_by(revocations);
        self.pruned.get_or_create(&[("kind", "keys")]).inc_by(keys);
        self.pruned
            .get_or_create(&[("kind", "audit_events")])
            .inc_by(audit_events);
    }

    /// Counts one failed background task.
    pub fn background_error(&self, task: &'static str) {
        self.background_errors
            .get_or_create(&[("task", task)])
            .inc();
    }

    /// Counts one token request by endpoint and outcome (`issued`,
    /// `invalid_credentials`, …).
    pub fn token_request(&self, endpoint: &'static str, outcome: &'static str) {
        match self
            .hot_token_requests
            .iter()
            .find(|(e, o, _)| *e == endpoint && *o == outcome)
        {
            Some((_, _, c)) => {
                c.inc();
            }
            None => {
                self.token_requests
                    .get_or_create(&[("endpoint", endpoint), ("outcome", outcome)])
                    .inc();
            }
        }
    }

    /// Counts one `/verify` outcome (`valid`, `expired`, …).
    pub fn verify_request(&self, outcome: &'static str) {
        self.verify_requests.inc("outcome", outcome);
    }

    /// Counts one password check with the scheme whose work it cost.
    pub fn password_check(&self, scheme: &'static str) {
        self.password_checks.inc("scheme", scheme);
    }

    /// The password-check counter of `scheme`, for work that runs on another
    /// thread and counts itself only if it runs.
    pub fn password_check_counter(&self, scheme: &'static str) -> Counter {
        self.password_checks.counter("scheme", scheme)
    }

    /// Records one request's latency.
    pub fn observe(&self, listener: &'static str, route: &'static str, seconds: f64) {
        if listener == "partner"
            && let Some((_, h)) = self.hot_routes.iter().find(|(r, _)| *r == route)
        {
            h.observe(seconds);
            return;
        }
        self.request_seconds
            .get_or_create(&[("listener", listener), ("route", route)])
            .observe(seconds);
    }

    /// Renders the text exposition format with the given gauge readings.
    pub fn render(&self, users: u64, revocations: u64, writable: bool) -> String {
        self.storage_writable.set(i64::from(writable));
        self.users.set(i64::try_from(users).unwrap_or(i64::MAX));
        self.revocations
            .set(i64::try_from(revocations).unwrap_or(i64::MAX));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_gauges() {
        let m = Metrics::new();
        m.token_request("generate_token", "issued");
        m.token_request("oauth_token", "odd");
        m.verify_request("expired");
        m.observe("partner", "generate_token", 0.001);
        let text = m.render(3, 1, true);
        assert!(
            text.contains(
                "tessera_token_requests_total{endpoint=\"generate_token\",outcome=\"issued\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains(
                "tessera_token_requests_total{endpoint=\"oauth_token\",outcome=\"odd\"} 1"
            )
        );
        assert!(text.contains("tessera_verify_requests_total{outcome=\"expired\"} 1"));
        assert!(text.contains("tessera_users 3"));
        assert!(text.contains("tessera_revocations 1"));
        assert!(text.contains("tessera_build_info{version="));
        assert!(text.contains("tessera_http_request_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }
}

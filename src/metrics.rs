//! Prometheus metrics, served as text on the admin listener.

use prometheus::{
    Encoder, Histogram, HistogramOpts, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// The process's metrics. Label values are bounded sets (status codes, error kinds).
pub struct Metrics {
    registry: Registry,
    /// Requests answered, by HTTP status code.
    pub requests: IntCounterVec,
    /// Time from request head to response head.
    pub request_duration: Histogram,
    /// Upstream failures, by kind (`unavailable`, `timeout`).
    pub upstream_errors: IntCounterVec,
    /// TLS certificate reloads, by result (`ok`, `error`).
    pub tls_reloads: IntCounterVec,
    /// Client connections open now.
    pub open_connections: IntGauge,
    /// Reloads of tenants, plans and keys, by result (`ok`, `error`).
    pub config_reloads: IntCounterVec,
    /// Authorization decisions, by `decision` (`allow`, `deny`) and `shadow`.
    pub decisions: IntCounterVec,
    /// Decision cache lookups, by `result` (`hit`, `miss`).
    pub decision_cache: IntCounterVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "tollgate_http_requests_total",
                "Requests answered, by status code.",
            ),
            &["code"],
        )?;
        let request_duration = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_http_request_duration_seconds",
                "Time from request head received to response head sent.",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
                10.0, 30.0,
            ]),
        )?;
        let upstream_errors = IntCounterVec::new(
            Opts::new(
                "tollgate_upstream_errors_total",
                "Upstream failures, by kind.",
            ),
            &["kind"],
        )?;
        let tls_reloads = IntCounterVec::new(
            Opts::new(
                "tollgate_tls_reloads_total",
                "TLS certificate reload attempts, by result.",
            ),
            &["result"],
        )?;
        let open_connections =
            IntGauge::new("tollgate_open_connections", "Client connections open now.")?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(request_duration.clone()))?;
        registry.register(Box::new(upstream_errors.clone()))?;
        registry.register(Box::new(tls_reloads.clone()))?;
        let config_reloads = IntCounterVec::new(
            Opts::new(
                "tollgate_config_reloads_total",
                "Reloads of tenants, plans and keys, by result.",
            ),
            &["result"],
        )?;
        let decisions = IntCounterVec::new(
            Opts::new(
                "tollgate_authz_decisions_total",
                "Authorization decisions, by decision and whether the route is in shadow mode.",
            ),
            &["decision", "shadow"],
        )?;
        let decision_cache = IntCounterVec::new(
            Opts::new(
                "tollgate_decision_cache_requests_total",
                "Decision cache lookups, by result (hit ratio = hit / (hit + miss)).",
            ),
            &["result"],
        )?;
        registry.register(Box::new(decisions.clone()))?;
        registry.register(Box::new(decision_cache.clone()))?;
        registry.register(Box::new(open_connections.clone()))?;
        registry.register(Box::new(config_reloads.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            request_duration,
            upstream_errors,
            tls_reloads,
            open_connections,
            config_reloads,
            decisions,
            decision_cache,
        })
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format; an empty page is the fallback.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

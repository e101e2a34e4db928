//! Prometheus metrics, served as text on the admin listener.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use crate::stage::Stage;
use arc_swap::ArcSwap;
use http::StatusCode;
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// Requests refused by a rate limit, by `tenant` and `policy`.
    pub rate_limited: IntCounterVec,
    /// Requests refused by a quota, by `tenant` and `metric`.
    pub quota_exceeded: IntCounterVec,
    /// Usage of the current period, by `tenant` and `metric`.
    pub quota_usage: IntGaugeVec,
    /// Limit of the current period, by `tenant` and `metric`.
    pub quota_limit: IntGaugeVec,
    /// Flushes of the embedded usage store, by `result`.
    pub store_flushes: IntCounterVec,
    /// Live keys across the rate limiters (after the last sweep).
    pub rate_limit_keys: IntGauge,
    /// Time of one call to the shared limits store.
    pub store_latency: Histogram,
    /// Failed or timed-out Redis calls.
    pub redis_errors: IntCounter,
    /// The Redis circuit breaker: 0 closed, 1 open.
    pub redis_breaker: IntGauge,
    /// Outage quota counters added to Redis after it came back.
    pub reconciled: IntCounter,
    /// Audit records waiting to be written.
    pub audit_queue: IntGauge,
    /// Audit records lost (best-effort mode, a full queue, or a sink failing until shutdown).
    pub audit_lost: IntCounter,
    /// Failed writes to an audit sink.
    pub audit_write_errors: IntCounter,
    /// Requests by tenant, plan, decision and the stage that decided.
    pub tenant_requests: IntCounterVec,
    /// Time spent in each pipeline stage.
    pub stage_duration: HistogramVec,
    /// Tenants that have their own label (at most `max_tenants`): read without a lock, copied
    /// on the rare write (a tenant's first request).
    labelled: ArcSwap<HashSet<String>>,
    labelling: Mutex<()>,
    max_tenants: AtomicUsize,
    /// `requests` by status code and `stage_duration` by stage, resolved once rather than
    /// hashed per request.
    by_status: Box<[OnceLock<IntCounter>]>,
    /// In `Stage::ALL` order.
    by_stage: Vec<Histogram>,
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
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "tollgate_rate_limited_total",
                "Requests refused by a rate limit.",
            ),
            &["tenant", "policy"],
        )?;
        let quota_exceeded = IntCounterVec::new(
            Opts::new(
                "tollgate_quota_exceeded_total",
                "Requests refused by a quota.",
            ),
            &["tenant", "metric"],
        )?;
        let quota_usage = IntGaugeVec::new(
            Opts::new("tollgate_quota_usage", "Usage in the current quota period."),
            &["tenant", "metric"],
        )?;
        let quota_limit = IntGaugeVec::new(
            Opts::new("tollgate_quota_limit", "Limit of the current quota period."),
            &["tenant", "metric"],
        )?;
        let store_flushes = IntCounterVec::new(
            Opts::new(
                "tollgate_usage_store_flushes_total",
                "Flushes of the embedded usage store, by result.",
            ),
            &["result"],
        )?;
        let rate_limit_keys = IntGauge::new(
            "tollgate_rate_limit_keys",
            "Live keys across the rate limiters.",
        )?;
        let store_latency = Histogram::with_opts(
            HistogramOpts::new(
                "tollgate_limits_store_duration_seconds",
                "Time of one call to the shared limits store.",
            )
            .buckets(vec![
                0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
            ]),
        )?;
        let redis_errors = IntCounter::new(
            "tollgate_redis_errors_total",
            "Failed or timed-out Redis calls.",
        )?;
        let redis_breaker = IntGauge::new(
            "tollgate_redis_breaker_open",
            "The Redis circuit breaker: 0 closed, 1 open.",
        )?;
        let reconciled = IntCounter::new(
            "tollgate_redis_reconciled_counters_total",
            "Outage quota counters added to Redis after it came back.",
        )?;
        let audit_queue = IntGauge::new(
            "tollgate_audit_queue_depth",
            "Audit records waiting to be written.",
        )?;
        let audit_lost = IntCounter::new(
            "tollgate_audit_lost_records_total",
            "Audit records lost, each also logged.",
        )?;
        let audit_write_errors = IntCounter::new(
            "tollgate_audit_write_errors_total",
            "Failed writes to an audit sink.",
        )?;
        let tenant_requests = IntCounterVec::new(
            Opts::new(
                "tollgate_requests_total",
                "Requests by tenant, plan, decision and the stage that decided (tenants past the label cap are `other`).",
            ),
            &["tenant", "plan", "decision", "stage"],
        )?;
        let stage_duration = HistogramVec::new(
            HistogramOpts::new(
                "tollgate_stage_duration_seconds",
                "Time spent in each pipeline stage.",
            )
            .buckets(vec![
                0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005,
                0.025, 0.1, 1.0,
            ]),
            &["stage"],
        )?;
        for collector in [
            Box::new(tenant_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(stage_duration.clone()),
        ] {
            registry.register(collector)?;
        }
        for collector in [
            Box::new(audit_queue.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(audit_lost.clone()),
            Box::new(audit_write_errors.clone()),
        ] {
            registry.register(collector)?;
        }
        for collector in [
            Box::new(store_latency.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(redis_errors.clone()),
            Box::new(redis_breaker.clone()),
            Box::new(reconciled.clone()),
        ] {
            registry.register(collector)?;
        }
        for collector in [
            Box::new(rate_limited.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(quota_exceeded.clone()),
            Box::new(quota_usage.clone()),
            Box::new(quota_limit.clone()),
            Box::new(store_flushes.clone()),
            Box::new(rate_limit_keys.clone()),
        ] {
            registry.register(collector)?;
        }
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
            rate_limited,
            quota_exceeded,
            quota_usage,
            quota_limit,
            store_flushes,
            rate_limit_keys,
            store_latency,
            redis_errors,
            redis_breaker,
            reconciled,
            audit_queue,
            audit_lost,
            audit_write_errors,
            tenant_requests,
            labelled: ArcSwap::from_pointee(HashSet::new()),
            labelling: Mutex::new(()),
            max_tenants: AtomicUsize::new(1000),
            by_status: (0..1000).map(|_| OnceLock::new()).collect(),
            by_stage: Stage::ALL
                .iter()
                .map(|s| stage_duration.with_label_values(&[s.name()]))
                .collect(),
            stage_duration,
        })
    }

    /// Sets the tenant label cap (`metrics.max_tenants`).
    pub fn set_max_tenants(&self, max: usize) {
        self.max_tenants.store(max, Ordering::Relaxed);
    }

    /// The label for a tenant: its id while fewer than the cap have labels, else `other`, so a
    /// platform with 100,000 tenants cannot blow up the metrics.
    pub fn tenant_label<'a>(&self, tenant: &'a str) -> &'a str {
        if self.labelled.load().contains(tenant) {
            return tenant;
        }
        let _writer = self.labelling.lock().unwrap_or_else(|p| p.into_inner());
        let current = self.labelled.load_full();
        if current.contains(tenant) {
            return tenant;
        }
        if current.len() < self.max_tenants.load(Ordering::Relaxed) {
            let mut next = HashSet::clone(&current);
            next.insert(tenant.to_string());
            self.labelled.store(Arc::new(next));
            return tenant;
        }
        "other"
    }

    /// Counts an answer by its status code.
    pub fn count_status(&self, status: StatusCode) {
        match self.by_status.get(usize::from(status.as_u16())) {
            Some(cell) => cell
                .get_or_init(|| self.requests.with_label_values(&[status.as_str()]))
                .inc(),
            None => self.requests.with_label_values(&[status.as_str()]).inc(),
        }
    }

    /// Records the time spent in a stage.
    pub fn observe_stage(&self, stage: Stage, seconds: f64) {
        if let Some(histogram) = self.by_stage.get(stage.index()) {
            histogram.observe(seconds);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format; an empty page is the fallback.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

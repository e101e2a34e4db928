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
    /// Changes of the tenant store applied here, by result (`applied`, `refused`: stored but not
    /// served, `resync`: the whole image read again).
    pub tenant_changes: IntCounterVec,
    /// The tenant store's revision the served snapshot has applied.
    pub tenant_store_revision: IntGauge,
    /// Authorization decisions, by `decision` (`allow`, `deny`) and `shadow`.
    pub decisions: IntCounterVec,
    /// Decision cache lookups, by `result` (`hit`, `miss`).
    pub decision_cache: IntCounterVec,
    /// Requests the shadow policy set decided otherwise, by deciding `policy` of either set.
    pub shadow_disagreements: IntCounterVec,
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
    /// Access log lines dropped because stdout did not keep up.
    pub access_log_dropped: IntCounter,
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

/// Creates each metric and registers it in one step, so a metric cannot be made and forgotten.
struct Register(Registry);

impl Register {
    fn add<C: prometheus::core::Collector + Clone + 'static>(
        &self,
        metric: Result<C, prometheus::Error>,
    ) -> Result<C, prometheus::Error> {
        let metric = metric?;
        self.0.register(Box::new(metric.clone()))?;
        Ok(metric)
    }

    fn counter(&self, name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
        self.add(IntCounter::new(name, help))
    }

    fn counters(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, prometheus::Error> {
        self.add(IntCounterVec::new(Opts::new(name, help), labels))
    }

    fn gauge(&self, name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
        self.add(IntGauge::new(name, help))
    }

    fn gauges(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, prometheus::Error> {
        self.add(IntGaugeVec::new(Opts::new(name, help), labels))
    }

    fn histogram(
        &self,
        name: &str,
        help: &str,
        buckets: &[f64],
    ) -> Result<Histogram, prometheus::Error> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        self.add(Histogram::with_opts(opts))
    }
}

/// Buckets of a whole request (seconds).
const REQUEST_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Buckets of one call to the shared limits store (seconds).
const STORE_BUCKETS: &[f64] = &[0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1];
/// Buckets of one pipeline stage (seconds).
const STAGE_BUCKETS: &[f64] = &[
    0.000_005, 0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.005, 0.025, 0.1,
    1.0,
];

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let r = Register(Registry::new());
        let stage_duration = r.add(HistogramVec::new(
            HistogramOpts::new(
                "tollgate_stage_duration_seconds",
                "Time spent in each pipeline stage.",
            )
            .buckets(STAGE_BUCKETS.to_vec()),
            &["stage"],
        ))?;
        Ok(Metrics {
            requests: r.counters(
                "tollgate_http_requests_total",
                "Requests answered, by status code.",
                &["code"],
            )?,
            request_duration: r.histogram(
                "tollgate_http_request_duration_seconds",
                "Time from request head received to response head sent.",
                REQUEST_BUCKETS,
            )?,
            upstream_errors: r.counters(
                "tollgate_upstream_errors_total",
                "Upstream failures, by kind.",
                &["kind"],
            )?,
            tls_reloads: r.counters(
                "tollgate_tls_reloads_total",
                "TLS certificate reload attempts, by result.",
                &["result"],
            )?,
            open_connections: r.gauge("tollgate_open_connections", "Client connections open now.")?,
            config_reloads: r.counters(
                "tollgate_config_reloads_total",
                "Reloads of tenants, plans and keys, by result.",
                &["result"],
            )?,
            tenant_changes: r.counters(
                "tollgate_tenant_store_changes_total",
                "Changes of the tenant store applied, by result (applied, refused, resync).",
                &["result"],
            )?,
            tenant_store_revision: r.gauge(
                "tollgate_tenant_store_revision",
                "The tenant store's revision the served snapshot has applied.",
            )?,
            decisions: r.counters(
                "tollgate_authz_decisions_total",
                "Authorization decisions, by decision and whether the route is in shadow mode.",
                &["decision", "shadow"],
            )?,
            decision_cache: r.counters(
                "tollgate_decision_cache_requests_total",
                "Decision cache lookups, by result (hit ratio = hit / (hit + miss)).",
                &["result"],
            )?,
            shadow_disagreements: r.counters(
                "tollgate_shadow_disagreements_total",
                "Requests the shadow policy set decided otherwise (another verdict or other deciding policies), by each deciding policy of either set (`default` for a default deny).",
                &["policy"],
            )?,
            rate_limited: r.counters(
                "tollgate_rate_limited_total",
                "Requests refused by a rate limit.",
                &["tenant", "policy"],
            )?,
            quota_exceeded: r.counters(
                "tollgate_quota_exceeded_total",
                "Requests refused by a quota.",
                &["tenant", "metric"],
            )?,
            quota_usage: r.gauges(
                "tollgate_quota_usage",
                "Usage in the current quota period.",
                &["tenant", "metric"],
            )?,
            quota_limit: r.gauges(
                "tollgate_quota_limit",
                "Limit of the current quota period.",
                &["tenant", "metric"],
            )?,
            store_flushes: r.counters(
                "tollgate_usage_store_flushes_total",
                "Flushes of the embedded usage store, by result.",
                &["result"],
            )?,
            rate_limit_keys: r.gauge(
                "tollgate_rate_limit_keys",
                "Live keys across the rate limiters.",
            )?,
            store_latency: r.histogram(
                "tollgate_limits_store_duration_seconds",
                "Time of one call to the shared limits store.",
                STORE_BUCKETS,
            )?,
            redis_errors: r.counter(
                "tollgate_redis_errors_total",
                "Failed or timed-out Redis calls.",
            )?,
            redis_breaker: r.gauge(
                "tollgate_redis_breaker_open",
                "The Redis circuit breaker: 0 closed, 1 open.",
            )?,
            reconciled: r.counter(
                "tollgate_redis_reconciled_counters_total",
                "Outage quota counters added to Redis after it came back.",
            )?,
            audit_queue: r.gauge(
                "tollgate_audit_queue_depth",
                "Audit records waiting to be written.",
            )?,
            audit_lost: r.counter(
                "tollgate_audit_lost_records_total",
                "Audit records lost, each also logged.",
            )?,
            audit_write_errors: r.counter(
                "tollgate_audit_write_errors_total",
                "Failed writes to an audit sink.",
            )?,
            access_log_dropped: r.counter(
                "tollgate_access_log_dropped_total",
                "Access log lines dropped because stdout did not keep up.",
            )?,
            tenant_requests: r.counters(
                "tollgate_requests_total",
                "Requests by tenant, plan, decision and the stage that decided (tenants past the label cap are `other`).",
                &["tenant", "plan", "decision", "stage"],
            )?,
            labelled: ArcSwap::from_pointee(HashSet::new()),
            labelling: Mutex::new(()),
            max_tenants: AtomicUsize::new(1000),
            by_status: (0..1000).map(|_| OnceLock::new()).collect(),
            by_stage: Stage::ALL
                .iter()
                .map(|s| stage_duration.with_label_values(&[s.name()]))
                .collect(),
            stage_duration,
            registry: r.0,
        })
    }

    /// Sets the tenant label cap (`metrics.max_tenants`).
    pub(crate) fn set_max_tenants(&self, max: usize) {
        self.max_tenants.store(max, Ordering::Relaxed);
    }

    /// The label for a tenant: its id while fewer than the cap have labels, else `other`, so a
    /// platform with 100,000 tenants cannot blow up the metrics.
    pub(crate) fn tenant_label<'a>(&self, tenant: &'a str) -> &'a str {
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
    pub(crate) fn count_status(&self, status: StatusCode) {
        match self.by_status.get(usize::from(status.as_u16())) {
            Some(cell) => cell
                .get_or_init(|| self.requests.with_label_values(&[status.as_str()]))
                .inc(),
            None => self.requests.with_label_values(&[status.as_str()]).inc(),
        }
    }

    /// Records the time spent in a stage.
    pub(crate) fn observe_stage(&self, stage: Stage, seconds: f64) {
        if let Some(histogram) = self.by_stage.get(stage.index()) {
            histogram.observe(seconds);
        }
    }

    /// The Prometheus text exposition of every metric.
    pub(crate) fn render(&self) -> String {
        let mut out = Vec::new();
        // Encoding into a Vec cannot fail for the text format; an empty page is the fallback.
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut out);
        String::from_utf8(out).unwrap_or_default()
    }
}

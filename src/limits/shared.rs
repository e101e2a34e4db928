//! The Redis backend: limits shared by every replica through one script call per request
//! (`redis.rs`), and, when Redis fails or its breaker is open, the plan's `on_store_failure`:
//! `local` enforces each rate limit at limit ÷ replicas and each quota at the headroom Redis last
//! reported ÷ replicas, counting in this process (those counts are added to Redis when it
//! answers again); `refuse` answers 503 `limits-unavailable`. Never unlimited by accident.

use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::config::RedisStore;
use crate::error::{Problem, Refusal};
use crate::metrics::Metrics;
use crate::tenants::Tenant;
use crate::tenants::plans::OnStoreFailure;

use super::backend::{Backend, Outcome, Request};
use super::local::Local;
use super::rate::Check;
use super::redis::{self, QuotaItem, RateItem, RedisLimits, Verdict};
use super::refund::Counted;
use super::store::{Consumed, Item, QuotaStore, Usage};

/// How long an outage count added to Redis is kept: longer than any quota period (a billing
/// month) plus its grace.
const OUTAGE_COUNT_TTL_S: u64 = 40 * 86_400;

pub struct Shared {
    redis: RedisLimits,
    /// The fallback; its quota counts are the outage's, waiting to be added to Redis.
    local: Local,
}

impl Shared {
    pub fn open(config: &RedisStore) -> Result<Shared, String> {
        Ok(Shared {
            redis: RedisLimits::new(config.clone())?,
            local: Local::with(QuotaStore::memory()),
        })
    }

    async fn check(&self, metrics: &Metrics, request: &Request<'_>) -> Result<Outcome, Refusal> {
        let (tenant, redis) = (request.tenant, &self.redis);
        let rate_items: Vec<RateItem> = tenant
            .rate_limits
            .iter()
            .zip(request.keys)
            .map(|(limit, key)| RateItem {
                key: redis.rate_key(&tenant.id, &limit.name, key),
                interval_ms: u64::try_from(
                    limit.window.as_millis() / u128::from(limit.limit.max(1)),
                )
                .unwrap_or(u64::MAX)
                .max(1),
                burst: limit.burst(),
            })
            .collect();
        let quota_items: Vec<QuotaItem> = request
            .items
            .iter()
            .map(|item| QuotaItem {
                key: redis.quota_key(&tenant.id, &item.metric, &item.period),
                item,
                ttl: item.ends_in + redis::GRACE_S,
            })
            .collect();
        if let Some(verdict) = redis.cached(&rate_items, &quota_items) {
            return Ok(outcome(tenant, &rate_items, verdict));
        }
        if redis.admit() {
            let started = std::time::Instant::now();
            let result = redis.check(&rate_items, &quota_items).await;
            metrics
                .store_latency
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok((verdict, recovered)) => {
                    metrics.redis_breaker.set(0);
                    if recovered || redis.has_pending() {
                        self.reconcile(metrics).await;
                    }
                    return Ok(outcome(tenant, &rate_items, verdict));
                }
                Err(e) => {
                    metrics.redis_errors.inc();
                    tracing::warn!(error = %e, "Redis limits call failed; falling back");
                }
            }
        }
        metrics.redis_breaker.set(redis.breaker_state());
        match tenant.plan.on_store_failure {
            OnStoreFailure::Refuse => Err(Refusal::new(
                Problem::LimitsUnavailable,
                "the limits store is unavailable and this plan does not fall back",
            )
            .retry_after(1)),
            OnStoreFailure::Local => {
                let replicas = redis.config.replicas;
                let local_items: Vec<Item> = request
                    .items
                    .iter()
                    .zip(&quota_items)
                    .map(|(item, q)| {
                        let last = redis.last_usage(&q.key).unwrap_or(0);
                        Item {
                            limit: item.limit.saturating_sub(last) / replicas,
                            ..item.clone()
                        }
                    })
                    .collect();
                let mut outcome = self
                    .local
                    .enforce(tenant, request.keys, &local_items, replicas);
                if let Some(Consumed::Allowed(usage)) = &mut outcome.consumed {
                    for (used, q) in usage.iter_mut().zip(&quota_items) {
                        *used += redis.last_usage(&q.key).unwrap_or(0);
                    }
                }
                Ok(outcome)
            }
        }
    }

    /// Adds the counts made during an outage to Redis; what fails stays queued for the next try.
    async fn reconcile(&self, metrics: &Metrics) {
        let redis = &self.redis;
        let keyed: Vec<(String, String, u64, u64)> = self
            .local
            .quotas
            .drain()
            .iter()
            .map(|(tenant, u)| {
                (
                    tenant.clone(),
                    redis.quota_key(tenant, &u.metric, &u.period),
                    u.count,
                    OUTAGE_COUNT_TTL_S,
                )
            })
            .collect();
        let n = redis.reconcile(keyed).await;
        if n > 0 {
            metrics.reconciled.inc_by(u64::try_from(n).unwrap_or(0));
            tracing::info!(counters = n, "outage quota counts added to Redis");
        }
    }
}

impl Backend for Shared {
    fn check<'a>(
        &'a self,
        metrics: &'a Metrics,
        request: &'a Request<'a>,
    ) -> BoxFuture<'a, Result<Outcome, Refusal>> {
        Box::pin(Shared::check(self, metrics, request))
    }

    fn refund<'a>(
        &'a self,
        tenant: &'a str,
        items: &'a [Item],
        counted: Counted,
    ) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            match counted {
                Counted::Nowhere => {}
                Counted::Locally => self.local.quotas.release(tenant, items),
                Counted::InRedis => {
                    let keys: Vec<(String, u64)> = items
                        .iter()
                        .map(|i| (self.redis.quota_key(tenant, &i.metric, &i.period), i.cost))
                        .collect();
                    if let Err(e) = self.redis.release(&keys).await {
                        // Counted once too often is the safe side of a lost refund.
                        tracing::warn!(tenant, error = %e, "could not give back a request's quota in Redis");
                    }
                }
            }
        })
    }

    fn usage<'a>(
        &'a self,
        tenant: &'a str,
        period: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Usage>, String>> {
        Box::pin(self.redis.usage(tenant, period))
    }

    fn flush(&self) -> Result<usize, String> {
        Ok(0)
    }

    fn sweep(&self) -> usize {
        self.local.sweep()
    }
}

/// The per-limit checks and the quota result of a Redis verdict.
fn outcome(tenant: &Tenant, rate: &[RateItem], verdict: Verdict) -> Outcome {
    let full = |r: &RateItem| Check {
        allowed: true,
        remaining: r.burst,
        reset: Duration::ZERO,
        retry_after: Duration::ZERO,
    };
    let consumed = redis::consumed(&verdict);
    let checks: Vec<Check> = match verdict {
        Verdict::Allowed { rate: state, .. } => state
            .into_iter()
            .map(|(remaining, reset)| Check {
                allowed: true,
                remaining,
                reset,
                retry_after: Duration::ZERO,
            })
            .collect(),
        Verdict::RateLimited { index, retry } => rate
            .iter()
            .enumerate()
            .map(|(i, r)| {
                if i == index {
                    Check {
                        allowed: false,
                        remaining: 0,
                        reset: Duration::from_millis(r.interval_ms * r.burst),
                        retry_after: retry,
                    }
                } else {
                    full(r)
                }
            })
            .collect(),
        Verdict::QuotaExceeded { .. } => rate.iter().map(full).collect(),
    };
    debug_assert_eq!(checks.len(), tenant.rate_limits.len());
    let counted = if matches!(consumed, Some(Consumed::Allowed(_))) {
        Counted::InRedis
    } else {
        Counted::Nowhere
    };
    Outcome {
        checks,
        consumed,
        counted,
    }
}

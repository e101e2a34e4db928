//! Plan limits: rate limits (GCRA) and calendar quotas (durable counters), kept in this process
//! (`memory`, `embedded`) or shared by every replica through Redis (`redis`).
//!
//! With Redis, a failed or open-breaker call falls back per plan (`on_store_failure`): `local`
//! enforces each rate limit at limit ÷ replicas, and each quota at the headroom Redis last
//! reported ÷ replicas, counting locally; those counts are added to Redis when it answers again.
//! `refuse` answers 503 `limits-unavailable`. Never unlimited by accident.

pub mod link;
pub mod period;
pub mod rate;
pub mod redis;
pub mod store;
pub mod usage;

use std::time::Duration;

use crate::config::{Backend, LimitsStore};
use crate::error::{Problem, Refusal};
use crate::metrics::Metrics;
use crate::tenants::Tenant;
use crate::tenants::plans::{OnStoreFailure, RateLimit, Scope};

use rate::{Check, RateLimiters};
use redis::{QuotaItem, RateItem, RedisLimits, Verdict};
use store::{Consumed, Item, QuotaStore};

/// The process's limit state, kept across snapshots (a reload keeps counts and rate state).
pub struct Limits {
    pub rate: RateLimiters,
    /// Usage (memory or embedded); with Redis, the counts made during an outage.
    pub quotas: QuotaStore,
    pub redis: Option<RedisLimits>,
}

/// What the limits said about one request.
pub struct Outcome {
    /// One per rate limit of the tenant, in order.
    pub checks: Vec<Check>,
    /// The quota result; `None` when a rate limit refused first (nothing was counted).
    pub consumed: Option<Consumed>,
}

/// A rate limit at its share for one of `replicas` replicas.
fn share(limit: &RateLimit, replicas: u64) -> RateLimit {
    RateLimit {
        limit: (limit.limit / replicas).max(1),
        burst: Some((limit.burst() / replicas).max(1)),
        ..limit.clone()
    }
}

impl Limits {
    pub fn open(config: &LimitsStore) -> Result<Limits, String> {
        let redis = match (config.backend, &config.redis) {
            (Backend::Redis, Some(redis)) => Some(RedisLimits::new(redis.clone())?),
            _ => None,
        };
        Ok(Limits {
            rate: RateLimiters::default(),
            quotas: if redis.is_some() {
                QuotaStore::memory()
            } else {
                QuotaStore::open(config)?
            },
            redis,
        })
    }

    /// Checks every rate limit and, if they allow, counts the quota items (`ttls`: seconds until
    /// each item's period ends).
    pub async fn check(
        &self,
        metrics: &Metrics,
        tenant: &Tenant,
        principal: &str,
        route: Option<&str>,
        items: &[Item],
        ttls: &[u64],
    ) -> Result<Outcome, Refusal> {
        let keys: Vec<String> = tenant
            .rate_limits
            .iter()
            .map(|limit| match limit.per {
                Scope::Tenant => tenant.id.clone(),
                Scope::Principal => format!("{}\u{1f}{principal}", tenant.id),
                Scope::Route => format!("{}\u{1f}{}", tenant.id, route.unwrap_or("-")),
            })
            .collect();
        let Some(redis) = &self.redis else {
            return Ok(self.local(tenant, &keys, items, 1));
        };
        let rate_items: Vec<RateItem> = tenant
            .rate_limits
            .iter()
            .zip(&keys)
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
        let quota_items: Vec<QuotaItem> = items
            .iter()
            .zip(ttls)
            .map(|(item, ttl)| QuotaItem {
                key: redis.quota_key(&tenant.id, &item.metric, &item.period),
                item,
                ttl: ttl + 86_400,
            })
            .collect();
        if let Some(verdict) = redis.cached(&rate_items, &quota_items) {
            return Ok(outcome(tenant, &rate_items, verdict));
        }
        if redis.admit() {
            let started = std::time::Instant::now();
            // Boxed, like the reconciliation: a large future the local backends should not carry.
            let result = Box::pin(redis.check(&rate_items, &quota_items)).await;
            metrics
                .store_latency
                .observe(started.elapsed().as_secs_f64());
            match result {
                Ok((verdict, recovered)) => {
                    metrics.redis_breaker.set(0);
                    if recovered || redis.has_pending() {
                        Box::pin(self.reconcile(redis, metrics)).await;
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
                let local_items: Vec<Item> = items
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
                let mut outcome = self.local(tenant, &keys, &local_items, replicas);
                if let Some(Consumed::Allowed(usage)) = &mut outcome.consumed {
                    for (used, q) in usage.iter_mut().zip(&quota_items) {
                        *used += redis.last_usage(&q.key).unwrap_or(0);
                    }
                }
                Ok(outcome)
            }
        }
    }

    /// Usage reports: one tenant's, or every tenant's (sorted), read from Redis or this process.
    pub async fn report(
        &self,
        directory: &crate::tenants::Directory,
        tenant: Option<&str>,
        period: Option<&str>,
    ) -> Result<serde_json::Value, String> {
        let mut tenants: Vec<_> = match tenant {
            Some(id) => vec![
                directory
                    .get(id)
                    .ok_or_else(|| format!("unknown tenant {id:?}"))?,
            ],
            None => directory.tenants().collect(),
        };
        tenants.sort_by(|a, b| a.id.cmp(&b.id));
        let mut reports = Vec::with_capacity(tenants.len());
        for t in tenants {
            let counters = match &self.redis {
                Some(redis) => redis.usage(&t.id, period).await?,
                None => self.quotas.usage(&t.id, period),
            };
            reports.push(usage::tenant(&counters, t, period));
        }
        Ok(match tenant {
            Some(_) => reports.pop().unwrap_or_default(),
            None => serde_json::Value::Array(reports),
        })
    }

    /// In-process enforcement, each rate limit at its share for `replicas`.
    fn local(&self, tenant: &Tenant, keys: &[String], items: &[Item], replicas: u64) -> Outcome {
        let checks: Vec<Check> = tenant
            .rate_limits
            .iter()
            .zip(keys)
            .map(|(limit, key)| {
                if replicas > 1 {
                    self.rate.check(&share(limit, replicas), key)
                } else {
                    self.rate.check(limit, key)
                }
            })
            .collect();
        if checks.iter().any(|c| !c.allowed) {
            return Outcome {
                checks,
                consumed: None,
            };
        }
        Outcome {
            checks,
            consumed: Some(self.quotas.consume(&tenant.id, items)),
        }
    }

    /// Adds the counts made during an outage to Redis; what fails stays queued for the next try.
    async fn reconcile(&self, redis: &RedisLimits, metrics: &Metrics) {
        let counts = self.quotas.drain();
        let keyed: Vec<(String, String, u64, u64)> = counts
            .iter()
            .map(|(tenant, u)| {
                (
                    tenant.clone(),
                    redis.quota_key(tenant, &u.metric, &u.period),
                    u.count,
                    40 * 86_400,
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
    Outcome { checks, consumed }
}

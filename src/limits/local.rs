//! The backends of one process: `memory`, and `embedded` (counters written behind to redb).
//! Rate limits are GCRA limiters in this process; quotas are the store's counters. Also the
//! fallback of the Redis backend, where each limit is enforced at its share for one replica.

use futures_util::future::BoxFuture;

use crate::config::LimitsStore;
use crate::error::Refusal;
use crate::metrics::Metrics;
use crate::tenants::Tenant;
use crate::tenants::plans::RateLimit;

use super::backend::{Backend, Outcome, Request};
use super::rate::{Check, RateLimiters};
use super::refund::Counted;
use super::store::{Consumed, Item, QuotaStore, Usage};

pub struct Local {
    rate: RateLimiters,
    pub quotas: QuotaStore,
}

/// A rate limit at its share for one of `replicas` replicas.
fn share(limit: &RateLimit, replicas: u64) -> RateLimit {
    RateLimit {
        limit: (limit.limit / replicas).max(1),
        burst: Some((limit.burst() / replicas).max(1)),
        ..limit.clone()
    }
}

impl Local {
    pub fn open(config: &LimitsStore) -> Result<Local, String> {
        Ok(Local::with(QuotaStore::open(config)?))
    }

    pub fn with(quotas: QuotaStore) -> Local {
        Local {
            rate: RateLimiters::default(),
            quotas,
        }
    }

    /// Enforcement in this process, each rate limit at its share for `replicas`.
    pub fn enforce(
        &self,
        tenant: &Tenant,
        keys: &[String],
        items: &[Item],
        replicas: u64,
    ) -> Outcome {
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
                counted: Counted::Nowhere,
            };
        }
        let consumed = self.quotas.consume(&tenant.id, items);
        let counted = if matches!(consumed, Consumed::Allowed(_)) {
            Counted::Locally
        } else {
            Counted::Nowhere
        };
        Outcome {
            checks,
            consumed: Some(consumed),
            counted,
        }
    }
}

impl Backend for Local {
    fn check<'a>(
        &'a self,
        _metrics: &'a Metrics,
        request: &'a Request<'a>,
    ) -> BoxFuture<'a, Result<Outcome, Refusal>> {
        let outcome = self.enforce(request.tenant, request.keys, request.items, 1);
        Box::pin(std::future::ready(Ok(outcome)))
    }

    fn refund<'a>(
        &'a self,
        tenant: &'a str,
        items: &'a [Item],
        _counted: Counted,
    ) -> BoxFuture<'a, ()> {
        self.quotas.release(tenant, items);
        Box::pin(std::future::ready(()))
    }

    fn usage<'a>(
        &'a self,
        tenant: &'a str,
        period: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Usage>, String>> {
        Box::pin(std::future::ready(Ok(self.quotas.usage(tenant, period))))
    }

    fn flush(&self) -> Result<usize, String> {
        self.quotas.flush()
    }

    fn sweep(&self) -> usize {
        self.rate.sweep()
    }
}

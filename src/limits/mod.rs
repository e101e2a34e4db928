//! Plan limits: rate limits (GCRA) and calendar quotas (durable counters), kept in this process
//! (`memory`, `embedded`: `local.rs`) or shared by every replica through Redis (`redis`:
//! `shared.rs`, falling back per plan when Redis fails). Every backend keeps the one contract of
//! `backend.rs`.

pub mod backend;
pub mod link;
pub mod local;
pub mod period;
pub mod rate;
pub(crate) mod reconcile;
pub mod redis;
pub mod refund;
pub mod shared;
pub mod store;
pub mod usage;

use crate::config::{Backend as Kind, LimitsStore};
use crate::error::Refusal;
use crate::metrics::Metrics;
use crate::tenants::Tenant;
use crate::tenants::plans::Scope;

pub use backend::Request;
pub use backend::{Backend, Outcome};
use store::Item;

/// The process's limit state, kept across snapshots (a reload keeps counts and rate state).
pub struct Limits {
    backend: Box<dyn Backend>,
}

impl Limits {
    pub fn open(config: &LimitsStore) -> Result<Limits, String> {
        let backend: Box<dyn Backend> = match (config.backend, &config.redis) {
            (Kind::Redis, Some(redis)) => Box::new(shared::Shared::open(redis)?),
            _ => Box::new(local::Local::open(config)?),
        };
        Ok(Limits { backend })
    }

    /// Checks every rate limit and, if they allow, counts the quota items.
    pub async fn check(
        &self,
        metrics: &Metrics,
        tenant: &Tenant,
        principal: &str,
        route: Option<&str>,
        items: &[Item],
    ) -> Result<Outcome, Refusal> {
        let keys: Vec<String> = tenant
            .rate_limits
            .iter()
            .map(|limit| match limit.per {
                Scope::Tenant => tenant.id.to_string(),
                Scope::Principal => format!("{}\u{1f}{principal}", tenant.id),
                Scope::Route => format!("{}\u{1f}{}", tenant.id, route.unwrap_or("-")),
            })
            .collect();
        let request = Request {
            tenant,
            keys: &keys,
            items,
        };
        self.backend.check(metrics, &request).await
    }

    /// Gives back what a request counted: it never reached the upstream.
    pub async fn refund(&self, refund: &refund::Refund) {
        self.backend
            .refund(&refund.tenant, &refund.items, refund.counted)
            .await;
    }

    /// Usage reports: one tenant's, or every tenant's (sorted).
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
            let counters = self.backend.usage(&t.id, period).await?;
            reports.push(usage::tenant(&counters, t, period));
        }
        Ok(match tenant {
            Some(_) => reports.pop().unwrap_or_default(),
            None => serde_json::Value::Array(reports),
        })
    }

    /// Writes counts behind (embedded); how many were written.
    pub fn flush(&self) -> Result<usize, String> {
        self.backend.flush()
    }

    /// Forgets idle rate-limit state; how many keys remain.
    pub(crate) fn sweep(&self) -> usize {
        self.backend.sweep()
    }
}

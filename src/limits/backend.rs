//! The one contract every limits backend keeps: memory and embedded (`local.rs`), Redis with its
//! fallback (`shared.rs`). Given a tenant, its rate-limit keys and the quota items of a request,
//! a backend checks every rate limit and, only if all allow, counts every item; a refused request
//! is never counted. The behaviour suite in `tests/it/limits_backends.rs` runs against each.

use futures_util::future::BoxFuture;

use crate::error::Refusal;
use crate::metrics::Metrics;
use crate::tenants::Tenant;

use super::rate::Check;
use super::refund::Counted;
use super::store::{Consumed, Item, Usage};

/// What a request asks of the limits.
pub struct Request<'a> {
    pub tenant: &'a Tenant,
    /// One key per rate limit of the tenant, in order (tenant, principal or route scoped).
    pub keys: &'a [String],
    pub items: &'a [Item],
}

/// What the limits said about one request.
pub struct Outcome {
    /// One per rate limit of the tenant, in order.
    pub checks: Vec<Check>,
    /// The quota result; `None` when a rate limit refused first (nothing was counted).
    pub consumed: Option<Consumed>,
    /// Where the quota items were counted (`Nowhere` unless `consumed` is `Allowed`).
    pub counted: Counted,
}

pub trait Backend: Send + Sync {
    /// Checks the rate limits and counts the quota items, all or nothing.
    fn check<'a>(
        &'a self,
        metrics: &'a Metrics,
        request: &'a Request<'a>,
    ) -> BoxFuture<'a, Result<Outcome, Refusal>>;

    /// Gives back what `check` counted for `items` where it counted them.
    fn refund<'a>(
        &'a self,
        tenant: &'a str,
        items: &'a [Item],
        counted: Counted,
    ) -> BoxFuture<'a, ()>;

    /// The quota counters of a tenant, optionally of one period.
    fn usage<'a>(
        &'a self,
        tenant: &'a str,
        period: Option<&'a str>,
    ) -> BoxFuture<'a, Result<Vec<Usage>, String>>;

    /// Writes counts behind, where the backend does (embedded); how many were written.
    fn flush(&self) -> Result<usize, String>;

    /// Forgets idle rate-limit state; how many keys remain.
    fn sweep(&self) -> usize;
}

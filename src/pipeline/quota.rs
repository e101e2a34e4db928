//! Stage 7, quota: the calendar quotas of the tenant's plan. Every request costs 1 `api_calls`;
//! a route's `quota_cost` sets what it costs of each metric (`agent_executions: 1`). Over quota is
//! 429 `quota-exceeded` naming the quota, with `Retry-After` until the period ends. Requests
//! refused before or here are never counted.

use std::collections::BTreeMap;

use crate::error::{Problem, Refusal};
use crate::limits::period;
use crate::limits::store::{Consumed, Item};
use crate::metrics::Metrics;
use crate::tenants::Tenant;

/// What a request costs of each quota, with the seconds until each period ends.
pub fn items(tenant: &Tenant, costs: Option<&BTreeMap<String, u64>>, now: u64) -> Vec<Item> {
    let mut items = Vec::with_capacity(tenant.quotas.len());
    for (metric, quota) in &tenant.quotas {
        let default = u64::from(metric == "api_calls");
        let cost = costs
            .and_then(|c| c.get(metric))
            .copied()
            .unwrap_or(default);
        if cost == 0 {
            continue;
        }
        let (key, end) = period::current(quota.period, tenant.billing_day, now);
        items.push(Item {
            metric: metric.clone(),
            period: key,
            limit: quota.limit,
            cost,
            ends_in: end.saturating_sub(now).max(1),
        });
    }
    items
}

/// Turns what the store said into an answer.
pub(crate) fn respond(
    metrics: &Metrics,
    tenant: &Tenant,
    items: &[Item],
    consumed: Consumed,
) -> Result<(), Refusal> {
    match consumed {
        Consumed::Allowed(usage) => {
            // A gauge under `other` would show whichever capped tenant wrote last: capped
            // tenants get none (their counters still add up under `other`).
            if metrics.tenant_label(&tenant.id) != &*tenant.id {
                return Ok(());
            }
            for (item, used) in items.iter().zip(usage) {
                let labels = [&*tenant.id, item.metric.as_str()];
                metrics
                    .quota_usage
                    .with_label_values(&labels)
                    .set(i64::try_from(used).unwrap_or(i64::MAX));
                metrics
                    .quota_limit
                    .with_label_values(&labels)
                    .set(i64::try_from(item.limit).unwrap_or(i64::MAX));
            }
            Ok(())
        }
        Consumed::Exceeded { index, usage } => {
            let Some(item) = items.get(index) else {
                return Err(Refusal::new(Problem::QuotaExceeded, "a quota is used up"));
            };
            metrics
                .quota_exceeded
                .with_label_values(&[metrics.tenant_label(&tenant.id), &item.metric])
                .inc();
            Err(Refusal::new(
                Problem::QuotaExceeded,
                format!(
                    "the quota {:?} ({} for {}) is used up: {usage} used",
                    item.metric, item.limit, item.period
                ),
            )
            .retry_after(item.ends_in))
        }
    }
}

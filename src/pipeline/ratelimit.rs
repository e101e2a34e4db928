//! Stage 6, rate limit: every rate limit of the tenant's plan (with its overrides) applies, each
//! per tenant, per principal or per route; the most restrictive decides. The checks themselves
//! happen in `limits::Limits::check` (in this process, or in Redis with the quotas in one call);
//! this stage turns them into an answer: `RateLimit-Policy` and `RateLimit` (IETF httpapi draft),
//! optionally the legacy `X-RateLimit-*` trio, and on refusal 429 with `Retry-After`.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::error::{Problem, Refusal};
use crate::limits::rate::Check;
use crate::metrics::Metrics;
use crate::tenants::Tenant;

/// The headers to send either way, and the refusal if a limit refused.
pub(crate) fn respond(
    metrics: &Metrics,
    tenant: &Tenant,
    checks: &[Check],
    legacy: bool,
) -> (Vec<(HeaderName, HeaderValue)>, Result<(), Refusal>) {
    if checks.is_empty() {
        return (Vec::new(), Ok(()));
    }
    let limits = tenant.rate_limits.iter().zip(checks);
    let state: Vec<String> = limits
        .clone()
        .map(|(l, c)| format!("\"{}\";r={};t={}", l.name, c.remaining, ceil_secs(c.reset)))
        .collect();
    let mut headers = Vec::with_capacity(5);
    if let Some(policy) = &tenant.rate_limit_policy {
        headers.push((HeaderName::from_static("ratelimit-policy"), policy.clone()));
    }
    push(&mut headers, "ratelimit", &state.join(", "));
    // The most restrictive: a refusing limit with the longest wait, else the fewest remaining.
    let tightest =
        limits.max_by_key(|(_, c)| (!c.allowed, c.retry_after, std::cmp::Reverse(c.remaining)));
    if let (true, Some((limit, c))) = (legacy, tightest) {
        push(&mut headers, "x-ratelimit-limit", &limit.limit.to_string());
        push(
            &mut headers,
            "x-ratelimit-remaining",
            &c.remaining.to_string(),
        );
        push(
            &mut headers,
            "x-ratelimit-reset",
            &ceil_secs(c.reset).to_string(),
        );
    }
    match tightest {
        Some((limit, c)) if !c.allowed => {
            metrics
                .rate_limited
                .with_label_values(&[metrics.tenant_label(&tenant.id), &limit.name])
                .inc();
            let refusal = Refusal::new(
                Problem::RateLimited,
                format!("the rate limit {:?} of the plan is reached", limit.name),
            )
            .retry_after(ceil_secs(c.retry_after).max(1));
            (headers, Err(refusal))
        }
        _ => (headers, Ok(())),
    }
}

fn ceil_secs(duration: Duration) -> u64 {
    duration.as_secs() + u64::from(duration.subsec_nanos() > 0)
}

fn push(headers: &mut Vec<(HeaderName, HeaderValue)>, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.push((HeaderName::from_static(name), value));
    }
}

//! Stage 6, rate limit: every rate limit of the tenant's plan (with its overrides) applies, each
//! per tenant, per principal or per route; the most restrictive decides. Answers carry
//! `RateLimit-Policy` and `RateLimit` (IETF httpapi draft), optionally the legacy `X-RateLimit-*`
//! trio, and a 429 carries `Retry-After`.

use std::time::Duration;

use http::{HeaderName, HeaderValue};

use crate::error::{Problem, Refusal};
use crate::limits::rate::{Check, RateLimiters};
use crate::metrics::Metrics;
use crate::tenants::Tenant;
use crate::tenants::plans::Scope;

/// Checks every limit; returns the headers to send either way.
pub fn check(
    limiters: &RateLimiters,
    metrics: &Metrics,
    tenant: &Tenant,
    principal: &str,
    route: Option<&str>,
    legacy: bool,
) -> (Vec<(HeaderName, HeaderValue)>, Result<(), Refusal>) {
    if tenant.rate_limits.is_empty() {
        return (Vec::new(), Ok(()));
    }
    let mut results: Vec<(&str, u64, Duration, Check)> =
        Vec::with_capacity(tenant.rate_limits.len());
    for limit in &tenant.rate_limits {
        let key = match limit.per {
            Scope::Tenant => tenant.id.clone(),
            Scope::Principal => format!("{}\u{1f}{principal}", tenant.id),
            Scope::Route => format!("{}\u{1f}{}", tenant.id, route.unwrap_or("-")),
        };
        results.push((
            &limit.name,
            limit.limit,
            limit.window,
            limiters.check(limit, &key),
        ));
    }
    let policy: Vec<String> = results
        .iter()
        .map(|(name, limit, window, _)| {
            format!("\"{name}\";q={limit};w={}", window.as_secs().max(1))
        })
        .collect();
    let state: Vec<String> = results
        .iter()
        .map(|(name, _, _, c)| format!("\"{name}\";r={};t={}", c.remaining, ceil_secs(c.reset)))
        .collect();
    let mut headers = Vec::with_capacity(5);
    push(&mut headers, "ratelimit-policy", &policy.join(", "));
    push(&mut headers, "ratelimit", &state.join(", "));
    // The most restrictive: a refusing limit with the longest wait, else the fewest remaining.
    let tightest = results
        .iter()
        .max_by_key(|(_, _, _, c)| (!c.allowed, c.retry_after, std::cmp::Reverse(c.remaining)));
    if let (true, Some((_, limit, _, c))) = (legacy, tightest) {
        push(&mut headers, "x-ratelimit-limit", &limit.to_string());
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
        Some((name, _, _, c)) if !c.allowed => {
            metrics
                .rate_limited
                .with_label_values(&[tenant.id.as_str(), name])
                .inc();
            let refusal = Refusal::new(
                Problem::RateLimited,
                format!("the rate limit {name:?} of the plan is reached"),
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

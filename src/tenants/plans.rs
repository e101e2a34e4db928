//! `plans.yaml`: what each plan sells: rate limits, calendar quotas, features and resource
//! limits (the last are passed to the upstream in headers).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use http::HeaderValue;
use serde::Deserialize;

use crate::config::units::Dur;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPlansFile {
    pub plans: BTreeMap<String, RawPlan>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPlan {
    pub description: Option<String>,
    #[serde(default)]
    pub rate_limits: Vec<RawRateLimit>,
    #[serde(default)]
    pub quotas: BTreeMap<String, RawQuota>,
    #[serde(default)]
    pub features: Vec<String>,
    #[serde(default)]
    pub limits: BTreeMap<String, u64>,
    pub on_store_failure: Option<OnStoreFailure>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    pub name: String,
    pub limit: u64,
    pub window: Dur,
    pub burst: Option<u64>,
    #[serde(default)]
    pub per: Scope,
}

/// What one rate limit counts separately.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The whole tenant.
    #[default]
    Tenant,
    /// Each caller of the tenant.
    Principal,
    /// Each route of the tenant.
    Route,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Tenant => "tenant",
            Scope::Principal => "principal",
            Scope::Route => "route",
        }
    }
}

/// What happens when the shared limits store cannot be reached.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnStoreFailure {
    /// Enforce locally, each replica at its share of the limit (limit ÷ replicas).
    #[default]
    Local,
    /// Refuse requests (503) until the store is back.
    Refuse,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawQuota {
    pub limit: u64,
    pub period: Period,
}

/// A calendar period in UTC.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Period {
    Day,
    Month,
}

#[derive(Debug)]
pub struct Plan {
    pub id: Arc<str>,
    pub description: String,
    pub rate_limits: Vec<RateLimit>,
    pub quotas: BTreeMap<String, Quota>,
    pub features: BTreeSet<String>,
    pub limits: BTreeMap<String, u64>,
    pub on_store_failure: OnStoreFailure,
}

#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Shared: the rate limiter's cache key holds it, and a check must not copy it.
    pub name: Arc<str>,
    pub limit: u64,
    pub window: Duration,
    pub burst: Option<u64>,
    pub per: Scope,
}

/// `RateLimit-Policy` (IETF httpapi draft) for a list of rate limits: `"name";q=limit;w=window`
/// each; `None` for none, or for names a header cannot carry.
pub(crate) fn policy_header(limits: &[RateLimit]) -> Option<HeaderValue> {
    if limits.is_empty() {
        return None;
    }
    let policy: Vec<String> = limits
        .iter()
        .map(|l| {
            format!(
                "\"{}\";q={};w={}",
                l.name,
                l.limit,
                l.window.as_secs().max(1)
            )
        })
        .collect();
    HeaderValue::from_str(&policy.join(", ")).ok()
}

impl RateLimit {
    /// The burst: as configured, or 5% of the limit (at least 1), so that "1,000 per hour" lets at
    /// most about 1,050 through in any rolling hour rather than about 2,000.
    pub fn burst(&self) -> u64 {
        self.burst
            .unwrap_or((self.limit / 20).max(1))
            .min(self.limit)
    }
}

#[derive(Debug, Clone)]
pub struct Quota {
    pub limit: u64,
    pub period: Period,
}

/// Identifiers of plans, features, limits and quota metrics: lower-case words.
pub(crate) fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Validates one plan; errors are `plans.<id>.<key>: message`.
pub fn plan(id: &str, raw: RawPlan, errors: &mut Vec<String>) -> Plan {
    let at = format!("plans.{id}");
    if !valid_name(id) {
        errors.push(format!(
            "{at}: invalid plan id (lower-case letters, digits, '_' and '-')"
        ));
    }
    let mut names = BTreeSet::new();
    let rate_limits = raw
        .rate_limits
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let key = format!("{at}.rate_limits[{i}]");
            if !names.insert(r.name.clone()) {
                errors.push(format!("{key}.name: {:?} is used twice", r.name));
            }
            if !valid_name(&r.name) {
                errors.push(format!("{key}.name: invalid name {:?}", r.name));
            }
            if r.limit == 0 || r.window.0.is_zero() || r.limit > u64::from(u32::MAX) {
                errors.push(format!(
                    "{key}: limit (up to 4294967295) and window must be greater than zero"
                ));
            }
            if r.burst.is_some_and(|b| b == 0 || b > r.limit) {
                errors.push(format!("{key}.burst: must be between 1 and the limit"));
            }
            RateLimit {
                name: Arc::from(r.name),
                limit: r.limit,
                window: r.window.0,
                burst: r.burst,
                per: r.per,
            }
        })
        .collect();
    let quotas = raw
        .quotas
        .into_iter()
        .map(|(metric, q)| {
            if !valid_name(&metric) {
                errors.push(format!("{at}.quotas.{metric}: invalid metric name"));
            }
            (
                metric,
                Quota {
                    limit: q.limit,
                    period: q.period,
                },
            )
        })
        .collect();
    for feature in &raw.features {
        if !valid_name(feature) {
            errors.push(format!("{at}.features: invalid feature name {feature:?}"));
        }
    }
    for name in raw.limits.keys() {
        if !valid_name(name) {
            errors.push(format!("{at}.limits.{name}: invalid limit name"));
        }
    }
    Plan {
        id: id.into(),
        description: raw.description.unwrap_or_default(),
        rate_limits,
        quotas,
        features: raw.features.into_iter().collect(),
        limits: raw.limits,
        on_store_failure: raw.on_store_failure.unwrap_or_default(),
    }
}

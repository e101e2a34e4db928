//! One tenant as it is served, derived from its [`Spec`] and its plan: the plan's features,
//! limits, rate limits and quotas with the tenant's overrides, its trial end and billing day, and
//! the headers built once. The file loader and the admin API both derive tenants here, so a
//! tenant is held to the same rules, with the same messages, wherever it is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use http::{HeaderName, HeaderValue};

use super::plans::{self, Plan};
use super::spec::{Spec, Status};
use super::tenant::{Origin, Tenant};
use crate::identity::{TenantIssuer, tenant_idp};

/// What a tenant is checked against: the plans, and every feature a plan or a file tenant grants
/// (withdrawing any other is a typo that would change nothing).
pub(crate) struct Rules<'a> {
    pub plans: &'a BTreeMap<String, Arc<Plan>>,
    pub granted: &'a BTreeSet<String>,
    pub identity: &'a IssuerRules,
}

/// What a tenant's identity providers are held to: the global issuers (`identity.jwt`), which no
/// tenant may claim, and the operator roles, which no tenant's provider may grant.
#[derive(Debug, Default)]
pub struct IssuerRules {
    pub global: BTreeSet<String>,
    pub operator_roles: Vec<String>,
}

impl IssuerRules {
    pub fn of(identity: &crate::config::Identity) -> IssuerRules {
        IssuerRules {
            global: identity.jwt.iter().map(|p| p.issuer.clone()).collect(),
            operator_roles: identity.operator_roles.clone(),
        }
    }
}

/// Tenant ids are DNS labels, so that every tenant can be addressed by subdomain.
pub(crate) fn valid_tenant_id(id: &str) -> bool {
    let bytes = id.as_bytes();
    (1..=63).contains(&bytes.len())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
        && bytes.first() != Some(&b'-')
        && bytes.last() != Some(&b'-')
}

/// The tenant `spec` describes, or `None` when its plan is unknown. Problems go to `fail` as
/// (key, message), the key starting with `.` (`.plan`, `.domains`); domains are checked for
/// form here and for ownership by the caller, who knows the other tenants.
pub(crate) fn derive(
    spec: Spec,
    origin: Origin,
    revision: u64,
    rules: &Rules<'_>,
    fail: &mut dyn FnMut(&str, String),
) -> Option<Tenant> {
    let known = || {
        let mut all: Vec<&str> = rules.granted.iter().map(String::as_str).collect();
        all.extend(
            spec.features
                .iter()
                .filter(|(_, on)| **on)
                .map(|(f, _)| f.as_str()),
        );
        all.sort_unstable();
        all.dedup();
        all.join(", ")
    };
    for (feature, _) in spec
        .features
        .iter()
        .filter(|(f, on)| !**on && !rules.granted.contains(f.as_str()))
    {
        fail(
            &format!(".features.{feature}"),
            format!(
                "no plan or tenant has the feature {feature:?}, so withdrawing it changes nothing (known: {})",
                known()
            ),
        );
    }
    if !valid_tenant_id(&spec.id) {
        fail(
            ".id",
            "must be a DNS label: a-z, 0-9 and '-', at most 63 characters".into(),
        );
    }
    let mut domains = Vec::new();
    for domain in &spec.domains {
        let host = domain.trim_end_matches('.').to_ascii_lowercase();
        if host.is_empty() || host.contains([':', '/', ' ']) {
            fail(".domains", format!("{domain:?} is not a host name"));
        } else if domains.contains(&host) {
            fail(".domains", format!("{domain:?} is listed twice"));
        } else {
            domains.push(host);
        }
    }
    policy_names(&spec, origin, fail);
    let issuers = issuers(&spec, rules.identity, fail);
    let Some(plan) = rules.plans.get(&spec.plan).cloned() else {
        let known: Vec<&str> = rules.plans.keys().map(String::as_str).collect();
        fail(
            ".plan",
            format!("unknown plan {:?} (known: {})", spec.plan, known.join(", ")),
        );
        return None;
    };
    let mut tenant = effective(spec, domains, origin, revision, plan, fail);
    tenant.issuers = issuers;
    Some(tenant)
}

/// The most policy files a tenant of the store may have.
const MAX_POLICY_FILES: usize = 100;

/// Whether a policy file's name can be a path segment and a file stem: a-z, 0-9, `-`, `_`.
pub fn valid_policy_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// A tenant's own policy files: only in the store (a file tenant's are files of the policies
/// directory), well named, and not too many. Their Cedar is checked by `authz`, which has the
/// schema.
fn policy_names(spec: &Spec, origin: Origin, fail: &mut dyn FnMut(&str, String)) {
    if spec.policies.is_empty() {
        return;
    }
    if origin == Origin::File {
        fail(
            ".policies",
            format!(
                "a tenant of the tenants file keeps its policies as files in the policies directory's tenants/{}/",
                spec.id
            ),
        );
        return;
    }
    if spec.policies.len() > MAX_POLICY_FILES {
        fail(
            ".policies",
            format!("at most {MAX_POLICY_FILES} policy files a tenant"),
        );
    }
    for name in spec.policies.keys().filter(|n| !valid_policy_name(n)) {
        fail(
            &format!(".policies.{name}"),
            "a policy file's name is a-z, 0-9, '-' and '_', at most 64 characters".into(),
        );
    }
}

/// The tenant's identity providers, compiled; an issuer is named once, and never a global one.
/// (Whether another tenant has it is for the caller, who knows the other tenants.)
fn issuers(
    spec: &Spec,
    rules: &IssuerRules,
    fail: &mut dyn FnMut(&str, String),
) -> Vec<Arc<TenantIssuer>> {
    let mut compiled: Vec<Arc<TenantIssuer>> = Vec::new();
    for (i, provider) in spec.identity_providers.iter().enumerate() {
        let at = format!(".identity_providers[{i}].issuer");
        if rules.global.contains(&provider.issuer) {
            fail(
                &at,
                format!(
                    "{:?} is a global issuer (identity.jwt); a tenant names its own",
                    provider.issuer
                ),
            );
        } else if spec.identity_providers[..i]
            .iter()
            .any(|p| p.issuer == provider.issuer)
        {
            fail(&at, format!("{:?} is listed twice", provider.issuer));
        } else if let Some(issuer) =
            tenant_idp::compile(&spec.id, i, provider, &rules.operator_roles, fail)
        {
            compiled.push(Arc::new(issuer));
        }
    }
    compiled
}

fn effective(
    spec: Spec,
    domains: Vec<String>,
    origin: Origin,
    revision: u64,
    plan: Arc<Plan>,
    fail: &mut dyn FnMut(&str, String),
) -> Tenant {
    let trial_ends_at = match spec
        .trial_ends_at
        .as_deref()
        .map(humantime::parse_rfc3339_weak)
    {
        Some(Ok(time)) => Some(time),
        Some(Err(e)) => {
            fail(".trial_ends_at", format!("not an RFC 3339 time ({e})"));
            None
        }
        None => None,
    };
    if spec.status == Status::Trial && trial_ends_at.is_none() {
        fail(
            ".trial_ends_at",
            "a trial tenant needs trial_ends_at".into(),
        );
    }
    let mut features = plan.features.clone();
    for (feature, on) in &spec.features {
        if *on {
            features.insert(feature.clone());
        } else {
            features.remove(feature);
        }
    }
    let mut limits = plan.limits.clone();
    limits.extend(spec.limits.iter().map(|(k, v)| (k.clone(), *v)));
    let mut rate_limits = plan.rate_limits.clone();
    for (name, limit) in &spec.rate_limits {
        match rate_limits.iter_mut().find(|r| *r.name == **name) {
            Some(r) if *limit > 0 && *limit <= u64::from(u32::MAX) => r.limit = *limit,
            Some(_) => fail(
                ".rate_limits",
                format!("{name}: the limit must be between 1 and 4294967295"),
            ),
            None => fail(
                ".rate_limits",
                format!("the plan has no rate limit {name:?}"),
            ),
        }
    }
    let mut quotas = plan.quotas.clone();
    for (metric, limit) in &spec.quotas {
        match quotas.get_mut(metric) {
            Some(q) => q.limit = *limit,
            None => fail(".quotas", format!("the plan has no quota {metric:?}")),
        }
    }
    let billing_day = spec.billing_day.unwrap_or(1);
    if !(1..=28).contains(&billing_day) {
        fail(
            ".billing_day",
            format!("{billing_day} is not a day from 1 to 28"),
        );
    }
    Tenant {
        headers: tenant_headers(&spec.id, &plan.id, &features, &limits),
        rate_limit_policy: plans::policy_header(&rate_limits),
        id: spec.id.as_str().into(),
        name: spec.name.clone().unwrap_or_else(|| spec.id.clone()),
        plan,
        status: spec.status,
        trial_ends_at,
        features,
        limits,
        rate_limits,
        quotas,
        billing_day,
        domains,
        origin,
        issuers: Vec::new(),
        revision,
        spec: Arc::new(spec),
    }
}

/// `x-tenant-id`, `x-tenant-plan`, `x-tenant-features` and one `x-tenant-limit-<name>` per
/// resource limit. Names and values were validated, so every header is well-formed.
fn tenant_headers(
    id: &str,
    plan: &str,
    features: &BTreeSet<String>,
    limits: &BTreeMap<String, u64>,
) -> Vec<(HeaderName, HeaderValue)> {
    let mut headers = Vec::new();
    let mut push = |name: &str, value: &str| {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_str(value),
        ) {
            headers.push((n, v));
        }
    };
    push("x-tenant-id", id);
    push("x-tenant-plan", plan);
    push(
        "x-tenant-features",
        &features.iter().cloned().collect::<Vec<_>>().join(","),
    );
    for (name, value) in limits {
        push(
            &format!("x-tenant-limit-{}", name.replace('_', "-")),
            &value.to_string(),
        );
    }
    headers
}

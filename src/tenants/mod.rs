//! Tenants and their plans: `tenants.yaml` and `plans.yaml`, parsed, validated against each other
//! and compiled into a [`Directory`] with O(1) lookups by id and by custom domain. Each tenant's
//! effective features and limits (plan plus overrides) and the headers that carry them upstream
//! are computed once, at load.

pub mod plans;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};
use serde::Deserialize;

use crate::config::{Tenancy, yaml};
use crate::error::{Problem, Refusal};

pub use plans::Plan;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenantsFile {
    tenants: Vec<RawTenant>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTenant {
    id: String,
    name: Option<String>,
    #[serde(default)]
    domains: Vec<String>,
    plan: String,
    status: Status,
    trial_ends_at: Option<String>,
    /// `feature: true` grants a feature the plan lacks, `false` withdraws one it has.
    #[serde(default)]
    features: BTreeMap<String, bool>,
    /// Replaces the plan's value of each named resource limit.
    #[serde(default)]
    limits: BTreeMap<String, u64>,
    /// Replaces the limit of each named rate limit of the plan.
    #[serde(default)]
    rate_limits: BTreeMap<String, u64>,
    /// Replaces the limit of each named quota of the plan.
    #[serde(default)]
    quotas: BTreeMap<String, u64>,
    /// Day of the month (1–28) monthly quotas restart on; the 1st when absent.
    billing_day: Option<u8>,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Trial,
    Suspended,
    Archived,
    Pending,
}

#[derive(Debug)]
pub struct Tenant {
    pub id: Arc<str>,
    pub name: String,
    pub plan: Arc<Plan>,
    pub status: Status,
    pub trial_ends_at: Option<SystemTime>,
    pub features: BTreeSet<String>,
    pub limits: BTreeMap<String, u64>,
    /// The plan's rate limits with this tenant's overrides.
    pub rate_limits: Vec<plans::RateLimit>,
    /// The plan's quotas with this tenant's overrides, by metric.
    pub quotas: BTreeMap<String, plans::Quota>,
    /// Day of the month monthly quotas restart on (1–28).
    pub billing_day: u8,
    /// `x-tenant-*` headers for the upstream, built once.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The `RateLimit-Policy` header of its rate limits, built once (`None` without any).
    pub rate_limit_policy: Option<HeaderValue>,
}

impl Tenant {
    /// Whether the tenant may be served now: 403 while suspended or pending, 402 when archived
    /// or when a trial has ended.
    pub(crate) fn standing(&self, now: SystemTime) -> Result<(), Refusal> {
        match self.status {
            Status::Active => Ok(()),
            Status::Trial if self.trial_ends_at.is_some_and(|end| end > now) => Ok(()),
            Status::Trial => Err(Refusal::new(
                Problem::SubscriptionInactive,
                "the tenant's trial has ended",
            )),
            Status::Archived => Err(Refusal::new(
                Problem::SubscriptionInactive,
                "the tenant's subscription is not active",
            )),
            Status::Suspended => Err(Refusal::new(
                Problem::TenantSuspended,
                "the tenant is suspended",
            )),
            Status::Pending => Err(Refusal::new(
                Problem::TenantPending,
                "the tenant is not activated yet",
            )),
        }
    }
}

/// Every tenant and plan of one snapshot.
#[derive(Debug)]
pub struct Directory {
    by_id: HashMap<String, Arc<Tenant>>,
    by_domain: HashMap<String, Arc<Tenant>>,
    pub plans: BTreeMap<String, Arc<Plan>>,
}

impl Directory {
    pub fn get(&self, id: &str) -> Option<&Arc<Tenant>> {
        self.by_id.get(id)
    }

    /// The tenant owning a custom domain (`host` lower-case, without port or trailing dot).
    pub(crate) fn by_domain(&self, host: &str) -> Option<&Arc<Tenant>> {
        self.by_domain.get(host)
    }

    pub fn tenants(&self) -> impl Iterator<Item = &Arc<Tenant>> {
        self.by_id.values()
    }

    /// Loads and cross-validates the plans and tenants files. Errors read
    /// `file: key.path: message (line N)`.
    pub fn load(tenancy: &Tenancy) -> Result<Directory, Vec<String>> {
        // The tenants are checked against the plans that loaded, so one run reports both files.
        let (plans, mut errors) = load_plans(&tenancy.plans_file);
        let tenants = load_tenants(&tenancy.tenants_file, plans);
        match (tenants, errors.is_empty()) {
            (Ok(directory), true) => Ok(directory),
            (Ok(_), false) => Err(errors),
            (Err(more), _) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }
}

/// The 1-based line of the first occurrence of `needle`, for errors found after parsing.
fn line_of(text: &str, needle: &str) -> String {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| format!(" (line {})", i + 1))
        .unwrap_or_default()
}

/// The plans that loaded, and what was wrong with the file.
fn load_plans(path: &Path) -> (BTreeMap<String, Arc<Plan>>, Vec<String>) {
    let (text, raw): (String, plans::RawPlansFile) = match yaml::load(path) {
        Ok(loaded) => loaded,
        Err(errors) => return (BTreeMap::new(), errors),
    };
    let file = path.display();
    let mut errors = Vec::new();
    let mut plans = BTreeMap::new();
    for (id, raw_plan) in raw.plans {
        let mut plan_errors = Vec::new();
        let plan = plans::plan(&id, raw_plan, &mut plan_errors);
        let line = line_of(&text, &format!("{id}:"));
        errors.extend(
            plan_errors
                .into_iter()
                .map(|e| format!("{file}: {e}{line}")),
        );
        plans.insert(id, Arc::new(plan));
    }
    if plans.is_empty() {
        errors.push(format!("{file}: plans: at least one plan is needed"));
    }
    (plans, errors)
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

fn load_tenants(path: &Path, plans: BTreeMap<String, Arc<Plan>>) -> Result<Directory, Vec<String>> {
    let (text, raw): (String, RawTenantsFile) = yaml::load(path)?;
    let file = path.display();
    let mut errors = Vec::new();
    let mut by_id = HashMap::new();
    let mut by_domain = HashMap::new();
    // A feature exists when a plan has it or a tenant is given it; withdrawing any other is a
    // typo that would change nothing.
    let granted: BTreeSet<&str> = plans
        .values()
        .flat_map(|p| p.features.iter().map(String::as_str))
        .chain(raw.tenants.iter().flat_map(|t| {
            t.features
                .iter()
                .filter(|(_, on)| **on)
                .map(|(f, _)| f.as_str())
        }))
        .collect();
    let mut unknown: Vec<(usize, String)> = Vec::new();
    for (i, t) in raw.tenants.iter().enumerate() {
        for (feature, _) in t
            .features
            .iter()
            .filter(|(f, on)| !**on && !granted.contains(f.as_str()))
        {
            unknown.push((i, feature.clone()));
        }
    }
    let known = granted.iter().copied().collect::<Vec<_>>().join(", ");
    for (i, t) in raw.tenants.into_iter().enumerate() {
        // Looked up only for an error: 10,000 tenants load in linear time.
        let mut fail = |key: &str, msg: String| {
            let line = line_of(&text, &format!("id: {}", t.id));
            errors.push(format!("{file}: tenants[{i}] ({}){key}: {msg}{line}", t.id));
        };
        for (_, feature) in unknown.iter().filter(|(at, _)| *at == i) {
            fail(
                &format!(".features.{feature}"),
                format!(
                    "no plan or tenant has the feature {feature:?}, so withdrawing it changes nothing (known: {known})"
                ),
            );
        }
        if !valid_tenant_id(&t.id) {
            fail(
                ".id",
                "must be a DNS label: a-z, 0-9 and '-', at most 63 characters".into(),
            );
        }
        let Some(plan) = plans.get(&t.plan).cloned() else {
            let known: Vec<&str> = plans.keys().map(String::as_str).collect();
            fail(
                ".plan",
                format!("unknown plan {:?} (known: {})", t.plan, known.join(", ")),
            );
            continue;
        };
        let tenant = Arc::new(effective(&t, plan, &mut fail));
        for domain in &t.domains {
            let host = domain.trim_end_matches('.').to_ascii_lowercase();
            if host.is_empty() || host.contains([':', '/', ' ']) {
                fail(".domains", format!("{domain:?} is not a host name"));
            } else if let Some(other) = by_domain.insert(host, tenant.clone()) {
                fail(
                    ".domains",
                    format!("{domain:?} already belongs to {}", other.id),
                );
            }
        }
        if by_id.insert(t.id.clone(), tenant).is_some() {
            fail(".id", "is used twice".into());
        }
    }
    if errors.is_empty() {
        Ok(Directory {
            by_id,
            by_domain,
            plans,
        })
    } else {
        Err(errors)
    }
}
/// A tenant as it is served: its plan with the tenant's overrides (features, limits, rate
/// limits, quotas), its trial end and billing day, and the headers built once. Problems go to
/// `fail` as (key, message).
fn effective(t: &RawTenant, plan: Arc<Plan>, fail: &mut dyn FnMut(&str, String)) -> Tenant {
    let trial_ends_at = match t
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
    if t.status == Status::Trial && trial_ends_at.is_none() {
        fail(
            ".trial_ends_at",
            "a trial tenant needs trial_ends_at".into(),
        );
    }
    let mut features = plan.features.clone();
    for (feature, on) in &t.features {
        if *on {
            features.insert(feature.clone());
        } else {
            features.remove(feature);
        }
    }
    let mut limits = plan.limits.clone();
    limits.extend(t.limits.iter().map(|(k, v)| (k.clone(), *v)));
    let mut rate_limits = plan.rate_limits.clone();
    for (name, limit) in &t.rate_limits {
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
    for (metric, limit) in &t.quotas {
        match quotas.get_mut(metric) {
            Some(q) => q.limit = *limit,
            None => fail(".quotas", format!("the plan has no quota {metric:?}")),
        }
    }
    let billing_day = t.billing_day.unwrap_or(1);
    if !(1..=28).contains(&billing_day) {
        fail(
            ".billing_day",
            format!("{billing_day} is not a day from 1 to 28"),
        );
    }
    Tenant {
        headers: tenant_headers(&t.id, &plan.id, &features, &limits),
        rate_limit_policy: plans::policy_header(&rate_limits),
        id: t.id.as_str().into(),
        name: t.name.clone().unwrap_or_else(|| t.id.clone()),
        plan,
        status: t.status,
        trial_ends_at,
        features,
        limits,
        rate_limits,
        quotas,
        billing_day,
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

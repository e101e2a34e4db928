//! One tenant as it is served, and where it is defined.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};

use super::plans::{self, Plan};
use super::spec::{Spec, Status};
use crate::error::{Problem, Refusal};
use crate::identity::TenantIssuer;

/// Where a tenant is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `tenants.yaml`: changed by editing the file (GitOps); read-only through the admin API.
    File,
    /// The tenant store (`tenancy.store`): changed through the admin API.
    Store,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::File => "file",
            Origin::Store => "store",
        }
    }
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
    /// Its custom domains, lower-case, without a trailing dot.
    pub domains: Vec<String>,
    pub origin: Origin,
    /// Its own identity providers, compiled.
    pub issuers: Vec<Arc<TenantIssuer>>,
    /// The store's revision of its last change (0 for a file tenant): decisions cached for an
    /// earlier revision are never served for this one.
    pub revision: u64,
    /// What it was written as.
    pub spec: Arc<Spec>,
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

//! A tenant as it is written: one entry of `tenants.yaml`, or the body of the admin API's
//! `PUT /tenants/{id}`. The same type is read from both and written back by the API, so a tenant
//! reads the same wherever it came from.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::identity::IdentityProvider;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<String>,
    pub plan: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trial_ends_at: Option<String>,
    /// `feature: true` grants a feature the plan lacks, `false` withdraws one it has.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub features: BTreeMap<String, bool>,
    /// Replaces the plan's value of each named resource limit.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub limits: BTreeMap<String, u64>,
    /// Replaces the limit of each named rate limit of the plan.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub rate_limits: BTreeMap<String, u64>,
    /// Replaces the limit of each named quota of the plan.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub quotas: BTreeMap<String, u64>,
    /// Day of the month (1–28) monthly quotas restart on; the 1st when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billing_day: Option<u8>,
    /// The tenant's own OIDC issuers, whose tokens act on this tenant only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub identity_providers: Vec<IdentityProvider>,
    /// Its own Cedar policy files, by name (a tenant of the store; written through
    /// `/tenants/{id}/policies/{name}`, shown by name only).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub policies: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize, Serialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Active,
    Trial,
    Suspended,
    Archived,
    Pending,
}

impl Spec {
    /// Its custom domains as served: lower-case, without a trailing dot.
    pub fn hosts(&self) -> Vec<String> {
        self.domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect()
    }
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Active => "active",
            Status::Trial => "trial",
            Status::Suspended => "suspended",
            Status::Archived => "archived",
            Status::Pending => "pending",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct File {
    pub tenants: Vec<Spec>,
}

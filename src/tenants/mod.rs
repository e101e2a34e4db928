//! Tenants and their plans: `tenants.yaml` and `plans.yaml`, parsed, validated against each other
//! and compiled into a [`Directory`] with O(1) lookups by id and by custom domain. Each tenant's
//! effective features and limits (plan plus overrides) and the headers that carry them upstream
//! are computed once, at load.

mod derive;
mod load;
pub mod plans;
pub mod spec;
pub mod store;
mod tenant;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::config::Tenancy;
use crate::identity::{TenantIssuer, TenantIssuers};

pub use derive::{IssuerRules, valid_policy_name};
pub use plans::Plan;
pub use spec::{Spec, Status};
pub use tenant::{Origin, Tenant};

/// Every tenant and plan of one snapshot. Cloning is O(1) and one tenant's change is O(log n)
/// (persistent maps), so a change made through the admin API costs the same with 100 tenants as
/// with 100,000.
#[derive(Debug, Clone)]
pub struct Directory {
    by_id: imbl::HashMap<Arc<str>, Arc<Tenant>>,
    by_domain: imbl::HashMap<Arc<str>, Arc<Tenant>>,
    /// The tenant each tenant-owned OIDC issuer belongs to.
    by_issuer: imbl::HashMap<Arc<str>, Arc<Tenant>>,
    pub plans: Arc<BTreeMap<String, Arc<Plan>>>,
    /// Every feature a plan or a file tenant grants.
    granted: Arc<BTreeSet<String>>,
    issuer_rules: Arc<IssuerRules>,
}

impl TenantIssuers for Directory {
    fn by_issuer(&self, iss: &str) -> Option<(&Arc<str>, u64, &TenantIssuer)> {
        let tenant = self.by_issuer.get(iss)?;
        let issuer = tenant.issuers.iter().find(|i| i.issuer() == iss)?;
        Some((&tenant.id, tenant.revision, issuer))
    }

    fn revision(&self, id: &str) -> Option<u64> {
        self.by_id.get(id).map(|t| t.revision)
    }

    fn any(&self) -> bool {
        !self.by_issuer.is_empty()
    }
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

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// Loads and cross-validates the plans and tenants files. Errors read
    /// `file: key.path: message (line N)`.
    /// `identity` is what tenants' identity providers are held to.
    pub fn load(tenancy: &Tenancy, identity: IssuerRules) -> Result<Directory, Vec<String>> {
        // The tenants are checked against the plans that loaded, so one run reports both files.
        let (plans, mut errors) = load::plans(&tenancy.plans_file);
        let tenants = load::tenants(&tenancy.tenants_file, plans, &identity);
        match (tenants, errors.is_empty()) {
            (Ok(loaded), true) => Ok(Directory {
                by_id: loaded.by_id,
                by_domain: loaded.by_domain,
                by_issuer: loaded.by_issuer,
                plans: Arc::new(loaded.plans),
                granted: Arc::new(loaded.granted),
                issuer_rules: Arc::new(identity),
            }),
            (Ok(_), false) => Err(errors),
            (Err(more), _) => {
                errors.extend(more);
                Err(errors)
            }
        }
    }

    /// This directory with the tenants of the store (each with its revision). The files come
    /// first: a stored tenant that does not fit them (an id of the file, a plan it no longer
    /// has, a domain a file tenant owns) is not served, and comes back in the list of what was
    /// refused, as `tenant <id>: key.path: message`.
    pub fn with_stored(&self, stored: &[(Spec, u64)]) -> (Directory, Vec<String>) {
        let mut directory = self.clone();
        let mut refused = Vec::new();
        for (spec, revision) in stored {
            let id = spec.id.clone();
            match directory.admit(spec.clone(), *revision) {
                Ok(tenant) => directory = directory.with(tenant),
                Err(e) => refused.extend(e.into_iter().map(|e| format!("tenant {id}: {e}"))),
            }
        }
        (directory, refused)
    }

    /// A tenant of the store, checked against this directory: its plan, features and overrides
    /// as in the file, its domains unowned by any other tenant, and its id not a file tenant's.
    /// Errors read `key.path: message`, the messages `check` gives.
    pub fn admit(&self, spec: Spec, revision: u64) -> Result<Arc<Tenant>, Vec<String>> {
        let mut errors = Vec::new();
        let mut fail = |key: &str, msg: String| {
            errors.push(format!("{}: {msg}", key.trim_start_matches('.')));
        };
        if self.get(&spec.id).is_some_and(|t| t.origin == Origin::File) {
            fail(
                ".id",
                format!(
                    "tenant {} is defined in the tenants file; change it there",
                    spec.id
                ),
            );
        }
        let rules = derive::Rules {
            plans: &self.plans,
            granted: &self.granted,
            identity: &self.issuer_rules,
        };
        let tenant = derive::derive(spec, Origin::Store, revision, &rules, &mut fail);
        if let Some(tenant) = &tenant {
            for domain in &tenant.domains {
                if let Some(owner) = self.by_domain(domain).filter(|o| o.id != tenant.id) {
                    fail(
                        ".domains",
                        format!("{domain:?} already belongs to {}", owner.id),
                    );
                }
            }
            for issuer in &tenant.issuers {
                if let Some(owner) = self
                    .by_issuer
                    .get(issuer.issuer())
                    .filter(|o| o.id != tenant.id)
                {
                    fail(
                        ".identity_providers",
                        format!("the issuer {:?} is already {}'s", issuer.issuer(), owner.id),
                    );
                }
            }
        }
        match tenant {
            Some(tenant) if errors.is_empty() => Ok(Arc::new(tenant)),
            _ => Err(errors),
        }
    }

    /// This directory with `tenant` added or replacing the one of its id (and its domains).
    #[must_use]
    pub fn with(&self, tenant: Arc<Tenant>) -> Directory {
        let mut next = self.without(&tenant.id);
        for domain in &tenant.domains {
            next.by_domain
                .insert(domain.as_str().into(), tenant.clone());
        }
        for issuer in &tenant.issuers {
            next.by_issuer
                .insert(issuer.issuer().into(), tenant.clone());
        }
        next.by_id.insert(tenant.id.clone(), tenant);
        next
    }

    /// This directory without the tenant `id` (unchanged if there is none).
    #[must_use]
    pub fn without(&self, id: &str) -> Directory {
        let mut next = self.clone();
        if let Some(old) = next.by_id.remove(id) {
            for domain in &old.domains {
                next.by_domain.remove(domain.as_str());
            }
            for issuer in &old.issuers {
                next.by_issuer.remove(issuer.issuer());
            }
        }
        next
    }
}

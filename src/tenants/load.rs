//! `plans.yaml` and `tenants.yaml` read into a [`Directory`]: every error of both files in one
//! run, each as `file: key.path: message (line N)`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;

use crate::config::yaml;

use super::derive::{self, IssuerRules, Rules};
use super::plans::{self, Plan};
use super::spec::File;
use super::tenant::{Origin, Tenant};

/// The tenants file's tenants, by id and by custom domain, with the plans and every granted
/// feature.
pub(super) struct Loaded {
    pub by_id: imbl::HashMap<Arc<str>, Arc<Tenant>>,
    pub by_domain: imbl::HashMap<Arc<str>, Arc<Tenant>>,
    pub by_issuer: imbl::HashMap<Arc<str>, Arc<Tenant>>,
    pub plans: BTreeMap<String, Arc<Plan>>,
    pub granted: BTreeSet<String>,
}

/// The 1-based line of the first occurrence of `needle`, for errors found after parsing.
fn line_of(text: &str, needle: &str) -> String {
    text.lines()
        .position(|l| l.contains(needle))
        .map(|i| format!(" (line {})", i + 1))
        .unwrap_or_default()
}

/// The plans that loaded, and what was wrong with the file.
pub(super) fn plans(path: &Path) -> (BTreeMap<String, Arc<Plan>>, Vec<String>) {
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

pub(super) fn tenants(
    path: &Path,
    plans: BTreeMap<String, Arc<Plan>>,
    identity: &IssuerRules,
) -> Result<Loaded, Vec<String>> {
    let (text, raw): (String, File) = yaml::load(path)?;
    let file = path.display();
    let mut errors = Vec::new();
    let granted: BTreeSet<String> = plans
        .values()
        .flat_map(|p| p.features.iter().cloned())
        .chain(raw.tenants.iter().flat_map(|t| {
            t.features
                .iter()
                .filter(|(_, on)| **on)
                .map(|(f, _)| f.clone())
        }))
        .collect();
    let mut by_id = imbl::HashMap::new();
    let mut by_domain: imbl::HashMap<Arc<str>, Arc<Tenant>> = imbl::HashMap::new();
    let mut by_issuer: imbl::HashMap<Arc<str>, Arc<Tenant>> = imbl::HashMap::new();
    let rules = Rules {
        plans: &plans,
        granted: &granted,
        identity,
    };
    for (i, spec) in raw.tenants.into_iter().enumerate() {
        let id = spec.id.clone();
        // Looked up only for an error: 10,000 tenants load in linear time.
        let mut fail = |key: &str, msg: String| {
            let line = line_of(&text, &format!("id: {id}"));
            errors.push(format!("{file}: tenants[{i}] ({id}){key}: {msg}{line}"));
        };
        let Some(tenant) = derive::derive(spec, Origin::File, 0, &rules, &mut fail) else {
            continue;
        };
        let tenant = Arc::new(tenant);
        for domain in &tenant.domains {
            if let Some(other) = by_domain.insert(domain.as_str().into(), tenant.clone()) {
                fail(
                    ".domains",
                    format!("{domain:?} already belongs to {}", other.id),
                );
            }
        }
        for issuer in &tenant.issuers {
            if let Some(other) = by_issuer.insert(issuer.issuer().into(), tenant.clone()) {
                fail(
                    ".identity_providers",
                    format!("the issuer {:?} is already {}'s", issuer.issuer(), other.id),
                );
            }
        }
        if by_id.insert(tenant.id.clone(), tenant).is_some() {
            fail(".id", "is used twice".into());
        }
    }
    if errors.is_empty() {
        Ok(Loaded {
            by_id,
            by_domain,
            by_issuer,
            plans,
            granted,
        })
    } else {
        Err(errors)
    }
}

//! A tenant's own policy files written through the admin API (`/tenants/{id}/policies/{name}`),
//! kept with the tenant in the store. They are parsed and validated against the schema with the
//! rules and messages of the files (`check`), each placed at `/tenants/{id}/policies/{name}:line`,
//! and make that tenant's set with the global policies and its policy directory's. Only this
//! tenant's set is built: the cost of a change does not grow with the number of tenants.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use cedar_policy::{PolicySet, Validator};

use super::compile::{Compiler, Sources};
use super::policies::{PolicyStore, parse};
use crate::tenants::Tenant;

/// A tenant's set with its stored policies.
pub(super) struct OwnSet {
    /// The set's name where narrowed sets are shared: the tenant and the revision it was
    /// written at (ids are DNS labels, so this never names another set).
    pub key: String,
    pub set: PolicySet,
    /// Its stored policies' `@id` → `/tenants/{id}/policies/{name}:line`.
    pub locations: HashMap<String, String>,
}

/// The set of `tenant`'s stored policies, or `None` when it has none; every error `check` would
/// give for the same files.
pub(super) fn compile(store: &PolicyStore, tenant: &Tenant) -> Result<Option<OwnSet>, Vec<String>> {
    if tenant.spec.policies.is_empty() {
        return Ok(None);
    }
    let (_, base) = store.set_for(&tenant.id);
    let mut sources = Sources::default();
    let mut errors = Vec::new();
    let mut own = Vec::new();
    for (name, text) in &tenant.spec.policies {
        let file = format!("/tenants/{}/policies/{name}", tenant.id);
        let text: Arc<str> = Arc::from(text.as_str());
        own.extend(parse(&file, &text, &mut sources, &mut errors));
    }
    // An id names one policy of the tenant's set, as it does across the files.
    for policy in &own {
        if base.policy(policy.id()).is_some() {
            let id = policy.id().to_string();
            let at = sources.locations.get(&id).map_or("", String::as_str);
            let previous = store.location(&id).unwrap_or("the policies directory");
            errors.push(format!(
                "{at}: policy id {id:?} is already used at {previous}"
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let dir = format!("/tenants/{}/policies", tenant.id);
    let mut compiler = Compiler {
        validator: Validator::new(store.schema.clone()),
        sources: &sources,
        dir: Path::new(&dir),
        errors: &mut errors,
    };
    // Only the stored policies are validated: the others were when their files were loaded,
    // and validation is per policy.
    compiler.compile(own.clone(), &format!("policies of tenant {}", tenant.id));
    if !errors.is_empty() {
        return Err(errors);
    }
    let set = PolicySet::from_policies(base.policies().cloned().chain(own))
        .map_err(|e| vec![format!("{dir}: {e}")])?;
    Ok(Some(OwnSet {
        key: format!("{}@{}", tenant.id, tenant.revision),
        set,
        locations: sources.locations,
    }))
}

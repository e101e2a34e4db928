//! Authorization: the route table and the Cedar policy sets of one snapshot, with a decision cache
//! that belongs to the snapshot (a reload never serves an old decision) and is keyed by every
//! input of a decision (a changed role, address or hour is a different entry).

mod compile;
pub mod decide;
mod features;
pub mod policies;
pub mod routes;
pub mod scope;
mod stored;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::Arc;

use cedar_policy::{Entities, Entity, EntityTypeName, PolicySet};

use crate::config::{Authorization, yaml};
use crate::tenants::{Directory, Tenant};

use decide::{Decision, Inputs, Types};
use policies::PolicyStore;
use routes::Routes;
use scope::{Caller, Narrowing};
use stored::OwnSet;

/// Cloning is cheap (shared parts, a persistent per-tenant map), so that one tenant's change
/// makes a new `Authz` in time flat in the number of tenants.
#[derive(Clone)]
pub struct Authz {
    pub routes: Arc<Routes>,
    pub policies: Arc<PolicyStore>,
    /// `authorization.shadow_policies_dir`'s sets, decided beside the enforced ones.
    shadow: Option<Arc<PolicyStore>>,
    types: Arc<Types>,
    /// The schema's action entities when it groups actions (`action in ...`), else none.
    hierarchy: Arc<[Entity]>,
    /// Per tenant: its entities, and its set when it has stored policies.
    tenants: imbl::HashMap<Arc<str>, Arc<TenantAuthz>>,
    narrowing: Arc<Narrowing>,
    /// Shared by the `Authz` of every tenant change of one load; keyed by the tenant's revision.
    cache: Option<moka::sync::Cache<String, Arc<Decision>>>,
    /// What is allowed but probably a mistake (a feature a policy reads that nothing has).
    pub warnings: Arc<[String]>,
}

/// What one tenant's decisions are made with.
struct TenantAuthz {
    /// Its entity, and the action hierarchy if the schema has one.
    entities: Entities,
    /// Its set, when it has policies of the store.
    own: Option<OwnSet>,
}

/// A tenant's entity, with the action hierarchy, and its set of stored policies.
fn tenant_authz(
    types: &Types,
    hierarchy: &[Entity],
    policies: &PolicyStore,
    tenant: &Tenant,
) -> Result<TenantAuthz, Vec<String>> {
    let entity = decide::tenant_entity(types, tenant).map_err(|e| vec![e])?;
    let all = hierarchy.iter().cloned().chain([entity]);
    let entities = Entities::from_entities(all, None)
        .map_err(|e| vec![format!("tenant {}: {e}", tenant.id)])?;
    let own = stored::compile(policies, tenant)?;
    Ok(TenantAuthz { entities, own })
}

fn type_name(name: &str) -> Result<EntityTypeName, String> {
    EntityTypeName::from_str(name).map_err(|e| format!("entity type {name:?}: {e}"))
}

/// Checks the routes and the schema against each other: every route's action and resource type
/// must be in the schema, and the schema must declare Tollgate's own entity types. Returns the
/// resource types the routes use, parsed.
fn check_schema(
    config: &Authorization,
    routes: &Routes,
    schema: &cedar_policy::Schema,
    errors: &mut Vec<String>,
) -> HashMap<String, EntityTypeName> {
    // Sorted, so that an error reads the same every run.
    let mut known_types: Vec<String> = schema.entity_types().map(|t| t.to_string()).collect();
    known_types.sort();
    let mut known_actions: Vec<String> = schema
        .actions()
        .map(|a| a.id().unescaped().to_string())
        .collect();
    known_actions.sort();
    let file = config.routes_file.display();
    let mut resources = HashMap::new();
    for (i, route) in routes.all().iter().enumerate() {
        let at = format!("{file}: routes[{i}] ({})", route.id);
        let line = route
            .line
            .map(|l| format!(" (line {l})"))
            .unwrap_or_default();
        if !known_actions.iter().any(|a| **a == *route.action) {
            errors.push(format!(
                "{at}.action: {:?} is not an action of the schema (known: {}){line}",
                route.action,
                known_actions.join(", ")
            ));
        }
        if !known_types.iter().any(|t| **t == *route.resource_type) {
            errors.push(format!(
                "{at}.resource.type: {:?} is not an entity type of the schema (known: {}){line}",
                route.resource_type,
                known_types.join(", ")
            ));
        } else if let Ok(name) = type_name(&route.resource_type) {
            resources.insert(route.resource_type.to_string(), name);
        }
    }
    for required in ["User", "ApiKey", "Anonymous", "Role", "Tenant"] {
        if !known_types.iter().any(|t| t == required) {
            errors.push(format!(
                "{}: the schema must declare entity type {required}",
                config.policies_dir.display()
            ));
        }
    }
    resources
}

impl Authz {
    /// Loads routes and policies; policy sets unchanged since `previous` are taken from it.
    pub fn load(
        config: &Authorization,
        directory: &Directory,
        previous: Option<&Authz>,
    ) -> Result<Authz, Vec<String>> {
        Authz::load_in(config, directory, previous, false)
    }

    /// [`Authz::load`]; with `any_tenant_dir`, a `tenants/<id>/` folder need not name a tenant
    /// of `directory` (a policy test's own fixture tenants).
    pub(crate) fn load_in(
        config: &Authorization,
        directory: &Directory,
        previous: Option<&Authz>,
        any_tenant_dir: bool,
    ) -> Result<Authz, Vec<String>> {
        let (routes, policies) = yaml::both(
            Routes::load(&config.routes_file),
            PolicyStore::load(
                &config.policies_dir,
                |id| any_tenant_dir || directory.get(id).is_some(),
                previous.map(|p| &*p.policies),
            ),
        )?;
        let shadow = match &config.shadow_policies_dir {
            Some(dir) => Some(Arc::new(PolicyStore::load(
                dir,
                |id| any_tenant_dir || directory.get(id).is_some(),
                previous.and_then(|p| p.shadow.as_deref()),
            )?)),
            None => None,
        };
        let schema = &policies.schema;
        let mut errors = Vec::new();
        let resources = check_schema(config, &routes, schema, &mut errors);
        let known: std::collections::BTreeSet<&str> = directory
            .plans
            .values()
            .flat_map(|p| p.features.iter())
            .chain(directory.tenants().flat_map(|t| t.features.iter()))
            .map(String::as_str)
            .collect();
        // A warning, not an error: a shared policy pack may gate a feature this deployment's
        // plans do not sell (the gate then always holds, as meant).
        let mut warnings = Vec::new();
        features::check(
            policies.policies(),
            &known,
            |id| policies.location(id).map(str::to_string),
            &mut warnings,
        );
        let types = Types {
            user: type_name("User").map_err(|e| vec![e])?,
            api_key: type_name("ApiKey").map_err(|e| vec![e])?,
            anonymous: type_name("Anonymous").map_err(|e| vec![e])?,
            role: type_name("Role").map_err(|e| vec![e])?,
            tenant: type_name("Tenant").map_err(|e| vec![e])?,
            action: type_name("Action").map_err(|e| vec![e])?,
            resources,
        };
        let actions = schema.action_entities().unwrap_or_else(|e| {
            errors.push(format!("schema actions: {e}"));
            Entities::empty()
        });
        // Action entities matter only to `action in <group>`; without groups they are left out.
        let grouped = actions.iter().any(|a| {
            actions
                .ancestors(&a.uid())
                .is_some_and(|mut up| up.next().is_some())
        });
        let hierarchy: Arc<[Entity]> = if grouped {
            actions.iter().cloned().collect()
        } else {
            Arc::new([])
        };
        let mut tenants = imbl::HashMap::new();
        for tenant in directory.tenants() {
            match tenant_authz(&types, &hierarchy, &policies, tenant) {
                Ok(base) => {
                    tenants.insert(tenant.id.clone(), Arc::new(base));
                }
                Err(e) => errors.extend(e),
            }
        }
        let narrowing = Narrowing::new(actions, types.role.clone(), types.tenant.clone());
        if !errors.is_empty() {
            return Err(errors);
        }
        let cache = (config.decision_cache > 0).then(|| {
            moka::sync::Cache::builder()
                .max_capacity(config.decision_cache)
                .weigher(|key: &String, decision: &Arc<Decision>| decision.weight(key.len()))
                .build()
        });
        Ok(Authz {
            routes: Arc::new(routes),
            policies: Arc::new(policies),
            shadow,
            types: Arc::new(types),
            hierarchy,
            tenants,
            narrowing: Arc::new(narrowing),
            cache,
            warnings: warnings.into(),
        })
    }

    /// This `Authz` with `tenant`'s entity and stored policies added or replaced; nothing else
    /// is rebuilt. `Err`: every reason the tenant cannot be served, as `check` words it.
    pub(crate) fn with_tenant(&self, tenant: &Tenant) -> Result<Authz, Vec<String>> {
        let base = tenant_authz(&self.types, &self.hierarchy, &self.policies, tenant)?;
        let mut next = self.clone();
        next.tenants.insert(tenant.id.clone(), Arc::new(base));
        Ok(next)
    }

    /// This `Authz` without the tenant `id`.
    pub(crate) fn without_tenant(&self, id: &str) -> Authz {
        let mut next = self.clone();
        next.tenants.remove(id);
        next
    }

    /// The errors of the routes and policies alone, when the tenants could not be loaded (so that
    /// `check` reports them in the same run); tenant folders are not held to a directory.
    pub(crate) fn check_alone(config: &Authorization) -> Vec<String> {
        let loaded = yaml::both(
            Routes::load(&config.routes_file),
            PolicyStore::load(&config.policies_dir, |_| true, None),
        );
        match loaded {
            Ok((routes, policies)) => {
                let mut errors = Vec::new();
                check_schema(config, &routes, &policies.schema, &mut errors);
                errors
            }
            Err(errors) => errors,
        }
    }

    /// The set a tenant's requests are evaluated against, and its name among the sets: its
    /// stored policies' set, its policy directory's, or the global one.
    pub(crate) fn set_for<'a>(&'a self, tenant: &'a str) -> (&'a str, &'a PolicySet) {
        match self.tenants.get(tenant).and_then(|t| t.own.as_ref()) {
            Some(own) => (&own.key, &own.set),
            None => self.policies.set_for(tenant),
        }
    }

    /// Where a policy of `tenant`'s set is written: `file:line`, or
    /// `/tenants/{id}/policies/{name}:line` for a stored one.
    pub fn location(&self, tenant: &str, id: &str) -> Option<&str> {
        self.tenants
            .get(tenant)
            .and_then(|t| t.own.as_ref())
            .and_then(|own| own.locations.get(id))
            .map(String::as_str)
            .or_else(|| self.policies.location(id))
    }

    /// Decides a request; the flag says whether the decision came from the cache.
    pub fn decide(&self, inputs: &Inputs<'_>) -> (Arc<Decision>, bool) {
        self.decide_with(None, inputs)
    }

    /// The shadow set's decision of the same request, when there is a shadow set: recorded and
    /// counted, never the answer.
    pub fn shadow_decide(&self, inputs: &Inputs<'_>) -> Option<Arc<Decision>> {
        let shadow = self.shadow.as_deref()?;
        Some(self.decide_with(Some(shadow), inputs).0)
    }

    /// A decision by the tenant's enforced set, or by its set in `shadow`.
    fn decide_with(
        &self,
        shadow: Option<&PolicyStore>,
        inputs: &Inputs<'_>,
    ) -> (Arc<Decision>, bool) {
        let key = self.cache.as_ref().map(|_| match shadow {
            Some(_) => format!("shadow\u{1e}{}", inputs.cache_key()),
            None => inputs.cache_key(),
        });
        if let (Some(cache), Some(key)) = (&self.cache, &key)
            && let Some(hit) = cache.get(key)
        {
            return (hit, true);
        }
        let decision = match self.tenants.get(&*inputs.tenant.id) {
            Some(base) => {
                let p = inputs.principal;
                let caller = Caller {
                    kind: self.types.principal(p.method),
                    roles: &p.roles,
                    tenant: p.tenant.as_deref(),
                };
                let id = &inputs.tenant.id;
                let (set_key, set): (std::borrow::Cow<'_, str>, &PolicySet) =
                    match (shadow, &base.own) {
                        (Some(store), _) => {
                            let (name, set) = store.set_for(id);
                            (format!("shadow:{name}").into(), set)
                        }
                        (None, Some(own)) => (own.key.as_str().into(), &own.set),
                        (None, None) => {
                            let (name, set) = self.policies.set_for(id);
                            (name.into(), set)
                        }
                    };
                let action = self.types.action(inputs.action);
                let narrowed = self.narrowing.narrow(&set_key, set, &action, &caller);
                Arc::new(decide::evaluate(
                    &self.types,
                    &base.entities,
                    &narrowed,
                    inputs,
                ))
            }
            None => Arc::new(Decision {
                allowed: false,
                policies: Vec::new(),
                errors: vec![format!("tenant {} has no entity", inputs.tenant.id)],
            }),
        };
        if let (Some(cache), Some(key)) = (&self.cache, key) {
            cache.insert(key, decision.clone());
        }
        (decision, false)
    }
}

//! One authorization decision: entities and context are built from the tenant, the principal and
//! the route, then the tenant's policy set is evaluated. Fail-closed: any error (building the
//! request, or evaluating any policy, a `forbid` included) is a deny that carries the error.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use cedar_policy::{
    Authorizer, Context, Decision as CedarDecision, Entities, Entity, EntityId, EntityTypeName,
    EntityUid, Request, RestrictedExpression,
};

use crate::identity::{AuthMethod, Principal};

use super::scope::Narrowed;
use crate::tenants::Tenant;

/// What was decided and why.
#[derive(Debug, Clone)]
pub struct Decision {
    pub allowed: bool,
    /// The determining policies: the permits that allowed, or the forbids that denied.
    pub policies: Vec<String>,
    /// Evaluation errors; any makes the decision a deny.
    pub errors: Vec<String>,
}

impl Decision {
    /// About how many bytes a cached decision takes, with its key of `key` bytes, for the
    /// decision cache's budget.
    pub fn weight(&self, key: usize) -> u32 {
        let names: usize = self
            .policies
            .iter()
            .chain(&self.errors)
            .map(|s| s.len() + 48)
            .sum();
        let bytes =
            crate::identity::principal::ENTRY_OVERHEAD + key + size_of::<Decision>() + names;
        u32::try_from(bytes).unwrap_or(u32::MAX)
    }

    fn error(message: String) -> Self {
        Decision {
            allowed: false,
            policies: Vec::new(),
            errors: vec![message],
        }
    }
}

/// Everything a decision depends on.
pub struct Inputs<'a> {
    pub tenant: &'a Tenant,
    pub principal: &'a Principal,
    pub action: &'a str,
    pub resource_type: &'a str,
    pub resource_id: &'a str,
    pub client_ip: IpAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub now: SystemTime,
}

/// UTC hour (0–23) and ISO weekday (1 = Monday … 7 = Sunday).
pub(crate) fn hour_and_weekday(now: SystemTime) -> (i64, i64) {
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let hour = (secs / 3600) % 24;
    // 1970-01-01 was a Thursday (ISO 4).
    let weekday = ((secs / 86_400) + 3) % 7 + 1;
    (
        i64::try_from(hour).unwrap_or(0),
        i64::try_from(weekday).unwrap_or(1),
    )
}

impl<'a> Inputs<'a> {
    /// Every input joined: the decision cache key.
    pub(crate) fn cache_key(&self) -> String {
        let (hour, weekday) = hour_and_weekday(self.now);
        let p = self.principal;
        [
            &*self.tenant.id,
            &self.tenant.revision.to_string(),
            p.method.as_str(),
            &p.id,
            p.tenant.as_deref().unwrap_or(""),
            &p.roles.join(","),
            &p.scopes.join(" "),
            if p.mfa { "mfa" } else { "" },
            self.action,
            self.resource_type,
            self.resource_id,
            &self.client_ip.to_string(),
            self.method,
            self.path,
            &hour.to_string(),
            &weekday.to_string(),
        ]
        .join("\u{1f}")
    }
}

/// Entity type names parsed once.
pub(crate) struct Types {
    pub user: EntityTypeName,
    pub api_key: EntityTypeName,
    pub anonymous: EntityTypeName,
    pub role: EntityTypeName,
    pub tenant: EntityTypeName,
    pub action: EntityTypeName,
    pub resources: HashMap<String, EntityTypeName>,
}

fn uid(kind: &EntityTypeName, id: &str) -> EntityUid {
    EntityUid::from_type_name_and_id(kind.clone(), EntityId::new(id))
}

fn strings(items: impl IntoIterator<Item = impl Into<String>>) -> RestrictedExpression {
    RestrictedExpression::new_set(
        items
            .into_iter()
            .map(|s| RestrictedExpression::new_string(s.into())),
    )
}

/// The tenant as an entity, with the attributes policies may read.
pub(crate) fn tenant_entity(types: &Types, tenant: &Tenant) -> Result<Entity, String> {
    let attrs = HashMap::from([
        (
            "plan".to_string(),
            RestrictedExpression::new_string(tenant.plan.id.to_string()),
        ),
        (
            "features".to_string(),
            strings(tenant.features.iter().cloned()),
        ),
    ]);
    Entity::new(uid(&types.tenant, &tenant.id), attrs, HashSet::new())
        .map_err(|e| format!("tenant {}: {e}", tenant.id))
}

/// The principal, in each of its roles and in its own tenant. Roles need no entities of their
/// own: they have no attributes or parents, and `principal in Role::"x"` reads the principal's.
pub(crate) fn principal_entity(types: &Types, p: &Principal) -> Entity {
    let mut parents: HashSet<EntityUid> = p.roles.iter().map(|r| uid(&types.role, r)).collect();
    if let Some(own) = &p.tenant {
        parents.insert(uid(&types.tenant, own));
    }
    Entity::new_no_attrs(uid(types.principal(p.method), &p.id), parents)
}

impl Types {
    pub fn principal(&self, method: AuthMethod) -> &EntityTypeName {
        match method {
            AuthMethod::Jwt => &self.user,
            AuthMethod::ApiKey => &self.api_key,
            AuthMethod::Anonymous => &self.anonymous,
        }
    }

    pub fn action(&self, action: &str) -> EntityUid {
        uid(&self.action, action)
    }
}

/// Evaluates `policies` (already narrowed to the request's action and caller). `base` holds the
/// tenant's entity (and the action hierarchy, if the schema has one); the principal and the
/// resource join it here.
pub(crate) fn evaluate(
    types: &Types,
    base: &Entities,
    policies: &Narrowed,
    inputs: &Inputs<'_>,
) -> Decision {
    let p = inputs.principal;
    let tenant_uid = uid(&types.tenant, &inputs.tenant.id);
    let principal = p.entity.get_or_init(|| principal_entity(types, p)).clone();
    let principal_uid = principal.uid();
    let Some(resource_type) = types.resources.get(inputs.resource_type) else {
        return Decision::error(format!("unknown resource type {:?}", inputs.resource_type));
    };
    let resource_uid = uid(resource_type, inputs.resource_id);
    let resource = Entity::new_no_attrs(resource_uid.clone(), HashSet::from([tenant_uid.clone()]));

    let (hour, weekday) = hour_and_weekday(inputs.now);
    let mut pairs = vec![
        (
            "tenant".to_string(),
            RestrictedExpression::new_entity_uid(tenant_uid),
        ),
        (
            "plan".to_string(),
            RestrictedExpression::new_string(inputs.tenant.plan.id.to_string()),
        ),
        (
            "features".to_string(),
            strings(inputs.tenant.features.iter().cloned()),
        ),
        (
            "method".to_string(),
            RestrictedExpression::new_string(inputs.method.to_string()),
        ),
        (
            "path".to_string(),
            RestrictedExpression::new_string(inputs.path.to_string()),
        ),
        ("hour".to_string(), RestrictedExpression::new_long(hour)),
        (
            "weekday".to_string(),
            RestrictedExpression::new_long(weekday),
        ),
        (
            "auth_method".to_string(),
            RestrictedExpression::new_string(p.method.as_str().to_string()),
        ),
        ("mfa".to_string(), RestrictedExpression::new_bool(p.mfa)),
        ("scopes".to_string(), strings(p.scopes.iter().cloned())),
    ];
    if policies.reads_client_ip {
        pairs.push((
            "client_ip".to_string(),
            RestrictedExpression::new_ip(inputs.client_ip.to_string()),
        ));
    }
    let context = match Context::from_pairs(pairs) {
        Ok(context) => context,
        Err(e) => return Decision::error(format!("context: {e}")),
    };
    let entities = match base.clone().add_entities([principal, resource], None) {
        Ok(entities) => entities,
        Err(e) => return Decision::error(format!("entities: {e}")),
    };
    let action = uid(&types.action, inputs.action);
    let request = match Request::new(principal_uid, action, resource_uid, context, None) {
        Ok(request) => request,
        Err(e) => return Decision::error(format!("request: {e}")),
    };
    let response = Authorizer::new().is_authorized(&request, &policies.set, &entities);
    let errors: Vec<String> = response
        .diagnostics()
        .errors()
        .map(|e| e.to_string())
        .collect();
    Decision {
        allowed: response.decision() == CedarDecision::Allow && errors.is_empty(),
        policies: response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect(),
        errors,
    }
}

#[cfg(test)]
mod tests {
    use super::hour_and_weekday;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn hours_and_iso_weekdays_are_utc() {
        // 2026-11-22 is a Sunday; 13:45 UTC.
        let t = UNIX_EPOCH + Duration::from_secs(1_795_355_100);
        assert_eq!(hour_and_weekday(t), (13, 7));
        assert_eq!(hour_and_weekday(UNIX_EPOCH), (0, 4));
    }
}

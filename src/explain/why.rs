//! Why a request was denied, for the people who write policies: the context Cedar saw, and for
//! a default deny each `permit` of the tenant's set with the first reason it did not apply (its
//! action, its principal, or its condition).

use cedar_policy::{ActionConstraint, Effect, PolicySet, PrincipalConstraint};
use serde_json::{Value, json};

use crate::identity::Principal;
use crate::pipeline::Matched;
use crate::tenants::Tenant;

/// The context a decision for `principal` on `tenant` gets (as `authz/decide.rs` builds it).
pub(super) fn context(
    tenant: &Tenant,
    principal: &Principal,
    method: &str,
    path: &str,
    client_ip: std::net::IpAddr,
) -> Value {
    let (hour, weekday) = crate::authz::decide::hour_and_weekday(std::time::SystemTime::now());
    json!({
        "tenant": &*tenant.id,
        "plan": &*tenant.plan.id,
        "features": tenant.features,
        "method": method,
        "path": path,
        "hour": hour,
        "weekday": weekday,
        "auth_method": principal.method.as_str(),
        "mfa": principal.mfa,
        "scopes": principal.scopes,
        "client_ip": client_ip.to_string(),
    })
}

/// Each `permit` of `set`, with why it did not apply to this request.
pub(super) fn unmatched_permits(
    set: &PolicySet,
    route: &Matched,
    principal: &Principal,
    location: impl Fn(&str) -> String,
) -> Vec<(String, String, String)> {
    let mut out: Vec<(String, String, String)> = set
        .policies()
        .filter(|p| p.effect() == Effect::Permit)
        .map(|p| {
            let id = p.annotation("id").unwrap_or_default().to_string();
            let why = reason(p, route, principal);
            let at = location(&id);
            (id, at, why)
        })
        .collect();
    out.sort();
    out
}

/// The first reason a permit did not apply: its action, its principal, else its condition.
fn reason(policy: &cedar_policy::Policy, route: &Matched, principal: &Principal) -> String {
    let action = |uid: &cedar_policy::EntityUid| uid.id().unescaped().to_string();
    match policy.action_constraint() {
        ActionConstraint::Eq(uid) if action(&uid) != *route.action => {
            return format!(
                "its action is {}, the route's is {}",
                action(&uid),
                route.action
            );
        }
        ActionConstraint::In(uids) if !uids.iter().any(|u| action(u) == *route.action) => {
            let names: Vec<String> = uids.iter().map(action).collect();
            return format!(
                "its actions are {}, the route's is {}",
                names.join(", "),
                route.action
            );
        }
        _ => {}
    }
    let role = |uid: &cedar_policy::EntityUid| {
        (uid.type_name().to_string() == "Role").then(|| uid.id().unescaped().to_string())
    };
    if let PrincipalConstraint::In(uid) | PrincipalConstraint::IsIn(_, uid) =
        policy.principal_constraint()
        && let Some(role) = role(&uid)
        && !principal.roles.contains(&role)
    {
        return format!(
            "it is for role {role}; the principal has [{}]",
            principal.roles.join(", ")
        );
    }
    "its condition (when/unless) does not hold for this request and context".to_string()
}

//! Narrows a tenant's policy set to the policies whose scope can match a request's action and
//! principal, so a tenant with 1,000 policies evaluates only those written for the caller's roles
//! and the route's action. A policy is left out only when its scope provably cannot match;
//! conditions, the resource scope and `principal == …` are still Cedar's to decide, so the
//! narrowed set decides exactly as the whole set would. Narrowed sets are built once per
//! (set, action, principal type, roles, credential tenant) and shared.

use std::sync::Arc;

use cedar_policy::{
    ActionConstraint, Entities, EntityTypeName, EntityUid, PolicySet, PrincipalConstraint,
};

/// What a decision evaluates: the narrowed set, and what its policies read.
pub(crate) struct Narrowed {
    pub set: PolicySet,
    /// Some policy mentions `client_ip`; otherwise the context leaves it out (parsing an IP
    /// address into a Cedar value is the dearest part of building the context).
    pub reads_client_ip: bool,
}

/// The caller, as far as policy scopes can tell.
pub(crate) struct Caller<'a> {
    pub kind: &'a EntityTypeName,
    pub roles: &'a [String],
    pub tenant: Option<&'a str>,
}

pub(crate) struct Narrowing {
    /// The schema's action entities, for `action in [group]`.
    actions: Entities,
    role: EntityTypeName,
    tenant: EntityTypeName,
    sets: moka::sync::Cache<String, Arc<Narrowed>>,
}

impl Narrowing {
    pub fn new(actions: Entities, role: EntityTypeName, tenant: EntityTypeName) -> Narrowing {
        Narrowing {
            actions,
            role,
            tenant,
            sets: moka::sync::Cache::new(10_000),
        }
    }

    /// The policies of `set` (named `set_key`) that can apply to `caller` doing `action`.
    pub(crate) fn narrow(
        &self,
        set_key: &str,
        set: &PolicySet,
        action: &EntityUid,
        caller: &Caller<'_>,
    ) -> Arc<Narrowed> {
        let key = format!(
            "{set_key}\u{1f}{action}\u{1f}{}\u{1f}{}\u{1f}{}",
            caller.kind,
            caller.roles.join(","),
            caller.tenant.unwrap_or("")
        );
        self.sets.get_with(key, || {
            let kept: Vec<_> = set
                .policies()
                .filter(|p| self.action_can_match(&p.action_constraint(), action))
                .filter(|p| self.principal_can_match(&p.principal_constraint(), caller))
                .cloned()
                .collect();
            let reads_client_ip = kept.iter().any(|p| p.to_string().contains("client_ip"));
            let set = PolicySet::from_policies(kept).unwrap_or_else(|_| set.clone());
            Arc::new(Narrowed {
                set,
                reads_client_ip,
            })
        })
    }

    fn action_can_match(&self, constraint: &ActionConstraint, action: &EntityUid) -> bool {
        let matches = |uid: &EntityUid| uid == action || self.actions.is_ancestor_of(uid, action);
        match constraint {
            ActionConstraint::Any => true,
            ActionConstraint::Eq(uid) => uid == action,
            ActionConstraint::In(uids) => uids.iter().any(matches),
        }
    }

    /// `principal in X` can hold only for the caller's roles and credential tenant (a principal's
    /// only ancestors); `is T` only for its type. Anything else is kept.
    fn principal_can_match(&self, constraint: &PrincipalConstraint, caller: &Caller<'_>) -> bool {
        let within = |uid: &EntityUid| {
            let id = uid.id().unescaped();
            if *uid.type_name() == self.role {
                caller.roles.iter().any(|r| r == id)
            } else if *uid.type_name() == self.tenant {
                caller.tenant == Some(id)
            } else {
                true
            }
        };
        match constraint {
            PrincipalConstraint::Any | PrincipalConstraint::Eq(_) => true,
            PrincipalConstraint::In(uid) => within(uid),
            PrincipalConstraint::Is(kind) => kind == caller.kind,
            PrincipalConstraint::IsIn(kind, uid) => kind == caller.kind && within(uid),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use cedar_policy::{Entities, EntityTypeName, EntityUid, PolicySet, Schema};

    use super::{Caller, Narrowing};

    const SCHEMA: &str = r#"
        entity Role; entity Tenant; entity User in [Role, Tenant]; entity ApiKey in [Role, Tenant];
        entity Doc;
        action read, write appliesTo { principal: [User, ApiKey], resource: [Doc] };
        action manage;
        action purge in [manage] appliesTo { principal: [User, ApiKey], resource: [Doc] };
    "#;

    const POLICIES: &str = r#"
        @id("viewer-read") permit (principal in Role::"viewer", action == Action::"read", resource);
        @id("editor-any") permit (principal in Role::"editor", action, resource);
        @id("acme-only") permit (principal in Tenant::"acme", action in [Action::"read", Action::"write"], resource);
        @id("keys-write") permit (principal is ApiKey, action == Action::"write", resource);
        @id("keys-in-viewer") permit (principal is ApiKey in Role::"viewer", action, resource);
        @id("alice") permit (principal == User::"alice", action == Action::"write", resource);
        @id("managers") permit (principal, action in Action::"manage", resource);
        @id("office") forbid (principal, action, resource) unless { context.client_ip.isLoopback() };
    "#;

    fn kept(action: &str, kind: &str, roles: &[&str], tenant: Option<&str>) -> (Vec<String>, bool) {
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let actions: Entities = schema.action_entities().unwrap();
        let role = EntityTypeName::from_str("Role").unwrap();
        let tenant_type = EntityTypeName::from_str("Tenant").unwrap();
        let narrowing = Narrowing::new(actions, role, tenant_type);
        let set = PolicySet::from_str(POLICIES).unwrap();
        let kind = EntityTypeName::from_str(kind).unwrap();
        let roles: Vec<String> = roles.iter().map(|r| r.to_string()).collect();
        let caller = Caller {
            kind: &kind,
            roles: &roles,
            tenant,
        };
        let action = EntityUid::from_str(&format!("Action::\"{action}\"")).unwrap();
        let narrowed = narrowing.narrow("", &set, &action, &caller);
        let mut ids: Vec<String> = narrowed
            .set
            .policies()
            .filter_map(|p| p.annotation("id").map(str::to_string))
            .collect();
        ids.sort();
        (ids, narrowed.reads_client_ip)
    }

    #[test]
    fn only_policies_whose_scope_can_match_the_action_and_caller_are_kept() {
        let (ids, _) = kept("read", "User", &["viewer"], Some("globex"));
        assert_eq!(ids, ["office", "viewer-read"]);
        let (ids, _) = kept("write", "User", &["viewer", "editor"], Some("acme"));
        assert_eq!(ids, ["acme-only", "alice", "editor-any", "office"]);
        let (ids, _) = kept("write", "ApiKey", &["viewer"], None);
        assert_eq!(ids, ["alice", "keys-in-viewer", "keys-write", "office"]);
    }

    #[test]
    fn action_groups_keep_the_policies_of_the_group() {
        let (ids, _) = kept("purge", "User", &[], None);
        assert_eq!(ids, ["managers", "office"]);
        let (ids, _) = kept("read", "User", &[], None);
        assert_eq!(ids, ["office"]);
    }

    #[test]
    fn the_client_address_is_needed_only_when_a_kept_policy_reads_it() {
        assert!(kept("read", "User", &[], None).1);
        let (schema, _) = Schema::from_cedarschema_str(SCHEMA).unwrap();
        let narrowing = Narrowing::new(
            schema.action_entities().unwrap(),
            EntityTypeName::from_str("Role").unwrap(),
            EntityTypeName::from_str("Tenant").unwrap(),
        );
        let set = PolicySet::from_str(r#"permit (principal in Role::"viewer", action, resource);"#)
            .unwrap();
        let kind = EntityTypeName::from_str("User").unwrap();
        let caller = Caller {
            kind: &kind,
            roles: &[],
            tenant: None,
        };
        let action = EntityUid::from_str("Action::\"read\"").unwrap();
        assert!(!narrowing.narrow("", &set, &action, &caller).reads_client_ip);
    }
}

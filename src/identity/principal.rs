//! Who is calling, as every later stage and the upstream see it.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

use http::{HeaderName, HeaderValue};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    Jwt,
    ApiKey,
    Anonymous,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::Jwt => "jwt",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

#[derive(Debug)]
pub struct Principal {
    pub id: String,
    pub method: AuthMethod,
    /// The tenant the credentials were issued for (`None` for anonymous callers and tokens
    /// without a tenant claim).
    pub tenant: Option<String>,
    pub roles: Vec<String>,
    pub scopes: Vec<String>,
    pub mfa: bool,
    /// After this the credentials must be checked again (token `exp` plus leeway, key expiry).
    pub valid_until: Option<SystemTime>,
    /// The tenants the credentials' issuer may act on (`None`: any).
    pub issuer_tenants: Option<Arc<[String]>>,
    /// The tenant whose own identity provider issued the token, at the revision it was
    /// verified with: a cached verification is not used once that tenant changed.
    pub issued_by: Option<(Arc<str>, u64)>,
    /// `x-user-*` and `x-auth-method` headers for the upstream, built once.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The principal's Cedar entity (in its roles and tenant), built on its first decision.
    /// Principals live as long as their cached token or key, so this is once per credential.
    pub entity: OnceLock<cedar_policy::Entity>,
}

/// Whether a role or scope can travel in a list header unambiguously: visible ASCII, no `,`
/// (roles are comma-separated), no space (scopes are space-separated).
fn list_item(item: &str) -> bool {
    !item.is_empty() && item.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// Whether a subject can travel in `X-User-Id` as it is: no control characters, no surrounding
/// whitespace (a header value is trimmed, so it would name someone else).
fn subject(id: &str) -> bool {
    !id.is_empty() && id.trim() == id && !id.chars().any(char::is_control)
}

/// What a cached entry costs besides its own bytes: the cache's bookkeeping and the
/// allocator's rounding (calibrated with `benches/memory.rs`).
pub(crate) const ENTRY_OVERHEAD: usize = 512;
/// Per string held in a list, and per header: the `String`/`HeaderValue` and its allocation.
const PER_ITEM: usize = 48;
/// The Cedar entity of a principal, without its parents.
const ENTITY: usize = 640;
/// Per parent of the entity (a role, the tenant).
const PARENT: usize = 160;

impl Principal {
    /// About how many bytes this principal takes once its Cedar entity is built, for the
    /// verified-token cache's budget.
    pub fn weight(&self) -> usize {
        let strings: usize = self
            .roles
            .iter()
            .chain(&self.scopes)
            .map(|s| s.len() + PER_ITEM)
            .sum();
        let headers: usize = self
            .headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len() + PER_ITEM)
            .sum();
        let parents: usize = self
            .roles
            .iter()
            .chain(&self.tenant)
            .map(|parent| parent.len() + PARENT)
            .sum();
        size_of::<Principal>()
            + self.id.len()
            + self.tenant.as_ref().map_or(0, String::len)
            + self
                .issued_by
                .as_ref()
                .map_or(0, |(t, _)| t.len() + PER_ITEM)
            + strings
            + headers
            + ENTITY
            + self.id.len()
            + parents
    }
    /// A principal whose every field is exactly representable in the headers the upstream gets,
    /// or the reason it is not: a value that would add a list element, or vanish, is refused
    /// rather than encoded.
    pub fn new(
        id: String,
        method: AuthMethod,
        tenant: Option<String>,
        roles: Vec<String>,
        scopes: Vec<String>,
        mfa: bool,
        valid_until: Option<SystemTime>,
    ) -> Result<Self, &'static str> {
        if method != AuthMethod::Anonymous {
            if !subject(&id) {
                return Err("the subject holds characters a header cannot carry");
            }
            if !roles.iter().all(|r| list_item(r)) {
                return Err("a role may hold only visible ASCII characters other than ','");
            }
            if !scopes.iter().all(|s| list_item(s)) {
                return Err("a scope may hold only visible ASCII characters other than ','");
            }
        }
        let mut headers = Vec::new();
        let mut push = |name: &'static str, value: &str| -> Result<(), &'static str> {
            let value = HeaderValue::from_str(value)
                .map_err(|_| "the credentials hold characters a header cannot carry")?;
            headers.push((HeaderName::from_static(name), value));
            Ok(())
        };
        push("x-auth-method", method.as_str())?;
        if method != AuthMethod::Anonymous {
            push("x-user-id", &id)?;
            push("x-user-roles", &roles.join(","))?;
            push("x-user-scopes", &scopes.join(" "))?;
            push("x-user-mfa", if mfa { "true" } else { "false" })?;
        }
        Ok(Principal {
            id,
            method,
            tenant,
            roles,
            scopes,
            mfa,
            valid_until,
            issuer_tenants: None,
            issued_by: None,
            headers,
            entity: OnceLock::new(),
        })
    }

    pub fn anonymous() -> Self {
        Principal {
            id: "anonymous".to_string(),
            method: AuthMethod::Anonymous,
            tenant: None,
            roles: Vec::new(),
            scopes: Vec::new(),
            mfa: false,
            valid_until: None,
            issuer_tenants: None,
            issued_by: None,
            headers: vec![(
                HeaderName::from_static("x-auth-method"),
                HeaderValue::from_static("anonymous"),
            )],
            entity: OnceLock::new(),
        }
    }

    pub(crate) fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: &str, roles: &[&str], scopes: &[&str]) -> Result<Principal, &'static str> {
        let list = |items: &[&str]| items.iter().map(|s| s.to_string()).collect();
        Principal::new(
            id.to_string(),
            AuthMethod::Jwt,
            None,
            list(roles),
            list(scopes),
            false,
            None,
        )
    }

    #[test]
    fn values_that_would_change_a_trusted_header_are_refused() {
        assert!(user("alice", &["viewer"], &["read:agents"]).is_ok());
        assert!(user("josé", &["viewer"], &[]).is_ok());
        for (id, roles, scopes) in [
            ("alice", &["x,tenant_admin"][..], &[][..]),
            ("alice", &["viewer admin"], &[]),
            ("alice", &[""], &[]),
            ("alice", &[], &["read write"]),
            ("alice", &[], &["a,b"]),
            ("al\u{1}ice", &[], &[]),
            ("alice\r\nx-user-roles: admin", &[], &[]),
            (" alice", &[], &[]),
            ("", &[], &[]),
        ] {
            assert!(
                user(id, roles, scopes).is_err(),
                "{id:?} {roles:?} {scopes:?}"
            );
        }
    }
}

//! Who is calling, as every later stage and the upstream see it.

use std::sync::OnceLock;
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
    /// `x-user-*` and `x-auth-method` headers for the upstream, built once.
    pub headers: Vec<(HeaderName, HeaderValue)>,
    /// The principal's Cedar entity (in its roles and tenant), built on its first decision.
    /// Principals live as long as their cached token or key, so this is once per credential.
    pub entity: OnceLock<cedar_policy::Entity>,
}

impl Principal {
    pub fn new(
        id: String,
        method: AuthMethod,
        tenant: Option<String>,
        roles: Vec<String>,
        scopes: Vec<String>,
        mfa: bool,
        valid_until: Option<SystemTime>,
    ) -> Self {
        let mut headers = Vec::new();
        let mut push = |name: &'static str, value: &str| {
            if let Ok(value) = HeaderValue::from_str(value) {
                headers.push((HeaderName::from_static(name), value));
            }
        };
        push("x-auth-method", method.as_str());
        if method != AuthMethod::Anonymous {
            push("x-user-id", &id);
            push("x-user-roles", &roles.join(","));
            push("x-user-scopes", &scopes.join(" "));
            push("x-user-mfa", if mfa { "true" } else { "false" });
        }
        Principal {
            id,
            method,
            tenant,
            roles,
            scopes,
            mfa,
            valid_until,
            headers,
            entity: OnceLock::new(),
        }
    }

    pub fn anonymous() -> Self {
        Principal::new(
            "anonymous".to_string(),
            AuthMethod::Anonymous,
            None,
            Vec::new(),
            Vec::new(),
            false,
            None,
        )
    }

    pub fn has_any_role(&self, roles: &[String]) -> bool {
        self.roles.iter().any(|r| roles.contains(r))
    }
}

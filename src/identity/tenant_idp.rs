//! A tenant's own identity providers (`identity_providers` of a tenant): OIDC issuers whose
//! tokens act on that tenant only. Keys come from OIDC discovery unless a `jwks_url` is given;
//! the tenant is the issuer's, so its tokens need no `tenant` claim (one they carry is not read);
//! the IdP's groups map to roles; and no such issuer may grant an operator role.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ClaimNames;

use super::issuer::{Issuer, validations};
use super::jwks::{Remote, fetchable};

/// One identity provider as a tenant is written with it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct IdentityProvider {
    /// The `iss` of its tokens, and where discovery starts.
    pub issuer: String,
    /// Its tokens' `aud` must name one of these (at least one).
    pub audiences: Vec<String>,
    /// Its key set, when discovery is not to be used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_url: Option<String>,
    #[serde(default, skip_serializing_if = "ProviderClaims::is_default")]
    pub claims: ProviderClaims,
    /// The roles each of the IdP's groups grants (groups not named grant none).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub group_roles: BTreeMap<String, Vec<String>>,
    /// Clock skew allowed on `exp` and `nbf` (`30s` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leeway: Option<String>,
    /// How long a fetched key set is used before it is fetched again (`5m` when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_refresh: Option<String>,
}

/// Which claim holds what; dotted names reach into objects.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderClaims {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roles: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mfa: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups: Option<String>,
}

impl ProviderClaims {
    fn is_default(&self) -> bool {
        *self == ProviderClaims::default()
    }
}

/// A tenant's issuer as it verifies tokens.
pub struct TenantIssuer(pub(crate) Issuer);

impl std::fmt::Debug for TenantIssuer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("TenantIssuer").field(&self.0.issuer).finish()
    }
}

impl TenantIssuer {
    pub fn issuer(&self) -> &str {
        &self.0.issuer
    }
}

fn duration(
    at: &str,
    value: Option<&str>,
    default: Duration,
    fail: &mut dyn FnMut(&str, String),
) -> Duration {
    match value.map(humantime::parse_duration) {
        None => default,
        Some(Ok(d)) if !d.is_zero() => d,
        Some(Ok(_)) => {
            fail(at, "must be more than 0".into());
            default
        }
        Some(Err(e)) => {
            fail(at, format!("not a duration ({e})"));
            default
        }
    }
}

/// Whether a role can travel in `X-User-Roles`: visible ASCII without `,`.
fn role_name(role: &str) -> bool {
    !role.is_empty() && role.bytes().all(|b| b.is_ascii_graphic() && b != b',')
}

/// Tenant `tenant`'s provider `spec` (its `at`-th), or `None` with the problems told to `fail`
/// as (key, message), the key starting with `.`. `operator_roles` may not be granted.
pub fn compile(
    tenant: &str,
    at: usize,
    spec: &IdentityProvider,
    operator_roles: &[String],
    fail: &mut dyn FnMut(&str, String),
) -> Option<TenantIssuer> {
    let key = format!(".identity_providers[{at}]");
    let mut bad = false;
    let mut note = |k: &str, msg: String| {
        bad = true;
        fail(k, msg);
    };
    check(&key, spec, operator_roles, &mut note);
    let leeway = duration(
        &format!("{key}.leeway"),
        spec.leeway.as_deref(),
        Duration::from_secs(30),
        &mut note,
    );
    let refresh = duration(
        &format!("{key}.jwks_refresh"),
        spec.jwks_refresh.as_deref(),
        Duration::from_secs(300),
        &mut note,
    );
    if bad {
        return None;
    }
    let claims = &spec.claims;
    let remote = match &spec.jwks_url {
        Some(url) => Remote::Url(url.clone()),
        None => Remote::Discovery(spec.issuer.clone()),
    };
    Some(TenantIssuer(Issuer {
        issuer: spec.issuer.clone(),
        leeway,
        claims: ClaimNames {
            subject: claims.subject.clone().unwrap_or_else(|| "sub".into()),
            tenant: String::new(),
            roles: claims.roles.clone().unwrap_or_else(|| "roles".into()),
            scopes: claims.scopes.clone().unwrap_or_else(|| "scope".into()),
            mfa: claims.mfa.clone().unwrap_or_else(|| "amr".into()),
        },
        groups: Some((
            claims.groups.clone().unwrap_or_else(|| "groups".into()),
            spec.group_roles.clone(),
        )),
        keys: Vec::new(),
        validations: validations(&spec.issuer, &spec.audiences, leeway, &[], true),
        remote: Some((remote, refresh)),
        tenants: Some(Arc::from([tenant.to_string()])),
        tenant_claim: false,
        forbidden_roles: operator_roles.to_vec(),
    }))
}

fn check(
    key: &str,
    spec: &IdentityProvider,
    operator_roles: &[String],
    fail: &mut dyn FnMut(&str, String),
) {
    if let Err(e) = fetchable(&spec.issuer) {
        fail(&format!("{key}.issuer"), format!("{:?} {e}", spec.issuer));
    }
    if let Some(url) = &spec.jwks_url
        && let Err(e) = fetchable(url)
    {
        fail(&format!("{key}.jwks_url"), format!("{url:?} {e}"));
    }
    if spec.audiences.is_empty() || spec.audiences.iter().any(String::is_empty) {
        fail(
            &format!("{key}.audiences"),
            "name at least one audience: without one, a token the IdP issued to any other application would be accepted".into(),
        );
    }
    for (group, roles) in &spec.group_roles {
        for role in roles {
            if !role_name(role) {
                fail(
                    &format!("{key}.group_roles.{group}"),
                    format!("{role:?} is not a role name (visible ASCII, no ',')"),
                );
            } else if operator_roles.contains(role) {
                fail(
                    &format!("{key}.group_roles.{group}"),
                    format!(
                        "{role:?} is an operator role, which a tenant's identity provider may not grant"
                    ),
                );
            }
        }
    }
}

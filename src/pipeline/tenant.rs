//! Stage 2, tenant: which tenant the request belongs to.
//!
//! The request-borne sources (subdomain of a base domain, custom domain, header, path prefix) are
//! read in the configured order and must agree: two that name different tenants are a 400
//! `tenant-conflict`, never a silent pick. A source that names a tenant which does not exist is a
//! 404. The `claim` source is read only when no request-borne source matched, after identity
//! ([`settle`]). Credentials of one tenant used on another are a 403 `tenant-mismatch`, except for
//! principals holding an operator role.

use std::sync::Arc;

use http::HeaderMap;
use http::uri::PathAndQuery;

use crate::config::{Tenancy, TenantSource};
use crate::error::{Problem, Refusal};
use crate::identity::{AuthMethod, Principal};
use crate::tenants::{Directory, Tenant};

use super::normalize::Target;

/// A tenant named by the request itself, and by which source.
struct Resolved {
    tenant: Arc<Tenant>,
    source: TenantSource,
}

fn unknown(source: TenantSource) -> Refusal {
    let detail = match source {
        TenantSource::Subdomain => "no tenant has this subdomain",
        TenantSource::CustomDomain => "no tenant has this domain",
        TenantSource::Header => "the tenant header names no known tenant",
        TenantSource::PathPrefix => "the path names no known tenant",
        TenantSource::Claim => "the credentials name no known tenant",
    };
    Refusal::new(Problem::UnknownTenant, detail)
}

/// Reads the request-borne sources. With `strip_path_prefix`, a matching `/t/<tenant>` prefix is
/// removed from the target, so later stages and the upstream see the path without it.
pub fn resolve(
    tenancy: &Tenancy,
    directory: &Directory,
    target: &mut Target,
    headers: &HeaderMap,
) -> Result<Option<Arc<Tenant>>, Refusal> {
    let host = target
        .host
        .as_ref()
        .and_then(|h| h.to_str().ok())
        .map(canonical_host);
    let mut found: Option<Resolved> = None;
    let mut strip_to: Option<String> = None;
    for &source in &tenancy.sources {
        let tenant = match source {
            TenantSource::Subdomain => host
                .as_deref()
                .and_then(|h| subdomain(h, &tenancy.base_domains))
                .map(|label| directory.get(label).cloned().ok_or_else(|| unknown(source)))
                .transpose()?,
            TenantSource::CustomDomain => host
                .as_deref()
                .and_then(|h| directory.by_domain(h))
                .cloned(),
            TenantSource::Header => headers
                .get(&tenancy.header)
                .map(|v| {
                    v.to_str()
                        .ok()
                        .and_then(|id| directory.get(id.trim()))
                        .cloned()
                        .ok_or_else(|| unknown(source))
                })
                .transpose()?,
            TenantSource::PathPrefix => match target
                .path_and_query
                .path()
                .strip_prefix(tenancy.path_prefix.as_str())
            {
                Some(rest) => {
                    let (id, remainder) =
                        rest.split_once('/').map_or((rest, ""), |(id, r)| (id, r));
                    let tenant = directory.get(id).cloned().ok_or_else(|| unknown(source))?;
                    strip_to = Some(format!("/{remainder}"));
                    Some(tenant)
                }
                None => None,
            },
            TenantSource::Claim => None,
        };
        if let Some(tenant) = tenant {
            match &found {
                Some(first) if first.tenant.id != tenant.id => {
                    return Err(Refusal::new(
                        Problem::TenantConflict,
                        format!(
                            "the {} and the {} name different tenants",
                            name(first.source),
                            name(source)
                        ),
                    ));
                }
                Some(_) => {}
                None => found = Some(Resolved { tenant, source }),
            }
        }
    }
    if tenancy.strip_path_prefix
        && let Some(path) = strip_to
    {
        let with_query = match target.path_and_query.query() {
            Some(q) => format!("{path}?{q}"),
            None => path,
        };
        target.path_and_query = PathAndQuery::try_from(with_query)
            .map_err(|_| Refusal::new(Problem::AmbiguousPath, "the path could not be rewritten"))?;
    }
    Ok(found.map(|r| r.tenant))
}

fn name(source: TenantSource) -> &'static str {
    match source {
        TenantSource::Subdomain => "subdomain",
        TenantSource::CustomDomain => "domain",
        TenantSource::Header => "tenant header",
        TenantSource::PathPrefix => "path prefix",
        TenantSource::Claim => "token claim",
    }
}

/// After identity: the tenant from the token claim when the request named none, then the check
/// that the credentials belong to that tenant.
pub(crate) fn settle(
    tenancy: &Tenancy,
    directory: &Directory,
    resolved: Option<Arc<Tenant>>,
    principal: &Principal,
    operator_roles: &[String],
) -> Result<Arc<Tenant>, Refusal> {
    let tenant = match resolved {
        Some(tenant) => tenant,
        None => {
            let claimed = principal
                .tenant
                .as_deref()
                .filter(|_| tenancy.sources.contains(&TenantSource::Claim));
            let Some(id) = claimed else {
                return Err(Refusal::new(
                    Problem::UnknownTenant,
                    "the request names no tenant",
                ));
            };
            let tenant = directory
                .get(id)
                .cloned()
                .ok_or_else(|| unknown(TenantSource::Claim))?;
            tenant.standing(std::time::SystemTime::now())?;
            tenant
        }
    };
    // An issuer bound to some tenants acts on those only, operator roles included.
    if principal
        .issuer_tenants
        .as_ref()
        .is_some_and(|allowed| !allowed.iter().any(|id| **id == *tenant.id))
    {
        return Err(Refusal::new(
            Problem::TenantMismatch,
            "the credentials' issuer may not act on this tenant",
        ));
    }
    let operator = principal.has_any_role(operator_roles);
    let belongs = match (&principal.tenant, principal.method) {
        (_, AuthMethod::Anonymous) => true,
        (Some(id), _) => **id == *tenant.id,
        (None, _) => false,
    };
    if !belongs && !operator {
        return Err(Refusal::new(
            Problem::TenantMismatch,
            "the credentials were not issued for this tenant",
        ));
    }
    Ok(tenant)
}

/// Lower-case, without port or trailing dot: `Acme.App.Example.com.:8443` → `acme.app.example.com`.
pub(crate) fn canonical_host(host: &str) -> String {
    let without_port = if host.starts_with('[') {
        host.split_inclusive(']').next().unwrap_or(host)
    } else {
        match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        }
    };
    without_port.trim_end_matches('.').to_ascii_lowercase()
}

/// The single label in front of one of the base domains, if `host` is such a subdomain.
fn subdomain<'a>(host: &'a str, base_domains: &[String]) -> Option<&'a str> {
    base_domains.iter().find_map(|base| {
        let label = host.strip_suffix(base.as_str())?.strip_suffix('.')?;
        (!label.is_empty() && !label.contains('.')).then_some(label)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_compare_without_case_port_or_trailing_dot() {
        assert_eq!(
            canonical_host("Acme.App.Example.COM.:8443"),
            "acme.app.example.com"
        );
        assert_eq!(canonical_host("acme.localhost"), "acme.localhost");
        assert_eq!(canonical_host("[::1]:8080"), "[::1]");
    }

    #[test]
    fn subdomains_are_one_label_in_front_of_a_base_domain() {
        let bases = vec!["app.example.com".to_string(), "localhost".to_string()];
        assert_eq!(subdomain("acme.app.example.com", &bases), Some("acme"));
        assert_eq!(subdomain("acme.localhost", &bases), Some("acme"));
        assert_eq!(subdomain("app.example.com", &bases), None);
        assert_eq!(subdomain("a.b.app.example.com", &bases), None);
        assert_eq!(subdomain("evilapp.example.com", &bases), None);
        assert_eq!(subdomain("acme.example.org", &bases), None);
    }
}

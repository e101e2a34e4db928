//! Stage 5, authorize: the tenant's Cedar policy set decides. A deny (or any evaluation error,
//! which is a deny) ends the request with 403 `forbidden`; the determining policy ids go to the
//! logs and the audit record, never the response body. A `shadow` route records the decision and
//! forwards anyway.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::SystemTime;

use http::Method;

use crate::authz::Authz;
use crate::authz::decide::{Decision, Inputs};
use crate::authz::routes::RouteMatch;
use crate::error::{Problem, Refusal};
use crate::identity::Principal;
use crate::metrics::Metrics;
use crate::tenants::Tenant;

pub struct Request<'a> {
    pub tenant: &'a Tenant,
    pub principal: &'a Principal,
    pub route: &'a RouteMatch<'a>,
    pub client_ip: IpAddr,
    pub method: &'a Method,
    pub path: &'a str,
}

/// The enforced decision and its verdict, and the shadow set's decision when it disagrees.
pub fn authorize(
    authz: &Authz,
    metrics: &Metrics,
    request: &Request<'_>,
) -> (Arc<Decision>, Result<(), Refusal>, Option<Arc<Decision>>) {
    let route = request.route.route;
    let inputs = Inputs {
        tenant: request.tenant,
        principal: request.principal,
        action: &route.action,
        resource_type: &route.resource_type,
        resource_id: &request.route.resource_id,
        client_ip: request.client_ip,
        method: request.method.as_str(),
        path: request.path,
        now: SystemTime::now(),
    };
    let (decision, hit) = authz.decide(&inputs);
    metrics
        .decision_cache
        .with_label_values(&[if hit { "hit" } else { "miss" }])
        .inc();
    let shadow = authz.shadow_decide(&inputs).filter(|shadow| {
        shadow.allowed != decision.allowed || shadow.policies != decision.policies
    });
    if let Some(shadow) = &shadow {
        let mut policies: Vec<&str> = decision
            .policies
            .iter()
            .chain(&shadow.policies)
            .map(String::as_str)
            .collect();
        policies.sort_unstable();
        policies.dedup();
        if policies.is_empty() {
            policies.push("default");
        }
        for policy in policies {
            metrics
                .shadow_disagreements
                .with_label_values(&[policy])
                .inc();
        }
    }
    let verdict = if decision.allowed { "allow" } else { "deny" };
    metrics
        .decisions
        .with_label_values(&[verdict, if route.shadow { "true" } else { "false" }])
        .inc();
    tracing::debug!(
        tenant = %request.tenant.id,
        principal = %request.principal.id,
        route = %route.id,
        decision = verdict,
        policies = %decision.policies.join(","),
        errors = %decision.errors.join("; "),
        "authorization"
    );
    if !decision.errors.is_empty() {
        tracing::warn!(route = %route.id, errors = %decision.errors.join("; "), "policy evaluation failed; denied");
    }
    let result = if decision.allowed {
        Ok(())
    } else if route.shadow {
        tracing::info!(route = %route.id, policies = %decision.policies.join(","), "shadow route: would deny, forwarding");
        Ok(())
    } else if decision.errors.is_empty() {
        Err(Refusal::new(
            Problem::Forbidden,
            "the policy does not allow this request",
        ))
    } else {
        Err(Refusal::new(
            Problem::Forbidden,
            "the authorization decision failed, so it denies",
        ))
    };
    (decision, result, shadow)
}

//! What a gateway learns of a decision besides allow or deny (Envoy's `dynamic_metadata`, under
//! `envoy.filters.http.ext_authz`): tenant, plan, principal and how it authenticated, route,
//! request id, the decision and its deciding policies, for the gateway's access log and filters.

use std::collections::BTreeMap;

use prost_types::value::Kind;
use prost_types::{ListValue, Struct, Value};

use super::context::Context;

fn text(value: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(value.to_string())),
    }
}

pub fn of(ctx: &Context) -> Struct {
    let mut fields = BTreeMap::new();
    fields.insert(
        "request_id".to_string(),
        text(ctx.arrival.request_id.to_str().unwrap_or_default()),
    );
    let refused = ctx.problem.is_some();
    fields.insert(
        "decision".into(),
        text(if refused { "deny" } else { "allow" }),
    );
    if let Some(problem) = ctx.problem {
        fields.insert("problem".into(), text(problem));
    }
    if let Some(tenant) = &ctx.tenant {
        fields.insert("tenant".into(), text(&tenant.id));
        fields.insert("plan".into(), text(&tenant.plan.id));
    }
    if let Some(principal) = &ctx.principal {
        fields.insert("principal".into(), text(&principal.id));
        fields.insert("auth_method".into(), text(principal.method.as_str()));
    }
    if let Some(route) = &ctx.route {
        fields.insert("route".into(), text(&route.id));
    }
    if let Some(decision) = &ctx.decision {
        let policies = decision.policies.iter().map(|p| text(p)).collect();
        fields.insert(
            "policies".into(),
            Value {
                kind: Some(Kind::ListValue(ListValue { values: policies })),
            },
        );
    }
    Struct { fields }
}

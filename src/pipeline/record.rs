//! Stage 9, record: what happened to the request, for metrics, logs and the audit log. Runs
//! from `entry.rs`'s `finish`, for allowed and refused requests alike, in every mode.

use http::{Method, StatusCode};
use std::sync::Arc;

use crate::audit::Auditor;
use crate::audit::body::Completion;
use crate::audit::record::{self as audit, Kind, Record};
use crate::config::AuditRecords;
use crate::identity::AuthMethod;
use crate::metrics::Metrics;

use super::context::Context;

pub fn record(metrics: &Metrics, ctx: &Context, method: &Method, status: StatusCode) {
    let elapsed = ctx.arrival.started.elapsed();
    metrics.count_status(status);
    metrics.request_duration.observe(elapsed.as_secs_f64());
    let tenant = ctx
        .tenant
        .as_ref()
        .map_or("-", |t| metrics.tenant_label(&t.id));
    let plan = ctx.tenant.as_ref().map_or("-", |t| &*t.plan.id);
    let decision = if ctx.problem.is_some() && !ctx.forwarded {
        "deny"
    } else {
        "allow"
    };
    metrics
        .tenant_requests
        .with_label_values(&[tenant, plan, decision, ctx.stage.name()])
        .inc();
    for (stage, time) in &ctx.stage_times {
        metrics.observe_stage(*stage, time.as_secs_f64());
    }
    if let Some(problem) = ctx.problem.filter(|_| !ctx.forwarded) {
        tracing::info!(
            request_id = %ctx.arrival.request_id.to_str().unwrap_or_default(),
            tenant = %ctx.tenant.as_ref().map_or("-", |t| &*t.id),
            stage = %ctx.stage.name(),
            problem = %problem,
            status = status.as_u16(),
            %method,
            path = %ctx.path(),
            "refused"
        );
    }
    tracing::debug!(
        request_id = ctx.arrival.request_id.to_str().unwrap_or_default(),
        peer = %ctx.arrival.peer,
        %method,
        status = status.as_u16(),
        micros = elapsed.as_micros() as u64,
        "request"
    );
}

/// The access log's line for this request.
pub fn access(
    access: &crate::access::Access,
    ctx: &Context,
    method: &Method,
    version: http::Version,
    status: StatusCode,
) {
    access.log(&crate::access::Entry {
        client_ip: ctx.arrival.client_ip,
        principal: ctx.principal.as_ref().map(|p| p.id.as_str()),
        method,
        path: ctx.path(),
        version,
        status,
        user_agent: ctx.arrival.user_agent.as_deref(),
        request_id: ctx.arrival.request_id.to_str().unwrap_or_default(),
        tenant: ctx.tenant.as_ref().map(|t| &*t.id),
        stage: ctx.stage.name(),
        problem: ctx.problem,
        micros: ctx.elapsed_us(),
    });
}

/// The decision record: who, what, the verdict and why. `status` is set when this is the only
/// record (a refused request, or a merged record).
pub fn decision(auditor: &Auditor, ctx: &Context, method: &Method, status: Option<u16>) -> Record {
    let mut r = Record::new(
        Kind::Decision,
        ctx.arrival
            .request_id
            .to_str()
            .unwrap_or_default()
            .to_string(),
    );
    r.tenant = ctx.tenant.as_ref().map(|t| t.id.clone());
    r.plan = ctx.tenant.as_ref().map(|t| t.plan.id.clone());
    r.principal = ctx.principal.as_ref().map(|p| audit::Principal {
        id: p.id.clone(),
        kind: match p.method {
            AuthMethod::Jwt => "user",
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Anonymous => "anonymous",
        },
        auth: p.method.as_str(),
    });
    if let Some(route) = &ctx.route {
        r.route = Some(route.id.clone());
        r.action = Some(route.action.clone());
        r.resource = Some(audit::Resource {
            kind: route.resource_type.clone(),
            id: route.resource_id.clone(),
        });
    }
    let refused = ctx.problem.is_some() && !ctx.forwarded;
    r.decision = Some(if refused { "deny" } else { "allow" });
    r.stage = Some(ctx.stage.name());
    r.problem = ctx.problem;
    if let Some(decision) = &ctx.decision {
        r.policies = decision.policies.clone();
        r.errors = decision.errors.clone();
    }
    r.shadow = ctx.shadow_deny;
    r.http = audit::Http {
        method: method.to_string(),
        host: ctx.arrival.host.clone(),
        path: ctx.path().to_string(),
        status,
    };
    r.client = audit::Client {
        ip: auditor.client_ip(&ctx.arrival.client_ip.to_string()),
        user_agent: auditor.user_agent(ctx.arrival.user_agent.as_deref()),
    };
    r.traceparent = ctx.arrival.traceparent.clone();
    r.timing_us.decision = ctx.decided_us;
    r.inputs = inputs(auditor, ctx, method);
    r.shadow_decision = ctx.shadow_decision.as_ref().map(|d| {
        serde_json::json!({
            "decision": if d.allowed { "allow" } else { "deny" },
            "policies": d.policies,
        })
    });
    r
}

/// The `inputs` of a decision record: references to what the request already holds, written
/// out by the audit writer. Present once a tenant is known.
fn inputs(
    auditor: &Auditor,
    ctx: &Context,
    method: &Method,
) -> Option<crate::audit::inputs::Inputs> {
    Some(crate::audit::inputs::Inputs {
        principal: ctx.principal.clone(),
        tenant: ctx.tenant.clone()?,
        method: method.to_string(),
        path: ctx.path().to_string(),
        host: ctx.arrival.host.clone(),
        client_ip: auditor.client_ip(&ctx.arrival.client_ip.to_string()),
    })
}

/// After the answer: a refused request's only record goes out now; a forwarded one gets its
/// completion (or merged) record when the response body ends.
pub fn audit(
    auditor: &Arc<Auditor>,
    ctx: &Context,
    method: &Method,
    status: StatusCode,
) -> Option<Completion> {
    if !ctx.forwarded {
        let mut r = decision(auditor, ctx, method, Some(status.as_u16()));
        r.timing_us.total = Some(ctx.elapsed_us());
        auditor.record_now(r);
        return None;
    }
    let record = match auditor.records {
        AuditRecords::Merged => {
            let mut r = decision(auditor, ctx, method, Some(status.as_u16()));
            r.kind = Kind::Request;
            r
        }
        AuditRecords::Split => {
            let mut r = Record::new(
                Kind::Completion,
                ctx.arrival
                    .request_id
                    .to_str()
                    .unwrap_or_default()
                    .to_string(),
            );
            r.tenant = ctx.tenant.as_ref().map(|t| t.id.clone());
            r.problem = ctx.problem;
            r.http = audit::Http {
                method: method.to_string(),
                host: ctx.arrival.host.clone(),
                path: ctx.path().to_string(),
                status: Some(status.as_u16()),
            };
            r.timing_us.decision = ctx.decided_us;
            r
        }
    };
    let mut record = record;
    record.timing_us.upstream = ctx.upstream_us;
    Some(Completion {
        auditor: auditor.clone(),
        record,
        started: ctx.arrival.started,
        received: ctx.received.clone(),
    })
}

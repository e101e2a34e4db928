//! The request pipeline. [`handle`] reads top to bottom in request order; each stage either
//! enriches the [`Context`] or ends the request with a [`Refusal`], which `error.rs` turns into a
//! problem+json answer. [`decide`] is stages 1–5 without forwarding: the proxy, the
//! `authorize` and `test` commands (and the authorizer mode) share it, so they cannot disagree.

pub(crate) mod admission;
mod authorize;
mod authorizer;
mod context;
pub mod entry;
mod ext_authz_grpc;
mod fixed_body;
mod forward;
mod identity;
mod metadata;
pub mod normalize;
mod quota;
mod ratelimit;
mod record;
mod route;
pub mod tenant;

use std::sync::Arc;
use std::time::SystemTime;

use http::{HeaderMap, Method, Uri, Version};

use crate::error::{Problem, Refusal};
use crate::headers::{self};
use crate::identity::Principal;
use crate::identity::jwks::JwksCache;
use crate::limits::Limits;
use crate::limits::refund::{Counted, Refund};
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::stage::Stage;
use crate::state::Shared;
use crate::tenants::Tenant;

pub use context::{Context, Matched};
use normalize::Target;

/// [`decide`] for a request being served (either mode): the process's key sets, metrics and
/// limits.
pub(crate) async fn decide_live(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut Context,
    input: Input<'_>,
) -> Result<Target, Refusal> {
    let limits = Some(&shared.limits);
    decide(&shared.jwks, &shared.metrics, limits, snapshot, ctx, input).await
}

/// Stage 1: the canonical target, and what no mode passes on (a repeated single-value header,
/// `CONNECT`).
fn canonical(snapshot: &Snapshot, input: &Input<'_>) -> Result<Target, Refusal> {
    // HTTP/1.0 may omit Host; HTTP/1.1 must send it and HTTP/2 sends :authority.
    let require_host = input.mode != Mode::Explain && input.version > Version::HTTP_10;
    let target = normalize::target(input.uri, input.headers, require_host)?;
    normalize::single_valued(input.headers, &snapshot.single_headers)?;
    if input.method == Method::CONNECT {
        return Err(Refusal::new(
            Problem::MalformedRequest,
            "CONNECT tunnels are not proxied",
        ));
    }
    Ok(target)
}

/// Whether an `Upgrade` may become a tunnel: only a WebSocket handshake on a route that allows
/// it (any route, without authorization), because anything sent through a tunnel is never
/// judged. A gateway cannot have the upgrade removed, so in authorizer mode another is refused.
fn upgrade(
    target: &mut Target,
    input: &Input<'_>,
    authorizing: bool,
    route: Option<&crate::authz::routes::RouteMatch<'_>>,
) -> Result<(), Refusal> {
    if !headers::upgrade_requested(input.headers) {
        return Ok(());
    }
    let allowed = !authorizing || route.is_some_and(|r| r.route.websocket);
    target.websocket = allowed
        && match input.mode {
            Mode::Authorizer => input
                .headers
                .get(http::header::UPGRADE)
                .is_some_and(headers::is_websocket),
            Mode::Proxy | Mode::Explain => {
                headers::websocket_handshake(input.method, input.version, input.headers)
            }
        };
    if !target.websocket && input.mode == Mode::Authorizer {
        return Err(Refusal::new(
            Problem::MalformedRequest,
            "only a WebSocket upgrade on a route that allows it may switch protocols",
        ));
    }
    Ok(())
}

/// Stages 6–7: the plan's rate limits, then its quotas, checked and counted in one call; the
/// rate-limit headers go on the answer either way.
async fn limit(
    limits: &Limits,
    metrics: &Metrics,
    snapshot: &Snapshot,
    ctx: &mut Context,
    tenant: &Tenant,
    principal: &Principal,
    costs: Option<&std::collections::BTreeMap<String, u64>>,
) -> Result<(), Refusal> {
    ctx.enter(Stage::RateLimit);
    let now = SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let items = quota::items(tenant, costs, now);
    let route = ctx.route.as_ref().map(|r| &*r.id);
    let outcome = limits
        .check(metrics, tenant, &principal.id, route, &items)
        .await?;
    let legacy = snapshot.config.limits.legacy_headers;
    let (headers, result) = ratelimit::respond(metrics, tenant, &outcome.checks, legacy);
    ctx.rate_headers = headers;
    result?;
    ctx.enter(Stage::Quota);
    if let Some(consumed) = outcome.consumed {
        quota::respond(metrics, tenant, &items, consumed)?;
    }
    if outcome.counted != Counted::Nowhere {
        ctx.refund = Some(Refund {
            tenant: tenant.id.clone(),
            items,
            counted: outcome.counted,
        });
    }
    Ok(())
}

/// Stage 5: the tenant's Cedar policies decide; the decision is noted in `ctx` either way.
fn judge(
    ctx: &mut Context,
    authz: &crate::authz::Authz,
    metrics: &Metrics,
    request: &authorize::Request<'_>,
) -> Result<(), Refusal> {
    let (decision, result, shadow) = authorize::authorize(authz, metrics, request);
    ctx.shadow_deny = !decision.allowed && request.route.route.shadow;
    ctx.shadow_decision = shadow;
    ctx.decision = Some(decision);
    result
}

/// Stage 3: the route of the canonical path (after a tenant path prefix was stripped, the path
/// authorized and forwarded), noted in `ctx` for the record.
fn find_route<'a>(
    ctx: &mut Context,
    authorization: Option<(&crate::config::Authorization, &'a crate::authz::Authz)>,
    method: &Method,
    target: &Target,
) -> Result<Option<crate::authz::routes::RouteMatch<'a>>, Refusal> {
    let path = target.path_and_query.path();
    ctx.path = Some(path.to_string());
    let Some((config, authz)) = authorization else {
        return Ok(None);
    };
    let found = route::find(authz, config.unmatched, method, path)?;
    ctx.route = found.as_ref().map(|found| Matched {
        id: found.route.id.clone(),
        action: found.route.action.clone(),
        resource_type: found.route.resource_type.clone(),
        resource_id: found.resource_id.clone(),
    });
    Ok(found)
}

/// Who asks [`decide`], which changes what it does with what it cannot forward as it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Tollgate forwards: an upgrade it will not tunnel is removed from the request.
    Proxy,
    /// A gateway forwards and Tollgate cannot change the request: such an upgrade is refused.
    Authorizer,
    /// `tollgate authorize` and policy tests: no `Host` is needed.
    Explain,
}

/// What [`decide`] looks at. `tenant` and `principal` replace what the tenant and identity
/// stages would find (for `tollgate authorize --user` and policy tests).
pub struct Input<'a> {
    pub method: &'a Method,
    pub uri: &'a Uri,
    pub version: Version,
    pub headers: &'a HeaderMap,
    pub mode: Mode,
    pub tenant: Option<Arc<Tenant>>,
    pub principal: Option<Arc<Principal>>,
}

/// Stages 1–7: normalize, tenant, route, identity, authorize, rate limit, quota. Returns the
/// canonical target the upstream must receive; `ctx` records the tenant, principal, route,
/// decision and the stage. Without `limits` (the explain commands) stages 6–7 are skipped, so
/// explaining a request never consumes anything.
pub async fn decide(
    jwks: &JwksCache,
    metrics: &Metrics,
    limits: Option<&Limits>,
    snapshot: &Snapshot,
    ctx: &mut Context,
    input: Input<'_>,
) -> Result<Target, Refusal> {
    // 1. normalize: the one canonical target every later stage and the upstream see.
    ctx.enter(Stage::Normalize);
    let mut target = canonical(snapshot, &input)?;
    ctx.path = Some(target.path_and_query.path().to_string());

    // 2. tenant, from what the request itself says; its standing is checked before identity.
    ctx.enter(Stage::Tenant);
    let tenancy = snapshot
        .config
        .tenancy
        .as_ref()
        .zip(snapshot.tenants.as_ref());
    let resolved = match (input.tenant.clone(), tenancy) {
        (Some(forced), _) => Some(forced),
        (None, Some((config, directory))) => {
            tenant::resolve(config, directory, &mut target, input.headers)?
        }
        (None, None) => None,
    };
    if let Some(tenant) = &resolved {
        // Known now for the record, even if a later stage refuses; `settle` confirms it.
        ctx.tenant = Some(tenant.clone());
        tenant.standing(SystemTime::now())?;
    }

    // 3. route: the action and resource, from the canonical path.
    ctx.enter(Stage::Route);
    let authorization = snapshot
        .config
        .authorization
        .as_ref()
        .zip(snapshot.authz.as_ref());
    let route = find_route(ctx, authorization, input.method, &target)?;
    upgrade(&mut target, &input, authorization.is_some(), route.as_ref())?;
    target.request_trailers = route.as_ref().is_some_and(|r| r.route.request_trailers);

    // 4. identity, then the tenant from a token claim and the credentials-tenant check.
    ctx.enter(Stage::Identity);
    let principal = match input.principal {
        Some(forced) => forced,
        None => {
            let anonymous_route = route.as_ref().is_some_and(|r| r.route.anonymous);
            identity::authenticate(jwks, snapshot, input.headers, anonymous_route).await?
        }
    };
    ctx.principal = Some(principal.clone());
    ctx.enter(Stage::Tenant);
    if let Some((config, directory)) = tenancy {
        let operators = &snapshot.config.identity.operator_roles;
        ctx.tenant = Some(tenant::settle(
            config, directory, resolved, &principal, operators,
        )?);
    }

    // 5. authorize: the tenant's Cedar policies decide.
    if let (Some((_, authz)), Some(found), Some(tenant)) =
        (authorization, &route, ctx.tenant.clone())
    {
        ctx.enter(Stage::Authorize);
        let request = authorize::Request {
            tenant: &tenant,
            principal: &principal,
            route: found,
            client_ip: ctx.arrival.client_ip,
            method: input.method,
            path: target.path_and_query.path(),
        };
        judge(ctx, authz, metrics, &request)?;
    }

    // 6–7. the plan's rate limits, then its quotas (only admitted requests are counted).
    if let (Some(limits), Some(tenant)) = (limits, ctx.tenant.clone()) {
        let costs = route.as_ref().map(|r| &r.route.quota_cost);
        limit(limits, metrics, snapshot, ctx, &tenant, &principal, costs).await?;
    }
    ctx.enter(Stage::Forward);
    Ok(target)
}

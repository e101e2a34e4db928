//! The request pipeline. [`handle`] reads top to bottom in request order; each stage either
//! enriches the [`Context`] or ends the request with a [`Refusal`], which `error.rs` turns into a
//! problem+json answer. Stages 2–7 (tenant, identity, route, authorize, rate limit, quota) slot
//! in between normalize and forward.

pub mod admission;
mod forward;
mod identity;
pub mod normalize;
mod record;
pub mod tenant;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use bytes::Bytes;
use http::{HeaderValue, Request, Response};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::error::{Problem, Refusal};
use crate::headers::{self, X_REQUEST_ID};
use crate::identity::Principal;
use crate::server::{ConnInfo, Shared};
use crate::snapshot::Snapshot;
use crate::tenants::Tenant;

/// A response body: streamed from the upstream, or one of Tollgate's own small answers.
pub type ProxyBody = Either<Incoming, Full<Bytes>>;

/// What the pipeline knows about one request, filled in stage by stage.
pub struct Context {
    pub request_id: HeaderValue,
    pub peer: SocketAddr,
    /// Whether the peer is a configured trusted proxy (its forwarding headers are believed).
    pub peer_trusted: bool,
    /// Whether the client connection is TLS.
    pub tls: bool,
    pub started: Instant,
    /// Set by the tenant stage when tenancy is configured.
    pub tenant: Option<Arc<Tenant>>,
    /// Set by the identity stage.
    pub principal: Option<Arc<Principal>>,
}

/// Serves one request from start to finish. Never fails: every refusal becomes an answer.
pub async fn handle(
    shared: &Shared,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Response<ProxyBody> {
    let snapshot = shared.snapshot.load_full();
    let mut ctx = Context {
        request_id: headers::request_id(request.headers()),
        peer: conn.peer,
        peer_trusted: snapshot.is_trusted_proxy(conn.peer.ip()),
        tls: conn.tls,
        started: Instant::now(),
        tenant: None,
        principal: None,
    };
    let method = request.method().clone();
    let mut response = match run(shared, &snapshot, &mut ctx, request).await {
        Ok(response) => response,
        Err(refusal) => refusal.into_response(&ctx.request_id),
    };
    response
        .headers_mut()
        .insert(&X_REQUEST_ID, ctx.request_id.clone());
    record::record(&shared.metrics, &ctx, &method, response.status());
    response
}

async fn run(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut Context,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    // 0. admission: load shedding first, then size limits.
    let _in_flight = shared.in_flight.try_acquire().map_err(|_| {
        Refusal::new(
            Problem::Overloaded,
            "too many requests in flight; retry shortly",
        )
    })?;
    admission::check(&snapshot.config.server.limits, request.headers())?;
    // 1. normalize: the one canonical target every later stage and the upstream see.
    let mut target = normalize::target(request.uri(), request.headers())?;
    // 2. tenant, from what the request itself says; its standing is checked before identity.
    let tenancy = snapshot
        .config
        .tenancy
        .as_ref()
        .zip(snapshot.tenants.as_ref());
    let resolved = match tenancy {
        Some((config, directory)) => {
            let resolved = tenant::resolve(config, directory, &mut target, request.headers())?;
            if let Some(r) = &resolved {
                r.tenant.standing(SystemTime::now())?;
            }
            resolved
        }
        None => None,
    };
    // 3. identity, then the tenant from a token claim and the credentials-tenant check.
    let principal = identity::authenticate(shared, snapshot, request.headers()).await?;
    if let Some((config, directory)) = tenancy {
        let operators = &snapshot.config.identity.operator_roles;
        ctx.tenant = Some(tenant::settle(
            config, directory, resolved, &principal, operators,
        )?);
    }
    ctx.principal = Some(principal);
    // 8. forward.
    forward::forward(shared, snapshot, ctx, request, target).await
}

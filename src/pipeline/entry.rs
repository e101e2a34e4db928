//! The one way in, for every mode. A request that came on the proxy listener and one a gateway
//! asks about on an authorizer listener take the same steps: admission (the in-flight limit,
//! then header limits), the mode's own part (forwarding after [`decide`](super::decide), or the
//! gateway's answer), and one last step on every exit that writes the request id and rate-limit
//! headers, the metrics and the audit record, as pingora's `logging()` runs on every exit.

use std::sync::Arc;

use http::{HeaderMap, Method, Request, Response};
use http_body_util::Either;
use hyper::body::Incoming;
use tokio::sync::SemaphorePermit;

use crate::audit::body::Completing;
use crate::config::{AuditRecords, Gateway};
use crate::error::{Problem, Refusal};
use crate::headers::X_REQUEST_ID;
use crate::snapshot::Snapshot;
use crate::state::{ConnInfo, Shared};

use super::context::{Context, ProxyBody, ResponseBody};
use super::fixed_body::Fixed;
use super::{Input, Mode, admission, authorizer, decide_live, ext_authz_grpc, forward, record};

/// Serves one request from start to finish, in the mode its listener says. Never fails: every
/// refusal becomes an answer.
pub async fn serve(
    shared: &Arc<Shared>,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let snapshot = shared.snapshot.load_full();
    let mut ctx = Context::arrived(request.headers(), conn, &snapshot);
    let version = request.version();
    // The listeners come from the main file, which a reload never changes.
    let grpc = conn
        .authorizer
        .and_then(|i| snapshot.config.authorizers.get(i))
        .is_some_and(|a| a.gateway == Gateway::EnvoyGrpc);
    let (response, method) = match admit(shared, &snapshot, request.headers()) {
        Err(refusal) => {
            ctx.note(request.uri(), request.headers(), &snapshot);
            let method = request.method().clone();
            let response = match conn.authorizer {
                Some(_) if grpc => ext_authz_grpc::refused(&mut ctx, refusal),
                Some(_) => authorizer::refused(&mut ctx, refusal),
                None => refused(&mut ctx, refusal),
            };
            (response, method)
        }
        // The permit is held until the answer's head is ready.
        Ok(_permit) => match conn.authorizer {
            Some(_) if grpc => ext_authz_grpc::answer(shared, &snapshot, &mut ctx, request).await,
            Some(listener) => {
                authorizer::answer(shared, &snapshot, &mut ctx, listener, &request).await
            }
            None => {
                ctx.note(request.uri(), request.headers(), &snapshot);
                let method = request.method().clone();
                let response = match proxy(shared, &snapshot, &mut ctx, request).await {
                    Ok(response) => response,
                    Err(refusal) => refused(&mut ctx, refusal),
                };
                (response, method)
            }
        },
    };
    finish(shared, &mut ctx, &method, version, response)
}

/// Stage 0, for every mode: load shedding first, then header limits.
fn admit<'a>(
    shared: &'a Shared,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<SemaphorePermit<'a>, Refusal> {
    let permit = shared.in_flight.try_acquire().map_err(|_| {
        Refusal::new(
            Problem::Overloaded,
            "too many requests in flight; retry shortly",
        )
    })?;
    admission::check(&snapshot.config.server.limits, headers)?;
    Ok(permit)
}

/// Proxy mode after admission: stages 1–7, the decision record, then forwarding.
async fn proxy(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut Context,
    request: Request<Incoming>,
) -> Result<Response<ProxyBody>, Refusal> {
    let input = Input {
        method: request.method(),
        uri: request.uri(),
        version: request.version(),
        headers: request.headers(),
        mode: Mode::Proxy,
        tenant: None,
        principal: None,
    };
    let target = decide_live(shared, snapshot, ctx, input).await?;
    ctx.decided_us = Some(ctx.elapsed_us());
    // The decision is on record before the request goes anywhere.
    if let Some(auditor) = &shared.auditor
        && auditor.records == AuditRecords::Split
    {
        let method = request.method().clone();
        auditor
            .record(record::decision(auditor, ctx, &method, None))
            .await?;
    }
    ctx.forwarded = true;
    // 8. forward.
    forward::forward(shared, snapshot, ctx, request, target).await
}

/// A refusal as a client gets it.
fn refused(ctx: &mut Context, refusal: Refusal) -> Response<ProxyBody> {
    ctx.problem = Some(refusal.problem.slug());
    refusal
        .into_response(&ctx.arrival.request_id)
        .map(|body| Either::Right(Fixed::new(body)))
}

/// The last step of every request: the request id and rate-limit headers, the metrics, and the
/// audit record (the completion record is written when the body ends; a request nothing was
/// forwarded for has its decision record only).
fn finish(
    shared: &Shared,
    ctx: &mut Context,
    method: &Method,
    version: http::Version,
    mut response: Response<ProxyBody>,
) -> Response<ResponseBody> {
    let headers = response.headers_mut();
    headers.insert(&X_REQUEST_ID, ctx.arrival.request_id.clone());
    for (name, value) in ctx.rate_headers.drain(..) {
        headers.insert(name, value);
    }
    // A gRPC authorizer's answer is a 200 whatever it decided: the record has the decided status.
    let status = ctx.decided_status.unwrap_or(response.status());
    record::record(&shared.metrics, ctx, method, status);
    if let Some(access) = &shared.access {
        record::access(access, ctx, method, version, status);
    }
    let completion = shared
        .auditor
        .as_ref()
        .and_then(|auditor| record::audit(auditor, ctx, method, status));
    response.map(|body| Completing::new(body, completion))
}

//! Stage 8, forward: send the canonical request upstream and stream the answer back. Bodies are
//! never buffered. Response trailers pass; request trailers only where the route allows them
//! (`body.rs`). The only upgrade is a WebSocket handshake the decision allowed; any other
//! `Upgrade` was removed, and a `101` the request did not ask for is an upstream failure.

use std::error::Error as StdError;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{Either, Limited};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::audit::body::Counted;
use crate::error::{Problem, Refusal};
use crate::headers::{self, ClientSide, X_REQUEST_ID};
use crate::snapshot::Snapshot;
use crate::state::Shared;
use crate::upstream::body::{ClientBodyError, Guarded};
use crate::upstream::{Streamed, UpstreamError};

use super::admission::body_too_large;
use super::context::{Context, ProxyBody};
use super::normalize::Target;

pub async fn forward(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut Context,
    mut request: Request<Incoming>,
    target: Target,
) -> Result<Response<ProxyBody>, Refusal> {
    let config = &snapshot.config;
    let websocket = target.websocket;
    let client_upgrade = websocket.then(|| hyper::upgrade::on(&mut request));

    let (mut parts, body) = request.into_parts();
    parts.uri = shared
        .client
        .target(&config.upstream, target.path_and_query)
        .map_err(|_| Refusal::new(Problem::MalformedRequest, "unusable request target"))?;
    parts.version = if config.upstream.http2 {
        Version::HTTP_2
    } else {
        Version::HTTP_11
    };
    rewrite_head(
        &mut parts.headers,
        snapshot,
        ctx,
        websocket,
        target.host.as_ref(),
    );
    let underscores = config.forwarding.allow_underscores;

    let max_body = config.server.limits.max_body_bytes;
    let limit = max_body.map_or(usize::MAX, |m| usize::try_from(m).unwrap_or(usize::MAX));
    let trailers = target
        .request_trailers
        .then(|| snapshot.trailer_strip.clone());
    let body = Guarded::new(body, trailers, underscores);
    let upstream_request = Request::from_parts(
        parts,
        Counted::new(Limited::new(body, limit), ctx.received.clone()),
    );
    let sent_at = std::time::Instant::now();

    let timeout = config.upstream.response_timeout;
    // The exchange is boxed: moving its large future through the pipeline's nested futures on
    // every request cost more than one allocation (measured with benches/load.py).
    let mut response =
        match tokio::time::timeout(timeout, Box::pin(shared.client.send(upstream_request))).await {
            Err(_) => {
                return Err(upstream_error(
                    shared,
                    Problem::UpstreamTimeout,
                    "the upstream did not answer in time",
                ));
            }
            Ok(Err(err)) => {
                // Nothing reached the upstream: what the request counted is given back.
                if err.is_connect()
                    && let Some(refund) = ctx.refund.take()
                {
                    shared.limits.refund(&refund).await;
                }
                return Err(classify(shared, &err, max_body));
            }
            Ok(Ok(response)) => response,
        };
    ctx.upstream_us = Some(u64::try_from(sent_at.elapsed().as_micros()).unwrap_or(u64::MAX));

    if response.status() == StatusCode::SWITCHING_PROTOCOLS {
        tunnel(shared, client_upgrade, &mut response)?;
    }

    let switched = response.status() == StatusCode::SWITCHING_PROTOCOLS;
    let h = response.headers_mut();
    headers::strip_hop_by_hop(h);
    if switched {
        headers::restore_websocket(h);
    }
    Ok(response.map(Either::Left))
}

/// The head the upstream gets: hop-by-hop headers gone (a WebSocket handshake's restored),
/// reserved and configured headers removed and Tollgate's trusted ones set, credentials only if
/// they may travel, forwarding headers, Host, and the request id.
fn rewrite_head(
    h: &mut HeaderMap,
    snapshot: &Snapshot,
    ctx: &Context,
    websocket: bool,
    host: Option<&HeaderValue>,
) {
    let config = &snapshot.config;
    headers::strip_hop_by_hop(h);
    if websocket {
        headers::restore_websocket(h);
    }
    // Reserved headers from the client are never believed: removed, then the trusted values set.
    let underscores = config.forwarding.allow_underscores;
    headers::strip_reserved(h, &snapshot.strip_headers, underscores);
    if !ctx.forwards_authorization(&config.identity) {
        h.remove(AUTHORIZATION);
    }
    let trusted = ctx.tenant.iter().flat_map(|t| &t.headers);
    for (name, value) in trusted.chain(ctx.principal.iter().flat_map(|p| &p.headers)) {
        h.insert(name, value.clone());
    }
    headers::set_forwarded(
        h,
        &ClientSide {
            peer: ctx.arrival.peer.ip(),
            peer_trusted: ctx.arrival.peer_trusted,
            proto: if ctx.arrival.tls { "https" } else { "http" },
            host,
        },
    );
    match (config.forwarding.preserve_host, host) {
        (true, Some(host)) => {
            h.insert(HOST, host.clone());
        }
        _ => {
            h.remove(HOST);
        }
    }
    h.insert(&X_REQUEST_ID, ctx.arrival.request_id.clone());
}

/// Tunnels an upgraded exchange: only when the upstream switched to the WebSocket the client
/// asked for (a 101 nobody asked for is an upstream failure). The tunnel runs as a task of its
/// own, waited for on shutdown.
fn tunnel(
    shared: &Shared,
    client_upgrade: Option<OnUpgrade>,
    response: &mut Response<Streamed>,
) -> Result<(), Refusal> {
    let switched_to_websocket = response
        .headers()
        .get(http::header::UPGRADE)
        .is_some_and(headers::is_websocket);
    let Some(client_upgrade) = client_upgrade.filter(|_| switched_to_websocket) else {
        return Err(upstream_error(
            shared,
            Problem::UpstreamUnavailable,
            "the upstream switched protocols without a WebSocket handshake to answer",
        ));
    };
    let upstream_upgrade = hyper::upgrade::on(response);
    shared.tasks.spawn(async move {
        match tokio::try_join!(client_upgrade, upstream_upgrade) {
            Ok((client, upstream)) => {
                let mut client = TokioIo::new(client);
                let mut upstream = TokioIo::new(upstream);
                if let Err(e) = tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                    tracing::debug!(error = %e, "upgraded connection ended with an error");
                }
            }
            Err(e) => tracing::debug!(error = %e, "upgrade failed"),
        }
    });
    Ok(())
}

/// Maps a client error to the answer the downstream gets.
fn classify(shared: &Shared, err: &UpstreamError, max_body: Option<u64>) -> Refusal {
    let mut timed_out = false;
    let mut source: Option<&(dyn StdError + 'static)> = Some(err);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return body_too_large(max_body.unwrap_or_default());
        }
        if e.is::<ClientBodyError>() {
            // The client's framing broke, not the upstream: a 400, never an upstream error.
            return Refusal::new(
                Problem::MalformedRequest,
                "the request body is not valid HTTP framing (chunk sizes, line endings)",
            );
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        source = e.source();
    }
    tracing::warn!(error = %DisplayChain(err), "upstream request failed");
    if timed_out {
        upstream_error(
            shared,
            Problem::UpstreamTimeout,
            "connecting to the upstream timed out",
        )
    } else {
        let detail = if err.is_connect() {
            "the upstream refused the connection"
        } else {
            "the upstream closed or reset the connection"
        };
        upstream_error(shared, Problem::UpstreamUnavailable, detail)
    }
}

/// An upstream failure: counted by kind (`timeout` or `unavailable`), answered as `problem`.
fn upstream_error(shared: &Shared, problem: Problem, detail: &'static str) -> Refusal {
    let kind = if problem == Problem::UpstreamTimeout {
        "timeout"
    } else {
        "unavailable"
    };
    shared
        .metrics
        .upstream_errors
        .with_label_values(&[kind])
        .inc();
    Refusal::new(problem, detail)
}

/// Formats an error with its whole cause chain, for logs.
struct DisplayChain<'a>(&'a (dyn StdError + 'static));

impl std::fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}

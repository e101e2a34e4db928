//! The admin listener: `/healthz` (alive), `/readyz` (configuration loaded and not draining),
//! `/metrics` (Prometheus text), open for probes and scrapers; `/usage` (every tenant's plan and
//! usage) and `/tenants` (the tenant lifecycle API, `tenants.rs`) only with
//! `Authorization: Bearer <admin.token>`, and off without a token. Kept apart
//! from the proxy port (on loopback by default) so that probes and scrapes never compete with
//! traffic or pass through the pipeline.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::state::Shared;

mod answers;
mod tenant_changes;
mod tenant_policies;
mod tenants;

pub async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let mut http = http1::Builder::new();
    // Probes and scrapes send small requests quickly; anything slower is not a probe.
    http.timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(10));
    let http = Arc::new(http);
    loop {
        let accepted = tokio::select! {
            () = stop.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let shared = shared.clone();
        let http = http.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let shared = shared.clone();
                async move {
                    let path = req.uri().path();
                    if path == "/tenants" || path.starts_with("/tenants/") {
                        return Ok::<_, Infallible>(*match permitted(&shared, &req) {
                            Ok(credential) => tenants::answer(&shared, req, credential).await,
                            Err(refused) => answers::refused(refused),
                        });
                    }
                    Ok::<_, Infallible>(answer(&shared, &req).await)
                }
            });
            let _ = http.serve_connection(TokioIo::new(stream), service).await;
        });
    }
}

async fn answer(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (req.method(), req.uri().path()) {
        (&Method::GET, "/healthz") => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        (&Method::GET, "/readyz") if shared.draining.load(Ordering::Relaxed) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "draining\n".to_string(),
        ),
        (&Method::GET, "/readyz") => (StatusCode::OK, "text/plain", "ready\n".to_string()),
        (&Method::GET, "/metrics") => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            shared.metrics.render(),
        ),
        (&Method::GET, path) if path == "/usage" || path.starts_with("/usage/") => {
            match permitted(shared, req) {
                Ok(_) => usage(shared, req).await,
                Err(refused) => refused,
            }
        }
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"tollgate-admin\""),
        );
    }
    if let Ok(value) = content_type.parse() {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

/// Whether a request to a protected endpoint carries the admin token; if so, the credential's
/// name in audit records (a fingerprint of the token, never the token).
fn permitted(
    shared: &Shared,
    req: &Request<Incoming>,
) -> Result<String, (StatusCode, &'static str, String)> {
    let snapshot = shared.snapshot.load();
    let Some(token) = &snapshot.config.admin.token else {
        return Err((
            StatusCode::FORBIDDEN,
            "text/plain",
            format!(
                "{} is off: set admin.token to enable it\n",
                req.uri().path()
            ),
        ));
    };
    let sent = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    // Constant time: the comparison says nothing about how much of the token was right.
    let equal = sent.len() == token.len()
        && sent
            .bytes()
            .zip(token.bytes())
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
    if equal {
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
        let hex: String = digest.as_ref()[..6]
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Ok(format!("admin-token:sha256:{hex}"))
    } else {
        Err((
            StatusCode::UNAUTHORIZED,
            "text/plain",
            "send Authorization: Bearer <admin.token>\n".to_string(),
        ))
    }
}

/// `/usage` (every tenant) and `/usage/{tenant}`, with an optional `?period=2026-11`.
async fn usage(shared: &Shared, req: &Request<Incoming>) -> (StatusCode, &'static str, String) {
    let snapshot = shared.snapshot.load_full();
    let Some(directory) = &snapshot.tenants else {
        return (
            StatusCode::NOT_FOUND,
            "text/plain",
            "no tenancy configured\n".to_string(),
        );
    };
    let period = req
        .uri()
        .query()
        .and_then(|q| q.split('&').find_map(|kv| kv.strip_prefix("period=")));
    let tenant = req
        .uri()
        .path()
        .strip_prefix("/usage/")
        .filter(|t| !t.is_empty());
    if tenant.is_some_and(|t| directory.get(t).is_none()) {
        return (
            StatusCode::NOT_FOUND,
            "text/plain",
            "unknown tenant\n".to_string(),
        );
    }
    match shared.limits.report(directory, tenant, period).await {
        Ok(body) => (StatusCode::OK, "application/json", body.to_string()),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            format!("{e}\n"),
        ),
    }
}

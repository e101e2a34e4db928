//! Authorizer mode: the same decision ([`super::decide`]) for a gateway that forwards requests
//! itself and asks Tollgate first. nginx `auth_request` sends the original request's method and
//! URI in `X-Original-Method` / `X-Original-URI` (host in `Host`); Traefik `forwardAuth` sends
//! `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host` and `X-Forwarded-Proto`; Envoy's
//! `ext_authz` HTTP service sends the original method, headers and path, the path after a
//! configured prefix. Allowed: 200 with the trusted identity headers for the gateway to copy
//! upstream. Refused: exactly the answer proxy mode would give.

use std::sync::Arc;

use http::header::HOST;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use crate::audit::body::Completing;
use crate::error::{Problem, Refusal};
use crate::headers::{self, X_REQUEST_ID};
use crate::server::{ConnInfo, Shared};

use super::{Context, Input, ResponseBody, decide, record};

static ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_TOLLGATE_PROBLEM: HeaderName = HeaderName::from_static("x-tollgate-problem");

/// The request the gateway asks about: method, target and its headers (with its own `Host`).
fn original(
    request: &Request<Incoming>,
    envoy_prefix: &str,
) -> Result<(Method, Uri, HeaderMap), Refusal> {
    let h = request.headers();
    let text = |name: &HeaderName| h.get(name).and_then(|v| v.to_str().ok());
    let (method, target, host) = if let Some(uri) = text(&ORIGINAL_URI) {
        (
            text(&ORIGINAL_METHOD).unwrap_or(request.method().as_str()),
            uri.to_string(),
            text(&HOST),
        )
    } else if let Some(uri) = text(&FORWARDED_URI) {
        let host = text(&headers::X_FORWARDED_HOST).or(text(&HOST));
        (
            text(&FORWARDED_METHOD).unwrap_or("GET"),
            uri.to_string(),
            host,
        )
    } else {
        let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
        let rest = target.strip_prefix(envoy_prefix).ok_or_else(|| {
            Refusal::new(
                Problem::MalformedRequest,
                "say which request to authorize: X-Original-URI (nginx), X-Forwarded-Uri (Traefik) or the Envoy path prefix",
            )
        })?;
        let rest = if rest.starts_with('/') {
            rest.to_string()
        } else {
            format!("/{rest}")
        };
        (request.method().as_str(), rest, text(&HOST))
    };
    let malformed = |what: &'static str| Refusal::new(Problem::MalformedRequest, what);
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| malformed("the original method is invalid"))?;
    let uri: Uri = target
        .parse()
        .map_err(|_| malformed("the original URI is invalid"))?;
    let mut original = h.clone();
    for name in [
        &ORIGINAL_URI,
        &ORIGINAL_METHOD,
        &FORWARDED_URI,
        &FORWARDED_METHOD,
    ] {
        original.remove(name);
    }
    match host.map(HeaderValue::from_str) {
        Some(Ok(host)) => {
            original.insert(HOST, host);
        }
        Some(Err(_)) => return Err(malformed("the original host is invalid")),
        None => {}
    }
    Ok((method, uri, original))
}

/// Decides one request for a gateway.
pub async fn authorize(
    shared: &Arc<Shared>,
    conn: ConnInfo,
    request: Request<Incoming>,
) -> Response<ResponseBody> {
    let snapshot = shared.snapshot.load_full();
    let mut ctx = Context::arrived(request.headers(), conn, &snapshot);
    let prefix = snapshot
        .config
        .authorizer
        .as_ref()
        .map_or("/envoy", |a| a.envoy_path_prefix.as_str());
    let decided = match original(&request, prefix) {
        Ok((method, uri, headers)) => {
            ctx.note(&uri, &headers, &snapshot);
            let input = Input {
                method: &method,
                uri: &uri,
                headers: &headers,
                tenant: None,
                principal: None,
            };
            decide(
                &shared.jwks,
                &shared.metrics,
                Some(&shared.limits),
                &snapshot,
                &mut ctx,
                input,
            )
            .await
            .map(|_| method)
        }
        Err(refusal) => Err(refusal),
    };
    let (mut response, method) = match decided {
        Ok(method) => {
            let mut response = Response::new(Either::Right(Full::default()));
            *response.status_mut() = StatusCode::OK;
            let h = response.headers_mut();
            let trusted = ctx.tenant.iter().flat_map(|t| &t.headers);
            for (name, value) in trusted.chain(ctx.principal.iter().flat_map(|p| &p.headers)) {
                h.insert(name, value.clone());
            }
            (response, method)
        }
        Err(refusal) => {
            ctx.problem = Some(refusal.problem.slug());
            // nginx `auth_request` passes on only 401 and 403, and never the body: the problem
            // also travels in a header, for the gateway to answer with (deploy/nginx).
            let problem = HeaderValue::from_str(&refusal.json(&ctx.request_id).to_string());
            let mut response = refusal.into_response(&ctx.request_id);
            if let Ok(problem) = problem {
                response.headers_mut().insert(&X_TOLLGATE_PROBLEM, problem);
            }
            (response, request.method().clone())
        }
    };
    let h = response.headers_mut();
    h.insert(&X_REQUEST_ID, ctx.request_id.clone());
    for (name, value) in ctx.rate_headers.drain(..) {
        h.insert(name, value);
    }
    record::record(&shared.metrics, &ctx, &method, response.status());
    if let Some(auditor) = &shared.auditor {
        // Nothing is forwarded here: the decision record is the only one.
        let _ = record::audit(auditor, &ctx, &method, response.status());
    }
    response.map(|body| Completing::new(body, None))
}

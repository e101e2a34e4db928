//! Authorizer mode: the same decision ([`super::decide`]), through the same entry
//! (`entry.rs`: admission, the in-flight limit, the final record), for a gateway that forwards requests
//! itself and asks Tollgate first. Each authorizer listener answers one gateway and reads only
//! that gateway's hints, so a client cannot pick the hints it likes:
//!
//! - nginx `auth_request`: `X-Original-Method` and `X-Original-URI` (host in `Host`);
//! - Traefik `forwardAuth`: `X-Forwarded-Method`, `X-Forwarded-Uri`, `X-Forwarded-Host`;
//! - Envoy `ext_authz` (HTTP service): the original method, headers and path, the path after a
//!   configured prefix.
//!
//! Another gateway's hint headers, a hint sent twice, or a header only Tollgate may set (which
//! the gateway would forward and Tollgate cannot remove) are refused with 400. Allowed: 200 with
//! the trusted identity headers for the gateway to copy upstream, and what to do with the
//! credentials in that gateway's terms. Refused: exactly the answer proxy mode would give.

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri};
use http_body_util::Either;
use hyper::body::Incoming;

use crate::config::{Authorizer, Gateway, TenantSource};
use crate::error::{Problem, Refusal};
use crate::headers;
use crate::snapshot::Snapshot;
use crate::state::Shared;

use super::context::{Context, ProxyBody};
use super::fixed_body::Fixed;
use super::{Input, Mode, decide_live};

static ORIGINAL_URI: HeaderName = HeaderName::from_static("x-original-uri");
static ORIGINAL_METHOD: HeaderName = HeaderName::from_static("x-original-method");
static FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
static FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
static X_TOLLGATE_PROBLEM: HeaderName = HeaderName::from_static("x-tollgate-problem");
/// nginx: the `Authorization` value to send upstream (absent: send none).
static X_TOLLGATE_AUTHORIZATION: HeaderName = HeaderName::from_static("x-tollgate-authorization");
/// Envoy: request headers to remove before forwarding.
static ENVOY_HEADERS_TO_REMOVE: HeaderName =
    HeaderName::from_static("x-envoy-auth-headers-to-remove");

static NGINX_HINTS: [&HeaderName; 2] = [&ORIGINAL_METHOD, &ORIGINAL_URI];
static TRAEFIK_HINTS: [&HeaderName; 3] = [
    &FORWARDED_METHOD,
    &FORWARDED_URI,
    &headers::X_FORWARDED_HOST,
];

/// The hint headers each gateway sends.
fn hints(gateway: Gateway) -> &'static [&'static HeaderName] {
    match gateway {
        Gateway::Nginx => &NGINX_HINTS,
        Gateway::Traefik => &TRAEFIK_HINTS,
        Gateway::Envoy | Gateway::EnvoyGrpc => &[],
    }
}

fn malformed(detail: impl Into<std::borrow::Cow<'static, str>>) -> Refusal {
    Refusal::new(Problem::MalformedRequest, detail)
}

/// The one value of a hint header the gateway must send, or why there is none.
fn hint<'a>(h: &'a HeaderMap, name: &HeaderName) -> Result<&'a str, Refusal> {
    let mut values = h.get_all(name).iter();
    match (values.next(), values.next()) {
        (Some(value), None) => value
            .to_str()
            .map_err(|_| malformed(format!("the {name} header is not readable"))),
        (None, _) => Err(malformed(format!(
            "the gateway did not send {name}: see the gateway's section of the README"
        ))),
        (Some(_), Some(_)) => Err(malformed(format!(
            "the {name} header appears more than once"
        ))),
    }
}

/// The request the gateway asks about: method, target and its headers (with its own `Host`).
fn original(
    request: &Request<Incoming>,
    authorizer: &Authorizer,
    snapshot: &Snapshot,
) -> Result<(Method, Uri, HeaderMap), Refusal> {
    let h = request.headers();
    let gateway = authorizer.gateway;
    let own = hints(gateway);
    // Hints of another gateway are a client's: Traefik and nginx pass client headers on.
    for name in [
        &ORIGINAL_URI,
        &ORIGINAL_METHOD,
        &FORWARDED_URI,
        &FORWARDED_METHOD,
    ] {
        if h.contains_key(name) && !own.contains(&name) {
            return Err(malformed(format!(
                "{name} is not a hint this authorizer reads: it answers {gateway}"
            )));
        }
    }
    let (method, target, host) = match gateway {
        Gateway::Nginx => (
            hint(h, &ORIGINAL_METHOD)?,
            hint(h, &ORIGINAL_URI)?.to_string(),
            None,
        ),
        Gateway::Traefik => (
            hint(h, &FORWARDED_METHOD)?,
            hint(h, &FORWARDED_URI)?.to_string(),
            Some(hint(h, &headers::X_FORWARDED_HOST)?),
        ),
        Gateway::Envoy => {
            let target = request.uri().path_and_query().map_or("/", |p| p.as_str());
            let rest = target
                .strip_prefix(authorizer.envoy_path_prefix.as_str())
                .filter(|rest| rest.is_empty() || rest.starts_with('/') || rest.starts_with('?'))
                .ok_or_else(|| {
                    malformed(format!(
                        "Envoy sends the original path after {}",
                        authorizer.envoy_path_prefix
                    ))
                })?;
            let rest = if rest.starts_with('/') {
                rest.to_string()
            } else {
                format!("/{rest}")
            };
            (request.method().as_str(), rest, None)
        }
        // Served by `ext_authz_grpc.rs`; a listener is never both.
        Gateway::EnvoyGrpc => {
            return Err(malformed(
                "this listener answers Envoy's gRPC ext_authz (envoy.service.auth.v3.Authorization/Check)",
            ));
        }
    };
    let method = Method::from_bytes(method.as_bytes())
        .map_err(|_| malformed("the original method is invalid"))?;
    let uri: Uri = target
        .parse()
        .map_err(|_| malformed("the original URI is invalid"))?;
    let mut original = h.clone();
    for name in own {
        original.remove(*name);
    }
    // What the gateway forwards and Tollgate cannot remove must not be there at all.
    let tenant_header = snapshot
        .config
        .tenancy
        .as_ref()
        .filter(|t| t.sources.contains(&TenantSource::Header))
        .map(|t| &t.header);
    let underscores = snapshot.config.forwarding.allow_underscores;
    if let Some(name) = original
        .keys()
        .find(|name| headers::is_reserved(name, underscores) && Some(*name) != tenant_header)
    {
        return Err(malformed(format!(
            "the request carries {name}, a header only Tollgate sets: the gateway must remove it"
        )));
    }
    if let Some(host) = host {
        let host =
            HeaderValue::from_str(host).map_err(|_| malformed("the original host is invalid"))?;
        original.insert(HOST, host);
    }
    Ok((method, uri, original))
}

/// What the gateway must do with the credentials, in its own terms: an API key never leaves
/// Tollgate; a verified token travels on unless `identity.forward_token` is false.
fn credentials(
    response: &mut HeaderMap,
    ctx: &Context,
    authorization: Option<HeaderValue>,
    snapshot: &Snapshot,
    gateway: Gateway,
) {
    let drop_authorization = !ctx.forwards_authorization(&snapshot.config.identity);
    let forward = authorization.filter(|_| !drop_authorization);
    let key_header = snapshot
        .config
        .identity
        .api_keys
        .as_ref()
        .map(|k| k.header.as_str());
    match gateway {
        Gateway::Nginx => {
            if let Some(value) = forward {
                response.insert(&X_TOLLGATE_AUTHORIZATION, value);
            }
        }
        // forwardAuth replaces each `authResponseHeaders` name with the answer's (none: removed).
        Gateway::Traefik => {
            if let Some(value) = forward {
                response.insert(AUTHORIZATION, value);
            }
        }
        Gateway::Envoy | Gateway::EnvoyGrpc => {
            let names: Vec<&str> = drop_authorization
                .then_some("authorization")
                .into_iter()
                .chain(key_header)
                .collect();
            if let Ok(value) = HeaderValue::from_str(&names.join(", "))
                && !names.is_empty()
            {
                response.insert(&ENVOY_HEADERS_TO_REMOVE, value);
            }
        }
    }
}

/// Decides one request for a gateway: the original request from this listener's gateway's
/// hints, [`decide`], and the answer in that gateway's terms. Returns the answer and the
/// original method (for the record).
pub async fn answer(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut Context,
    listener: usize,
    request: &Request<Incoming>,
) -> (Response<ProxyBody>, Method) {
    // The listeners come from the main file, which a reload never changes.
    let Some(authorizer) = snapshot.config.authorizers.get(listener) else {
        let refusal = malformed("this listener answers no gateway");
        return (refused(ctx, refusal), request.method().clone());
    };
    let mut authorization = None;
    let decided = match original(request, authorizer, snapshot) {
        Ok((method, uri, headers)) => {
            ctx.note(&uri, &headers, snapshot);
            let input = Input {
                method: &method,
                uri: &uri,
                // The gateway's own request says nothing of the client's version; a Host (or
                // X-Forwarded-Host) is always required.
                version: http::Version::HTTP_11,
                headers: &headers,
                mode: Mode::Authorizer,
                tenant: None,
                principal: None,
            };
            decide_live(shared, snapshot, ctx, input).await.map(|_| {
                authorization = headers.get(AUTHORIZATION).cloned();
                method
            })
        }
        Err(refusal) => Err(refusal),
    };
    match decided {
        Ok(method) => {
            let mut response = Response::new(Either::Right(Fixed::default()));
            *response.status_mut() = StatusCode::OK;
            let h = response.headers_mut();
            let trusted = ctx.tenant.iter().flat_map(|t| &t.headers);
            for (name, value) in trusted.chain(ctx.principal.iter().flat_map(|p| &p.headers)) {
                h.insert(name, value.clone());
            }
            credentials(h, ctx, authorization, snapshot, authorizer.gateway);
            (response, method)
        }
        Err(refusal) => (refused(ctx, refusal), request.method().clone()),
    }
}

/// A refusal as a gateway gets it: the proxy-mode answer, and the problem in a header too,
/// because nginx `auth_request` passes on only 401 and 403, and never the body (deploy/nginx
/// answers with it).
pub fn refused(ctx: &mut Context, refusal: Refusal) -> Response<ProxyBody> {
    ctx.problem = Some(refusal.problem.slug());
    let problem = HeaderValue::from_str(&refusal.json(&ctx.arrival.request_id).to_string());
    let mut response = refusal
        .into_response(&ctx.arrival.request_id)
        .map(|body| Either::Right(Fixed::new(body)));
    if let Ok(problem) = problem {
        response.headers_mut().insert(&X_TOLLGATE_PROBLEM, problem);
    }
    response
}

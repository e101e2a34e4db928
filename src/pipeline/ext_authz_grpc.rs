//! Authorizer mode for Envoy's gRPC `ext_authz` (also Istio's `envoyExtAuthzGrpc` provider):
//! `envoy.service.auth.v3.Authorization/Check`, through the same entry (`entry.rs`) and the same
//! [`decide`](super::decide) as every other mode.
//!
//! The request judged is the one `CheckRequest.attributes` describes: its method, target (path
//! and query, as sent), host, headers (each value apart with Envoy's `encode_raw_headers: true`;
//! otherwise a header sent twice arrives joined with `,`, and a single-value header holding a
//! `,` is then refused as ambiguous), protocol and scheme; the client is the source address
//! Envoy saw, whose `X-Forwarded-For` counts only if it is a trusted proxy. `context_extensions`
//! are not read: nothing but the request decides.
//!
//! Allowed: `OkHttpResponse` with the trusted identity headers set, every header the client may
//! not send the application removed (the reserved names, overrides, address claims, Tollgate's
//! credentials), the `RateLimit*` headers for the client, and `dynamic_metadata` (tenant, plan,
//! principal, route, request id, deciding policies) for Envoy's access log and filters.
//! Refused: `DeniedHttpResponse` with exactly the status, headers and problem document proxy
//! mode would answer.

use std::net::{IpAddr, SocketAddr};

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use http::{
    HeaderMap, HeaderName, HeaderValue, Method, Request, Response, StatusCode, Uri, Version,
};
use http_body_util::{BodyExt, Either, Limited};
use hyper::body::Incoming;
use prost::Message;

use crate::error::{Problem, Refusal};
use crate::grpc::proto::{
    CheckRequest, CheckResponse, DeniedHttpResponse, HeaderValueOption, HttpRequest, HttpStatus,
    OVERWRITE_IF_EXISTS_OR_ADD, OkHttpResponse, RpcStatus,
};
use crate::grpc::{self, Code};
use crate::headers;
use crate::snapshot::Snapshot;
use crate::state::Shared;

use super::context::{Context, ProxyBody};
use super::fixed_body::Fixed;
use super::metadata;
use super::{Input, Mode, admission, decide_live};

fn malformed(detail: impl Into<std::borrow::Cow<'static, str>>) -> Refusal {
    Refusal::new(Problem::MalformedRequest, detail)
}

/// A gRPC answer with no message: the call itself was wrong (not `Check`, not a message).
fn failed(code: Code, message: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Either::Right(Fixed::default()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    headers.extend(grpc::status(code, message));
    response
}

/// A `CheckResponse`, with `grpc-status: 0` in trailers.
fn checked(message: &CheckResponse) -> Response<ProxyBody> {
    let body = grpc::frame(&message.encode_to_vec());
    let trailers = grpc::status(Code::Ok, "");
    let mut response = Response::new(Either::Right(Fixed::with_trailers(body, trailers)));
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/grpc"));
    response
}

/// The `CheckRequest` of a call, or the gRPC answer it gets.
async fn question(request: Request<Incoming>) -> Result<CheckRequest, Response<ProxyBody>> {
    if request.method() != Method::POST || request.uri().path() != grpc::CHECK_PATH {
        return Err(failed(
            Code::Unimplemented,
            "this listener serves envoy.service.auth.v3.Authorization/Check only",
        ));
    }
    let grpc_content = request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v == "application/grpc" || v.starts_with("application/grpc+proto"));
    if !grpc_content {
        let mut response = failed(
            Code::InvalidArgument,
            "content-type must be application/grpc",
        );
        *response.status_mut() = StatusCode::UNSUPPORTED_MEDIA_TYPE;
        return Err(response);
    }
    let body = Limited::new(request.into_body(), grpc::MAX_MESSAGE + 5)
        .collect()
        .await
        .map_err(|_| failed(Code::ResourceExhausted, "the message is over 4 MiB"))?
        .to_bytes();
    let message = grpc::message(&body).map_err(|(code, why)| failed(code, why))?;
    CheckRequest::decode(message).map_err(|_| {
        failed(
            Code::InvalidArgument,
            "not an envoy.service.auth.v3.CheckRequest",
        )
    })
}

/// What the original request was: method, target, version, headers (with its `Host`), and the
/// client's address as Envoy saw it.
struct Original {
    method: Method,
    uri: Uri,
    version: Version,
    headers: HeaderMap,
    source: Option<SocketAddr>,
    tls: bool,
    id: Option<HeaderValue>,
}

fn original(check: &CheckRequest, snapshot: &Snapshot) -> Result<Original, Refusal> {
    let attributes = check.attributes.as_ref();
    let http = attributes
        .and_then(|a| a.request.as_ref())
        .and_then(|r| r.http.as_ref())
        .ok_or_else(|| malformed("the CheckRequest describes no HTTP request"))?;
    let method = Method::from_bytes(http.method.as_bytes())
        .map_err(|_| malformed("the original method is invalid"))?;
    let uri: Uri = http
        .path
        .parse()
        .map_err(|_| malformed("the original URI is invalid"))?;
    let version = match http.protocol.as_str() {
        "HTTP/1.0" => Version::HTTP_10,
        "HTTP/2" => Version::HTTP_2,
        "HTTP/3" => Version::HTTP_3,
        _ => Version::HTTP_11,
    };
    let mut headers = request_headers(http, snapshot)?;
    if !http.host.is_empty() {
        let host = HeaderValue::from_str(&http.host)
            .map_err(|_| malformed("the original host is invalid"))?;
        headers.insert(HOST, host);
    }
    let source = attributes
        .and_then(|a| a.source.as_ref())
        .and_then(|p| p.address.as_ref())
        .and_then(|a| a.socket_address.as_ref())
        .and_then(|s| {
            let ip: IpAddr = s.address.parse().ok()?;
            Some(SocketAddr::new(
                ip.to_canonical(),
                u16::try_from(s.port_value).ok()?,
            ))
        });
    let tls = http.scheme == "https" || attributes.is_some_and(|a| a.tls_session.is_some());
    let id = HeaderValue::from_str(&http.id)
        .ok()
        .filter(|_| !http.id.is_empty());
    Ok(Original {
        method,
        uri,
        version,
        headers,
        source,
        tls,
        id,
    })
}

/// The original headers, pseudo-headers left out. Envoy joins the values of a header sent twice
/// with `,` (always in its `headers` map, and for the headers it keeps inline, such as
/// `Authorization`, even with `encode_raw_headers`), so a single-value header is split where it
/// holds more than one value, and a repeated one is refused as it is in proxy mode.
fn request_headers(http: &HttpRequest, snapshot: &Snapshot) -> Result<HeaderMap, Refusal> {
    let mut headers = HeaderMap::new();
    let mut add = |name: &str, value: &[u8]| -> Result<(), Refusal> {
        if name.starts_with(':') {
            return Ok(());
        }
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| malformed(format!("the header name {name:?} is invalid")))?;
        let single = name == HOST || snapshot.single_headers.contains(&name);
        for part in values(&name, value, single) {
            let value = HeaderValue::from_bytes(part)
                .map_err(|_| malformed(format!("the {name} header is not a valid value")))?;
            headers.append(&name, value);
        }
        Ok(())
    };
    match &http.header_map {
        Some(map) => {
            for h in &map.headers {
                let value = if h.raw_value.is_empty() {
                    h.value.as_bytes()
                } else {
                    &h.raw_value
                };
                add(&h.key, value)?;
            }
        }
        None => {
            for (name, value) in &http.headers {
                add(name, value.as_bytes())?;
            }
        }
    }
    Ok(headers)
}

/// The values one header line holds. A single-value header joined by Envoy is split at `,`;
/// for `Authorization`, only where a second credential (`Scheme value`) follows, since one
/// credential's parameters are `,`-separated too (`Digest realm="a", nonce="b"`).
fn values<'a>(name: &HeaderName, value: &'a [u8], single: bool) -> Vec<&'a [u8]> {
    if !single || !value.contains(&b',') {
        return vec![value];
    }
    let parts: Vec<&[u8]> = value
        .split(|b| *b == b',')
        .map(<[u8]>::trim_ascii)
        .collect();
    let credential = |part: &&[u8]| {
        part.iter()
            .position(|b| *b == b' ')
            .is_some_and(|space| space > 0 && !part[..space].contains(&b'='))
    };
    if *name != AUTHORIZATION || parts.iter().skip(1).any(credential) {
        parts
    } else {
        vec![value]
    }
}

/// Serves one `Check` call: the original request, [`decide`](super::decide), the answer.
/// Returns the answer and the original method (for the record).
pub async fn answer(
    shared: &Shared,
    snapshot: &Snapshot,
    ctx: &mut Context,
    request: Request<Incoming>,
) -> (Response<ProxyBody>, Method) {
    let check = match question(request).await {
        Ok(check) => check,
        Err(response) => return (response, Method::POST),
    };
    let original = match original(&check, snapshot) {
        Ok(original) => original,
        Err(refusal) => return (refused(ctx, refusal), Method::POST),
    };
    if let Some(source) = original.source {
        ctx.arrival.peer = source;
        ctx.arrival.peer_trusted = snapshot.is_trusted_proxy(source.ip());
    }
    ctx.arrival.tls = original.tls;
    // The gateway asks: the id it gave the request names it in both logs.
    if let Some(id) = original.id.clone() {
        let mut named = HeaderMap::new();
        named.insert(&headers::X_REQUEST_ID, id);
        ctx.arrival.request_id = headers::request_id(&named, true);
    }
    ctx.note(&original.uri, &original.headers, snapshot);
    if let Err(refusal) = admission::check(&snapshot.config.server.limits, &original.headers) {
        return (refused(ctx, refusal), original.method);
    }
    let input = Input {
        method: &original.method,
        uri: &original.uri,
        version: original.version,
        headers: &original.headers,
        mode: Mode::Authorizer,
        tenant: None,
        principal: None,
    };
    match decide_live(shared, snapshot, ctx, input).await {
        Ok(_) => {
            let ok = allowed(ctx, snapshot, &original.headers);
            let message = CheckResponse {
                status: Some(RpcStatus {
                    code: Code::Ok as i32,
                    message: String::new(),
                }),
                denied_response: None,
                ok_response: Some(ok),
                dynamic_metadata: Some(metadata::of(ctx)),
            };
            ctx.decided_status = Some(StatusCode::OK);
            (checked(&message), original.method)
        }
        Err(refusal) => (refused(ctx, refusal), original.method),
    }
}

/// A header for Envoy to set: as text (what every Envoy reads), as bytes when it is not text.
fn option(name: &str, value: &HeaderValue) -> HeaderValueOption {
    let (text, raw) = match value.to_str() {
        Ok(text) => (text.to_string(), Vec::new()),
        Err(_) => (String::new(), value.as_bytes().to_vec()),
    };
    HeaderValueOption {
        header: Some(crate::grpc::proto::HeaderValue {
            key: name.to_string(),
            value: text,
            raw_value: raw,
        }),
        append_action: OVERWRITE_IF_EXISTS_OR_ADD,
    }
}

/// What Envoy does with an allowed request: the trusted headers set, and every header of the
/// client's that the application must not receive removed.
fn allowed(ctx: &Context, snapshot: &Snapshot, original: &HeaderMap) -> OkHttpResponse {
    let mut set: Vec<(&HeaderName, &HeaderValue)> = ctx
        .tenant
        .iter()
        .flat_map(|t| &t.headers)
        .chain(ctx.principal.iter().flat_map(|p| &p.headers))
        .map(|(n, v)| (n, v))
        .collect();
    set.push((&headers::X_REQUEST_ID, &ctx.arrival.request_id));
    // From a peer that is not a trusted proxy, the address and scheme are what Envoy saw, as
    // proxy mode sets them, whatever Envoy's own forwarding settings are.
    let forwarded = (!ctx.arrival.peer_trusted).then(|| {
        let scheme = if ctx.arrival.tls { "https" } else { "http" };
        (
            HeaderValue::from_str(&ctx.arrival.peer.ip().to_string()).ok(),
            HeaderValue::from_static(scheme),
        )
    });
    if let Some((address, scheme)) = &forwarded {
        if let Some(address) = address {
            set.push((&headers::X_FORWARDED_FOR, address));
        }
        set.push((&headers::X_FORWARDED_PROTO, scheme));
    }
    let config = &snapshot.config;
    let underscores = config.forwarding.allow_underscores;
    let drop_authorization = !ctx.forwards_authorization(&config.identity);
    let claims_address = |name: &HeaderName| {
        !ctx.arrival.peer_trusted
            && (name == http::header::FORWARDED
                || name.as_str() == "x-real-ip"
                || name.as_str().starts_with("x-forwarded-"))
    };
    let mut remove: Vec<String> = original
        .keys()
        .filter(|name| {
            headers::is_reserved(name, underscores)
                || snapshot.strip_headers.contains(name)
                || (drop_authorization && *name == AUTHORIZATION)
                || claims_address(name)
        })
        .filter(|name| !set.iter().any(|(n, _)| n == name))
        .map(|name| name.to_string())
        .collect();
    remove.dedup();
    let mut to_client: Vec<HeaderValueOption> = ctx
        .rate_headers
        .iter()
        .map(|(n, v)| option(n.as_str(), v))
        .collect();
    to_client.push(option("x-request-id", &ctx.arrival.request_id));
    OkHttpResponse {
        headers: set.iter().map(|(n, v)| option(n.as_str(), v)).collect(),
        headers_to_remove: remove,
        response_headers_to_add: to_client,
    }
}

/// A refusal as Envoy passes it to the client: the proxy-mode answer, whole.
pub fn refused(ctx: &mut Context, refusal: Refusal) -> Response<ProxyBody> {
    ctx.problem = Some(refusal.problem.slug());
    let code = match refusal.problem.status() {
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::TOO_MANY_REQUESTS => Code::ResourceExhausted,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        _ => Code::PermissionDenied,
    };
    let answer = refusal.into_response(&ctx.arrival.request_id);
    let mut headers: Vec<HeaderValueOption> = answer
        .headers()
        .iter()
        .map(|(n, v)| option(n.as_str(), v))
        .collect();
    headers.extend(ctx.rate_headers.iter().map(|(n, v)| option(n.as_str(), v)));
    headers.push(option("x-request-id", &ctx.arrival.request_id));
    let status = answer.status();
    ctx.decided_status = Some(status);
    let body: Bytes = answer.into_body();
    let message = CheckResponse {
        status: Some(RpcStatus {
            code: code as i32,
            message: ctx.problem.unwrap_or_default().to_string(),
        }),
        denied_response: Some(DeniedHttpResponse {
            status: Some(HttpStatus {
                code: i32::from(status.as_u16()),
            }),
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }),
        ok_response: None,
        dynamic_metadata: Some(metadata::of(ctx)),
    };
    checked(&message)
}

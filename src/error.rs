//! One place turns a refusal into an HTTP answer: an `application/problem+json` body (RFC 9457)
//! with a stable `type`, the status, and the request id. Bodies never carry internal error text.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{Either, Full};

use crate::pipeline::ProxyBody;

/// Prefix of every problem `type`. The full URI is a stable identifier clients may match on.
pub const PROBLEM_BASE: &str = "https://tollgate.dev/problems/";

/// Every way Tollgate refuses or fails a request. The slug is the stable part of `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// 400: framing or target Tollgate will not guess about.
    MalformedRequest,
    /// 400: a path that could mean two different things (`..` above root, `%2F`, NUL, `\`).
    AmbiguousPath,
    /// 413: the body is larger than `server.limits.max_body_bytes`.
    PayloadTooLarge,
    /// 431: too many or too large request headers.
    HeadersTooLarge,
    /// 502: the upstream refused, reset or spoke broken HTTP.
    UpstreamUnavailable,
    /// 503: more requests in flight than `server.limits.max_in_flight`.
    Overloaded,
    /// 504: the upstream did not connect or answer in time.
    UpstreamTimeout,
}

impl Problem {
    pub fn status(self) -> StatusCode {
        match self {
            Problem::MalformedRequest | Problem::AmbiguousPath => StatusCode::BAD_REQUEST,
            Problem::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Problem::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Problem::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
            Problem::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Problem::MalformedRequest => "malformed-request",
            Problem::AmbiguousPath => "ambiguous-path",
            Problem::PayloadTooLarge => "payload-too-large",
            Problem::HeadersTooLarge => "headers-too-large",
            Problem::UpstreamUnavailable => "upstream-unavailable",
            Problem::Overloaded => "overloaded",
            Problem::UpstreamTimeout => "upstream-timeout",
        }
    }

    pub fn title(self) -> &'static str {
        match self {
            Problem::MalformedRequest => "Malformed request",
            Problem::AmbiguousPath => "Ambiguous request path",
            Problem::PayloadTooLarge => "Request body too large",
            Problem::HeadersTooLarge => "Request headers too large",
            Problem::UpstreamUnavailable => "Upstream unavailable",
            Problem::Overloaded => "Proxy overloaded",
            Problem::UpstreamTimeout => "Upstream timed out",
        }
    }

    /// Whether the client connection must not be reused after this answer.
    fn closes_connection(self) -> bool {
        matches!(
            self,
            Problem::MalformedRequest | Problem::PayloadTooLarge | Problem::HeadersTooLarge
        )
    }
}

/// A problem plus a human sentence about this occurrence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub problem: Problem,
    pub detail: Cow<'static, str>,
}

impl Refusal {
    pub fn new(problem: Problem, detail: impl Into<Cow<'static, str>>) -> Self {
        Refusal {
            problem,
            detail: detail.into(),
        }
    }

    /// The `application/problem+json` answer for this refusal.
    pub fn into_response(self, request_id: &HeaderValue) -> Response<ProxyBody> {
        let status = self.problem.status();
        let body = serde_json::json!({
            "type": format!("{PROBLEM_BASE}{}", self.problem.slug()),
            "title": self.problem.title(),
            "status": status.as_u16(),
            "detail": self.detail,
            "request_id": request_id.to_str().unwrap_or_default(),
        });
        let mut response = Response::new(Either::Right(Full::new(Bytes::from(body.to_string()))));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if self.problem == Problem::Overloaded {
            headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
        }
        if self.problem.closes_connection() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

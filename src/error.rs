//! One place turns a refusal into an HTTP answer: an `application/problem+json` body (RFC 9457)
//! with a stable `type`, the status, and the request id. Bodies never carry internal error text.

use std::borrow::Cow;

use bytes::Bytes;
use http::header::{CONNECTION, CONTENT_TYPE, RETRY_AFTER, WWW_AUTHENTICATE};
use http::{HeaderValue, Response, StatusCode};

/// Prefix of every problem `type`. The full URI is a stable identifier clients may match on.
pub(crate) const PROBLEM_BASE: &str = "https://tollgate.dev/problems/";

/// Every way Tollgate refuses or fails a request. The slug is the stable part of `type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// 400: framing or target Tollgate will not guess about.
    MalformedRequest,
    /// 400: a path that could mean two different things (`..` above root, `%2F`, NUL, `\`).
    AmbiguousPath,
    /// 400: two tenant sources of one request name different tenants.
    TenantConflict,
    /// 401: credentials are required and none were sent.
    Unauthenticated,
    /// 401: a token or API key was sent and is not valid (bad signature, expired, revoked…).
    InvalidCredentials,
    /// 402: the tenant's trial ended or its subscription is archived.
    SubscriptionInactive,
    /// 403: the tenant is suspended.
    TenantSuspended,
    /// 403: the tenant is not activated yet.
    TenantPending,
    /// 403: the credentials belong to another tenant.
    TenantMismatch,
    /// 403: the policies do not allow the request (or the decision failed, which denies).
    Forbidden,
    /// 403: no route matches and unmatched requests are denied.
    NoRoute,
    /// 404: no known tenant matches the request.
    UnknownTenant,
    /// 429: a rate limit of the tenant's plan.
    RateLimited,
    /// 429: a calendar quota of the tenant's plan is used up.
    QuotaExceeded,
    /// 503: the shared limits store is unreachable and the plan refuses rather than fall back.
    LimitsUnavailable,
    /// 503: audit is `required` and records cannot be written.
    AuditUnavailable,
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
            Problem::MalformedRequest | Problem::AmbiguousPath | Problem::TenantConflict => {
                StatusCode::BAD_REQUEST
            }
            Problem::Unauthenticated | Problem::InvalidCredentials => StatusCode::UNAUTHORIZED,
            Problem::SubscriptionInactive => StatusCode::PAYMENT_REQUIRED,
            Problem::TenantSuspended
            | Problem::TenantPending
            | Problem::TenantMismatch
            | Problem::Forbidden
            | Problem::NoRoute => StatusCode::FORBIDDEN,
            Problem::UnknownTenant => StatusCode::NOT_FOUND,
            Problem::RateLimited | Problem::QuotaExceeded => StatusCode::TOO_MANY_REQUESTS,
            Problem::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Problem::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Problem::UpstreamUnavailable => StatusCode::BAD_GATEWAY,
            Problem::Overloaded | Problem::LimitsUnavailable | Problem::AuditUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Problem::UpstreamTimeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    pub fn slug(self) -> &'static str {
        match self {
            Problem::MalformedRequest => "malformed-request",
            Problem::AmbiguousPath => "ambiguous-path",
            Problem::TenantConflict => "tenant-conflict",
            Problem::Unauthenticated => "unauthenticated",
            Problem::InvalidCredentials => "invalid-credentials",
            Problem::SubscriptionInactive => "subscription-inactive",
            Problem::TenantSuspended => "tenant-suspended",
            Problem::TenantPending => "tenant-pending",
            Problem::TenantMismatch => "tenant-mismatch",
            Problem::Forbidden => "forbidden",
            Problem::NoRoute => "no-route",
            Problem::UnknownTenant => "unknown-tenant",
            Problem::RateLimited => "rate-limited",
            Problem::QuotaExceeded => "quota-exceeded",
            Problem::LimitsUnavailable => "limits-unavailable",
            Problem::AuditUnavailable => "audit-unavailable",
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
            Problem::TenantConflict => "Conflicting tenant",
            Problem::Unauthenticated => "Authentication required",
            Problem::InvalidCredentials => "Invalid credentials",
            Problem::SubscriptionInactive => "Subscription inactive",
            Problem::TenantSuspended => "Tenant suspended",
            Problem::TenantPending => "Tenant pending activation",
            Problem::TenantMismatch => "Credentials belong to another tenant",
            Problem::Forbidden => "Forbidden",
            Problem::NoRoute => "No route",
            Problem::UnknownTenant => "Unknown tenant",
            Problem::RateLimited => "Rate limit reached",
            Problem::QuotaExceeded => "Quota exceeded",
            Problem::LimitsUnavailable => "Limits unavailable",
            Problem::AuditUnavailable => "Audit unavailable",
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
    /// Seconds for `Retry-After`.
    pub retry_after: Option<u64>,
}

impl Refusal {
    pub fn new(problem: Problem, detail: impl Into<Cow<'static, str>>) -> Self {
        Refusal {
            problem,
            detail: detail.into(),
            retry_after: None,
        }
    }

    pub(crate) fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// The problem document (RFC 9457) of this refusal.
    pub fn json(&self, request_id: &HeaderValue) -> serde_json::Value {
        serde_json::json!({
            "type": format!("{PROBLEM_BASE}{}", self.problem.slug()),
            "title": self.problem.title(),
            "status": self.problem.status().as_u16(),
            "detail": self.detail,
            "request_id": request_id.to_str().unwrap_or_default(),
        })
    }

    /// The `application/problem+json` answer for this refusal.
    pub(crate) fn into_response(self, request_id: &HeaderValue) -> Response<Bytes> {
        let status = self.problem.status();
        let body = self.json(request_id);
        let mut response = Response::new(Bytes::from(body.to_string()));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(seconds));
        }
        match self.problem {
            Problem::Overloaded => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // RFC 6750 §3: no error code when no credentials were sent.
            Problem::Unauthenticated => {
                headers.insert(
                    WWW_AUTHENTICATE,
                    HeaderValue::from_static("Bearer realm=\"tollgate\""),
                );
            }
            Problem::InvalidCredentials => {
                let challenge = format!(
                    "Bearer realm=\"tollgate\", error=\"invalid_token\", error_description=\"{}\"",
                    self.detail.replace(['"', '\\'], "")
                );
                if let Ok(value) = HeaderValue::from_str(&challenge) {
                    headers.insert(WWW_AUTHENTICATE, value);
                }
            }
            _ => {}
        }
        if self.problem.closes_connection() {
            headers.insert(CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

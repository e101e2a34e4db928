//! What the pipeline knows about one request ([`Context`], filled in stage by stage) and the
//! body types of its answers. Every stage reads and writes it; it depends on no stage.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::Either;

use crate::audit::body::Completing;
use crate::authz::decide::Decision;
use crate::headers;
use crate::identity::Principal;
use crate::snapshot::Snapshot;
use crate::stage::Stage;
use crate::state::ConnInfo;
use crate::tenants::Tenant;
use crate::upstream::Streamed;

use super::fixed_body::Fixed;

/// A response body: streamed from the upstream, or one of Tollgate's own small answers.
pub(crate) type ProxyBody = Either<Streamed, Fixed>;

const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");

/// What the request said when it arrived, before any stage ran: its connection, its id, and what
/// the record says of it. No stage changes it.
pub struct Arrival {
    pub request_id: HeaderValue,
    pub peer: SocketAddr,
    /// Whether the peer is a configured trusted proxy (its forwarding headers are believed).
    pub peer_trusted: bool,
    /// Whether the client connection is TLS.
    pub tls: bool,
    pub started: Instant,
    /// The client's address (the peer, or `X-Forwarded-For` through trusted proxies).
    pub client_ip: IpAddr,
    pub host: Option<String>,
    /// The path as sent (the record's path until the normalize stage gives the canonical one).
    pub path: String,
    pub user_agent: Option<String>,
    /// The W3C `traceparent`, when the request carried one well-formed.
    pub traceparent: Option<String>,
}

/// The matched route, as the record and the metrics name it (shared with the route table).
#[derive(Debug, Clone)]
pub struct Matched {
    pub id: Arc<str>,
    pub action: Arc<str>,
    pub resource_type: Arc<str>,
    pub resource_id: String,
}

/// What the pipeline knows about one request: the [`Arrival`], then what each stage adds.
pub struct Context {
    pub arrival: Arrival,
    /// The stage running now; after a refusal, the stage that refused.
    pub stage: Stage,
    /// The canonical path (normalize, then route after a tenant prefix was stripped).
    pub path: Option<String>,
    /// Set by the tenant stage when tenancy is configured.
    pub tenant: Option<Arc<Tenant>>,
    /// Set by the route stage.
    pub route: Option<Matched>,
    /// Set by the identity stage.
    pub principal: Option<Arc<Principal>>,
    /// The authorization decision, when a route was authorized.
    pub decision: Option<Arc<Decision>>,
    /// A shadow route whose policies denied (and the request was forwarded).
    pub shadow_deny: bool,
    /// The shadow policy set's decision, when it disagreed with the enforced one.
    pub shadow_decision: Option<Arc<Decision>>,
    /// `RateLimit*` headers for the answer, whatever it is.
    pub rate_headers: Vec<(HeaderName, HeaderValue)>,
    /// What the quota stage counted, given back if the request never reaches the upstream.
    pub refund: Option<crate::limits::refund::Refund>,
    /// Microseconds until decided, and until the upstream's response head.
    pub decided_us: Option<u64>,
    pub upstream_us: Option<u64>,
    /// Whether the request went to the upstream (its decision record is already written).
    pub forwarded: bool,
    /// Bytes of the request body the upstream received.
    pub received: Arc<AtomicU64>,
    /// The problem slug when refused.
    pub problem: Option<&'static str>,
    /// The status the gateway answers, where Tollgate's own answer does not carry it (gRPC).
    pub decided_status: Option<http::StatusCode>,
    /// Time spent in each stage, in order.
    pub stage_times: Vec<(Stage, std::time::Duration)>,
    stage_started: Instant,
}

impl Context {
    /// Notes what the record says of the request: client address (the peer, or
    /// `X-Forwarded-For` through trusted proxies), host, path and user agent. In authorizer mode
    /// these are the original request's, known once the gateway's question is read.
    pub(crate) fn note(&mut self, uri: &Uri, headers: &HeaderMap, snapshot: &Snapshot) {
        let arrival = &mut self.arrival;
        arrival.client_ip = headers::client_ip(headers, arrival.peer.ip(), |ip| {
            snapshot.is_trusted_proxy(ip)
        });
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        arrival.host = text(http::header::HOST).or_else(|| uri.authority().map(|a| a.to_string()));
        arrival.path = uri.path().to_string();
        arrival.user_agent = text(http::header::USER_AGENT);
        arrival.traceparent = text(TRACEPARENT).filter(|t| headers::traceparent(t));
    }

    /// The context of a request that just arrived on a connection.
    pub(crate) fn arrived(headers: &HeaderMap, conn: ConnInfo, snapshot: &Snapshot) -> Self {
        let trusted = snapshot.is_trusted_proxy(conn.peer.ip());
        Context::new(
            headers::request_id(headers, trusted),
            conn.peer,
            trusted,
            conn.tls,
        )
    }

    /// The path the record names: the canonical one once known, else the one sent.
    pub fn path(&self) -> &str {
        self.path.as_deref().unwrap_or(&self.arrival.path)
    }

    /// Microseconds since the request arrived.
    pub(crate) fn elapsed_us(&self) -> u64 {
        u64::try_from(self.arrival.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the request's `Authorization` may travel on to the application: never with an API
    /// key (Tollgate's secret), with a verified token unless `identity.forward_token` is false,
    /// and always when Tollgate checked no credentials (they are the application's own).
    pub(crate) fn forwards_authorization(&self, identity: &crate::config::Identity) -> bool {
        match self.principal.as_ref().map(|p| p.method) {
            Some(crate::identity::AuthMethod::ApiKey) => false,
            Some(crate::identity::AuthMethod::Jwt) => identity.forward_token,
            _ => true,
        }
    }

    /// Moves to the next stage, recording the time spent in the current one.
    pub(crate) fn enter(&mut self, stage: Stage) {
        let now = Instant::now();
        self.stage_times
            .push((self.stage, now - self.stage_started));
        self.stage = stage;
        self.stage_started = now;
    }

    pub fn new(request_id: HeaderValue, peer: SocketAddr, peer_trusted: bool, tls: bool) -> Self {
        let now = Instant::now();
        Context {
            arrival: Arrival {
                request_id,
                peer,
                peer_trusted,
                tls,
                started: now,
                client_ip: peer.ip(),
                host: None,
                path: String::new(),
                user_agent: None,
                traceparent: None,
            },
            stage: Stage::Admission,
            path: None,
            tenant: None,
            route: None,
            principal: None,
            decision: None,
            shadow_deny: false,
            shadow_decision: None,
            rate_headers: Vec::new(),
            refund: None,
            decided_us: None,
            upstream_us: None,
            forwarded: false,
            received: Arc::new(AtomicU64::new(0)),
            problem: None,
            decided_status: None,
            stage_times: Vec::with_capacity(8),
            stage_started: now,
        }
    }
}

/// The body of every answer: the upstream's or Tollgate's own, counted for the audit record.
pub(crate) type ResponseBody = Completing<ProxyBody>;

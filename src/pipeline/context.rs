//! What the pipeline knows about one request ([`Context`], filled in stage by stage) and the
//! body types of its answers. Every stage reads and writes it; it depends on no stage.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Uri};
use http_body_util::{Either, Full};

use crate::audit::body::Completing;
use crate::authz::decide::Decision;
use crate::headers;
use crate::identity::Principal;
use crate::snapshot::Snapshot;
use crate::stage::Stage;
use crate::state::ConnInfo;
use crate::tenants::Tenant;
use crate::upstream::Streamed;

/// A response body: streamed from the upstream, or one of Tollgate's own small answers.
pub type ProxyBody = Either<Streamed, Full<Bytes>>;

/// What the pipeline knows about one request, filled in stage by stage.
pub struct Context {
    pub request_id: HeaderValue,
    pub peer: SocketAddr,
    /// Whether the peer is a configured trusted proxy (its forwarding headers are believed).
    pub peer_trusted: bool,
    /// Whether the client connection is TLS.
    pub tls: bool,
    pub started: Instant,
    /// The stage running now; after a refusal, the stage that refused.
    pub stage: Stage,
    /// Set by the tenant stage when tenancy is configured.
    pub tenant: Option<Arc<Tenant>>,
    /// Set by the identity stage.
    pub principal: Option<Arc<Principal>>,
    /// The matched route's id.
    pub route: Option<String>,
    /// The authorization decision, when a route was authorized.
    pub decision: Option<Arc<Decision>>,
    /// `RateLimit*` headers for the answer, whatever it is.
    pub rate_headers: Vec<(HeaderName, HeaderValue)>,
    /// The client's address (the peer, or `X-Forwarded-For` through trusted proxies).
    pub client_ip: IpAddr,
    /// What the audit record says of the request.
    pub host: Option<String>,
    pub path: String,
    pub user_agent: Option<String>,
    /// The matched route's action and resource.
    pub action: Option<String>,
    pub resource: Option<(String, String)>,
    /// A shadow route whose policies denied (and the request was forwarded).
    pub shadow_deny: bool,
    /// Microseconds until decided, and until the upstream's response head.
    pub decided_us: Option<u64>,
    pub upstream_us: Option<u64>,
    /// Whether the request went to the upstream (its decision record is already written).
    pub forwarded: bool,
    /// Bytes of the request body the upstream received.
    pub received: Arc<AtomicU64>,
    /// The problem slug when refused.
    pub problem: Option<&'static str>,
    /// Time spent in each stage, in order.
    pub stage_times: Vec<(Stage, std::time::Duration)>,
    stage_started: Instant,
}

impl Context {
    /// Notes what the record says of the request: client address (the peer, or
    /// `X-Forwarded-For` through trusted proxies), host, path and user agent.
    pub fn note(&mut self, uri: &Uri, headers: &HeaderMap, snapshot: &Snapshot) {
        self.client_ip =
            headers::client_ip(headers, self.peer.ip(), |ip| snapshot.is_trusted_proxy(ip));
        let text = |name| {
            headers
                .get(name)
                .and_then(|v: &HeaderValue| v.to_str().ok())
                .map(str::to_string)
        };
        self.host = text(http::header::HOST).or_else(|| uri.authority().map(|a| a.to_string()));
        self.path = uri.path().to_string();
        self.user_agent = text(http::header::USER_AGENT);
    }

    /// The context of a request that just arrived on a connection.
    pub fn arrived(headers: &HeaderMap, conn: ConnInfo, snapshot: &Snapshot) -> Self {
        let trusted = snapshot.is_trusted_proxy(conn.peer.ip());
        Context::new(
            headers::request_id(headers, trusted),
            conn.peer,
            trusted,
            conn.tls,
        )
    }

    /// Whether the request's `Authorization` may travel on to the application: never with an API
    /// key (Tollgate's secret), with a verified token unless `identity.forward_token` is false,
    /// and always when Tollgate checked no credentials (they are the application's own).
    pub fn forwards_authorization(&self, identity: &crate::config::Identity) -> bool {
        match self.principal.as_ref().map(|p| p.method) {
            Some(crate::identity::AuthMethod::ApiKey) => false,
            Some(crate::identity::AuthMethod::Jwt) => identity.forward_token,
            _ => true,
        }
    }

    /// Moves to the next stage, recording the time spent in the current one.
    pub fn enter(&mut self, stage: Stage) {
        let now = Instant::now();
        self.stage_times
            .push((self.stage, now - self.stage_started));
        self.stage = stage;
        self.stage_started = now;
    }

    pub fn new(request_id: HeaderValue, peer: SocketAddr, peer_trusted: bool, tls: bool) -> Self {
        let now = Instant::now();
        Context {
            client_ip: peer.ip(),
            host: None,
            path: String::new(),
            user_agent: None,
            action: None,
            resource: None,
            shadow_deny: false,
            decided_us: None,
            upstream_us: None,
            forwarded: false,
            received: Arc::new(AtomicU64::new(0)),
            problem: None,
            stage_times: Vec::with_capacity(8),
            stage_started: now,
            request_id,
            peer,
            peer_trusted,
            tls,
            started: now,
            stage: Stage::Admission,
            tenant: None,
            principal: None,
            route: None,
            decision: None,
            rate_headers: Vec::new(),
        }
    }
}

/// The body of every answer: the upstream's or Tollgate's own, counted for the audit record.
pub type ResponseBody = Completing<ProxyBody>;

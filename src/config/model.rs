//! The validated configuration's types: what the rest of Tollgate reads. `validate.rs` builds
//! them from the raw file; nothing here depends on how.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use http::HeaderName;
use http::uri::{Authority, Scheme};
use ipnet::IpNet;

pub use super::raw::{AccessLog, Gateway, Unmatched};
pub use super::raw::{AuditMode, AuditRecords, Backend, Fsync, LogFormat, Redaction, TenantSource};

/// The validated configuration of one Tollgate process.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where it came from, for messages.
    pub source: String,
    pub server: Server,
    pub admin: Admin,
    pub upstream: Upstream,
    pub forwarding: Forwarding,
    pub log: Log,
    /// Tenant resolution; without it Tollgate is a plain proxy with no tenant stage.
    pub tenancy: Option<Tenancy>,
    pub identity: Identity,
    /// Routes and Cedar policies; without it there are no route and authorize stages.
    pub authorization: Option<Authorization>,
    pub limits: LimitsStore,
    /// Audit records; without it none are written.
    pub audit: Option<Audit>,
    /// At most this many tenants get their own metric label; the rest are `other`.
    pub metrics_max_tenants: usize,
    /// The external authorizer listeners (nginx `auth_request`, Envoy `ext_authz`, Traefik
    /// `forwardAuth`), one per gateway.
    pub authorizers: Vec<Authorizer>,
}

#[derive(Debug, Clone)]
pub struct Authorizer {
    pub listen: SocketAddr,
    /// The one gateway this listener answers: only its hint headers are read.
    pub gateway: Gateway,
    /// Envoy's `ext_authz` HTTP service sends the original path after this prefix.
    pub envoy_path_prefix: String,
    /// Served with `server.tls`'s certificate.
    pub tls: bool,
}

#[derive(Debug, Clone)]
pub struct Audit {
    pub stdout: bool,
    pub file: Option<AuditFile>,
    pub queue: usize,
    pub mode: AuditMode,
    pub records: AuditRecords,
    pub client_ip: Redaction,
    pub user_agent: Redaction,
}

#[derive(Debug, Clone)]
pub struct AuditFile {
    pub path: PathBuf,
    pub max_bytes: u64,
    pub max_age: Duration,
    pub keep: usize,
    pub fsync: Fsync,
}

/// Where rate limits and quota usage are kept.
#[derive(Debug, Clone)]
pub struct LimitsStore {
    pub backend: Backend,
    /// The redb file of the embedded backend.
    pub path: Option<PathBuf>,
    /// How often the embedded backend writes usage to disk: the most counts a crash can lose.
    pub flush_interval: Duration,
    /// Also send `X-RateLimit-Limit/Remaining/Reset`.
    pub legacy_headers: bool,
    /// The Redis backend's settings.
    pub redis: Option<RedisStore>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct RedisStore {
    pub url: String,
    /// Per call; past it the call counts as a failure.
    pub timeout: Duration,
    /// How many Tollgate replicas share the limits: each enforces limit ÷ replicas alone.
    pub replicas: u64,
    /// Consecutive failures that open the circuit breaker.
    pub breaker_failures: u32,
    /// How long the breaker stays open before Redis is tried again.
    pub breaker_cooldown: Duration,
    /// Key prefix.
    pub prefix: String,
}

#[derive(Debug, Clone)]
pub struct Authorization {
    pub routes_file: PathBuf,
    /// Holds `schema.cedarschema`, global `*.cedar` and `tenants/<id>/*.cedar`.
    pub policies_dir: PathBuf,
    /// A candidate set (same layout) decided beside the enforced one, never answering.
    pub shadow_policies_dir: Option<PathBuf>,
    pub unmatched: Unmatched,
    /// Memory budget of the decision cache, in bytes; 0 turns it off.
    pub decision_cache: u64,
}

#[derive(Debug, Clone)]
pub struct Tenancy {
    pub tenants_file: PathBuf,
    pub plans_file: PathBuf,
    /// Lower-case, without a trailing dot: `app.example.com` makes `acme.app.example.com` acme's.
    pub base_domains: Vec<String>,
    pub sources: Vec<TenantSource>,
    pub header: HeaderName,
    /// Starts and ends with `/`: `/t/` reads `acme` from `/t/acme/...`.
    pub path_prefix: String,
    pub strip_path_prefix: bool,
    pub reload_interval: Duration,
    pub store: TenantStore,
}

/// Where tenants created through the admin API are kept (`tenancy.store`).
#[derive(Debug, Clone, PartialEq)]
pub enum TenantStore {
    Files,
    Embedded(PathBuf),
    /// Through `limits.redis` (its URL, prefix and timeout).
    Redis(RedisStore),
}

#[derive(Debug, Clone)]
pub struct Identity {
    /// Whether a request without credentials passes as the anonymous principal.
    pub anonymous: bool,
    pub api_keys: Option<ApiKeys>,
    pub jwt: Vec<JwtProvider>,
    /// Principals holding one of these roles may act on any tenant.
    pub operator_roles: Vec<String>,
    /// Client headers removed before forwarding, besides the reserved ones.
    pub strip_headers: Vec<HeaderName>,
    /// Whether a verified JWT's `Authorization` header is forwarded (API keys never are).
    pub forward_token: bool,
    /// Memory budget of the verified-token cache, in bytes; 0 turns it off.
    pub token_cache: u64,
    /// How often a token naming an unknown `kid` may refetch an issuer's remote key set.
    pub unknown_kid_refetch: Duration,
}

/// The default budget of the verified-token cache.
pub const TOKEN_CACHE: u64 = 16 << 20;
/// The default budget of the decision cache.
pub const DECISION_CACHE: u64 = 8 << 20;

#[derive(Debug, Clone)]
pub struct ApiKeys {
    pub file: PathBuf,
    pub header: HeaderName,
}

#[derive(Debug, Clone)]
pub struct JwtProvider {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway: Duration,
    pub keys: Vec<JwtKey>,
    pub jwks_file: Option<PathBuf>,
    pub jwks_url: Option<String>,
    pub jwks_refresh: Duration,
    pub claims: ClaimNames,
    /// The tenants this issuer's tokens may act on; empty: any tenant.
    pub tenants: Vec<String>,
    /// Whether this issuer may grant the operator roles (`identity.operator_roles`).
    pub grants_operator_roles: bool,
}

#[derive(Debug, Clone)]
pub struct JwtKey {
    pub kid: Option<String>,
    pub alg: jsonwebtoken::Algorithm,
    pub secret: Option<String>,
    pub public_key_file: Option<PathBuf>,
    pub private_key_file: Option<PathBuf>,
}

/// Which claim holds what. Dotted names reach into objects (`realm_access.roles`).
#[derive(Debug, Clone)]
pub struct ClaimNames {
    pub subject: String,
    pub tenant: String,
    pub roles: String,
    pub scopes: String,
    pub mfa: String,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub tls: Option<Tls>,
    /// Accept HTTP/2 with prior knowledge on the plaintext listener.
    pub h2c: bool,
    pub drain_timeout: Duration,
    /// Runtime worker threads; 0 means one per CPU core.
    pub workers: usize,
    pub limits: Limits,
}

#[derive(Debug, Clone)]
pub struct Tls {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    pub reload_interval: Duration,
}

#[derive(Debug, Clone)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_header_bytes: usize,
    pub max_headers: usize,
    /// `None` when the operator wrote 0 (no limit).
    pub max_body_bytes: Option<u64>,
    pub max_connections: usize,
    pub max_in_flight: usize,
}

#[derive(Debug, Clone)]
pub struct Admin {
    pub listen: SocketAddr,
    /// The bearer token `/usage` requires; without one `/usage` is off.
    pub token: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Upstream {
    pub scheme: Scheme,
    pub authority: Authority,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    pub http2: bool,
    pub ca_file: Option<PathBuf>,
    pub pool_idle_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

#[derive(Debug, Clone)]
pub struct Forwarding {
    pub preserve_host: bool,
    pub trusted_proxies: Vec<IpNet>,
    /// Forward header names with `_` (dropped by default, as nginx does).
    pub allow_underscores: bool,
}

#[derive(Debug, Clone)]
pub struct Log {
    pub format: LogFormat,
    pub level: String,
    /// One line per answered request on stdout, off by default.
    pub access: AccessLog,
}

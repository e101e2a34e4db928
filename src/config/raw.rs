//! What the operator wrote: serde structs that mirror `tollgate.yaml` one to one. Unknown keys are
//! refused everywhere. `super::validate` turns these into the typed [`super::Config`].

use serde::Deserialize;

pub use super::raw_authorizer::Gateway;
pub(crate) use super::raw_authorizer::RawAuthorizers;
use super::units::{Bytes, Dur};

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub admin: RawAdmin,
    pub upstream: RawUpstream,
    #[serde(default)]
    pub forwarding: RawForwarding,
    #[serde(default)]
    pub log: RawLog,
    pub tenancy: Option<RawTenancy>,
    pub identity: Option<RawIdentity>,
    pub authorization: Option<RawAuthorization>,
    pub limits: Option<RawLimitsStore>,
    pub audit: Option<RawAudit>,
    #[serde(default)]
    pub metrics: RawMetrics,
    pub authorizer: Option<RawAuthorizers>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetrics {
    pub max_tenants: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAudit {
    #[serde(default)]
    pub stdout: bool,
    pub file: Option<RawAuditFile>,
    pub queue: Option<usize>,
    pub mode: Option<AuditMode>,
    pub records: Option<AuditRecords>,
    #[serde(default)]
    pub redact: RawRedact,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuditFile {
    pub path: String,
    pub max_bytes: Option<Bytes>,
    pub max_age: Option<Dur>,
    pub keep: Option<usize>,
    pub fsync: Option<Fsync>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedact {
    pub client_ip: Option<Redaction>,
    pub user_agent: Option<Redaction>,
}

/// What happens when audit records cannot be written.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum AuditMode {
    /// Wait for room, then refuse requests with 503: no request is served unrecorded.
    Required,
    /// Keep serving; every lost record is counted and logged.
    BestEffort,
}

/// One decision record before forwarding plus a completion record, or one record at the end.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AuditRecords {
    Split,
    Merged,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// After every batch of records.
    Always,
    /// At most once a second.
    Interval,
    /// Never; the OS decides.
    Never,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Redaction {
    Keep,
    Hash,
    Drop,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimitsStore {
    pub backend: Option<Backend>,
    pub path: Option<String>,
    pub flush_interval: Option<Dur>,
    pub legacy_headers: Option<bool>,
    pub redis: Option<RawRedis>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRedis {
    pub url: String,
    pub timeout: Option<Dur>,
    pub replicas: Option<u64>,
    pub breaker_failures: Option<u32>,
    pub breaker_cooldown: Option<Dur>,
    pub prefix: Option<String>,
}

/// Where quota usage is kept.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// In memory: lost on restart (tests, throwaway instances).
    Memory,
    /// In memory with a durable redb file written behind every `flush_interval`.
    Embedded,
    /// Shared by every replica through Redis.
    Redis,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAuthorization {
    pub routes_file: String,
    pub policies_dir: String,
    pub shadow_policies_dir: Option<String>,
    pub unmatched: Option<Unmatched>,
    pub decision_cache: Option<Bytes>,
}

/// What happens to a request that matches no route.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Unmatched {
    Deny,
    Allow,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTenancy {
    pub tenants_file: String,
    pub plans_file: String,
    #[serde(default)]
    pub base_domains: Vec<String>,
    pub sources: Option<Vec<TenantSource>>,
    pub header: Option<String>,
    pub path_prefix: Option<String>,
    pub strip_path_prefix: Option<bool>,
    pub reload_interval: Option<Dur>,
    pub store: Option<TenantStoreKind>,
    pub store_path: Option<String>,
}

/// Where tenants written through the admin API are kept.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TenantStoreKind {
    /// Only `tenants.yaml`; a local redb file (one replica); Redis (`limits.redis`), shared.
    Files,
    Embedded,
    Redis,
}

/// Where a request's tenant may come from, in the configured order.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TenantSource {
    Subdomain,
    CustomDomain,
    Header,
    PathPrefix,
    Claim,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawIdentity {
    pub anonymous: Option<bool>,
    pub api_keys: Option<RawApiKeys>,
    #[serde(default)]
    pub jwt: Vec<RawJwtProvider>,
    #[serde(default)]
    pub operator_roles: Vec<String>,
    #[serde(default)]
    pub strip_headers: Vec<String>,
    pub forward_token: Option<bool>,
    pub token_cache: Option<Bytes>,
    pub unknown_kid_refetch: Option<Dur>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApiKeys {
    pub file: String,
    pub header: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtProvider {
    pub issuer: String,
    #[serde(default)]
    pub audiences: Vec<String>,
    pub leeway: Option<Dur>,
    #[serde(default)]
    pub keys: Vec<RawJwtKey>,
    pub jwks_file: Option<String>,
    pub jwks_url: Option<String>,
    pub jwks_refresh: Option<Dur>,
    #[serde(default)]
    pub claims: RawClaims,
    #[serde(default)]
    pub tenants: Vec<String>,
    pub grants_operator_roles: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawJwtKey {
    pub kid: Option<String>,
    pub alg: String,
    pub secret: Option<String>,
    pub public_key_file: Option<String>,
    pub private_key_file: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawClaims {
    pub subject: Option<String>,
    pub tenant: Option<String>,
    pub roles: Option<String>,
    pub scopes: Option<String>,
    pub mfa: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub listen: Option<String>,
    pub tls: Option<RawTls>,
    pub h2c: Option<bool>,
    pub drain_timeout: Option<Dur>,
    pub workers: Option<usize>,
    #[serde(default)]
    pub limits: RawLimits,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawTls {
    pub cert_file: String,
    pub key_file: String,
    pub reload_interval: Option<Dur>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLimits {
    pub header_read_timeout: Option<Dur>,
    pub idle_timeout: Option<Dur>,
    pub max_header_bytes: Option<Bytes>,
    pub max_headers: Option<usize>,
    pub max_body_bytes: Option<Bytes>,
    pub max_connections: Option<usize>,
    pub max_in_flight: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAdmin {
    pub listen: Option<String>,
    pub token: Option<String>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawUpstream {
    pub url: String,
    pub connect_timeout: Option<Dur>,
    pub response_timeout: Option<Dur>,
    pub http2: Option<bool>,
    pub ca_file: Option<String>,
    #[serde(default)]
    pub pool: RawPool,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawPool {
    pub idle_timeout: Option<Dur>,
    pub max_idle_per_host: Option<usize>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawForwarding {
    pub preserve_host: Option<bool>,
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    pub allow_underscores: Option<bool>,
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawLog {
    pub format: Option<LogFormat>,
    pub level: Option<String>,
    pub access: Option<AccessLog>,
}

/// The access log's format, or none.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AccessLog {
    #[default]
    Off,
    /// The Common Log Format, then `rid= tenant= stage= problem= us=`.
    Common,
    /// One JSON object a line, `"type":"access"`.
    Json,
}

#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Human,
    Json,
}

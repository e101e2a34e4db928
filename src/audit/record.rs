//! The audit record, schema version 1 (documented in README.md#audit-records). One JSON line.

use std::sync::Arc;

use serde::Serialize;

/// `decision`: written before the request is forwarded, or the only record of a refused
/// request; `completion`: the outcome of a forwarded request, linked by `request_id`;
/// `request`: both in one record written at completion (`audit.records: merged`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Decision,
    Completion,
    Request,
    /// A change made through the admin API (a tenant created, replaced, patched, deleted).
    Admin,
}

/// What an admin change did: who (a fingerprint of the admin credential, never the credential),
/// what, and the tenant before and after.
#[derive(Debug, Clone, Serialize)]
pub struct AdminChange {
    pub credential: String,
    /// `create`, `replace`, `patch` or `delete`.
    pub action: &'static str,
    /// The tenant store's revision of the change.
    pub revision: u64,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Principal {
    pub id: String,
    /// `user`, `api_key` or `anonymous`.
    pub kind: &'static str,
    /// `jwt`, `api_key` or `anonymous`.
    pub auth: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Resource {
    #[serde(rename = "type")]
    pub kind: Arc<str>,
    pub id: String,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Http {
    pub method: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    pub path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

#[derive(Debug, Clone, Serialize, Default)]
pub struct Client {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Bytes {
    #[serde(rename = "in")]
    pub received: u64,
    #[serde(rename = "out")]
    pub sent: u64,
}

#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Timing {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upstream: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Schema version.
    pub v: u8,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// RFC 3339, UTC, microseconds.
    pub time: String,
    pub request_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tenant: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub principal: Option<Principal>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Arc<str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource: Option<Resource>,
    /// `allow` or `deny` (absent on completion records).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision: Option<&'static str>,
    /// The stage that decided: the refusing stage, or `forward` for allowed requests.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<&'static str>,
    /// The problem type slug of a refusal.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<&'static str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// The route is in shadow mode: `policies` denied, the request was forwarded.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub shadow: bool,
    pub http: Http,
    pub client: Client,
    /// The W3C `traceparent` the request carried (well-formed ones only), to find its trace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes: Option<Bytes>,
    /// Microseconds: until decided, until the upstream's response head, until the last byte.
    pub timing_us: Timing,
    /// The client went away before the response was complete.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub aborted: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admin: Option<AdminChange>,
    /// The shadow policy set's decision, when it disagreed: `{"decision", "policies"}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shadow_decision: Option<serde_json::Value>,
    /// What the decision saw, so that it can be decided again (`tollgate replay`): never a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inputs: Option<super::inputs::Inputs>,
}

impl Record {
    pub fn new(kind: Kind, request_id: String) -> Record {
        Record {
            v: 1,
            kind,
            time: humantime::format_rfc3339_micros(std::time::SystemTime::now()).to_string(),
            request_id,
            tenant: None,
            plan: None,
            principal: None,
            route: None,
            action: None,
            resource: None,
            decision: None,
            stage: None,
            problem: None,
            policies: Vec::new(),
            errors: Vec::new(),
            shadow: false,
            http: Http::default(),
            client: Client::default(),
            traceparent: None,
            bytes: None,
            timing_us: Timing::default(),
            admin: None,
            aborted: false,
            inputs: None,
            shadow_decision: None,
        }
    }
}

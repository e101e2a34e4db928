//! A decision record's `inputs` (version 1): what the decision saw, so that it can be decided
//! again (`tollgate replay`), never a secret. The request path only takes references to the
//! tenant and principal it already holds; the JSON is written by the audit writer thread.

use std::sync::Arc;

use serde::Serialize;
use serde::ser::{SerializeStruct, Serializer};

use crate::identity::Principal;
use crate::tenants::Tenant;

#[derive(Debug, Clone)]
pub struct Inputs {
    pub principal: Option<Arc<Principal>>,
    pub tenant: Arc<Tenant>,
    pub method: String,
    pub path: String,
    pub host: Option<String>,
    /// As the record's `client.ip`: redacted alike.
    pub client_ip: Option<String>,
}

struct Who<'a>(&'a Principal);

impl Serialize for Who<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let p = self.0;
        let mut out = s.serialize_struct("Principal", 6)?;
        out.serialize_field("id", &p.id)?;
        out.serialize_field("auth", p.method.as_str())?;
        out.serialize_field("tenant", &p.tenant)?;
        out.serialize_field("roles", &p.roles)?;
        out.serialize_field("scopes", &p.scopes)?;
        out.serialize_field("mfa", &p.mfa)?;
        out.end()
    }
}

struct Of<'a>(&'a Tenant);

impl Serialize for Of<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let t = self.0;
        let mut out = s.serialize_struct("Tenant", 4)?;
        out.serialize_field("id", &*t.id)?;
        out.serialize_field("plan", &*t.plan.id)?;
        out.serialize_field("status", t.status.as_str())?;
        out.serialize_field("features", &t.features)?;
        out.end()
    }
}

#[derive(Serialize)]
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a Option<String>,
    client_ip: &'a Option<String>,
}

impl Serialize for Inputs {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = s.serialize_struct("Inputs", 4)?;
        out.serialize_field("v", &1)?;
        out.serialize_field("principal", &self.principal.as_deref().map(Who))?;
        out.serialize_field("tenant", &Of(&self.tenant))?;
        out.serialize_field(
            "request",
            &Request {
                method: &self.method,
                path: &self.path,
                host: &self.host,
                client_ip: &self.client_ip,
            },
        )?;
        out.end()
    }
}

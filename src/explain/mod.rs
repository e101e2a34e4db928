//! `tollgate authorize` (and each case of `tollgate test`): the real decision pipeline ([`pipeline::decide`]) run
//! without forwarding, explained for the people who write policies.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use serde::Deserialize;
use serde_json::json;

use crate::identity::jwks::JwksCache;
use crate::identity::{AuthMethod, Principal};
use crate::metrics::Metrics;
use crate::pipeline::{self, Context, Input};
use crate::snapshot::Snapshot;

pub mod replay;
mod why;

/// A principal described rather than authenticated.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PrincipalSpec {
    pub id: String,
    #[serde(default)]
    pub kind: Kind,
    #[serde(default)]
    pub roles: Vec<String>,
    #[serde(default)]
    pub scopes: Vec<String>,
    #[serde(default)]
    pub mfa: bool,
    /// The tenant the credentials belong to; the request's tenant when absent.
    pub tenant: Option<String>,
}

#[derive(Debug, Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    #[default]
    User,
    ApiKey,
    Anonymous,
}

/// One request to decide.
pub struct Ask<'a> {
    pub tenant: &'a str,
    /// Either a principal described here, or credentials in `headers` (a token).
    pub principal: Option<&'a PrincipalSpec>,
    pub method: &'a str,
    pub path: &'a str,
    pub headers: &'a [(String, String)],
    pub client_ip: IpAddr,
}

/// The decision and why.
#[derive(Debug)]
pub struct Explanation {
    pub allowed: bool,
    pub status: u16,
    pub problem: Option<&'static str>,
    pub stage: &'static str,
    pub route: Option<String>,
    pub principal: Option<String>,
    /// Determining policies with their `file:line`.
    pub policies: Vec<(String, String)>,
    pub errors: Vec<String>,
    /// The refusal's own words (why a token was refused, which limit…), as the proxy's
    /// `detail` and `error_description` say.
    pub detail: Option<String>,
    /// The route's action and resource (`Agent::"7"`).
    pub action: Option<String>,
    pub resource: Option<String>,
    /// Roles, scopes, MFA and credentials' tenant of the principal decided for.
    pub credentials: Option<serde_json::Value>,
    /// The context Cedar saw.
    pub context: Option<serde_json::Value>,
    /// On a default deny: each permit of the tenant's set, where it is, and why it did not apply.
    pub unmatched: Vec<(String, String, String)>,
}

/// The request headers asked about, parsed.
fn request_headers(ask: &Ask<'_>) -> Result<HeaderMap, String> {
    let mut headers = HeaderMap::new();
    for (name, value) in ask.headers {
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("invalid header name {name:?}"))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| format!("invalid header value {value:?}"))?;
        headers.append(name, value);
    }
    Ok(headers)
}

/// The principal to decide for instead of authenticating (`--user`), if any.
fn forced_principal(ask: &Ask<'_>) -> Result<Option<Arc<Principal>>, String> {
    let principal = ask.principal.map(|p| {
        let method = match p.kind {
            Kind::User => AuthMethod::Jwt,
            Kind::ApiKey => AuthMethod::ApiKey,
            Kind::Anonymous => AuthMethod::Anonymous,
        };
        let own = (p.kind != Kind::Anonymous)
            .then(|| p.tenant.clone().unwrap_or_else(|| ask.tenant.to_string()));
        Principal::new(
            p.id.clone(),
            method,
            own,
            p.roles.clone(),
            p.scopes.clone(),
            p.mfa,
            None,
        )
        .map(Arc::new)
        .map_err(|why| format!("principal {:?}: {why}", p.id))
    });
    principal.transpose()
}

/// `ask` decided in `tenant` by the real pipeline ([`pipeline::decide`]), without counting
/// anything: the context it left, the method, and the refusal if it was refused.
async fn decided(
    snapshot: &Snapshot,
    ask: &Ask<'_>,
    tenant: Arc<crate::tenants::Tenant>,
    jwks: &JwksCache,
    metrics: &Metrics,
) -> Result<(Context, Method, Option<crate::error::Refusal>), String> {
    // As the proxy sees it: methods are case-sensitive (RFC 9110 §9.1), so `get` is not `GET`.
    let method = Method::from_bytes(ask.method.as_bytes())
        .map_err(|_| format!("invalid method {:?}", ask.method))?;
    let uri: Uri = ask
        .path
        .parse()
        .map_err(|e| format!("invalid path {:?}: {e}", ask.path))?;
    let headers = request_headers(ask)?;
    let principal = forced_principal(ask)?;
    let peer = SocketAddr::new(ask.client_ip, 0);
    let mut ctx = Context::new(
        HeaderValue::from_static("cli"),
        peer,
        snapshot.is_trusted_proxy(peer.ip()),
        false,
    );
    ctx.note(&uri, &headers, snapshot);
    let input = Input {
        method: &method,
        uri: &uri,
        version: http::Version::HTTP_11,
        headers: &headers,
        mode: pipeline::Mode::Explain,
        tenant: Some(tenant),
        principal,
    };
    let refused = pipeline::decide(jwks, metrics, None, snapshot, &mut ctx, input)
        .await
        .err();
    Ok((ctx, method, refused))
}

/// Runs [`pipeline::decide`] for the request asked about, in the named tenant, without forwarding
/// or counting anything, and explains the outcome.
pub async fn explain(snapshot: &Snapshot, ask: &Ask<'_>) -> Result<Explanation, String> {
    let directory = snapshot
        .tenants
        .as_ref()
        .ok_or("the configuration has no tenancy section")?;
    let tenant = directory
        .get(ask.tenant)
        .cloned()
        .ok_or_else(|| format!("unknown tenant {:?}", ask.tenant))?;
    let metrics = Metrics::new().map_err(|e| e.to_string())?;
    let (ctx, method, refused) =
        decided(snapshot, ask, tenant, &JwksCache::new(), &metrics).await?;
    let result = refused.map_or(Ok(()), Err);
    let decision = ctx.decision.clone();
    let tenant_id = ask.tenant;
    let locate = |id: &String| {
        let at = snapshot
            .authz
            .as_ref()
            .and_then(|a| a.location(tenant_id, id))
            .unwrap_or("?");
        (id.clone(), at.to_string())
    };
    let (status, problem) = match &result {
        Ok(_) => (200, None),
        Err(refusal) => (
            refusal.problem.status().as_u16(),
            Some(refusal.problem.slug()),
        ),
    };
    let principal = ctx.principal.clone();
    let tenant = ctx.tenant.clone();
    let context = tenant
        .as_ref()
        .zip(principal.as_ref())
        .map(|(t, p)| why::context(t, p, method.as_str(), ctx.path(), ctx.arrival.client_ip));
    let default_deny = ctx.stage.name() == "authorize"
        && decision
            .as_ref()
            .is_some_and(|d| !d.allowed && d.policies.is_empty() && d.errors.is_empty());
    let unmatched = match (&snapshot.authz, &ctx.route, &tenant, &principal) {
        (Some(authz), Some(route), Some(tenant), Some(p)) if default_deny => {
            let (_, set) = authz.set_for(&tenant.id);
            why::unmatched_permits(set, route, p, |id| locate(&id.to_string()).1)
        }
        _ => Vec::new(),
    };
    Ok(Explanation {
        detail: result.as_ref().err().map(|r| r.detail.to_string()),
        action: ctx.route.as_ref().map(|r| r.action.to_string()),
        resource: ctx
            .route
            .as_ref()
            .map(|r| format!("{}::{:?}", r.resource_type, r.resource_id)),
        credentials: principal.as_ref().map(|p| {
            json!({
                "roles": p.roles,
                "scopes": p.scopes,
                "mfa": p.mfa,
                "tenant": p.tenant,
            })
        }),
        context,
        unmatched,
        allowed: result.is_ok(),
        status,
        problem,
        stage: ctx.stage.name(),
        route: ctx.route.as_ref().map(|r| r.id.to_string()),
        principal: ctx
            .principal
            .as_ref()
            .map(|p| format!("{} ({})", p.id, p.method.as_str())),
        policies: decision
            .as_ref()
            .map(|d| d.policies.iter().map(locate).collect())
            .unwrap_or_default(),
        errors: decision.map(|d| d.errors.clone()).unwrap_or_default(),
    })
}

impl Explanation {
    pub fn text(&self) -> String {
        let verdict = if self.allowed { "ALLOW" } else { "DENY" };
        let problem = self.problem.map(|p| format!(" {p}")).unwrap_or_default();
        let mut out = format!(
            "decision:  {verdict} ({}{problem})\nstage:     {}\n",
            self.status, self.stage
        );
        out.push_str(&format!(
            "route:     {}\n",
            self.route.as_deref().unwrap_or("-")
        ));
        out.push_str(&format!(
            "principal: {}\n",
            self.principal.as_deref().unwrap_or("-")
        ));
        if let Some(c) = &self.credentials {
            let list = |v: &serde_json::Value| {
                let items: Vec<&str> = v
                    .as_array()
                    .map(|a| a.iter().filter_map(|x| x.as_str()).collect())
                    .unwrap_or_default();
                if items.is_empty() {
                    "-".to_string()
                } else {
                    items.join(", ")
                }
            };
            out.push_str(&format!(
                "           roles: {}; scopes: {}; mfa: {}; credentials of: {}\n",
                list(&c["roles"]),
                list(&c["scopes"]),
                c["mfa"],
                c["tenant"].as_str().unwrap_or("-")
            ));
        }
        if let (Some(action), Some(resource)) = (&self.action, &self.resource) {
            out.push_str(&format!("action:    {action} on {resource}\n"));
        }
        if let Some(detail) = self.detail.as_ref().filter(|_| !self.allowed) {
            out.push_str(&format!("why:       {detail}\n"));
        }
        if let Some(context) = &self.context {
            out.push_str(&format!("context:   {context}\n"));
        }
        if self.policies.is_empty() {
            let why = if self.stage == "authorize" && !self.allowed {
                " (no policy permits: default deny)"
            } else {
                ""
            };
            out.push_str(&format!("policies:  -{why}\n"));
        }
        for (id, at, why) in &self.unmatched {
            out.push_str(&format!("not this:  {id}  {at}: {why}\n"));
        }
        for (id, at) in &self.policies {
            out.push_str(&format!("policy:    {id}  {at}\n"));
        }
        for error in &self.errors {
            out.push_str(&format!("error:     {error}\n"));
        }
        out
    }

    pub fn json(&self) -> serde_json::Value {
        json!({
            "decision": if self.allowed { "allow" } else { "deny" },
            "status": self.status,
            "problem": self.problem,
            "stage": self.stage,
            "route": self.route,
            "principal": self.principal,
            "policies": self.policies.iter().map(|(id, at)| json!({"id": id, "location": at})).collect::<Vec<_>>(),
            "errors": self.errors,
            "detail": self.detail,
            "action": self.action,
            "resource": self.resource,
            "credentials": self.credentials,
            "context": self.context,
            "unmatched": self.unmatched.iter().map(|(id, at, why)| json!({"id": id, "location": at, "why": why})).collect::<Vec<_>>(),
        })
    }
}

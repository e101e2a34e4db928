//! A tenant's own Cedar policy files, behind the admin token:
//!
//! | request | does |
//! |---|---|
//! | `GET /tenants/{id}/policies` | the names of its files |
//! | `GET /tenants/{id}/policies/{name}` | one file's text (`ETag`: the tenant's revision) |
//! | `PUT /tenants/{id}/policies/{name}` | create (201) or replace (200) it; the body is Cedar |
//! | `DELETE /tenants/{id}/policies/{name}` | remove it (204) |
//!
//! A file is validated against the schema with the rules and messages of `check` (422
//! `tenant-invalid`), stored with the tenant (so it reaches every replica with it), applied to
//! that tenant alone, and audited with its text before and after. Tenants of the tenants file
//! keep their policies in the policies directory (409 `tenant-read-only`).

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::answers::{
    Answer, method_not_allowed, not_found, problem, read_body, respond, with_etag, written,
};
use super::tenant_changes::{Asked, commit, if_match, invalid, no_content, writable};
use crate::snapshot::Snapshot;
use crate::state::Shared;
use crate::tenants::store::{Expect, Write};
use crate::tenants::{Origin, Spec, valid_policy_name};

/// `/tenants/{id}/policies` (`name` `None`) and `/tenants/{id}/policies/{name}`.
pub(super) async fn answer(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    credential: String,
    id: &str,
    name: Option<&str>,
) -> Answer {
    let snapshot = shared.snapshot.load_full();
    let Some((spec, origin, revision)) = written(&snapshot, id) else {
        return not_found(id);
    };
    match (req.method().clone(), name) {
        (Method::GET, None) => with_etag(
            respond(
                StatusCode::OK,
                &json!({ "tenant": id, "policies": spec.policies.keys().collect::<Vec<_>>() }),
            ),
            revision,
        ),
        (Method::GET, Some(name)) => match spec.policies.get(name) {
            Some(text) => {
                let mut response = Box::new(Response::new(Full::new(Bytes::from(text.clone()))));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; charset=utf-8"),
                );
                with_etag(response, revision)
            }
            None => policy_not_found(id, name),
        },
        (Method::PUT | Method::DELETE, Some(name)) => {
            if let Err(answer) = writable(shared) {
                return answer;
            }
            if origin == Origin::File {
                return problem(
                    StatusCode::CONFLICT,
                    "tenant-read-only",
                    &format!(
                        "tenant {id} is defined in the tenants file: its policies are files in the policies directory's tenants/{id}/"
                    ),
                    &[],
                );
            }
            let method = req.method().clone();
            let path = req.uri().path().to_string();
            let asked = match ask(&snapshot, req, id, name, (&spec, revision)).await {
                Ok(asked) => asked,
                Err(answer) => return answer,
            };
            let created = matches!(&asked.audited, Some((None, _)));
            let (revision, after) = match commit(shared, &method, path, credential, asked).await {
                Ok(done) => done,
                Err(answer) => return answer,
            };
            if method == Method::DELETE {
                return no_content();
            }
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let policies = after
                .as_ref()
                .map_or(Value::Null, |v| v["policies"].clone());
            let body = json!({ "tenant": id, "name": name, "policies": policies });
            let mut response = with_etag(respond(status, &body), revision);
            if let Ok(location) = HeaderValue::from_str(&format!("/tenants/{id}/policies/{name}")) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        (_, Some(_)) => method_not_allowed(req.uri().path(), "GET, PUT, DELETE"),
        (_, None) => method_not_allowed(req.uri().path(), "GET"),
    }
}

fn policy_not_found(id: &str, name: &str) -> Answer {
    problem(
        StatusCode::NOT_FOUND,
        "policy-not-found",
        &format!("tenant {id} has no policy file {name}"),
        &[],
    )
}

/// The tenant with the file put or deleted, checked by the caller's `commit` as any tenant
/// change is; written at the revision read (or the one `If-Match` names).
async fn ask(
    snapshot: &Snapshot,
    req: Request<Incoming>,
    id: &str,
    name: &str,
    (spec, revision): (&Spec, u64),
) -> Result<Asked, Answer> {
    if !valid_policy_name(name) {
        return Err(invalid(vec![format!(
            "policies.{name}: a policy file's name is a-z, 0-9, '-' and '_', at most 64 characters"
        )]));
    }
    if snapshot.authz.is_none() {
        return Err(invalid(vec![
            "authorization: none is configured, so a tenant's policies would not apply".into(),
        ]));
    }
    let expect = Expect::At(if_match(&req)?.unwrap_or(revision));
    let before = spec.policies.get(name).cloned();
    let mut next = spec.clone();
    let (action, after) = if req.method() == Method::DELETE {
        if before.is_none() {
            return Err(policy_not_found(id, name));
        }
        next.policies.remove(name);
        ("delete-policy", None)
    } else {
        let bytes = read_body(req, "a policy file").await?;
        let text = String::from_utf8(bytes.to_vec())
            .map_err(|_| invalid(vec![format!("policies.{name}: the file is not UTF-8")]))?;
        next.policies.insert(name.to_string(), text.clone());
        ("put-policy", Some(text))
    };
    snapshot.check_tenant(&next).map_err(invalid)?;
    let hosts = next.hosts();
    let file = |text: Option<String>| text.map(|t| json!({ "policy": name, "text": t }));
    Ok(Asked {
        action,
        id: id.to_string(),
        write: Write::Put(Box::new(next), hosts),
        expect,
        before: None,
        audited: Some((file(before), file(after))),
    })
}

//! The tenant API's changes: `POST`, `PUT`, `PATCH` (JSON merge patch) and `DELETE`, each checked
//! as the file is, written through the store (conditionally), applied here, and audited.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{IF_MATCH, LOCATION};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::Value;

use super::answers::{Answer, not_found, problem, read_body, respond, view, with_etag, written};
use crate::audit::record::{AdminChange, Kind, Record};
use crate::live;
use crate::state::Shared;
use crate::tenants::store::{Expect, Outcome, Store, Write};
use crate::tenants::{Origin, Spec};

/// What the API shows of a tenant besides what it was written as, ignored in a body: where it
/// lives, its revision, whether it is served, and its policy files' names (they change through
/// `/tenants/{id}/policies/{name}`, and a tenant written here keeps them).
const DERIVED: [&str; 5] = ["origin", "revision", "served", "errors", "policies"];

/// The revision an `If-Match` names (`"7"` or `7`), if any; `Err` when it is not one.
pub(super) fn if_match(req: &Request<Incoming>) -> Result<Option<u64>, Answer> {
    let Some(value) = req.headers().get(IF_MATCH) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .map(|v| v.trim().trim_start_matches("W/").trim_matches('"'))
        .and_then(|v| v.parse().ok())
        .map(Some)
        .ok_or_else(|| {
            problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                "If-Match must name a revision, as the ETag gave it",
                &[],
            )
        })
}

/// The body as a JSON object; the fields the API adds on the way out are ignored on the way in.
async fn body(req: Request<Incoming>) -> Result<serde_json::Map<String, Value>, Answer> {
    let bytes = read_body(req, "a tenant body").await?;
    let mut object = match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return Err(invalid(vec!["the body must be a JSON object".into()])),
        Err(e) => {
            return Err(problem(
                StatusCode::BAD_REQUEST,
                "malformed-request",
                &format!("the body is not JSON: {e}"),
                &[],
            ));
        }
    };
    for derived in DERIVED {
        object.remove(derived);
    }
    Ok(object)
}

pub(super) fn invalid(errors: Vec<String>) -> Answer {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "tenant-invalid",
        "the tenant is not valid",
        &errors,
    )
}

/// A spec from a JSON object, with `key.path: message` errors as the file loader words them.
fn spec(object: serde_json::Map<String, Value>) -> Result<Spec, Answer> {
    serde_path_to_error::deserialize(Value::Object(object)).map_err(|e| {
        let path = e.path().to_string();
        let message = e.into_inner().to_string();
        invalid(vec![if path == "." {
            message
        } else {
            format!("{path}: {message}")
        }])
    })
}

/// What a change request asks for: the action's name, the write and what it expects.
pub(super) struct Asked {
    pub action: &'static str,
    pub id: String,
    pub write: Write,
    pub expect: Expect,
    /// The tenant as shown before (`None`: it is created), unless `audited` is given.
    pub before: Option<Value>,
    /// What the audit record shows changed, before and after, when not the whole tenant.
    pub audited: Option<(Option<Value>, Option<Value>)>,
}

/// POST (`id` `None`), PUT, PATCH and DELETE.
pub(super) async fn change(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    credential: String,
    id: Option<String>,
) -> Answer {
    if let Err(answer) = writable(shared) {
        return answer;
    }
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let asked = match ask(shared, req, id).await {
        Ok(asked) => asked,
        Err(answer) => return answer,
    };
    let (id, created) = (asked.id.clone(), asked.before.is_none());
    let (revision, after) = match commit(shared, &method, path, credential, asked).await {
        Ok(done) => done,
        Err(answer) => return answer,
    };
    match after {
        Some(value) => {
            let status = if created {
                StatusCode::CREATED
            } else {
                StatusCode::OK
            };
            let mut response = with_etag(respond(status, &value), revision);
            if let Ok(location) = HeaderValue::from_str(&format!("/tenants/{id}")) {
                response.headers_mut().insert(LOCATION, location);
            }
            response
        }
        None => no_content(),
    }
}

pub(super) fn no_content() -> Answer {
    let mut response = Box::new(Response::new(Full::new(Bytes::new())));
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// `Err` (409 `tenant-read-only`) when the store keeps no tenants.
pub(super) fn writable(shared: &Shared) -> Result<(), Answer> {
    if matches!(*shared.tenant_store, Store::Files) {
        return Err(problem(
            StatusCode::CONFLICT,
            "tenant-read-only",
            "tenancy.store is files: tenants change in the tenants file (set tenancy.store to embedded or redis for the API)",
            &[],
        ));
    }
    Ok(())
}

/// Writes an asked change through the store, applies it here and audits it (`audited`, when
/// given, replaces the tenant's before and after in the record). The revision written and the
/// tenant as it is now shown (`None`: deleted).
pub(super) async fn commit(
    shared: &Arc<Shared>,
    method: &Method,
    path: String,
    credential: String,
    asked: Asked,
) -> Result<(u64, Option<Value>), Answer> {
    let (id, action) = (asked.id.clone(), asked.action);
    let outcome = match live::write(shared, &id, asked.write, asked.expect).await {
        Ok(outcome) => outcome,
        Err(e) => {
            tracing::error!(error = %e, tenant = %id, "a tenant change could not be written");
            return Err(problem(
                StatusCode::SERVICE_UNAVAILABLE,
                "tenant-store-unavailable",
                "the tenant store cannot be written now; nothing was changed",
                &[],
            ));
        }
    };
    let revision = match outcome {
        Outcome::Written(revision) => revision,
        Outcome::Conflict(at) if *method == Method::POST => {
            return Err(problem(
                StatusCode::CONFLICT,
                "tenant-exists",
                &format!("tenant {id} exists (revision {at}); PUT replaces it"),
                &[],
            ));
        }
        Outcome::Conflict(at) => {
            return Err(problem(
                StatusCode::PRECONDITION_FAILED,
                "tenant-changed",
                &format!("tenant {id} changed meanwhile (now revision {at}); read it again"),
                &[],
            ));
        }
        Outcome::Missing => return Err(not_found(&id)),
        Outcome::DomainTaken(domain, owner) => {
            return Err(invalid(vec![format!(
                "domains: {domain:?} already belongs to {owner}"
            )]));
        }
    };
    let snapshot = shared.snapshot.load_full();
    let after = view(&snapshot, &id).map(|(value, _, _)| value);
    if let Some(auditor) = &shared.auditor {
        let mut record = Record::new(Kind::Admin, uuid::Uuid::now_v7().to_string());
        record.tenant = Some(id.as_str().into());
        record.http.method = method.to_string();
        record.http.path = path;
        let (before, after) = match asked.audited {
            Some(changed) => changed,
            None => (asked.before, after.clone()),
        };
        record.admin = Some(AdminChange {
            credential,
            action,
            revision,
            before,
            after,
        });
        if auditor.record(record).await.is_err() {
            tracing::error!(tenant = %id, revision, "the audit record of a tenant change was lost");
        }
    }
    tracing::info!(tenant = %id, action, revision, "tenant changed");
    Ok((revision, after))
}

/// Reads and checks a change request: the tenant it names, its body, and what it expects.
async fn ask(shared: &Shared, req: Request<Incoming>, id: Option<String>) -> Result<Asked, Answer> {
    let method = req.method().clone();
    let matched = if_match(&req)?;
    let snapshot = shared.snapshot.load_full();
    let current = id.as_deref().and_then(|id| view(&snapshot, id));
    if let Some((_, Origin::File, _)) = &current {
        return Err(problem(
            StatusCode::CONFLICT,
            "tenant-read-only",
            "this tenant is defined in the tenants file; change it there",
            &[],
        ));
    }
    let before = current.as_ref().map(|(value, _, _)| value.clone());
    let expect = |default: Expect| matched.map_or(default, Expect::At);
    if method == Method::DELETE {
        let id = id.unwrap_or_default();
        if current.is_none() {
            return Err(not_found(&id));
        }
        return Ok(Asked {
            action: "delete",
            id,
            write: Write::Delete,
            expect: expect(Expect::Any),
            before,
            audited: None,
        });
    }
    let mut object = body(req).await?;
    let (action, expect) = match (&method, &current) {
        (&Method::PATCH, None) => return Err(not_found(id.as_deref().unwrap_or_default())),
        (&Method::PATCH, Some((value, _, revision))) => {
            let mut merged = value.clone();
            merge(&mut merged, Value::Object(object));
            object = match merged {
                Value::Object(o) => o,
                _ => return Err(invalid(vec!["the patch must be a JSON object".into()])),
            };
            for derived in DERIVED {
                object.remove(derived);
            }
            ("patch", expect(Expect::At(*revision)))
        }
        (&Method::POST, _) => ("create", Expect::Absent),
        (_, None) => ("create", expect(Expect::Any)),
        // At the revision read: the policy files it keeps are exactly those stored.
        (_, Some((_, _, revision))) => ("replace", expect(Expect::At(*revision))),
    };
    match (&id, object.get("id")) {
        (Some(path_id), Some(Value::String(body_id))) if body_id != path_id => {
            return Err(invalid(vec![format!(
                "id: the body names tenant {body_id:?}, the path {path_id:?}"
            )]));
        }
        (Some(path_id), None) => {
            object.insert("id".into(), Value::String(path_id.clone()));
        }
        _ => {}
    }
    let mut spec = spec(object)?;
    if let Some((kept, _, _)) = written(&snapshot, &spec.id) {
        spec.policies = kept.policies.clone();
    }
    if method == Method::POST
        && let Some((_, Origin::File, _)) = view(&snapshot, &spec.id)
    {
        return Err(problem(
            StatusCode::CONFLICT,
            "tenant-exists",
            &format!("tenant {} is defined in the tenants file", spec.id),
            &[],
        ));
    }
    snapshot.check_tenant(&spec).map_err(invalid)?;
    let hosts = spec.hosts();
    Ok(Asked {
        action,
        id: spec.id.clone(),
        write: Write::Put(Box::new(spec), hosts),
        expect,
        before,
        audited: None,
    })
}

/// RFC 7396 JSON merge patch: objects merge, `null` removes, anything else replaces.
fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(patch) => {
            if !target.is_object() {
                *target = Value::Object(serde_json::Map::new());
            }
            if let Value::Object(target) = target {
                for (key, value) in patch {
                    if value.is_null() {
                        target.remove(&key);
                    } else {
                        merge(target.entry(key).or_insert(Value::Null), value);
                    }
                }
            }
        }
        other => *target = other,
    }
}

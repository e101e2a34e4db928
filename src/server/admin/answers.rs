//! The tenant API's answers: JSON, problem+json with a stable `type`, and a tenant as shown.

use std::sync::Arc;

use bytes::Bytes;
use http::header::{CONTENT_TYPE, ETAG, WWW_AUTHENTICATE};
use http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{Value, json};

use crate::error::PROBLEM_BASE;
use crate::snapshot::Snapshot;
use crate::tenants::{Origin, Spec};

pub(super) type Answer = Box<Response<Full<Bytes>>>;

/// The largest body the tenant API accepts.
const MAX_BODY: usize = 1 << 20;

/// A problem+json answer; `errors` lists every message when there are several.
pub(super) fn problem(status: StatusCode, slug: &str, detail: &str, errors: &[String]) -> Answer {
    let mut body = json!({
        "type": format!("{PROBLEM_BASE}{slug}"),
        "title": status.canonical_reason().unwrap_or(""),
        "status": status.as_u16(),
        "detail": detail,
    });
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    let mut response = respond(status, &body);
    if let Ok(value) = HeaderValue::from_str("application/problem+json") {
        response.headers_mut().insert(CONTENT_TYPE, value);
    }
    response
}

pub(super) fn respond(status: StatusCode, body: &Value) -> Answer {
    let mut response = Box::new(Response::new(Full::new(Bytes::from(body.to_string()))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request without the admin token (401), or with the API off (403), as problem+json.
pub(super) fn refused((status, _, text): (StatusCode, &'static str, String)) -> Answer {
    let slug = if status == StatusCode::UNAUTHORIZED {
        "admin-unauthorized"
    } else {
        "admin-off"
    };
    let mut response = problem(status, slug, text.trim_end(), &[]);
    if status == StatusCode::UNAUTHORIZED {
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"tollgate-admin\""),
        );
    }
    response
}

/// A tenant as the API shows it: what it was written as, where it lives, its revision, and
/// whether it is served (a stored tenant that no longer fits the files is not: `errors` says why).
pub(super) fn view(snapshot: &Snapshot, id: &str) -> Option<(Value, Origin, u64)> {
    let (spec, origin, revision) = written(snapshot, id)?;
    let served = snapshot
        .tenants
        .as_ref()
        .is_some_and(|d| d.get(id).is_some());
    let prefix = format!("tenant {id}: ");
    let errors: Vec<String> = snapshot
        .refused
        .iter()
        .filter(|_| !served)
        .filter_map(|e| e.strip_prefix(&prefix).map(str::to_string))
        .collect();
    let mut value = serde_json::to_value(&*spec).ok()?;
    // Policy files are a resource of their own (`/tenants/{id}/policies/{name}`): named here.
    if let Some(object) = value.as_object_mut() {
        object.remove("policies");
    }
    value["policies"] = json!(spec.policies.keys().collect::<Vec<_>>());
    value["origin"] = json!(origin.as_str());
    value["revision"] = json!(revision);
    value["served"] = json!(served);
    if !errors.is_empty() {
        value["errors"] = json!(errors);
    }
    Some((value, origin, revision))
}

/// What a tenant is written as, from the store or the files, with its revision.
pub(super) fn written(snapshot: &Snapshot, id: &str) -> Option<(Arc<Spec>, Origin, u64)> {
    match snapshot.tenants.as_ref().and_then(|d| d.get(id)) {
        Some(t) => Some((t.spec.clone(), t.origin, t.revision)),
        None => snapshot
            .stored_tenant(id)
            .map(|(spec, revision)| (spec.clone(), Origin::Store, *revision)),
    }
}

pub(super) fn with_etag(mut response: Answer, revision: u64) -> Answer {
    if let Ok(value) = HeaderValue::from_str(&format!("\"{revision}\"")) {
        response.headers_mut().insert(ETAG, value);
    }
    response
}

/// 405 with the methods `path` answers.
pub(super) fn method_not_allowed(path: &str, allow: &'static str) -> Answer {
    let mut response = problem(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        &format!("{path} answers {allow}"),
        &[],
    );
    response
        .headers_mut()
        .insert(http::header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// A request body of at most 1 MiB (`what` names it in the 413).
pub(super) async fn read_body(req: Request<Incoming>, what: &str) -> Result<Bytes, Answer> {
    Ok(Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            problem(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload-too-large",
                &format!("{what} is at most 1 MiB"),
                &[],
            )
        })?
        .to_bytes())
}

pub(super) fn not_found(id: &str) -> Answer {
    problem(
        StatusCode::NOT_FOUND,
        "tenant-not-found",
        &format!("no tenant {id}"),
        &[],
    )
}

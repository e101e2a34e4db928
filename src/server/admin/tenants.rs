//! The tenant lifecycle API, behind the admin token:
//!
//! | request | does |
//! |---|---|
//! | `GET /tenants?status=&plan=&origin=&domain=&prefix=&after=&limit=` | list, sorted by id, a page at a time |
//! | `GET /tenants/{id}` | one tenant (`ETag`: its revision) |
//! | `POST /tenants` | create (409 `tenant-exists` if it does) |
//! | `PUT /tenants/{id}` | create or replace (`If-Match` makes it conditional) |
//! | `PATCH /tenants/{id}` | JSON merge patch (RFC 7396) of what was read |
//! | `DELETE /tenants/{id}` | delete |
//! | `/tenants/{id}/policies[/{name}]` | its own policy files (`tenant_policies.rs`) |
//!
//! A body is held to the rules of `tenants.yaml`, with the messages `check` gives (422
//! `tenant-invalid`, every message in `errors`). File tenants are read-only here (409
//! `tenant-read-only`): the file is their source. Every change is audited with the admin
//! credential's fingerprint, and the tenant before and after.

use std::sync::Arc;

use http::{Method, Request, StatusCode};
use hyper::body::Incoming;
use serde_json::{Value, json};

use super::answers::{Answer, method_not_allowed, not_found, problem, respond, view, with_etag};
use super::tenant_changes::change;
use super::tenant_policies;
use crate::state::Shared;

/// The most tenants one page lists.
const MAX_PAGE: usize = 1000;

pub(super) async fn answer(
    shared: &Arc<Shared>,
    req: Request<Incoming>,
    credential: String,
) -> Answer {
    let path = req.uri().path().to_string();
    let id = path
        .strip_prefix("/tenants/")
        .filter(|id| !id.is_empty() && !id.contains('/'))
        .map(str::to_string);
    if let Some((id, rest)) = path
        .strip_prefix("/tenants/")
        .and_then(|p| p.split_once('/'))
        .filter(|(id, _)| !id.is_empty())
    {
        let name = match rest.strip_prefix("policies") {
            Some("") => None,
            Some(name) => match name.strip_prefix('/').filter(|n| !n.contains('/')) {
                Some(name) => Some(name),
                None => return no_such(&path),
            },
            None => return no_such(&path),
        };
        return tenant_policies::answer(shared, req, credential, id, name).await;
    }
    match (req.method().clone(), id) {
        (Method::GET, None) if path == "/tenants" => list(shared, req.uri().query()),
        (Method::POST, None) if path == "/tenants" => change(shared, req, credential, None).await,
        (Method::GET, Some(id)) => match view(&shared.snapshot.load(), &id) {
            Some((value, _, revision)) => with_etag(respond(StatusCode::OK, &value), revision),
            None => not_found(&id),
        },
        (Method::PUT | Method::PATCH | Method::DELETE, Some(id)) => {
            change(shared, req, credential, Some(id)).await
        }
        (_, Some(_)) => method_not_allowed(&path, "GET, PUT, PATCH, DELETE"),
        (_, None) => method_not_allowed(&path, "GET, POST"),
    }
}

fn no_such(path: &str) -> Answer {
    problem(
        StatusCode::NOT_FOUND,
        "not-found",
        &format!("{path} is not a resource of the tenant API"),
        &[],
    )
}

/// `GET /tenants`: filters `status`, `plan`, `origin`, `domain`, `prefix` (of the id), a page of
/// `limit` (100; at most 1000) after the id `after`.
fn list(shared: &Shared, query: Option<&str>) -> Answer {
    let snapshot = shared.snapshot.load();
    let param = |name: &str| {
        query.and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix(name)?.strip_prefix('='))
        })
    };
    let limit = param("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .clamp(1, MAX_PAGE);
    let mut ids: Vec<&str> = snapshot
        .tenants
        .iter()
        .flat_map(|d| d.tenants().map(|t| &*t.id))
        .chain(snapshot.stored_tenants().map(|(spec, _)| spec.id.as_str()))
        .filter(|id| param("prefix").is_none_or(|p| id.starts_with(p)))
        .filter(|id| param("after").is_none_or(|a| *id > a))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let wanted = |value: &Value| {
        let has = |key: &str, field: &str| param(key).is_none_or(|want| value[field] == want);
        has("status", "status")
            && has("plan", "plan")
            && has("origin", "origin")
            && param("domain").is_none_or(|d| {
                value["domains"].as_array().is_some_and(|all| {
                    all.iter()
                        .any(|x| x.as_str().is_some_and(|x| x.eq_ignore_ascii_case(d)))
                })
            })
    };
    let mut page = Vec::new();
    let mut next = None;
    for id in ids {
        let Some((value, _, _)) = view(&snapshot, id) else {
            continue;
        };
        if !wanted(&value) {
            continue;
        }
        if page.len() == limit {
            next = page
                .last()
                .and_then(|v: &Value| v["id"].as_str())
                .map(str::to_string);
            break;
        }
        page.push(value);
    }
    respond(StatusCode::OK, &json!({ "tenants": page, "next": next }))
}

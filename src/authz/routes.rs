//! The route table (`routes.yaml`): method + path template → Cedar action and resource, matched
//! with `matchit` against the canonical path only.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;

use http::Method;
use serde::Deserialize;

use crate::config::yaml;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoutesFile {
    routes: Vec<RawRoute>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRoute {
    id: Option<String>,
    /// Empty: every method.
    #[serde(default)]
    methods: Vec<String>,
    path: String,
    action: String,
    resource: RawResource,
    #[serde(default)]
    anonymous: bool,
    #[serde(default)]
    shadow: bool,
    #[serde(default)]
    websocket: bool,
    #[serde(default)]
    request_trailers: bool,
    #[serde(default)]
    quota_cost: BTreeMap<String, u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawResource {
    #[serde(rename = "type")]
    kind: String,
    /// A literal, or `{param}` taken from the path. Absent: `*`, the collection.
    id: Option<String>,
}

#[derive(Debug)]
pub struct Route {
    pub id: Arc<str>,
    /// Empty: every method.
    pub methods: Vec<Method>,
    pub path: String,
    pub action: Arc<str>,
    pub resource_type: Arc<str>,
    resource_id: ResourceId,
    /// Callers without credentials may use this route (policies still decide).
    pub anonymous: bool,
    /// Evaluate and record, but do not enforce.
    pub shadow: bool,
    /// A WebSocket handshake may switch protocols here (every other upgrade is removed).
    pub websocket: bool,
    /// Request trailers are forwarded here, without reserved names (otherwise dropped).
    pub request_trailers: bool,
    /// Quota units this route consumes, by metric.
    pub quota_cost: BTreeMap<String, u64>,
    /// Its line in the routes file, when found.
    pub line: Option<usize>,
}

#[derive(Debug)]
enum ResourceId {
    Literal(String),
    Param(String),
}

/// A route that matched, with the resource id it names.
pub struct RouteMatch<'a> {
    pub route: &'a Route,
    pub resource_id: String,
}

pub struct Routes {
    router: matchit::Router<Vec<usize>>,
    routes: Vec<Route>,
}

impl Routes {
    pub fn load(path: &Path) -> Result<Routes, Vec<String>> {
        let file = path.display();
        let (text, raw): (String, RawRoutesFile) = yaml::load(path)?;
        let mut errors = Vec::new();
        let mut routes = Vec::new();
        let mut by_path: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for (i, r) in raw.routes.into_iter().enumerate() {
            // Its own `id:` when it has one (several routes may share a path), else its path.
            let needle =
                r.id.as_ref()
                    .map_or_else(|| r.path.clone(), |id| format!("id: {id}"));
            let line_no = text
                .lines()
                .position(|l| l.contains(&needle))
                .map(|n| n + 1);
            let line = line_no.map(|n| format!(" (line {n})")).unwrap_or_default();
            let path = r.path.clone();
            let mut fail =
                |msg: String| errors.push(format!("{file}: routes[{i}] ({path}): {msg}{line}"));
            let mut route = Route::from_raw(r, &mut fail);
            route.line = line_no;
            let index = routes.len();
            by_path.entry(route.path.clone()).or_default().push(index);
            routes.push(route);
        }
        let mut ids: HashMap<&str, usize> = HashMap::new();
        for (i, route) in routes.iter().enumerate() {
            if let Some(first) = ids.insert(&route.id, i) {
                errors.push(format!(
                    "{file}: routes[{i}] ({}): id {:?} is used twice (first at routes[{first}]): the audit record and metrics name a route by its id",
                    route.path, route.id
                ));
            }
        }
        let router = router(&file.to_string(), &routes, by_path, &mut errors);
        if errors.is_empty() {
            Ok(Routes { router, routes })
        } else {
            Err(errors)
        }
    }

    pub fn all(&self) -> &[Route] {
        &self.routes
    }

    /// The route for a method and canonical path.
    pub fn find(&self, method: &Method, path: &str) -> Option<RouteMatch<'_>> {
        let found = self.router.at(path).ok()?;
        let route = found
            .value
            .iter()
            .map(|&i| &self.routes[i])
            .find(|r| r.methods.is_empty() || r.methods.contains(method))?;
        let resource_id = match &route.resource_id {
            ResourceId::Literal(id) => id.clone(),
            ResourceId::Param(name) => found.params.get(name).unwrap_or_default().to_string(),
        };
        Some(RouteMatch { route, resource_id })
    }
}
impl Route {
    /// One entry of the routes file; what is wrong with it goes to `fail`.
    fn from_raw(r: RawRoute, fail: &mut impl FnMut(String)) -> Route {
        let methods: Vec<Method> = r
            .methods
            .iter()
            .filter_map(|m| {
                Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| fail(format!("invalid method {m:?}")))
                    .ok()
            })
            .collect();
        if !r.path.starts_with('/') {
            fail("path must start with '/'".into());
        }
        let resource_id = match r.resource.id {
            None => ResourceId::Literal("*".to_string()),
            Some(id) => match id.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                Some(param) => {
                    let param = param.trim_start_matches('*').to_string();
                    let named = r.path.contains(&format!("{{{param}}}"))
                        || r.path.contains(&format!("{{*{param}}}"));
                    if !named {
                        fail(format!(
                            "resource id {{{param}}} is not a parameter of the path"
                        ));
                    }
                    ResourceId::Param(param)
                }
                None => ResourceId::Literal(id),
            },
        };
        Route {
            id: r
                .id
                .unwrap_or_else(|| format!("{} {}", r.methods.join("|"), r.path))
                .into(),
            methods,
            path: r.path,
            action: r.action.into(),
            resource_type: r.resource.kind.into(),
            resource_id,
            anonymous: r.anonymous,
            shadow: r.shadow,
            websocket: r.websocket,
            request_trailers: r.request_trailers,
            quota_cost: r.quota_cost,
            line: None,
        }
    }
}

/// The path router over `routes`; two routes of one path whose methods overlap are an error.
fn router(
    file: &str,
    routes: &[Route],
    by_path: BTreeMap<String, Vec<usize>>,
    errors: &mut Vec<String>,
) -> matchit::Router<Vec<usize>> {
    let mut router = matchit::Router::new();
    for (path, indexes) in by_path {
        for (n, &a) in indexes.iter().enumerate() {
            for &b in &indexes[n + 1..] {
                let overlap = routes[a].methods.is_empty()
                    || routes[b].methods.is_empty()
                    || routes[a]
                        .methods
                        .iter()
                        .any(|m| routes[b].methods.contains(m));
                if overlap {
                    errors.push(format!(
                        "{file}: routes {:?} and {:?} overlap on {path}",
                        routes[a].id, routes[b].id
                    ));
                }
            }
        }
        if let Err(e) = router.insert(path.clone(), indexes) {
            errors.push(format!("{file}: route path {path:?}: {e}"));
        }
    }
    router
}

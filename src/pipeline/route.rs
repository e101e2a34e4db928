//! Stage 3, route: which Cedar action and resource a request is, from its method and canonical
//! path (after any tenant path prefix was stripped). An unmatched request is denied unless the
//! configuration says `unmatched: allow`.

use http::Method;

use crate::authz::Authz;
use crate::authz::routes::RouteMatch;
use crate::config::Unmatched;
use crate::error::{Problem, Refusal};

pub fn find<'a>(
    authz: &'a Authz,
    unmatched: Unmatched,
    method: &Method,
    path: &str,
) -> Result<Option<RouteMatch<'a>>, Refusal> {
    match authz.routes.find(method, path) {
        Some(found) => Ok(Some(found)),
        None if unmatched == Unmatched::Allow => Ok(None),
        None => Err(Refusal::new(
            Problem::NoRoute,
            "no route matches this method and path",
        )),
    }
}

//! Stage 4, identity: who is calling (see `src/identity/` for the mechanisms).

use std::sync::Arc;

use http::HeaderMap;

use crate::error::Refusal;
use crate::identity::jwks::JwksCache;
use crate::identity::{Principal, TenantIssuers};
use crate::snapshot::Snapshot;

/// `route_anonymous`: the matched route lets callers without credentials through.
pub async fn authenticate(
    jwks: &JwksCache,
    snapshot: &Snapshot,
    headers: &HeaderMap,
    route_anonymous: bool,
) -> Result<Arc<Principal>, Refusal> {
    let config = &snapshot.config.identity;
    let anonymous = config.anonymous || route_anonymous;
    let issuers = snapshot
        .tenants
        .as_ref()
        .map(|directory| directory as &(dyn TenantIssuers + Sync));
    snapshot
        .identity
        .authenticate(config, headers, jwks, anonymous, issuers)
        .await
}

//! Stage 3, identity: who is calling (see `src/identity/` for the mechanisms).

use std::sync::Arc;

use http::HeaderMap;

use crate::error::Refusal;
use crate::identity::Principal;
use crate::server::Shared;
use crate::snapshot::Snapshot;

pub async fn authenticate(
    shared: &Shared,
    snapshot: &Snapshot,
    headers: &HeaderMap,
) -> Result<Arc<Principal>, Refusal> {
    snapshot
        .identity
        .authenticate(&snapshot.config.identity, headers, &shared.jwks)
        .await
}

//! What the listeners and the pipeline share: the process's state ([`Shared`]) and what a request
//! knows about its connection ([`ConnInfo`]). In a module of its own so that the server (which
//! builds it and accepts connections) and the pipeline (which serves them) both depend on it, and
//! not on each other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::audit::Auditor;
use crate::identity::jwks::JwksCache;
use crate::limits::Limits;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;
use crate::upstream::UpstreamClient;

/// State shared by every connection and request of the process.
pub struct Shared {
    pub snapshot: ArcSwap<Snapshot>,
    pub client: UpstreamClient,
    pub metrics: Arc<Metrics>,
    /// Load shedding: a request that cannot take a permit is answered 503.
    pub in_flight: Semaphore,
    /// Connections and upgraded tunnels, waited for on shutdown.
    pub tasks: TaskTracker,
    /// Set when shutdown begins; `/readyz` answers 503 from then on.
    pub draining: AtomicBool,
    /// Remote JWT key sets, kept across snapshots.
    pub jwks: JwksCache,
    /// Rate limit state and quota usage, kept across snapshots.
    pub limits: Limits,
    /// The audit log, when configured.
    pub auditor: Option<Arc<Auditor>>,
    /// The access log (`log.access`), when on.
    pub access: Option<Arc<crate::access::Access>>,
    /// Where tenants written through the admin API are kept (`tenancy.store`).
    pub tenant_store: Arc<crate::tenants::store::Store>,
    /// Held by whoever replaces the snapshot (a reload, a tenant change), one at a time.
    pub writer: std::sync::Mutex<()>,
}

/// What a request knows about the connection it came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    pub peer: SocketAddr,
    pub tls: bool,
    /// The connection came in on an authorizer listener (its index in
    /// `config.authorizers`): decide, never forward.
    pub authorizer: Option<usize>,
}

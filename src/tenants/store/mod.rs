//! The tenant store (`tenancy.store`): where tenants written through the admin API are kept.
//! `files` keeps none (the API only reads); `embedded` keeps them in a local redb file; `redis`
//! keeps them in Redis, shared by every replica, each change numbered by one revision counter and
//! announced on a channel (see `redis.rs`).
//!
//! Every write is conditional ([`Expect`]) and atomic with the check that its custom domains
//! belong to no other tenant of the store, so two replicas can never both accept a tenant the
//! other would have to refuse.

mod embedded;
mod redis;

use serde::{Deserialize, Serialize};

use crate::config::TenantStore;

use super::Spec;

pub use redis::Change;

/// What a write requires of the tenant's current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Whatever it is (a replace, a delete).
    Any,
    /// That there is none (a create).
    Absent,
    /// That its last change is this revision (a patch of what was read).
    At(u64),
}

/// A change to write.
#[derive(Debug, Clone)]
pub enum Write {
    /// A tenant, and its custom domains as served (lower-case, no trailing dot).
    Put(Box<Spec>, Vec<String>),
    Delete,
}

/// How a write ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Written as this revision.
    Written(u64),
    /// The tenant is not at the expected revision (`At`), or exists (`Absent`): its revision.
    Conflict(u64),
    /// Nothing to delete.
    Missing,
    /// A custom domain belongs to another tenant of the store: (domain, owner).
    DomainTaken(String, String),
}

/// The whole store at one revision.
#[derive(Debug, Default)]
pub struct Image {
    pub revision: u64,
    /// Each tenant with the revision of its last change.
    pub tenants: Vec<(Spec, u64)>,
}

/// One stored tenant, as kept in redb and Redis.
#[derive(Debug, Serialize, Deserialize)]
struct Record {
    revision: u64,
    domains: Vec<String>,
    spec: Spec,
}

pub enum Store {
    Files,
    Embedded(embedded::Embedded),
    Redis(Box<redis::Shared>),
}

impl Store {
    /// Opens the configured store (a Redis store connects lazily, so Redis may be down).
    pub fn open(config: &TenantStore) -> Result<Store, String> {
        match config {
            TenantStore::Files => Ok(Store::Files),
            TenantStore::Embedded(path) => embedded::Embedded::open(path).map(Store::Embedded),
            TenantStore::Redis(redis) => {
                redis::Shared::open(redis).map(|r| Store::Redis(Box::new(r)))
            }
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Store::Files => "files",
            Store::Embedded(_) => "embedded",
            Store::Redis(_) => "redis",
        }
    }

    /// Everything stored, at one revision.
    pub async fn image(&self) -> Result<Image, String> {
        match self {
            Store::Files => Ok(Image::default()),
            Store::Embedded(store) => store.image().await,
            Store::Redis(store) => store.image().await,
        }
    }

    /// Writes one tenant's change if `expect` holds.
    pub async fn write(&self, id: &str, write: Write, expect: Expect) -> Result<Outcome, String> {
        match self {
            Store::Files => Err("tenancy.store is files: change tenants.yaml instead".into()),
            Store::Embedded(store) => store.write(id, write, expect).await,
            Store::Redis(store) => store.write(id, write, expect).await,
        }
    }
}

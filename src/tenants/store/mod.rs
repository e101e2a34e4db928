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
mod write;

use crate::config::TenantStore;

pub use redis::Change;
pub use write::{Expect, Image, Outcome, Write};

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

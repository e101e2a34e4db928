//! Plan limits: rate limits (GCRA, in memory per process) and calendar quotas (durable counters).

pub mod period;
pub mod rate;
pub mod store;
pub mod usage;

use rate::RateLimiters;
use store::QuotaStore;

/// The process's limit state, kept across snapshots (a reload keeps counts and rate state).
pub struct Limits {
    pub rate: RateLimiters,
    pub quotas: QuotaStore,
}

//! Rate limits: GCRA with `governor`, one keyed limiter per distinct limit (name, scope, numbers),
//! cached in moka across reloads so that an unchanged limit keeps its state. Keys are tenant,
//! tenant+principal or tenant+route; idle keys are swept, so memory follows the active set.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::tenants::plans::RateLimit;

type Keyed =
    RateLimiter<String, DefaultKeyedStateStore<String>, DefaultClock, StateInformationMiddleware>;

/// The outcome of one limit for one key.
#[derive(Debug, Clone)]
pub struct Check {
    pub allowed: bool,
    /// Requests that may be sent right now.
    pub remaining: u64,
    /// Until the allowance is whole again.
    pub reset: Duration,
    /// When refused: until the next request may pass.
    pub retry_after: Duration,
}

/// What makes two limits the same limiter: a changed number is a new limiter, with fresh state.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct LimiterId {
    name: Arc<str>,
    per: &'static str,
    limit: u64,
    window: Duration,
    burst: u64,
}

pub struct RateLimiters {
    limiters: moka::sync::Cache<LimiterId, Arc<Keyed>>,
    clock: DefaultClock,
}

impl Default for RateLimiters {
    fn default() -> Self {
        RateLimiters {
            // A limiter unused for an hour (its plan changed, its tenant left) is dropped.
            limiters: moka::sync::Cache::builder()
                .time_to_idle(Duration::from_secs(3600))
                .build(),
            clock: DefaultClock::default(),
        }
    }
}

/// One request every `window / limit`, up to `burst` at once.
fn quota(limit: &RateLimit) -> Option<Quota> {
    let period = limit.window.checked_div(u32::try_from(limit.limit).ok()?)?;
    let burst = NonZeroU32::new(u32::try_from(limit.burst()).ok()?)?;
    Quota::with_period(period.max(Duration::from_nanos(1))).map(|q| q.allow_burst(burst))
}

impl RateLimiters {
    /// Checks (and, if allowed, counts) one request against one limit.
    pub fn check(&self, limit: &RateLimit, key: &String) -> Check {
        let identity = LimiterId {
            name: limit.name.clone(),
            per: limit.per.as_str(),
            limit: limit.limit,
            window: limit.window,
            burst: limit.burst(),
        };
        let Some(quota) = quota(limit) else {
            // Validation keeps limits in range; an impossible one refuses rather than allows.
            return Check {
                allowed: false,
                remaining: 0,
                reset: limit.window,
                retry_after: limit.window,
            };
        };
        let limiter = self.limiters.get_with(identity, || {
            Arc::new(RateLimiter::keyed(quota).with_middleware::<StateInformationMiddleware>())
        });
        let per_request = quota.replenish_interval();
        let burst = u64::from(quota.burst_size().get());
        match limiter.check_key(key) {
            Ok(state) => {
                let remaining = u64::from(state.remaining_burst_capacity());
                Check {
                    allowed: true,
                    remaining,
                    reset: per_request * u32::try_from(burst - remaining).unwrap_or(u32::MAX),
                    retry_after: Duration::ZERO,
                }
            }
            Err(not_until) => {
                let wait = not_until.wait_time_from(self.clock.now());
                Check {
                    allowed: false,
                    remaining: 0,
                    reset: per_request * u32::try_from(burst).unwrap_or(u32::MAX),
                    retry_after: wait,
                }
            }
        }
    }

    /// Drops keys whose state is back to fresh (idle callers), and returns how many remain.
    pub(crate) fn sweep(&self) -> usize {
        self.limiters.run_pending_tasks();
        self.limiters
            .iter()
            .map(|(_, limiter)| {
                limiter.retain_recent();
                limiter.shrink_to_fit();
                limiter.len()
            })
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tenants::plans::Scope;

    fn limit(limit: u64, window: Duration, burst: u64) -> RateLimit {
        RateLimit {
            name: "test".into(),
            limit,
            window,
            burst: Some(burst),
            per: Scope::Principal,
        }
    }

    #[test]
    fn the_burst_passes_then_requests_wait() {
        let limiters = RateLimiters::default();
        let hourly = limit(20, Duration::from_secs(3600), 3);
        let checks: Vec<Check> = (0..4)
            .map(|_| limiters.check(&hourly, &"k".to_string()))
            .collect();
        assert!(checks[..3].iter().all(|c| c.allowed));
        assert_eq!(checks[2].remaining, 0);
        assert!(!checks[3].allowed);
        // One request every 180 s.
        assert!(checks[3].retry_after > Duration::from_secs(170));
        assert!(checks[3].retry_after <= Duration::from_secs(180));
    }

    #[test]
    fn idle_keys_are_swept_so_memory_follows_the_active_callers() {
        let limiters = RateLimiters::default();
        let fast = limit(1000, Duration::from_millis(10), 5);
        for i in 0..100_000 {
            assert!(limiters.check(&fast, &format!("caller-{i}")).allowed);
        }
        let busy = limit(10, Duration::from_secs(3600), 2);
        limiters.check(&busy, &"busy".to_string());
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(
            limiters.sweep(),
            1,
            "only the key still inside its window remains"
        );
    }
}

//! Giving back what a request counted when it never reached the upstream (no connection could
//! be opened): the tenant is billed for what its application served, not for Tollgate's or the
//! upstream's outage. In authorizer mode the gateway forwards, so an allowed request counts.

use std::time::Duration;

use super::link::{Failure, Link};
use super::store::Item;

/// Where a request's quota items were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counted {
    /// Refused, or nothing to count.
    Nowhere,
    /// In this process's store (memory, embedded, or the Redis fallback).
    Locally,
    /// In Redis.
    InRedis,
}

/// What to give back if the request does not reach the upstream.
pub struct Refund {
    pub tenant: std::sync::Arc<str>,
    pub items: Vec<Item>,
    pub counted: Counted,
}

/// Lowers each counter KEYS[i] by ARGV[i], never below zero, and only where it exists (an
/// expired counter is not brought back).
const RELEASE: &str = r#"
for i, key in ipairs(KEYS) do
  local n = tonumber(redis.call('GET', key) or '0')
  local cost = tonumber(ARGV[i])
  if n > 0 then
    if cost >= n then redis.call('SET', key, 0, 'KEEPTTL') else redis.call('DECRBY', key, cost) end
  end
end
return 1
"#;

/// Gives `(key, cost)` back in Redis, in one call bounded by `timeout`.
pub(crate) async fn release(
    link: &Link,
    timeout: Duration,
    keys: &[(String, u64)],
) -> Result<(), String> {
    let script = redis::Script::new(RELEASE);
    let mut invocation = script.prepare_invoke();
    for (key, cost) in keys {
        invocation.key(key).arg(*cost);
    }
    let result = link
        .run(timeout, async |mut connection| {
            invocation.invoke_async::<i64>(&mut connection).await
        })
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(Failure::Redis(e)) => Err(e),
        Err(Failure::Released) => Err("the Redis breaker opened".into()),
    }
}

//! Adding the counts made during an outage to Redis, each tenant's batch exactly once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::link::{Failure, Link};

/// Adds one tenant's outage counts, once: KEYS[1] marks the batch as applied, so a retry of a
/// batch whose answer was lost adds nothing. Like the limits script, it does nothing past its
/// deadline (ARGV[1], Redis time). ARGV[2] is the marker's lifetime (ms); then per counter KEYS[i]
/// its count and expiry (s).
const RECONCILE: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[1]) then return -1 end
if not redis.call('SET', KEYS[1], '1', 'NX', 'PX', ARGV[2]) then return 0 end
for i = 2, #KEYS do
  redis.call('INCRBY', KEYS[i], ARGV[2 * i - 1])
  redis.call('EXPIRE', KEYS[i], ARGV[2 * i])
end
return 1
"#;

/// One tenant's outage counts, added to Redis once under its id.
struct Batch {
    marker: String,
    /// (key, count, expiry in seconds).
    counts: Vec<(String, u64, u64)>,
}

/// How long a batch marker is kept: far longer than any retry.
const MARKER_TTL_MS: u64 = 7 * 86_400 * 1000;

/// The outage counts not yet in Redis, and how to add them.
pub(crate) struct Reconciler {
    script: redis::Script,
    /// Outage counts not yet added to Redis, by batch.
    pending: Mutex<Vec<Batch>>,
    /// Names batches uniquely across processes and restarts.
    batch_prefix: String,
    batches: AtomicU64,
    /// Whether `pending` holds anything (read on every successful call).
    has_pending: AtomicBool,
}

impl Default for Reconciler {
    fn default() -> Reconciler {
        let nonce = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Reconciler {
            script: redis::Script::new(RECONCILE),
            pending: Mutex::new(Vec::new()),
            batch_prefix: format!("{}-{nonce:x}", std::process::id()),
            batches: AtomicU64::new(0),
            has_pending: AtomicBool::new(false),
        }
    }
}

impl Reconciler {
    /// Whether outage counts wait to be added to Redis.
    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Relaxed)
    }

    /// Queues counts made while Redis was away (tenant, key, count, expiry in seconds) and adds
    /// every queued batch to Redis through `link`, each exactly once (markers under `prefix`).
    /// Returns how many counters were written; batches that fail stay queued for the next time
    /// Redis answers.
    pub(crate) async fn reconcile(
        &self,
        link: &Link,
        prefix: &str,
        timeout: Duration,
        counts: Vec<(String, String, u64, u64)>,
    ) -> usize {
        let mut by_tenant: HashMap<String, Vec<(String, u64, u64)>> = HashMap::new();
        for (tenant, key, count, ttl) in counts {
            by_tenant.entry(tenant).or_default().push((key, count, ttl));
        }
        let mut batches: Vec<Batch> = {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            self.has_pending.store(false, Ordering::Relaxed);
            std::mem::take(&mut *pending)
        };
        for (tenant, counts) in by_tenant {
            let n = self.batches.fetch_add(1, Ordering::Relaxed);
            batches.push(Batch {
                marker: format!("{prefix}:{{{tenant}}}:reconciled:{}-{n}", self.batch_prefix),
                counts,
            });
        }
        let mut written = 0;
        let mut left = Vec::new();
        for batch in batches {
            if !left.is_empty() {
                left.push(batch);
                continue;
            }
            let mut invocation = self.script.prepare_invoke();
            invocation
                .key(&batch.marker)
                .arg(link.deadline(timeout))
                .arg(MARKER_TTL_MS);
            for (key, count, ttl) in &batch.counts {
                invocation.key(key).arg(count).arg(ttl);
            }
            let result = link
                .run(timeout, async |mut connection| {
                    invocation.invoke_async::<i64>(&mut connection).await
                })
                .await;
            match result {
                // Applied now, or by an earlier try whose answer was lost.
                Ok(1 | 0) => written += batch.counts.len(),
                Ok(_) => left.push(batch),
                Err(Failure::Redis(e)) => {
                    tracing::warn!(error = %e, "reconciling outage counts failed; will retry");
                    left.push(batch);
                }
                Err(Failure::Released) => left.push(batch),
            }
        }
        if !left.is_empty() {
            let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
            pending.extend(left);
            self.has_pending.store(true, Ordering::Relaxed);
        }
        written
    }
}

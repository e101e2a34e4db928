//! Shared limits through Redis, for several replicas. One script call per request evaluates every
//! stacked limit at once, on Redis's clock: GCRA for the rate limits, counters for the quotas;
//! either all of them are counted or none. Keys are hash-tagged by tenant (`prefix:{acme}:…`),
//! so a tenant's keys share a Redis Cluster slot. An "exhausted until" answer is cached locally
//! and costs no round trip.
//!
//! When Redis does not answer within the timeout, the call fails; after `breaker_failures` in a
//! row the breaker opens and Redis is not tried for `breaker_cooldown`. Meanwhile the caller falls
//! back (see `Limits::check`), and the quota counts made locally are added to Redis when it
//! answers again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use redis::aio::ConnectionManager;

use crate::config::RedisStore;

use super::store::{Consumed, Item, Usage};

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local nrl = tonumber(ARGV[1])
local nq = #KEYS - nrl
local kind, index, value = 0, 0, 0
local tats = {}
for i = 1, nrl do
  local interval = tonumber(ARGV[2 * i]); local burst = tonumber(ARGV[2 * i + 1])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local wait = tat - now - interval * (burst - 1)
  if wait > 0 and (kind ~= 1 or wait > value) then kind, index, value = 1, i, wait end
  tats[i] = tat + interval
end
local base = 2 + 2 * nrl
local usage = {}
for j = 1, nq do
  local limit = tonumber(ARGV[base + 3 * (j - 1)]); local cost = tonumber(ARGV[base + 3 * (j - 1) + 1])
  usage[j] = tonumber(redis.call('GET', KEYS[nrl + j]) or '0')
  if kind == 0 and usage[j] + cost > limit then kind, index, value = 2, j, usage[j] end
end
if kind == 0 then
  for i = 1, nrl do
    redis.call('SET', KEYS[i], tats[i], 'PX', tats[i] - now + tonumber(ARGV[2 * i]))
  end
  for j = 1, nq do
    local cost = tonumber(ARGV[base + 3 * (j - 1) + 1]); local ttl = tonumber(ARGV[base + 3 * (j - 1) + 2])
    usage[j] = redis.call('INCRBY', KEYS[nrl + j], cost)
    redis.call('EXPIRE', KEYS[nrl + j], ttl)
  end
end
local out = {kind, index, value, now}
for i = 1, nrl do out[#out + 1] = tats[i] end
for j = 1, nq do out[#out + 1] = usage[j] end
return out
"#;

/// One rate limit for the script.
pub struct RateItem {
    pub key: String,
    /// Milliseconds between requests (window / limit).
    pub interval_ms: u64,
    pub burst: u64,
}

/// One quota for the script: the item and its Redis key.
pub struct QuotaItem<'a> {
    pub key: String,
    pub item: &'a Item,
    /// Seconds until the period ends (the key's expiry, with a day of margin).
    pub ttl: u64,
}

pub enum Verdict {
    /// Counted; per rate limit (remaining, reset), and quota usage after.
    Allowed {
        rate: Vec<(u64, Duration)>,
        usage: Vec<u64>,
    },
    /// Nothing counted: a rate limit refuses for this long.
    RateLimited { index: usize, retry: Duration },
    /// Nothing counted: this quota would go over.
    QuotaExceeded { index: usize, usage: u64 },
}

pub struct RedisLimits {
    pub config: RedisStore,
    client: redis::Client,
    connection: tokio::sync::Mutex<Option<ConnectionManager>>,
    script: redis::Script,
    failures: AtomicU32,
    open_until: Mutex<Option<Instant>>,
    /// The last usage Redis reported per quota key: the base of the local fallback.
    last_usage: Mutex<HashMap<String, u64>>,
    /// "Exhausted until" answers by key and limit: (until, Unix ms).
    exhausted: moka::sync::Cache<String, u64>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl RedisLimits {
    pub fn new(config: RedisStore) -> Result<RedisLimits, String> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("limits.redis.url: {e}"))?;
        Ok(RedisLimits {
            config,
            client,
            connection: tokio::sync::Mutex::new(None),
            script: redis::Script::new(SCRIPT),
            failures: AtomicU32::new(0),
            open_until: Mutex::new(None),
            last_usage: Mutex::new(HashMap::new()),
            exhausted: moka::sync::Cache::builder().max_capacity(100_000).build(),
        })
    }

    pub fn rate_key(&self, tenant: &str, name: &str, scope_key: &str) -> String {
        format!("{}:{{{tenant}}}:rl:{name}:{scope_key}", self.config.prefix)
    }

    pub fn quota_key(&self, tenant: &str, metric: &str, period: &str) -> String {
        format!("{}:{{{tenant}}}:q:{metric}:{period}", self.config.prefix)
    }

    /// Whether the breaker lets a call through (closed, or open past its cooldown: half-open).
    pub fn available(&self) -> bool {
        let open = self.open_until.lock().unwrap_or_else(|p| p.into_inner());
        open.is_none_or(|until| Instant::now() >= until)
    }

    /// 0 closed, 1 open.
    pub fn breaker_state(&self) -> i64 {
        i64::from(!self.available())
    }

    fn succeeded(&self) -> bool {
        let was_failing = self.failures.swap(0, Ordering::AcqRel) > 0;
        *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) = None;
        was_failing
    }

    fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= self.config.breaker_failures {
            *self.open_until.lock().unwrap_or_else(|p| p.into_inner()) =
                Some(Instant::now() + self.config.breaker_cooldown);
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        let mut slot = self.connection.lock().await;
        if slot.is_none() {
            let manager = tokio::time::timeout(
                self.config.timeout.max(Duration::from_millis(200)),
                ConnectionManager::new(self.client.clone()),
            )
            .await;
            *slot = manager.ok().and_then(Result::ok);
        }
        slot.clone()
    }

    /// A cached "exhausted" answer for any of the limits, without asking Redis.
    pub fn cached(&self, rate: &[RateItem], quotas: &[QuotaItem<'_>]) -> Option<Verdict> {
        let now = now_ms();
        for (index, r) in rate.iter().enumerate() {
            if let Some(until) = self
                .exhausted
                .get(&format!("{}/{}/{}", r.key, r.interval_ms, r.burst))
                && until > now
            {
                return Some(Verdict::RateLimited {
                    index,
                    retry: Duration::from_millis(until - now),
                });
            }
        }
        for (index, q) in quotas.iter().enumerate() {
            if let Some(until) = self.exhausted.get(&format!("{}/{}", q.key, q.item.limit))
                && until > now
            {
                let usage = self.last_usage(&q.key).unwrap_or(q.item.limit);
                return Some(Verdict::QuotaExceeded { index, usage });
            }
        }
        None
    }

    pub fn last_usage(&self, key: &str) -> Option<u64> {
        self.last_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    /// One script call. `Err` means Redis did not answer (in time); the breaker counts it.
    /// Returns also whether Redis just came back after failing (time to reconcile).
    pub async fn check(
        &self,
        rate: &[RateItem],
        quotas: &[QuotaItem<'_>],
    ) -> Result<(Verdict, bool), String> {
        let result = self.call(rate, quotas).await;
        match result {
            Ok(values) => {
                let recovered = self.succeeded();
                Ok((self.verdict(rate, quotas, &values), recovered))
            }
            Err(e) => {
                self.failed();
                Err(e)
            }
        }
    }

    async fn call(&self, rate: &[RateItem], quotas: &[QuotaItem<'_>]) -> Result<Vec<i64>, String> {
        let mut connection = self.connection().await.ok_or("cannot connect to Redis")?;
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(rate.len());
        for r in rate {
            invocation.key(&r.key).arg(r.interval_ms).arg(r.burst);
        }
        for q in quotas {
            invocation
                .key(&q.key)
                .arg(q.item.limit)
                .arg(q.item.cost)
                .arg(q.ttl);
        }
        tokio::time::timeout(
            self.config.timeout,
            invocation.invoke_async(&mut connection),
        )
        .await
        .map_err(|_| format!("Redis did not answer within {:?}", self.config.timeout))?
        .map_err(|e| e.to_string())
    }

    fn verdict(&self, rate: &[RateItem], quotas: &[QuotaItem<'_>], values: &[i64]) -> Verdict {
        let get = |i: usize| u64::try_from(values.get(i).copied().unwrap_or(0)).unwrap_or(0);
        let (kind, index, value, now) = (get(0), get(1) as usize, get(2), get(3));
        let tats: Vec<u64> = (0..rate.len()).map(|i| get(4 + i)).collect();
        let usage: Vec<u64> = (0..quotas.len()).map(|j| get(4 + rate.len() + j)).collect();
        {
            let mut last = self.last_usage.lock().unwrap_or_else(|p| p.into_inner());
            for (q, used) in quotas.iter().zip(&usage) {
                last.insert(q.key.clone(), *used);
            }
        }
        let local_now = now_ms();
        match kind {
            1 if index >= 1 && index <= rate.len() => {
                let r = &rate[index - 1];
                self.exhausted.insert(
                    format!("{}/{}/{}", r.key, r.interval_ms, r.burst),
                    local_now + value,
                );
                Verdict::RateLimited {
                    index: index - 1,
                    retry: Duration::from_millis(value),
                }
            }
            2 if index >= 1 && index <= quotas.len() => {
                let q = &quotas[index - 1];
                self.exhausted.insert(
                    format!("{}/{}", q.key, q.item.limit),
                    local_now + q.ttl.saturating_sub(86_400) * 1000,
                );
                Verdict::QuotaExceeded {
                    index: index - 1,
                    usage: value,
                }
            }
            _ => Verdict::Allowed {
                rate: rate
                    .iter()
                    .zip(&tats)
                    .map(|(r, tat)| {
                        let ahead = tat.saturating_sub(now);
                        let used = ahead.div_ceil(r.interval_ms.max(1));
                        (r.burst.saturating_sub(used), Duration::from_millis(ahead))
                    })
                    .collect(),
                usage,
            },
        }
    }

    /// Adds counts made while Redis was away. Returns how many counters were written.
    pub async fn reconcile(&self, counts: &[(String, u64, u64)]) -> Result<usize, String> {
        let mut connection = self.connection().await.ok_or("cannot connect to Redis")?;
        let mut pipe = redis::pipe();
        for (key, count, ttl) in counts {
            pipe.cmd("INCRBY").arg(key).arg(count).ignore();
            pipe.cmd("EXPIRE").arg(key).arg(ttl).ignore();
        }
        let _: () = tokio::time::timeout(Duration::from_secs(2), pipe.query_async(&mut connection))
            .await
            .map_err(|_| "Redis did not answer".to_string())?
            .map_err(|e| e.to_string())?;
        Ok(counts.len())
    }

    /// Quota counters of a tenant held in Redis.
    pub async fn usage(&self, tenant: &str, period: Option<&str>) -> Result<Vec<Usage>, String> {
        let mut connection = self.connection().await.ok_or("cannot connect to Redis")?;
        let prefix = format!("{}:{{{tenant}}}:q:", self.config.prefix);
        let pattern = format!("{}*", prefix.replace('{', "\\{").replace('}', "\\}"));
        let mut keys: Vec<String> = Vec::new();
        let mut cursor: u64 = 0;
        loop {
            let (next, batch): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            keys.extend(batch);
            cursor = next;
            if cursor == 0 {
                break;
            }
        }
        let mut found = Vec::new();
        for key in keys {
            let Some((metric, key_period)) = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once(':'))
            else {
                continue;
            };
            if period.is_some_and(|p| !key_period.starts_with(p)) {
                continue;
            }
            let count: Option<u64> = redis::cmd("GET")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .map_err(|e| e.to_string())?;
            found.push(Usage {
                metric: metric.to_string(),
                period: key_period.to_string(),
                count: count.unwrap_or(0),
            });
        }
        found.sort_by(|a, b| (&a.period, &a.metric).cmp(&(&b.period, &b.metric)));
        Ok(found)
    }
}

/// A consumption outcome for the quota stage, from a verdict that passed the rate limits.
pub fn consumed(verdict: &Verdict) -> Option<Consumed> {
    match verdict {
        Verdict::Allowed { usage, .. } => Some(Consumed::Allowed(usage.clone())),
        Verdict::QuotaExceeded { index, usage } => Some(Consumed::Exceeded {
            index: *index,
            usage: *usage,
        }),
        Verdict::RateLimited { .. } => None,
    }
}

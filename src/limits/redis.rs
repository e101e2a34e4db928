//! Shared limits through Redis, for several replicas. One script call per request evaluates every
//! stacked limit at once, on Redis's clock: GCRA for the rate limits, counters for the quotas;
//! either all of them are counted or none. Keys are hash-tagged by tenant (`prefix:{acme}:…`),
//! so a tenant's keys share a Redis Cluster slot. An "exhausted until" answer is cached locally
//! and costs no round trip.
//!
//! A call Tollgate gave up on is never counted later: each carries a deadline on Redis's clock
//! (three quarters of the timeout after it was sent, so that its answer can still arrive in
//! time), and the script counts nothing past it; a Redis that was paused or slow runs the queued
//! calls when it wakes, and they change nothing. When Redis does not answer within the timeout
//! the call fails, and the breaker (`link.rs`) counts it; meanwhile the caller falls back (see
//! `Limits::check`), and the quota counts made locally are added to Redis when it answers again,
//! each tenant's batch exactly once.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::RedisStore;

use super::link::{Failure, Link, now_ms};
use super::reconcile::Reconciler;
use super::store::{Consumed, Item, Usage};

const SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
if now > tonumber(ARGV[1]) then return {3, 0, 0, now} end
local nrl = tonumber(ARGV[2])
local nq = #KEYS - nrl
local kind, index, value = 0, 0, 0
local tats = {}
for i = 1, nrl do
  local interval = tonumber(ARGV[2 * i + 1]); local burst = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  local wait = tat - now - interval * (burst - 1)
  if wait > 0 and (kind ~= 1 or wait > value) then kind, index, value = 1, i, wait end
  tats[i] = tat + interval
end
local base = 3 + 2 * nrl
local usage = {}
for j = 1, nq do
  local limit = tonumber(ARGV[base + 3 * (j - 1)]); local cost = tonumber(ARGV[base + 3 * (j - 1) + 1])
  usage[j] = tonumber(redis.call('GET', KEYS[nrl + j]) or '0')
  if kind == 0 and usage[j] + cost > limit then kind, index, value = 2, j, usage[j] end
end
if kind == 0 then
  for i = 1, nrl do
    redis.call('SET', KEYS[i], tats[i], 'PX', tats[i] - now + tonumber(ARGV[2 * i + 1]))
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
pub(crate) struct RateItem {
    pub key: String,
    /// Milliseconds between requests (window / limit).
    pub interval_ms: u64,
    pub burst: u64,
}

/// How long a quota key outlives its period: a day, so that a period's count can still be read
/// (and reconciled into) just after it ends. The only place this margin is set.
pub(crate) const GRACE_S: u64 = 86_400;

/// One quota for the script: the item and its Redis key.
pub(crate) struct QuotaItem<'a> {
    pub key: String,
    pub item: &'a Item,
    /// Seconds until the key expires: the period's end plus [`GRACE_S`].
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

pub(crate) struct RedisLimits {
    pub config: RedisStore,
    link: Link,
    script: redis::Script,
    /// The last usage Redis reported per quota key: the base of the local fallback.
    last_usage: Mutex<HashMap<String, u64>>,
    /// "Exhausted until" answers by key and limit: (until, Unix ms).
    exhausted: moka::sync::Cache<String, u64>,
    /// Outage counts on their way to Redis.
    reconciler: Reconciler,
}

impl RedisLimits {
    pub fn new(config: RedisStore) -> Result<RedisLimits, String> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("limits.redis.url: {e}"))?;
        let link = Link::new(
            client,
            config.timeout,
            config.breaker_failures,
            config.breaker_cooldown,
        );
        Ok(RedisLimits {
            config,
            link,
            script: redis::Script::new(SCRIPT),
            last_usage: Mutex::new(HashMap::new()),
            exhausted: moka::sync::Cache::builder().max_capacity(100_000).build(),
            reconciler: Reconciler::default(),
        })
    }

    pub(crate) fn rate_key(&self, tenant: &str, name: &str, scope_key: &str) -> String {
        format!("{}:{{{tenant}}}:rl:{name}:{scope_key}", self.config.prefix)
    }

    /// Gives back `(key, cost)` of a request that never reached the upstream.
    pub(crate) async fn release(&self, keys: &[(String, u64)]) -> Result<(), String> {
        super::refund::release(&self.link, self.config.timeout, keys).await
    }

    pub(crate) fn quota_key(&self, tenant: &str, metric: &str, period: &str) -> String {
        format!("{}:{{{tenant}}}:q:{metric}:{period}", self.config.prefix)
    }

    /// Whether outage counts wait to be added to Redis.
    pub(crate) fn has_pending(&self) -> bool {
        self.reconciler.has_pending()
    }

    /// Adds counts made while Redis was away, and any still queued (see [`Reconciler`]).
    pub(crate) async fn reconcile(&self, counts: Vec<(String, String, u64, u64)>) -> usize {
        let (link, config) = (&self.link, &self.config);
        self.reconciler
            .reconcile(link, &config.prefix, config.timeout, counts)
            .await
    }

    /// Whether this request may call Redis (breaker closed, or the half-open probe).
    pub fn admit(&self) -> bool {
        self.link.admit()
    }

    /// 0 closed, 1 open or half-open.
    pub(crate) fn breaker_state(&self) -> i64 {
        i64::from(self.link.is_open())
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

    pub(crate) fn last_usage(&self, key: &str) -> Option<u64> {
        self.last_usage
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .copied()
    }

    /// The deadline on Redis's clock for a call sent now.
    fn deadline(&self) -> i64 {
        self.link.deadline(self.config.timeout)
    }

    /// One script call. `Err` means Redis did not answer (in time), or answered that the call
    /// came past its deadline; the breaker counts it unless it opened meanwhile. Returns also
    /// whether Redis just came back after failing (time to reconcile).
    pub async fn check(
        &self,
        rate: &[RateItem],
        quotas: &[QuotaItem<'_>],
    ) -> Result<(Verdict, bool), String> {
        let mut invocation = self.script.prepare_invoke();
        invocation.arg(self.deadline()).arg(rate.len());
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
        let result = self
            .link
            .run(self.config.timeout, async |mut connection| {
                invocation.invoke_async::<Vec<i64>>(&mut connection).await
            })
            .await;
        let values = match result {
            Ok(values) => values,
            Err(Failure::Redis(e)) => {
                self.link.failed();
                return Err(e);
            }
            Err(Failure::Released) => return Err("the Redis breaker opened".into()),
        };
        if let Some(now) = values.get(3) {
            self.link.saw_redis_time(*now);
        }
        if values.first() == Some(&3) {
            self.link.failed();
            return Err("Redis ran the call past its deadline; nothing was counted".into());
        }
        let recovered = self.link.succeeded();
        Ok((self.verdict(rate, quotas, &values), recovered))
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
                    local_now + q.ttl.saturating_sub(GRACE_S) * 1000,
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

    /// Quota counters of a tenant held in Redis.
    pub async fn usage(&self, tenant: &str, period: Option<&str>) -> Result<Vec<Usage>, String> {
        let prefix = format!("{}:{{{tenant}}}:q:", self.config.prefix);
        let pattern = format!("{}*", prefix.replace('{', "\\{").replace('}', "\\}"));
        let read = async |mut connection: redis::aio::MultiplexedConnection| {
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
                    .await?;
                keys.extend(batch);
                cursor = next;
                if cursor == 0 {
                    break;
                }
            }
            let mut counts = Vec::with_capacity(keys.len());
            for key in keys {
                let count: Option<u64> = redis::cmd("GET")
                    .arg(&key)
                    .query_async(&mut connection)
                    .await?;
                counts.push((key, count.unwrap_or(0)));
            }
            Ok(counts)
        };
        let counts = match self.link.run(Duration::from_secs(5), read).await {
            Ok(counts) => counts,
            Err(Failure::Redis(e)) => return Err(e),
            Err(Failure::Released) => return Err("the Redis breaker opened".into()),
        };
        let mut found = Vec::new();
        for (key, count) in counts {
            let Some((metric, key_period)) = key
                .strip_prefix(&prefix)
                .and_then(|rest| rest.split_once(':'))
            else {
                continue;
            };
            if period.is_some_and(|p| !key_period.starts_with(p)) {
                continue;
            }
            found.push(Usage {
                metric: metric.to_string(),
                period: key_period.to_string(),
                count,
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

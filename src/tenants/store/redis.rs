//! The Redis tenant store, shared by every replica.
//!
//! Keys (under `limits.redis.prefix`): `tenants` (a hash: id → record), `tenants:revision` (the
//! counter every change takes its number from), `tenants:domains` (custom domain → tenant), and
//! the channel `tenants:changes`, on which every change is published with its revision in the
//! same script that makes it. A replica applies changes in revision order; one it missed (a gap,
//! a reconnect, a silent connection) is caught up by reading the whole image again.
//!
//! Redis must persist (`appendonly yes`) for tenants to survive its restart: an empty Redis is
//! an empty store, and replicas follow it.

use std::time::Duration;

use futures_util::{Stream, StreamExt};
use redis::aio::MultiplexedConnection;
use serde::Deserialize;
use tokio::sync::Mutex;

use super::write::{Expect, Image, Outcome, Record, Write};
use crate::config::RedisStore;
use crate::tenants::Spec;

/// One change as published.
#[derive(Debug, Deserialize)]
pub struct Change {
    pub revision: u64,
    pub id: String,
    /// The tenant as it now is; `None` when it was deleted.
    pub spec: Option<Spec>,
}

const WRITE: &str = r#"
local id, expect, spec, channel = ARGV[1], ARGV[2], ARGV[3], ARGV[5]
local domains = cjson.decode(ARGV[4])
local cur = redis.call('HGET', KEYS[1], id)
local at, old = 0, {}
if cur then
  local r = cjson.decode(cur)
  at, old = r.revision, r.domains
end
if (expect == 'absent' and cur) or (expect ~= 'any' and expect ~= 'absent' and tonumber(expect) ~= at) then
  return {'conflict', at}
end
if spec == '' and not cur then return {'missing', 0} end
for _, d in ipairs(domains) do
  local owner = redis.call('HGET', KEYS[3], d)
  if owner and owner ~= id then return {'domain', d, owner} end
end
local rev = redis.call('INCR', KEYS[2])
for _, d in ipairs(old) do
  if redis.call('HGET', KEYS[3], d) == id then redis.call('HDEL', KEYS[3], d) end
end
local head = '{"revision":' .. rev .. ',"id":' .. cjson.encode(id) .. ',"spec":'
if spec == '' then
  redis.call('HDEL', KEYS[1], id)
  redis.call('PUBLISH', channel, head .. 'null}')
else
  for _, d in ipairs(domains) do redis.call('HSET', KEYS[3], d, id) end
  redis.call('HSET', KEYS[1], id, '{"revision":' .. rev .. ',"domains":' .. ARGV[4] .. ',"spec":' .. spec .. '}')
  redis.call('PUBLISH', channel, head .. spec .. '}')
end
return {'ok', rev}
"#;

const IMAGE: &str = r"
return {redis.call('GET', KEYS[2]) or '0', redis.call('HVALS', KEYS[1])}
";

/// How long one store call may take (an image of 100,000 tenants is tens of MB).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct Shared {
    client: redis::Client,
    connect_timeout: Duration,
    keys: [String; 3],
    channel: String,
    connection: Mutex<Option<MultiplexedConnection>>,
    write: redis::Script,
    image: redis::Script,
}

impl Shared {
    pub fn open(config: &RedisStore) -> Result<Shared, String> {
        let client = redis::Client::open(config.url.as_str())
            .map_err(|e| format!("limits.redis.url: {e}"))?;
        let p = &config.prefix;
        Ok(Shared {
            client,
            connect_timeout: config.timeout.max(Duration::from_secs(1)),
            keys: [
                format!("{p}tenants"),
                format!("{p}tenants:revision"),
                format!("{p}tenants:domains"),
            ],
            channel: format!("{p}tenants:changes"),
            connection: Mutex::new(None),
            write: redis::Script::new(WRITE),
            image: redis::Script::new(IMAGE),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, String> {
        let mut slot = self.connection.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(CALL_TIMEOUT));
        let c = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("the tenant store (redis): {e}"))?;
        *slot = Some(c.clone());
        Ok(c)
    }

    /// Runs `f` on the connection; a failed call drops it, so the next one connects afresh.
    async fn call<T, F, Fut>(&self, f: F) -> Result<T, String>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match tokio::time::timeout(CALL_TIMEOUT, f(connection)).await {
            Ok(Ok(value)) => Ok(value),
            failed => {
                *self.connection.lock().await = None;
                Err(match failed {
                    Ok(Err(e)) => format!("the tenant store (redis): {e}"),
                    _ => "the tenant store (redis): no answer in time".to_string(),
                })
            }
        }
    }

    pub async fn image(&self) -> Result<Image, String> {
        let (revision, records): (u64, Vec<String>) = self
            .call(|mut c| async move {
                let mut invocation = self.image.prepare_invoke();
                invocation.key(&self.keys[0]).key(&self.keys[1]);
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let mut tenants = Vec::with_capacity(records.len());
        for text in records {
            let record: Record = serde_json::from_str(&text)
                .map_err(|e| format!("the tenant store (redis): a record: {e}"))?;
            tenants.push((record.spec, record.revision));
        }
        Ok(Image { revision, tenants })
    }

    /// The store's revision now.
    pub async fn revision(&self) -> Result<u64, String> {
        let key = &self.keys[1];
        let revision: Option<u64> = self
            .call(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            .await?;
        Ok(revision.unwrap_or(0))
    }

    pub async fn write(&self, id: &str, write: Write, expect: Expect) -> Result<Outcome, String> {
        let (spec, domains) = match &write {
            Write::Put(spec, domains) => (
                serde_json::to_string(spec).map_err(|e| e.to_string())?,
                serde_json::to_string(domains).map_err(|e| e.to_string())?,
            ),
            Write::Delete => (String::new(), "[]".to_string()),
        };
        let expect = match expect {
            Expect::Any => "any".to_string(),
            Expect::Absent => "absent".to_string(),
            Expect::At(revision) => revision.to_string(),
        };
        let reply: Vec<String> = self
            .call(|mut c| async move {
                let mut invocation = self.write.prepare_invoke();
                for key in &self.keys {
                    invocation.key(key);
                }
                invocation
                    .arg(id)
                    .arg(expect)
                    .arg(spec)
                    .arg(domains)
                    .arg(&self.channel);
                invocation.invoke_async(&mut c).await
            })
            .await?;
        let number = |i: usize| {
            reply
                .get(i)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        Ok(match reply.first().map(String::as_str) {
            Some("ok") => Outcome::Written(number(1)),
            Some("conflict") => Outcome::Conflict(number(1)),
            Some("missing") => Outcome::Missing,
            Some("domain") => Outcome::DomainTaken(
                reply.get(1).cloned().unwrap_or_default(),
                reply.get(2).cloned().unwrap_or_default(),
            ),
            _ => {
                return Err(format!(
                    "the tenant store (redis): unexpected reply {reply:?}"
                ));
            }
        })
    }

    /// The changes published from now on, in order, until the connection ends.
    pub async fn changes(
        &self,
    ) -> Result<impl Stream<Item = Result<Change, String>> + use<>, String> {
        let subscribe = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let pubsub = tokio::time::timeout(self.connect_timeout, subscribe)
            .await
            .map_err(|_| "the tenant store (redis): no answer in time".to_string())?
            .map_err(|e| format!("the tenant store (redis): {e}"))?;
        Ok(pubsub.into_on_message().map(|message| {
            let payload: String = message
                .get_payload()
                .map_err(|e| format!("the tenant store (redis): a change: {e}"))?;
            serde_json::from_str(&payload)
                .map_err(|e| format!("the tenant store (redis): a change: {e}"))
        }))
    }
}

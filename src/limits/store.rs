//! Quota usage: counters per (tenant, metric, period), never "remaining", so a plan change applies
//! mid-period. A request's items are checked and counted in one step under one lock: either every
//! cost is added, or none is (a refused request is never counted).
//!
//! `embedded` keeps the counters in memory and writes the changed ones to a redb file every
//! `flush_interval` in one transaction: the hot path does no disk I/O, and a crash (`kill -9`)
//! loses at most one interval of counts. On start the file is read back. Graceful shutdown flushes.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use crate::config::{Backend, LimitsStore};

const USAGE: TableDefinition<&str, u64> = TableDefinition::new("usage");

/// One quota a request consumes.
#[derive(Debug, Clone)]
pub struct Item {
    pub metric: String,
    /// The period key (`2026-11`, `2026-11-22`).
    pub period: String,
    pub limit: u64,
    pub cost: u64,
    /// Seconds until the period ends.
    pub ends_in: u64,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Consumed {
    /// Counted; the usage of each item after it.
    Allowed(Vec<u64>),
    /// Not counted: this item would go over its limit.
    Exceeded { index: usize, usage: u64 },
}

/// One counter, for reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    pub metric: String,
    pub period: String,
    pub count: u64,
}

fn key(tenant: &str, metric: &str, period: &str) -> String {
    format!("{tenant}\u{1f}{metric}\u{1f}{period}")
}

/// The counter key of each item of `tenant`, in order.
fn item_keys(tenant: &str, items: &[Item]) -> Vec<String> {
    items
        .iter()
        .map(|i| key(tenant, &i.metric, &i.period))
        .collect()
}

pub struct QuotaStore {
    counts: Mutex<HashMap<String, u64>>,
    durable: Option<Durable>,
}

struct Durable {
    db: redb::Database,
    dirty: Mutex<HashSet<String>>,
}

impl QuotaStore {
    pub fn memory() -> QuotaStore {
        QuotaStore {
            counts: Mutex::new(HashMap::new()),
            durable: None,
        }
    }

    /// Opens the configured store, reading back what the embedded file holds.
    pub fn open(config: &LimitsStore) -> Result<QuotaStore, String> {
        let (Backend::Embedded, Some(path)) = (config.backend, &config.path) else {
            return Ok(Self::memory());
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let file = path.display();
        let db = redb::Database::create(path)
            .map_err(|e| format!("{file}: cannot open the usage store: {e}"))?;
        let mut counts = HashMap::new();
        let read = db.begin_read().map_err(|e| format!("{file}: {e}"))?;
        match read.open_table(USAGE) {
            Ok(table) => {
                for entry in table.iter().map_err(|e| format!("{file}: {e}"))? {
                    let (k, v) = entry.map_err(|e| format!("{file}: {e}"))?;
                    counts.insert(k.value().to_string(), v.value());
                }
            }
            Err(redb::TableError::TableDoesNotExist(_)) => {}
            Err(e) => return Err(format!("{file}: {e}")),
        }
        drop(read);
        Ok(QuotaStore {
            counts: Mutex::new(counts),
            durable: Some(Durable {
                db,
                dirty: Mutex::new(HashSet::new()),
            }),
        })
    }

    /// Checks every item and, if none would exceed its limit, counts them all.
    pub(crate) fn consume(&self, tenant: &str, items: &[Item]) -> Consumed {
        let keys = item_keys(tenant, items);
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (index, (item, key)) in items.iter().zip(&keys).enumerate() {
            let usage = counts.get(key).copied().unwrap_or(0);
            if usage.saturating_add(item.cost) > item.limit {
                return Consumed::Exceeded { index, usage };
            }
        }
        let mut after = Vec::with_capacity(items.len());
        for (item, key) in items.iter().zip(&keys) {
            let count = counts.entry(key.clone()).or_insert(0);
            *count = count.saturating_add(item.cost);
            after.push(*count);
        }
        drop(counts);
        self.changed(keys);
        Consumed::Allowed(after)
    }

    /// Gives back what `consume` counted for `items` (the request never reached the upstream);
    /// a counter never goes below zero.
    pub(crate) fn release(&self, tenant: &str, items: &[Item]) {
        let keys = item_keys(tenant, items);
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        for (item, key) in items.iter().zip(&keys) {
            if let Some(count) = counts.get_mut(key) {
                *count = count.saturating_sub(item.cost);
            }
        }
        drop(counts);
        self.changed(keys);
    }

    /// Marks counters for the next flush (the embedded backend writes only what changed).
    fn changed(&self, keys: Vec<String>) {
        if let Some(durable) = &self.durable {
            let mut dirty = durable
                .dirty
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            dirty.extend(keys);
        }
    }

    /// Every counter of a tenant, optionally of one period.
    pub fn usage(&self, tenant: &str, period: Option<&str>) -> Vec<Usage> {
        let prefix = format!("{tenant}\u{1f}");
        let counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut found: Vec<Usage> = counts
            .iter()
            .filter_map(|(k, v)| {
                let mut parts = k.strip_prefix(&prefix)?.split('\u{1f}');
                let (metric, key_period) = (parts.next()?, parts.next()?);
                period
                    .is_none_or(|p| key_period.starts_with(p))
                    .then(|| Usage {
                        metric: metric.to_string(),
                        period: key_period.to_string(),
                        count: *v,
                    })
            })
            .collect();
        found.sort_by(|a, b| (&a.period, &a.metric).cmp(&(&b.period, &b.metric)));
        found
    }

    /// Takes every counter out (the outage counts to add to Redis), as (tenant, usage).
    pub fn drain(&self) -> Vec<(String, Usage)> {
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        counts
            .drain()
            .filter_map(|(k, count)| {
                let mut parts = k.split('\u{1f}');
                let (tenant, metric, period) = (parts.next()?, parts.next()?, parts.next()?);
                let usage = Usage {
                    metric: metric.to_string(),
                    period: period.to_string(),
                    count,
                };
                Some((tenant.to_string(), usage))
            })
            .collect()
    }

    /// Writes the counters changed since the last flush. On failure they stay pending and the
    /// next flush retries them.
    pub fn flush(&self) -> Result<usize, String> {
        let Some(durable) = &self.durable else {
            return Ok(0);
        };
        let pending: Vec<String> = {
            let mut dirty = durable
                .dirty
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            dirty.drain().collect()
        };
        if pending.is_empty() {
            return Ok(0);
        }
        let values: Vec<(String, u64)> = {
            let counts = self
                .counts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            pending
                .iter()
                .map(|k| (k.clone(), counts.get(k).copied().unwrap_or(0)))
                .collect()
        };
        let write = || -> Result<(), redb::Error> {
            let txn = durable.db.begin_write()?;
            {
                let mut table = txn.open_table(USAGE)?;
                for (k, v) in &values {
                    table.insert(k.as_str(), *v)?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        if let Err(e) = write() {
            let mut dirty = durable
                .dirty
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            dirty.extend(pending);
            return Err(e.to_string());
        }
        Ok(values.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(metric: &str, limit: u64, cost: u64) -> Item {
        Item {
            ends_in: 86_400,
            metric: metric.into(),
            period: "2026-11".into(),
            limit,
            cost,
        }
    }

    #[test]
    fn a_request_is_counted_whole_or_not_at_all() {
        let store = QuotaStore::memory();
        let items = [item("api_calls", 10, 1), item("agent_executions", 2, 1)];
        assert_eq!(store.consume("acme", &items), Consumed::Allowed(vec![1, 1]));
        assert_eq!(store.consume("acme", &items), Consumed::Allowed(vec![2, 2]));
        assert_eq!(
            store.consume("acme", &items),
            Consumed::Exceeded { index: 1, usage: 2 }
        );
        // The refused request added nothing to api_calls either.
        let usage = store.usage("acme", None);
        assert_eq!(
            usage.iter().map(|u| u.count).collect::<Vec<_>>(),
            vec![2, 2]
        );
        assert!(store.usage("globex", None).is_empty());
    }

    #[test]
    fn the_embedded_store_keeps_flushed_counts_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let config = LimitsStore {
            backend: Backend::Embedded,
            path: Some(dir.path().join("usage.redb")),
            flush_interval: std::time::Duration::from_secs(1),
            legacy_headers: false,
            redis: None,
        };
        let store = QuotaStore::open(&config).unwrap();
        for _ in 0..3 {
            store.consume("acme", &[item("api_calls", 100, 2)]);
        }
        assert_eq!(store.flush().unwrap(), 1);
        assert_eq!(store.flush().unwrap(), 0, "nothing pending");
        drop(store);
        let reopened = QuotaStore::open(&config).unwrap();
        assert_eq!(
            reopened
                .usage("acme", Some("2026"))
                .first()
                .map(|u| u.count),
            Some(6)
        );
    }
}

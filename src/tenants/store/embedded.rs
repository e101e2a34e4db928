//! The embedded tenant store: one redb file, written in a durable transaction per change.

use std::path::Path;
use std::sync::Arc;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};

use super::write::{Expect, Image, Outcome, Record, Write};

const TENANTS: TableDefinition<&str, &str> = TableDefinition::new("tenants");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Custom domain → the tenant of the store owning it.
const DOMAINS: TableDefinition<&str, &str> = TableDefinition::new("domains");
const REVISION: &str = "revision";

pub struct Embedded {
    db: Arc<redb::Database>,
}

impl Embedded {
    pub fn open(path: &Path) -> Result<Embedded, String> {
        let file = path.display();
        let db = redb::Database::create(path).map_err(|e| format!("{file}: {e}"))?;
        let txn = db.begin_write().map_err(|e| format!("{file}: {e}"))?;
        txn.open_table(TENANTS)
            .and_then(|_| txn.open_table(META))
            .and_then(|_| txn.open_table(DOMAINS))
            .map_err(|e| format!("{file}: {e}"))?;
        txn.commit().map_err(|e| format!("{file}: {e}"))?;
        Ok(Embedded { db: Arc::new(db) })
    }

    pub async fn image(&self) -> Result<Image, String> {
        let db = self.db.clone();
        blocking(move || read_image(&db)).await
    }

    pub async fn write(&self, id: &str, write: Write, expect: Expect) -> Result<Outcome, String> {
        let db = self.db.clone();
        let id = id.to_string();
        blocking(move || write_one(&db, &id, write, expect)).await
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, String> + Send + 'static,
) -> Result<T, String> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| format!("the tenant store: {e}"))?
}

fn read_image(db: &redb::Database) -> Result<Image, String> {
    let err = |e: &dyn std::fmt::Display| format!("the tenant store: {e}");
    let read = db.begin_read().map_err(|e| err(&e))?;
    let meta = read.open_table(META).map_err(|e| err(&e))?;
    let revision = meta
        .get(REVISION)
        .map_err(|e| err(&e))?
        .map_or(0, |v| v.value());
    let table = read.open_table(TENANTS).map_err(|e| err(&e))?;
    let mut tenants = Vec::new();
    for entry in table.iter().map_err(|e| err(&e))? {
        let (key, value) = entry.map_err(|e| err(&e))?;
        let record: Record = serde_json::from_str(value.value())
            .map_err(|e| format!("the tenant store: tenant {}: {e}", key.value()))?;
        tenants.push((record.spec, record.revision));
    }
    Ok(Image { revision, tenants })
}

fn write_one(
    db: &redb::Database,
    id: &str,
    write: Write,
    expect: Expect,
) -> Result<Outcome, String> {
    let err = |e: &dyn std::fmt::Display| format!("the tenant store: {e}");
    let txn = db.begin_write().map_err(|e| err(&e))?;
    let outcome = {
        let mut table = txn.open_table(TENANTS).map_err(|e| err(&e))?;
        let current: Option<Record> = match table.get(id).map_err(|e| err(&e))? {
            Some(v) => Some(serde_json::from_str(v.value()).map_err(|e| err(&e))?),
            None => None,
        };
        let at = current.as_ref().map_or(0, |r| r.revision);
        let conflict = match expect {
            Expect::Any => false,
            Expect::Absent => current.is_some(),
            Expect::At(revision) => at != revision,
        };
        if conflict {
            return Ok(Outcome::Conflict(at));
        }
        if matches!(write, Write::Delete) && current.is_none() {
            return Ok(Outcome::Missing);
        }
        let mut owners = txn.open_table(DOMAINS).map_err(|e| err(&e))?;
        if let Write::Put(_, domains) = &write {
            for domain in domains {
                if let Some(owner) = owners.get(domain.as_str()).map_err(|e| err(&e))?
                    && owner.value() != id
                {
                    return Ok(Outcome::DomainTaken(
                        domain.clone(),
                        owner.value().to_string(),
                    ));
                }
            }
        }
        for old in current.iter().flat_map(|r| r.domains.iter()) {
            owners.remove(old.as_str()).map_err(|e| err(&e))?;
        }
        if let Write::Put(_, domains) = &write {
            for domain in domains {
                owners.insert(domain.as_str(), id).map_err(|e| err(&e))?;
            }
        }
        let mut meta = txn.open_table(META).map_err(|e| err(&e))?;
        let revision = meta
            .get(REVISION)
            .map_err(|e| err(&e))?
            .map_or(0, |v| v.value())
            + 1;
        meta.insert(REVISION, revision).map_err(|e| err(&e))?;
        match write {
            Write::Put(spec, domains) => {
                let record = Record {
                    revision,
                    domains,
                    spec: *spec,
                };
                let text = serde_json::to_string(&record).map_err(|e| err(&e))?;
                table.insert(id, text.as_str()).map_err(|e| err(&e))?;
            }
            Write::Delete => {
                table.remove(id).map_err(|e| err(&e))?;
            }
        }
        Outcome::Written(revision)
    };
    txn.commit().map_err(|e| err(&e))?;
    Ok(outcome)
}

//! `tollgate audit`: the audit file filtered, for people who want an answer now rather than a log
//! pipeline. A completion record is kept when its decision record is. A line that is not a
//! record (torn by a crash, not UTF-8, not JSON) is reported with its line number and skipped:
//! the rest of the file is still the answer.

use std::collections::HashSet;
use std::path::Path;
use std::time::{Duration, SystemTime};

use serde_json::Value;

pub struct Filter<'a> {
    pub tenant: Option<&'a str>,
    /// `allow` or `deny`.
    pub decision: Option<&'a str>,
    pub since: Option<Duration>,
}

/// What a query found.
pub struct Found {
    /// The matching lines, as written.
    pub lines: Vec<String>,
    /// One message per line that is not a record, with its `file:line`.
    pub skipped: Vec<String>,
}

/// The matching lines of an audit file.
pub fn filter(path: &Path, filter: &Filter<'_>) -> Result<Found, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let oldest = filter.since.map(|since| SystemTime::now() - since);
    let mut kept_ids: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    let mut skipped = Vec::new();
    for (n, line) in bytes.split(|b| *b == b'\n').enumerate() {
        let at = format!("{}:{}", path.display(), n + 1);
        let Ok(line) = std::str::from_utf8(line) else {
            skipped.push(format!("{at}: not UTF-8; skipped"));
            continue;
        };
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = match serde_json::from_str(line) {
            Ok(record) => record,
            Err(e) => {
                skipped.push(format!("{at}: not a JSON record ({e}); skipped"));
                continue;
            }
        };
        let field = |name: &str| record.get(name).and_then(Value::as_str);
        let id = field("request_id").unwrap_or_default().to_string();
        let recent = match (oldest, field("time").map(humantime::parse_rfc3339_weak)) {
            (Some(oldest), Some(Ok(time))) => time >= oldest,
            (Some(_), _) => false,
            (None, _) => true,
        };
        let keep = if field("type") == Some("completion") {
            kept_ids.contains(&id)
        } else {
            recent
                && filter.tenant.is_none_or(|t| field("tenant") == Some(t))
                && filter.decision.is_none_or(|d| field("decision") == Some(d))
        };
        if keep {
            kept_ids.insert(id);
            out.push(line.to_string());
        }
    }
    Ok(Found {
        lines: out,
        skipped,
    })
}

//! `tollgate audit`: the audit file filtered, for people who want an answer now rather than a log
//! pipeline. A completion record is kept when its decision record is.

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

/// The matching lines of an audit file, as written.
pub fn filter(path: &Path, filter: &Filter<'_>) -> Result<Vec<String>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let oldest = filter.since.map(|since| SystemTime::now() - since);
    let mut kept_ids: HashSet<String> = HashSet::new();
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let record: Value = serde_json::from_str(line)
            .map_err(|e| format!("{}:{}: not a JSON record: {e}", path.display(), n + 1))?;
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
    Ok(out)
}

//! `tollgate replay`: decides every decision record of audit files again, against a candidate
//! configuration, and tells which decisions would change: allow → deny, deny → allow, or another
//! deciding policy, grouped by tenant, route and policies, with counts and example request ids.
//!
//! A record is decided again from its `inputs` (the principal as its credentials described it,
//! the request as judged) and its time, with the candidate's tenants, plans, routes and
//! policies, through the same [`pipeline::decide`] the proxy runs, without counting anything.
//! Records refused before or after authorization (tenant standing, credentials, rate limits,
//! quotas) are not policy decisions and are counted apart. Files are read line by line
//! (rotated and `.gz` ones too), so memory does not grow with their size.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::SystemTime;

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Ask, Kind, PrincipalSpec, decided};
use crate::identity::jwks::JwksCache;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// Which records to decide again.
pub struct Selection<'a> {
    pub tenant: Option<&'a str>,
    /// Only records at or after this time.
    pub since: Option<SystemTime>,
}

/// One kind of change: where, from what to what.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Flip {
    tenant: String,
    route: String,
    from: String,
    to: String,
    before: Vec<String>,
    after: Vec<String>,
}

#[derive(Default)]
pub struct Replay {
    pub replayed: u64,
    /// Records decided outside authorization, or without inputs.
    pub skipped: u64,
    changes: BTreeMap<Flip, (u64, Vec<String>)>,
}

impl Replay {
    /// Whether some decision would change.
    pub fn changed(&self) -> bool {
        !self.changes.is_empty()
    }

    /// The text `tollgate replay` prints, or its JSON.
    pub fn render(&self, json: bool) -> String {
        if json {
            format!("{}\n", self.json())
        } else {
            self.text()
        }
    }

    pub fn text(&self) -> String {
        let changed: u64 = self.changes.values().map(|(n, _)| n).sum();
        let mut out = format!(
            "replayed {} decisions ({} records not decided by policy skipped): {changed} would change\n",
            self.replayed, self.skipped
        );
        let list = |p: &[String]| {
            if p.is_empty() {
                "none".to_string()
            } else {
                p.join(", ")
            }
        };
        for (flip, (count, examples)) in &self.changes {
            out.push_str(&format!(
                "{} {} {} -> {}: {count} (policies {} -> {}) e.g. {}\n",
                flip.tenant,
                flip.route,
                flip.from,
                flip.to,
                list(&flip.before),
                list(&flip.after),
                examples.join(" ")
            ));
        }
        out
    }

    pub fn json(&self) -> Value {
        let changes: Vec<Value> = self
            .changes
            .iter()
            .map(|(flip, (count, examples))| {
                json!({
                    "tenant": flip.tenant, "route": flip.route, "from": flip.from, "to": flip.to,
                    "policies_before": flip.before, "policies_after": flip.after,
                    "count": count, "examples": examples,
                })
            })
            .collect();
        json!({ "replayed": self.replayed, "skipped": self.skipped, "changes": changes })
    }
}

/// The lines of a file, decompressed when it ends in `.gz`.
fn lines(path: &PathBuf) -> Result<Box<dyn BufRead>, String> {
    let file = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let reader: Box<dyn Read> = if path.extension().is_some_and(|e| e == "gz") {
        Box::new(flate2::read::MultiGzDecoder::new(file))
    } else {
        Box::new(file)
    };
    Ok(Box::new(BufReader::with_capacity(256 * 1024, reader)))
}

/// `tollgate replay`: the candidate configuration at `config`, the audit files `names`
/// (files, directories or patterns), records of `tenant` only and no older than `since`.
pub fn run(
    names: &[PathBuf],
    config: &std::path::Path,
    tenant: Option<&str>,
    since: Option<std::time::Duration>,
) -> Result<Replay, String> {
    let candidate = crate::commands::load(config)?;
    let files = crate::audit::query::files(names)?;
    let selection = Selection {
        tenant,
        since: since.map(|d| SystemTime::now() - d),
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(replay(&candidate, &files, &selection))
}

/// What replay reads of a record: the fields it needs, nothing else built.
#[derive(Deserialize)]
struct Recorded {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    time: String,
    #[serde(default)]
    request_id: String,
    tenant: Option<String>,
    route: Option<String>,
    stage: Option<String>,
    decision: Option<String>,
    #[serde(default)]
    policies: Vec<String>,
    inputs: Option<Inputs>,
}

#[derive(Deserialize)]
struct Inputs {
    v: u32,
    principal: Option<RecordedPrincipal>,
    tenant: RecordedTenant,
    request: RecordedRequest,
}

#[derive(Deserialize)]
struct RecordedPrincipal {
    id: String,
    auth: String,
    tenant: Option<String>,
    #[serde(default)]
    roles: Vec<String>,
    #[serde(default)]
    scopes: Vec<String>,
    #[serde(default)]
    mfa: bool,
}

#[derive(Deserialize)]
struct RecordedTenant {
    id: String,
}

#[derive(Deserialize)]
struct RecordedRequest {
    method: String,
    path: String,
    client_ip: Option<String>,
}

/// Decides every selected record of `files` again against `candidate`.
pub async fn replay(
    candidate: &Snapshot,
    files: &[PathBuf],
    selection: &Selection<'_>,
) -> Result<Replay, String> {
    let metrics = Metrics::new().map_err(|e| e.to_string())?;
    let jwks = JwksCache::new();
    let mut replay = Replay::default();
    for path in files {
        for (n, line) in lines(path)?.lines().enumerate() {
            let line = line.map_err(|e| format!("{}:{}: {e}", path.display(), n + 1))?;
            // Completion records and checkpoints hold no decision: not even parsed.
            if !line.contains("\"decision\"") && !line.contains("\"request\"") {
                continue;
            }
            let Ok(record) = serde_json::from_str::<Recorded>(&line) else {
                continue;
            };
            if !matches!(record.kind.as_str(), "decision" | "request")
                || !selected(&record, selection)
            {
                continue;
            }
            match again(candidate, &metrics, &jwks, &record).await? {
                Some((allowed, policies)) => {
                    replay.replayed += 1;
                    note(&mut replay, record, allowed, policies);
                }
                None => replay.skipped += 1,
            }
        }
    }
    Ok(replay)
}

fn selected(record: &Recorded, selection: &Selection<'_>) -> bool {
    if selection
        .tenant
        .is_some_and(|t| record.tenant.as_deref() != Some(t))
    {
        return false;
    }
    let time = humantime::parse_rfc3339_weak(&record.time).ok();
    selection
        .since
        .is_none_or(|since| time.is_some_and(|t| t >= since))
}

/// A record's decision made again: allowed, and the deciding policies; `None` when the record
/// was not a policy decision.
async fn again(
    candidate: &Snapshot,
    metrics: &Metrics,
    jwks: &JwksCache,
    record: &Recorded,
) -> Result<Option<(bool, Vec<String>)>, String> {
    let by_policy = matches!(record.stage.as_deref(), Some("authorize" | "forward"));
    let Some(inputs) = record.inputs.as_ref().filter(|i| i.v == 1) else {
        return Ok(None);
    };
    if !by_policy || record.route.is_none() {
        return Ok(None);
    }
    let Some(tenant) = candidate
        .tenants
        .as_ref()
        .and_then(|d| d.get(&inputs.tenant.id))
        .cloned()
    else {
        // The candidate has no such tenant: nothing of it would be allowed.
        return Ok(Some((false, Vec::new())));
    };
    let spec = match &inputs.principal {
        Some(p) => PrincipalSpec {
            id: p.id.clone(),
            kind: match p.auth.as_str() {
                "jwt" => Kind::User,
                "api_key" => Kind::ApiKey,
                _ => Kind::Anonymous,
            },
            roles: p.roles.clone(),
            scopes: p.scopes.clone(),
            mfa: p.mfa,
            tenant: p.tenant.clone(),
        },
        None => PrincipalSpec {
            id: "anonymous".into(),
            kind: Kind::Anonymous,
            ..PrincipalSpec::default()
        },
    };
    let request = &inputs.request;
    let client_ip = request
        .client_ip
        .as_deref()
        .and_then(|ip| ip.parse::<IpAddr>().ok())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let ask = Ask {
        tenant: &tenant.id,
        principal: Some(&spec),
        method: &request.method,
        path: &request.path,
        headers: &[],
        client_ip,
    };
    let (ctx, _, refused) = decided(candidate, &ask, tenant.clone(), jwks, metrics).await?;
    let policies = ctx.decision.map(|d| d.policies.clone()).unwrap_or_default();
    Ok(Some((refused.is_none(), policies)))
}

/// Counts a decision that would change.
fn note(replay: &mut Replay, record: Recorded, allowed: bool, mut after: Vec<String>) {
    let from = record.decision.unwrap_or_else(|| "deny".into());
    let to = if allowed { "allow" } else { "deny" }.to_string();
    let mut before = record.policies;
    before.sort();
    after.sort();
    if from == to && before == after {
        return;
    }
    let flip = Flip {
        tenant: record.tenant.unwrap_or_default(),
        route: record.route.unwrap_or_default(),
        from,
        to,
        before,
        after,
    };
    let (count, examples) = replay.changes.entry(flip).or_default();
    *count += 1;
    if examples.len() < 3 {
        examples.push(record.request_id);
    }
}

//! Usage reports: each quota of a tenant's plan with its use in the current (or a given) period.
//! Served by the admin listener at `/usage` and `/usage/{tenant}`, printed by `tollgate usage`.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::limits::period;
use crate::limits::store::Usage;
use crate::tenants::Tenant;

/// One tenant's report from its counters. `period` selects counters whose period starts with it
/// (`2026-11`); without it, the current period of each quota.
pub fn tenant(counters: &[Usage], tenant: &Tenant, period: Option<&str>) -> Value {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let quotas: Vec<Value> = tenant
        .quotas
        .iter()
        .map(|(metric, quota)| {
            let (current, resets) = period::current(quota.period, tenant.billing_day, now);
            let wanted = period.map_or(current.as_str(), |p| p);
            let used: u64 = counters
                .iter()
                .filter(|c| c.metric == *metric && c.period.starts_with(wanted))
                .map(|c| c.count)
                .sum();
            let mut entry = json!({
                "metric": metric,
                "period": if period.is_some() { wanted.to_string() } else { current },
                "used": used,
                "limit": quota.limit,
            });
            if period.is_none() {
                entry["resets_at"] = humantime::format_rfc3339_seconds(
                    UNIX_EPOCH + std::time::Duration::from_secs(resets),
                )
                .to_string()
                .into();
            }
            entry
        })
        .collect();
    json!({ "tenant": tenant.id, "plan": tenant.plan.id, "quotas": quotas })
}

/// Reports as an aligned table.
pub fn table(reports: &[Value]) -> String {
    let mut rows = vec![
        [
            "TENANT", "PLAN", "METRIC", "PERIOD", "USED", "LIMIT", "USE%",
        ]
        .map(String::from),
    ];
    for report in reports {
        for quota in report["quotas"].as_array().into_iter().flatten() {
            let used = quota["used"].as_u64().unwrap_or(0);
            let limit = quota["limit"].as_u64().unwrap_or(0);
            let percent = if limit == 0 {
                0.0
            } else {
                used as f64 * 100.0 / limit as f64
            };
            rows.push([
                report["tenant"].as_str().unwrap_or_default().to_string(),
                report["plan"].as_str().unwrap_or_default().to_string(),
                quota["metric"].as_str().unwrap_or_default().to_string(),
                quota["period"].as_str().unwrap_or_default().to_string(),
                used.to_string(),
                limit.to_string(),
                format!("{percent:.1}"),
            ]);
        }
    }
    let widths: Vec<usize> = (0..7)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    rows.iter()
        .map(|row| {
            let cells: Vec<String> = row
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:<w$}"))
                .collect();
            format!("{}\n", cells.join("  ").trim_end())
        })
        .collect()
}

//! Live tenants: the time to apply one tenant change (what a replica does per change from the
//! admin API or the Redis channel), and one change of a tenant's own policy file, with 100,
//! 10,000 and 100,000 tenants, beside a whole reload;
//! and the resident set with 100,000 tenants, from the tenants file and from the store.
//! `cargo bench --bench tenants`.

#[allow(
    dead_code,
    reason = "the helpers serve benches/stages.rs and benches/reload.rs"
)]
mod support;

use std::time::Instant;

use tollgate::config::Config;
use tollgate::tenants::{Spec, Status};

use support::Deployment;

const CHANGES: usize = 1_000;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn spec(id: &str, status: Status) -> Spec {
    serde_json::from_value(serde_json::json!({
        "id": id, "plan": "bench", "status": status, "domains": [format!("{id}.example.net")]
    }))
    .unwrap()
}

/// A tenant's policy file of ten policies, the `n`-th version.
fn policy_file(n: usize) -> String {
    (0..10)
        .map(|p| {
            format!(
                "@id(\"live-{p}\")\npermit (principal in Role::\"live-{n}-{p}\", action == Action::\"read\", resource is Agent)\nwhen {{ context.hour >= 0 }};\n"
            )
        })
        .collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    // The resident set is measured in a process of its own for each case.
    if std::env::args().any(|a| a == "rss-file") {
        let d = Deployment::build(
            100_000,
            10,
            tollgate::config::DECISION_CACHE,
            "limits: { backend: memory }",
        );
        assert_eq!(d.snapshot.tenants.as_ref().unwrap().len(), 100_000);
        println!(
            "tenants: RSS with 100,000 file tenants: {:.0} MiB",
            rss_mib()
        );
        return;
    }
    if std::env::args().any(|a| a == "rss-store") {
        store_tenants();
        return;
    }
    for tenants in [100, 10_000, 100_000] {
        let d = Deployment::build(
            tenants,
            10,
            tollgate::config::DECISION_CACHE,
            "limits: { backend: memory }",
        );
        let mut snapshot = d
            .snapshot
            .apply(1, "live", Some(spec("live", Status::Active)))
            .0;
        let mut times = Vec::with_capacity(CHANGES);
        for i in 0..CHANGES {
            let status = if i % 2 == 0 {
                Status::Suspended
            } else {
                Status::Active
            };
            let started = Instant::now();
            let (next, refused) = snapshot.apply(i as u64 + 2, "live", Some(spec("live", status)));
            times.push(started.elapsed().as_secs_f64() * 1e6);
            assert!(refused.is_empty(), "{refused:?}");
            snapshot = next;
        }
        times.sort_by(f64::total_cmp);
        // A change of the tenant's own policy file (10 policies), validated and compiled into
        // its set with the global policies.
        let mut policy_times = Vec::with_capacity(CHANGES);
        for i in 0..CHANGES {
            let mut changed = spec("live", Status::Active);
            changed.policies.insert("own".into(), policy_file(i));
            let started = Instant::now();
            let (next, refused) = snapshot.apply((CHANGES + i) as u64 + 2, "live", Some(changed));
            policy_times.push(started.elapsed().as_secs_f64() * 1e6);
            assert!(refused.is_empty(), "{refused:?}");
            snapshot = next;
        }
        policy_times.sort_by(f64::total_cmp);
        let started = Instant::now();
        let reloaded = snapshot
            .reload(Config::load(&d.config_file).unwrap())
            .unwrap();
        let reload_ms = started.elapsed().as_secs_f64() * 1e3;
        assert_eq!(reloaded.tenants.as_ref().unwrap().len(), tenants + 1);
        println!(
            "tenants: {tenants:>7} tenants: one change applied in {:.0} µs median, {:.0} µs p99 ({CHANGES} changes); a whole reload {reload_ms:.0} ms",
            percentile(&times, 0.5),
            percentile(&times, 0.99),
        );
        println!(
            "tenants: {tenants:>7} tenants: one policy file change applied in {:.0} µs median, {:.0} µs p99",
            percentile(&policy_times, 0.5),
            percentile(&policy_times, 0.99),
        );
    }
    println!("tenants: RSS: `cargo bench --bench tenants -- rss-file` and `-- rss-store`");
}

/// 100,000 tenants of the store (the API's), on a deployment of 100 file tenants.
fn store_tenants() {
    let d = Deployment::build(
        100,
        10,
        tollgate::config::DECISION_CACHE,
        "limits: { backend: memory }",
    );
    let before = rss_mib();
    let mut snapshot = d.snapshot.apply(0, "none", None).0;
    let started = Instant::now();
    for i in 0..100_000u64 {
        let id = format!("s{i:06}");
        snapshot = snapshot
            .apply(i + 1, &id, Some(spec(&id, Status::Active)))
            .0;
    }
    println!(
        "tenants: 100,000 store tenants applied one by one in {:.1} s; RSS {:.0} MiB ({:.0} MiB before)",
        started.elapsed().as_secs_f64(),
        rss_mib(),
        before,
    );
}

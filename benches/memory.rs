//! Memory at scale: 10,000 tenants loaded (directory, Cedar entities, policies) and 1,000,000
//! distinct principals rate limited and counted, then the process's resident set size.
//! `cargo bench --bench memory`; the goal is under 256 MB.

#[allow(dead_code, reason = "the token helpers serve benches/stages.rs")]
mod support;

use std::time::Instant;

use tollgate::limits::Limits;
use tollgate::limits::store::Item;
use tollgate::metrics::Metrics;

use support::Deployment;

const TENANTS: usize = 10_000;
const PRINCIPALS: usize = 1_000_000;

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

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too, so it only measures
    // when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let start = rss_mib();
    let d = Deployment::build(TENANTS, 10, 100_000, "limits: { backend: memory }");
    let loaded = rss_mib();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = Limits::open(&d.snapshot.config.limits).unwrap();
    let metrics = Metrics::new().unwrap();
    let item = Item {
        metric: "api_calls".into(),
        period: "2026-11".into(),
        limit: 1_000_000_000_000,
        cost: 1,
    };
    let items = [item];
    let started = Instant::now();
    runtime.block_on(async {
        for i in 0..PRINCIPALS {
            let tenant = d.tenant(i % TENANTS);
            let principal = format!("user-{i}");
            let outcome = limits
                .check(&metrics, tenant, &principal, None, &items, &[86_400])
                .await
                .unwrap();
            assert!(outcome.consumed.is_some());
        }
    });
    let limited = rss_mib();
    println!("memory: baseline {start:.0} MiB");
    println!("memory: 10,000 tenants loaded {loaded:.0} MiB");
    println!(
        "memory: 1,000,000 distinct principals rate limited and counted {limited:.0} MiB ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

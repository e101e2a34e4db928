//! Memory at scale: 10,000 tenants loaded (directory, Cedar entities, policies), then 1,000,000
//! distinct callers, each with a verified token (the token cache at its default budget) and a
//! decision (the decision cache at its default budget), then 1,000,000 distinct principals rate
//! limited and counted; the process's resident set size after each. `cargo bench --bench
//! memory`; the goal is under 256 MB, the shipped sidecar's limit. `cargo bench --bench memory
//! -- calibrate` keeps every token instead, to compare what an entry really costs with what the
//! cache's weigher says.

#[allow(
    dead_code,
    reason = "the helpers serve benches/stages.rs and benches/reload.rs"
)]
mod support;

use std::net::IpAddr;
use std::time::{Instant, SystemTime};

use http::HeaderMap;
use tollgate::authz::decide::Inputs;
use tollgate::identity::Identity;
use tollgate::identity::jwks::JwksCache;
use tollgate::limits::Limits;
use tollgate::limits::store::Item;
use tollgate::metrics::Metrics;

use support::Deployment;

const TENANTS: usize = 10_000;
const CALLERS: usize = 1_000_000;
/// Threads minting and verifying tokens (ES256 verification is the slow part).
const THREADS: usize = 2;

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

/// Authenticates `CALLERS` distinct tokens through `identity`, and makes a decision for each.
fn authenticate_all(d: &Deployment, identity: &Identity) {
    let config = &d.snapshot.config.identity;
    let authz = d.snapshot.authz.as_ref().unwrap();
    let tenant = d.tenant(0);
    std::thread::scope(|scope| {
        for thread in 0..THREADS {
            scope.spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                let jwks = JwksCache::new();
                let mut headers = HeaderMap::new();
                for i in (thread..CALLERS).step_by(THREADS) {
                    let bearer = format!("Bearer {}", d.token(&format!("user-{i}")));
                    headers.insert(http::header::AUTHORIZATION, bearer.parse().unwrap());
                    let principal = runtime
                        .block_on(identity.authenticate(config, &headers, &jwks, false, None))
                        .unwrap();
                    authz.decide(&Inputs {
                        tenant,
                        principal: &principal,
                        action: "read",
                        resource_type: "Agent",
                        resource_id: "7",
                        client_ip: IpAddr::from([10, 1, 2, 3]),
                        method: "GET",
                        path: "/api/v1/agents/7",
                        now: SystemTime::now(),
                    });
                }
            });
        }
    });
}

fn tokens(d: &Deployment, budget: u64, what: &str) {
    let mut config = d.snapshot.config.identity.clone();
    config.token_cache = budget;
    let identity = Identity::load(&config, |_| true).unwrap();
    let before = rss_mib();
    let started = Instant::now();
    authenticate_all(d, &identity);
    let (entries, weight) = identity.token_cache_size();
    let after = rss_mib();
    println!(
        "memory: {CALLERS} distinct tokens, {what}: {after:.0} MiB (+{:.0} MiB for {entries} entries weighing {:.0} MiB, {:.0} bytes each measured, {:.0} weighed; {:.0} s)",
        after - before,
        weight as f64 / 1048576.0,
        (after - before) * 1048576.0 / entries.max(1) as f64,
        weight as f64 / entries.max(1) as f64,
        started.elapsed().as_secs_f64()
    );
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs this too, so it only measures
    // when asked to.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let calibrate = std::env::args().any(|a| a == "calibrate");
    let start = rss_mib();
    // Calibrating, decisions are not cached: the growth is the token cache's alone.
    let decision_cache = if calibrate {
        0
    } else {
        tollgate::config::DECISION_CACHE
    };
    let d = Deployment::build(TENANTS, 10, decision_cache, "limits: { backend: memory }");
    let loaded = rss_mib();
    println!("memory: baseline {start:.0} MiB");
    println!("memory: 10,000 tenants loaded {loaded:.0} MiB");
    if calibrate {
        // Every token kept: what an entry really costs against what the weigher says.
        tokens(&d, u64::MAX >> 1, "every one cached");
        return;
    }
    tokens(
        &d,
        tollgate::config::TOKEN_CACHE,
        "the default token and decision cache budgets",
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let limits = Limits::open(&d.snapshot.config.limits).unwrap();
    let metrics = Metrics::new().unwrap();
    let item = Item {
        ends_in: 86_400,
        metric: "api_calls".into(),
        period: "2026-11".into(),
        limit: 1_000_000_000_000,
        cost: 1,
    };
    let items = [item];
    let started = Instant::now();
    runtime.block_on(async {
        for i in 0..CALLERS {
            let tenant = d.tenant(i % TENANTS);
            let principal = format!("user-{i}");
            let outcome = limits
                .check(&metrics, tenant, &principal, None, &items)
                .await
                .unwrap();
            assert!(outcome.consumed.is_some());
        }
    });
    let limited = rss_mib();
    println!(
        "memory: and 1,000,000 distinct principals rate limited and counted {limited:.0} MiB ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

//! Reload cost with 10,000 tenants and 1,000 tenant policy sets: a first load, a reload with
//! nothing changed, and a reload after one tenant's policies changed.
//! `cargo bench --bench reload`.

#[allow(dead_code, reason = "the token helpers serve benches/stages.rs")]
mod support;

use std::time::Instant;

use tollgate::authz::Authz;
use tollgate::config::Config;
use tollgate::snapshot::Snapshot;
use tollgate::tenants::{Directory, IssuerRules};

use support::Deployment;

const TENANTS: usize = 10_000;
const POLICY_SETS: usize = 1_000;

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let value = f();
    println!(
        "reload: {what}: {:.0} ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
    value
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let d = Deployment::build_with(
        TENANTS,
        10,
        POLICY_SETS,
        tollgate::config::DECISION_CACHE,
        "limits: { backend: memory }",
    );
    let config = || Config::load(&d.config_file).unwrap();
    let first = timed("first load", || Snapshot::load(config(), 1).unwrap());
    let again = timed("reload, nothing changed", || {
        first.reload(config()).unwrap()
    });
    d.change_tenant_policy(500, 1);
    let changed = timed("reload, one tenant's policies changed", || {
        again.reload(config()).unwrap()
    });
    // Where a reload's time goes.
    let c = config();
    let directory = timed("  of which the tenant directory", || {
        Directory::load(c.tenancy.as_ref().unwrap(), IssuerRules::of(&c.identity)).unwrap()
    });
    let authorization = c.authorization.as_ref().unwrap();
    timed("  of which routes, policies and tenant entities", || {
        Authz::load(authorization, &directory, changed.authz.as_ref()).unwrap()
    });
    timed(
        "  a first load's routes, policies and tenant entities",
        || Authz::load(authorization, &directory, None).unwrap(),
    );
}

//! Reloading tenants, plans and keys: a bad file never replaces a good state.

use std::time::Duration;

use crate::support::fixture::{self, Keys, TENANTS};
use crate::support::{Tollgate, Upstream, eventually, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_tenants_file_is_refused_and_the_old_tenants_keep_serving() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(
        upstream.addr,
        fixture::options(&keys, true, "[subdomain]", ""),
    );
    let tenants = tollgate.path("tenants.yaml");
    let acme = [("host", "acme.app.test")];
    assert_eq!(get(tollgate.addr, "/x", &acme).await.status, 200);

    // A tenant on a plan that does not exist: the whole file is refused.
    let broken = format!("{TENANTS}  - {{ id: wayne, plan: platinum, status: active }}\n");
    std::fs::write(&tenants, &broken).unwrap();
    eventually("the failed reload is counted", async || {
        tollgate.metric("tollgate_config_reloads_total{result=\"error\"}") >= 1.0
    })
    .await;
    let log = tollgate.log();
    let line = broken.lines().position(|l| l.contains("wayne")).unwrap() + 1;
    assert!(
        log.contains("tenants.yaml")
            && log.contains("unknown plan")
            && log.contains(&format!("(line {line})")),
        "{log}"
    );
    assert_eq!(
        get(tollgate.addr, "/x", &acme).await.status,
        200,
        "old tenants keep serving"
    );
    get(tollgate.addr, "/x", &[("host", "wayne.app.test")])
        .await
        .assert_problem(404, "unknown-tenant");

    // Not even YAML.
    std::fs::write(&tenants, "tenants: [ {").unwrap();
    eventually("the second failed reload is counted", async || {
        tollgate.metric("tollgate_config_reloads_total{result=\"error\"}") >= 2.0
    })
    .await;
    assert_eq!(get(tollgate.addr, "/x", &acme).await.status, 200);

    // Fixed: the new tenant is served, and acme still is.
    std::fs::write(
        &tenants,
        format!("{TENANTS}  - {{ id: wayne, plan: basic, status: active }}\n"),
    )
    .unwrap();
    let addr = tollgate.addr;
    eventually("the new tenant is served", async || {
        get(addr, "/x", &[("host", "wayne.app.test")]).await.status == 200
    })
    .await;
    assert_eq!(get(tollgate.addr, "/x", &acme).await.status, 200);
    assert!(tollgate.metric("tollgate_config_reloads_total{result=\"ok\"}") >= 1.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = fixture::options(&keys, true, "[subdomain]", "");
    options.extra = options
        .extra
        .replace("reload_interval: 100ms", "reload_interval: 1h");
    let tollgate = Tollgate::start(upstream.addr, options);
    // The interval timer fires once at start; let that pass before changing the file.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let suspended = TENANTS.replace(
        "{ id: acme, domains: [acme.example.org], plan: professional, status: active",
        "{ id: acme, domains: [acme.example.org], plan: professional, status: suspended",
    );
    std::fs::write(tollgate.path("tenants.yaml"), suspended).unwrap();
    assert_eq!(
        get(tollgate.addr, "/x", &[("host", "acme.app.test")])
            .await
            .status,
        200,
        "no reload without a signal"
    );
    tollgate.signal(libc::SIGHUP);
    let addr = tollgate.addr;
    eventually("SIGHUP applied the change", async || {
        get(addr, "/x", &[("host", "acme.app.test")]).await.status == 403
    })
    .await;
}

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
        fixture::options(&keys, true, &["subdomain"], &[]),
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
        log.contains(&format!("tenants.yaml:{line}: ")) && log.contains("unknown plan"),
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

/// Options whose reload tick comes once an hour: what happens sooner is inotify's or SIGHUP's.
fn hourly(keys: &Keys) -> crate::support::Options {
    fixture::options(keys, true, &["subdomain"], &[]).with("tenancy.reload_interval", "1h")
}

/// The tenants file with acme suspended.
fn acme_suspended() -> String {
    TENANTS.replace(
        "{ id: acme, domains: [acme.example.org], plan: professional, status: active",
        "{ id: acme, domains: [acme.example.org], plan: professional, status: suspended",
    )
}

/// SIGHUP reloads even what no watch can see: here the tenants file is a symlink into a
/// directory nobody watches, and its target is edited in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reloads_at_once() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, hourly(&keys));
    let tenants = tollgate.path("tenants.yaml");
    let target = tollgate.dir.path().join("elsewhere/tenants.yaml");
    std::fs::create_dir(target.parent().unwrap()).unwrap();
    std::fs::rename(&tenants, &target).unwrap();
    std::os::unix::fs::symlink(&target, &tenants).unwrap();
    // Whatever the swap itself caused is over once a signalled reload has happened.
    tollgate.signal(libc::SIGHUP);
    eventually("the signalled reload", async || {
        tollgate.metric("tollgate_config_reloads_total{result=\"ok\"}") >= 1.0
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reloads = tollgate.metric("tollgate_config_reloads_total{result=\"ok\"}");

    std::fs::write(&target, acme_suspended()).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let acme = [("host", "acme.app.test")];
    assert_eq!(
        get(tollgate.addr, "/x", &acme).await.status,
        200,
        "no reload without a signal"
    );
    assert_eq!(
        tollgate.metric("tollgate_config_reloads_total{result=\"ok\"}"),
        reloads
    );
    tollgate.signal(libc::SIGHUP);
    let addr = tollgate.addr;
    eventually("SIGHUP applied the change", async || {
        get(addr, "/x", &acme).await.status == 403
    })
    .await;
}

/// Opens `fifo` for writing once a reader is waiting on it (without one, a non-blocking open
/// fails), so the reload reading it is known to be stuck until the test writes.
async fn writer_once_read(fifo: &std::path::Path) -> std::fs::File {
    use std::os::unix::fs::OpenOptionsExt;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let open = std::fs::OpenOptions::new()
            .write(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(fifo);
        if let Ok(file) = open {
            return file;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the reload never read the new tenants file"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A reload runs off the request path: while one is stuck reading a file (a FIFO nobody has
/// written yet), a Tollgate with a single worker goes on answering, and the new state is
/// swapped in once the file is complete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_served_while_a_reload_is_stuck() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = fixture::options(&keys, true, &["subdomain"], &[]);
    options.server = "workers: 1".into();
    let tollgate = Tollgate::start(upstream.addr, options);
    let acme = [("host", "acme.app.test")];
    assert_eq!(get(tollgate.addr, "/x", &acme).await.status, 200);

    let tenants = tollgate.path("tenants.yaml");
    std::fs::remove_file(&tenants).unwrap();
    let path = std::ffi::CString::new(tenants.to_str().unwrap()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(path.as_ptr(), 0o600) }, 0);
    let mut writer = writer_once_read(&tenants).await;

    for _ in 0..5 {
        let reply = tokio::time::timeout(Duration::from_secs(10), get(tollgate.addr, "/x", &acme))
            .await
            .expect("a request waited for the reload");
        assert_eq!(reply.status, 200, "the old tenants keep serving");
    }

    std::io::Write::write_all(&mut writer, acme_suspended().as_bytes()).unwrap();
    drop(writer);
    let addr = tollgate.addr;
    eventually("the completed reload is swapped in", async || {
        get(addr, "/x", &acme).await.status == 403
    })
    .await;
}

/// A changed file is noticed when it is written (inotify), not on the next tick: with an hour
/// between ticks, a new tenant is served at once, and so is one whose file moved in by a rename.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_written_file_is_reloaded_without_waiting_for_a_tick() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, hourly(&keys));
    let tenants = tollgate.path("tenants.yaml");
    let addr = tollgate.addr;

    std::fs::write(
        &tenants,
        format!("{TENANTS}  - {{ id: wayne, plan: basic, status: active }}\n"),
    )
    .unwrap();
    eventually("a written tenants file is applied", async || {
        get(addr, "/x", &[("host", "wayne.app.test")]).await.status == 200
    })
    .await;

    // The way editors and `kubectl cp` replace files: write beside, rename over.
    let beside = tollgate.path("tenants.yaml.tmp");
    std::fs::write(
        &beside,
        format!("{TENANTS}  - {{ id: stark, plan: basic, status: active }}\n"),
    )
    .unwrap();
    std::fs::rename(&beside, &tenants).unwrap();
    eventually("a renamed tenants file is applied", async || {
        get(addr, "/x", &[("host", "stark.app.test")]).await.status == 200
    })
    .await;
    assert_eq!(
        tollgate.metric("tollgate_config_reloads_total{result=\"error\"}"),
        0.0,
        "no file was read half written"
    );
}

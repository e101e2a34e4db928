//! Graceful shutdown, readiness and metrics.

use std::time::{Duration, Instant};

use crate::support::{Options, Tollgate, Upstream, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_an_in_flight_request_finish_then_exits_0() {
    let upstream = Upstream::start().await;
    let mut tollgate = Tollgate::start(upstream.addr, Options::default());
    let addr = tollgate.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow/2000", &[]).await });
    while upstream.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tollgate.signal(libc::SIGTERM);

    // While draining: not ready, and no new connections.
    let deadline = Instant::now() + Duration::from_secs(10);
    while tollgate.admin_get("/readyz").0 != 503 {
        assert!(Instant::now() < deadline, "readyz never reported draining");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "still accepting"
    );

    let reply = slow.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slow done");
    let status = tollgate.wait_exit();
    assert!(
        status.success(),
        "exit status {status}:\n{}",
        tollgate.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_longer_than_the_drain_timeout_does_not_keep_the_process_alive() {
    let upstream = Upstream::start().await;
    let options = Options {
        server: "drain_timeout: 200ms".into(),
        ..Options::default()
    };
    let mut tollgate = Tollgate::start(upstream.addr, options);
    let addr = tollgate.addr;
    let _hung = tokio::spawn(async move { get(addr, "/hang", &[]).await });
    while upstream.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    tollgate.signal(libc::SIGTERM);
    assert!(tollgate.wait_exit().success());
    assert!(
        tollgate.log().contains("drain timeout reached"),
        "{}",
        tollgate.log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_readiness_and_metrics_reflect_the_traffic() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    assert_eq!(tollgate.admin_get("/healthz"), (200, "ok\n".to_string()));
    assert_eq!(tollgate.admin_get("/readyz"), (200, "ready\n".to_string()));
    assert_eq!(tollgate.admin_get("/nope").0, 404);
    for _ in 0..3 {
        assert_eq!(get(tollgate.addr, "/echo", &[]).await.status, 200);
    }
    assert_eq!(get(tollgate.addr, "/a%2Fb", &[]).await.status, 400);
    assert_eq!(
        tollgate.metric("tollgate_http_requests_total{code=\"200\"}"),
        3.0
    );
    assert_eq!(
        tollgate.metric("tollgate_http_requests_total{code=\"400\"}"),
        1.0
    );
    assert_eq!(
        tollgate.metric("tollgate_http_request_duration_seconds_count"),
        4.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_json_lines_when_asked() {
    let upstream = Upstream::start().await;
    let options = Options {
        env: vec![("TOLLGATE_LOG_FORMAT", "json")],
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    assert_eq!(get(tollgate.addr, "/echo", &[]).await.status, 200);
    let log = tollgate.log();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert!(lines.iter().any(|l| l["message"] == "listening"), "{log}");
    assert!(
        lines
            .iter()
            .any(|l| l["message"] == "request" && l["status"] == 200),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_says_what_was_loaded_and_why_each_request_was_refused_at_info() {
    let upstream = Upstream::start().await;
    let keys = crate::support::fixture::Keys::generate();
    let mut options = crate::support::fixture::full_stack(&keys, "").with("log.level", "info");
    options.stdout = crate::support::tollgate::Stdout::File;
    options.set("log.access", "common");
    let tollgate = Tollgate::start(upstream.addr, options);
    get(
        tollgate.addr,
        "/api/v1/agents",
        &[("host", "acme.app.test")],
    )
    .await
    .assert_problem(401, "unauthenticated");
    assert_eq!(
        get(
            tollgate.addr,
            "/public/docs",
            &[("host", "acme.app.test"), ("user-agent", "probe/1")]
        )
        .await
        .status,
        200
    );
    let log = tollgate.log();
    let summary = log
        .lines()
        .find(|l| l.contains("loaded"))
        .unwrap_or_else(|| panic!("{log}"));
    for field in [
        "tenants=",
        "plans=",
        "routes=",
        "policy_sets=",
        "limits=memory",
        "access_log=stdout",
    ] {
        assert!(summary.contains(field), "{field} in {summary}");
    }
    crate::support::eventually("the refusal is logged", async || {
        tollgate.log().contains("refused")
    })
    .await;
    let log = tollgate.log();
    let refused = log.lines().find(|l| l.contains("refused")).unwrap();
    for field in [
        "INFO",
        "stage=identity",
        "problem=\"unauthenticated\"",
        "status=401",
        "tenant=\"acme\"",
    ] {
        assert!(
            refused.contains(field) || refused.contains(&field.replace('"', "")),
            "{field} in {refused}"
        );
    }
    assert!(!log.contains("Some("), "no Rust debug text: {log}");
    // The access log: one Common Log Format line per request, on stdout.
    crate::support::eventually("both access lines", async || {
        tollgate.stdout().lines().count() >= 2
    })
    .await;
    let access = tollgate.stdout();
    let lines: Vec<&str> = access.lines().collect();
    assert!(lines[0].starts_with("127.0.0.1 - - ["), "{access}");
    assert!(
        lines[0].contains("\"GET /api/v1/agents HTTP/1.1\" 401 - \"-\" \"-\""),
        "{access}"
    );
    assert!(
        lines[0].contains("tenant=acme stage=identity problem=unauthenticated"),
        "{access}"
    );
    assert!(
        lines[1].contains("\"GET /public/docs HTTP/1.1\" 200 - \"-\" \"probe/1\""),
        "{access}"
    );
    assert!(lines[1].contains("stage=forward problem=-"), "{access}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_log_can_be_json_lines() {
    let upstream = Upstream::start().await;
    let mut options = Options::default().with("log.access", "json");
    options.stdout = crate::support::tollgate::Stdout::File;
    let tollgate = Tollgate::start(upstream.addr, options);
    assert_eq!(get(tollgate.addr, "/echo", &[]).await.status, 200);
    crate::support::eventually("the access line", async || !tollgate.stdout().is_empty()).await;
    let line: serde_json::Value = serde_json::from_str(tollgate.stdout().trim()).unwrap();
    assert_eq!(line["type"], "access");
    assert_eq!(line["status"], 200);
    assert_eq!(line["path"], "/echo");
    assert!(line["request_id"].as_str().is_some_and(|id| !id.is_empty()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stdout_nobody_reads_never_slows_requests_its_access_lines_are_dropped_and_counted() {
    let upstream = Upstream::start().await;
    let mut options = Options::default()
        .with("log.access", "common")
        .with("log.level", "info");
    // A pipe held open and never read: it fills (64 KiB), the writer blocks, the queue fills.
    options.stdout = crate::support::tollgate::Stdout::Held;
    let tollgate = Tollgate::start(upstream.addr, options);
    let addr = tollgate.addr;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for _ in 0..2_500 {
                    statuses.push(get(addr, "/echo", &[]).await.status.as_u16());
                }
                statuses
            })
        })
        .collect();
    for task in tasks {
        assert!(task.await.unwrap().iter().all(|s| *s == 200));
    }
    // 20,000 lines: more than the pipe and the 16,384-line queue hold.
    assert!(
        tollgate.metric("tollgate_access_log_dropped_total") > 0.0,
        "lines that stdout cannot take are counted"
    );
}

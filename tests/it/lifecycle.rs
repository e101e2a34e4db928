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

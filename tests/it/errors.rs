//! Upstream faults become precise problem+json answers.

use crate::support::{Options, Tollgate, Upstream, get, tollgate::free_port};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_is_502_problem_json() {
    let upstream = Upstream::start().await;
    let options = Options {
        upstream_url: Some(format!("http://127.0.0.1:{}", free_port())),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(tollgate.addr, "/anything", &[]).await;
    reply.assert_problem(502, "upstream-unavailable");
    assert_eq!(
        tollgate.metric("tollgate_upstream_errors_total{kind=\"unavailable\"}"),
        1.0
    );
    // The proxy itself keeps serving.
    assert_eq!(tollgate.admin_get("/healthz").0, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_that_never_answers_is_504_after_the_response_timeout() {
    let upstream = Upstream::start().await;
    let options = Options {
        upstream: "response_timeout: 300ms".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    get(tollgate.addr, "/hang", &[])
        .await
        .assert_problem(504, "upstream-timeout");
    assert_eq!(
        tollgate.metric("tollgate_upstream_errors_total{kind=\"timeout\"}"),
        1.0
    );
    assert_eq!(
        tollgate.metric("tollgate_http_requests_total{code=\"504\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_upstream_within_the_timeout_is_served() {
    let upstream = Upstream::start().await;
    let options = Options {
        upstream: "response_timeout: 30s".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(tollgate.addr, "/slow/200", &[]).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.body, "slow done");
}

//! Plan rate limits and quotas against a live Tollgate: limits hold under concurrency,
//! `Retry-After` is honest, refused requests are never counted, a plan change applies
//! mid-period, counts survive restarts and `kill -9` (embedded store), and the usage reports.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::{Options, Tollgate, Upstream, eventually, get};

pub const PLANS: &str = "plans:
  tight:
    rate_limits: [{ name: hourly, limit: 20, window: 1h, burst: 5 }]
    quotas: { api_calls: { limit: 1000, period: month } }
  metered:
    quotas: { api_calls: { limit: 3, period: month } }
  paced:
    rate_limits: [{ name: paced, limit: 60, window: 1m, burst: 1 }]
  per-caller:
    rate_limits: [{ name: per-caller, limit: 20, window: 1h, burst: 2, per: principal }]
  shared:
    quotas: { api_calls: { limit: 10, period: month } }
  strict:
    on_store_failure: refuse
    quotas: { api_calls: { limit: 10, period: month } }
";

pub const TENANTS: &str = "tenants:
  - { id: tight, plan: tight, status: active }
  - { id: metered, plan: metered, status: active }
  - { id: paced, plan: paced, status: active }
  - { id: callers, plan: per-caller, status: active }
  - { id: shared, plan: shared, status: active }
  - { id: strict, plan: strict, status: active }
";

pub fn options(keys: &Keys, limits: &str) -> Options {
    let mut options = fixture::options(keys, true, &["subdomain", "claim"], &[]);
    options
        .files
        .retain(|(name, _)| name != "plans.yaml" && name != "tenants.yaml");
    options.files.push(("plans.yaml".into(), PLANS.into()));
    options.files.push(("tenants.yaml".into(), TENANTS.into()));
    options.extra.push_str(limits);
    options
}

const EMBEDDED: &str =
    "limits:\n  backend: embedded\n  path: state/usage.redb\n  flush_interval: 100ms\n";
const MEMORY: &str = "limits:\n  backend: memory\n";

pub async fn start(limits: &str) -> (Upstream, Tollgate) {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, limits));
    (upstream, tollgate)
}

/// Quota use of one metric, as the admin listener reports it.
pub fn used(tollgate: &Tollgate, tenant: &str, metric: &str) -> u64 {
    let (status, body) = tollgate.admin_get(&format!("/usage/{tenant}"));
    assert_eq!(status, 200, "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    report["quotas"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["metric"] == metric)
        .and_then(|q| q["used"].as_u64())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_clients_in_parallel_never_get_more_than_the_burst_through() {
    let (upstream, tollgate) = start(MEMORY).await;
    let addr = tollgate.addr;
    let tasks: Vec<_> = (0..40)
        .map(|_| tokio::spawn(async move { get(addr, "/x", &[("host", "tight.app.test")]).await }))
        .collect();
    let mut allowed = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        assert!(
            reply.headers.contains_key("ratelimit-policy")
                && reply.headers.contains_key("ratelimit")
        );
        match reply.status.as_u16() {
            200 => allowed += 1,
            429 => {
                reply.assert_problem(429, "rate-limited");
                assert!(
                    reply.headers["retry-after"]
                        .to_str()
                        .unwrap()
                        .parse::<u64>()
                        .unwrap()
                        >= 1
                );
            }
            other => panic!("unexpected {other}"),
        }
    }
    // 20 an hour replenishes one every 3 minutes: within the test only the burst passes.
    assert_eq!(allowed, 5);
    assert_eq!(upstream.seen().len(), 5);
    assert_eq!(
        tollgate.metric("tollgate_rate_limited_total{policy=\"hourly\",tenant=\"tight\"}"),
        35.0
    );
    assert_eq!(
        used(&tollgate, "tight", "api_calls"),
        5,
        "rate-limited requests are not counted"
    );
    let reply = get(addr, "/x", &[("host", "tight.app.test")]).await;
    assert_eq!(reply.headers["ratelimit-policy"], "\"hourly\";q=20;w=3600");
    assert!(
        reply.headers["ratelimit"]
            .to_str()
            .unwrap()
            .starts_with("\"hourly\";r=0;t=")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honest() {
    let (_upstream, tollgate) = start(MEMORY).await;
    let paced = [("host", "paced.app.test")];
    assert_eq!(get(tollgate.addr, "/x", &paced).await.status, 200);
    let refused = get(tollgate.addr, "/x", &paced).await;
    refused.assert_problem(429, "rate-limited");
    let wait: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(wait, 1, "one request a second");
    tokio::time::sleep(Duration::from_secs(wait) + Duration::from_millis(50)).await;
    assert_eq!(
        get(tollgate.addr, "/x", &paced).await.status,
        200,
        "waiting Retry-After is enough"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_principal_limits_count_each_caller_apart() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, options(&keys, MEMORY));
    let token = |sub: &str| {
        bearer(&sign(
            &keys,
            Algorithm::HS256,
            "hs",
            &claims(sub, "callers", &["user"]),
        ))
    };
    let (ann, bob) = (token("ann"), token("bob"));
    let call = async |auth: &str| {
        get(
            tollgate.addr,
            "/x",
            &[("host", "callers.app.test"), ("authorization", auth)],
        )
        .await
        .status
        .as_u16()
    };
    assert_eq!(
        (call(&ann).await, call(&ann).await, call(&ann).await),
        (200, 200, 429)
    );
    assert_eq!(
        call(&bob).await,
        200,
        "another caller has its own allowance"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quota_refuses_past_its_limit_without_counting_the_refusals() {
    for limits in [MEMORY, EMBEDDED] {
        let (_upstream, tollgate) = start(limits).await;
        let metered = [("host", "metered.app.test")];
        for _ in 0..3 {
            assert_eq!(
                get(tollgate.addr, "/x", &metered).await.status,
                200,
                "{limits}"
            );
        }
        for _ in 0..2 {
            let refused = get(tollgate.addr, "/x", &metered).await;
            refused.assert_problem(429, "quota-exceeded");
            assert!(String::from_utf8_lossy(&refused.body).contains("api_calls"));
            let reset: u64 = refused.headers["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(
                (1..=31 * 86_400).contains(&reset),
                "until the month ends: {reset}"
            );
        }
        assert_eq!(used(&tollgate, "metered", "api_calls"), 3, "{limits}");
        assert_eq!(
            tollgate
                .metric("tollgate_quota_exceeded_total{metric=\"api_calls\",tenant=\"metered\"}"),
            2.0
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plan_change_applies_mid_period_to_the_usage_so_far() {
    let (_upstream, tollgate) = start(MEMORY).await;
    let metered = [("host", "metered.app.test")];
    assert_eq!(get(tollgate.addr, "/x", &metered).await.status, 200);
    assert_eq!(get(tollgate.addr, "/x", &metered).await.status, 200);
    let with_quota = |limit: u64| {
        TENANTS.replace(
            "{ id: metered, plan: metered, status: active }",
            &format!(
                "{{ id: metered, plan: metered, status: active, quotas: {{ api_calls: {limit} }} }}"
            ),
        )
    };
    let reloads = "tollgate_config_reloads_total{result=\"ok\"}";
    let t = &tollgate;
    std::fs::write(tollgate.path("tenants.yaml"), with_quota(2)).unwrap();
    eventually("the smaller quota is loaded", async || {
        t.metric(reloads) >= 1.0
    })
    .await;
    get(tollgate.addr, "/x", &metered)
        .await
        .assert_problem(429, "quota-exceeded");
    std::fs::write(tollgate.path("tenants.yaml"), with_quota(10)).unwrap();
    eventually("the larger quota is loaded", async || {
        t.metric(reloads) >= 2.0
    })
    .await;
    assert_eq!(get(tollgate.addr, "/x", &metered).await.status, 200);
    assert_eq!(used(&tollgate, "metered", "api_calls"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quota_counts_survive_a_restart_and_kill_9_within_the_flush_window() {
    let (_upstream, mut tollgate) = start(EMBEDDED).await;
    let tight = [("host", "tight.app.test")];
    for _ in 0..4 {
        assert_eq!(get(tollgate.addr, "/x", &tight).await.status, 200);
    }
    // Two completed flushes after the last request: the second began after it.
    let flushes = "tollgate_usage_store_flushes_total{result=\"ok\"}";
    let before = tollgate.metric(flushes);
    let t = &tollgate;
    eventually("two flushes after the requests", async || {
        t.metric(flushes) >= before + 1.0
    })
    .await;
    assert_eq!(used(&tollgate, "tight", "api_calls"), 4);
    tollgate.signal(libc::SIGKILL);
    tollgate.restart();
    assert_eq!(
        used(&tollgate, "tight", "api_calls"),
        4,
        "kill -9 after a flush loses nothing"
    );

    // A graceful stop flushes at once.
    assert_eq!(get(tollgate.addr, "/x", &tight).await.status, 200);
    tollgate.signal(libc::SIGTERM);
    assert!(tollgate.wait_exit().success());
    tollgate.restart();
    assert_eq!(
        used(&tollgate, "tight", "api_calls"),
        5,
        "SIGTERM flushes every count"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_legacy_rate_limit_headers_are_sent_when_switched_on() {
    let (_upstream, tollgate) = start("limits:\n  backend: memory\n  legacy_headers: true\n").await;
    let reply = get(tollgate.addr, "/x", &[("host", "tight.app.test")]).await;
    assert_eq!(reply.headers["x-ratelimit-limit"], "20");
    assert_eq!(reply.headers["x-ratelimit-remaining"], "4");
    assert!(reply.headers.contains_key("x-ratelimit-reset"));
    let (_upstream, plain) = start(MEMORY).await;
    assert!(
        !get(plain.addr, "/x", &[("host", "tight.app.test")])
            .await
            .headers
            .contains_key("x-ratelimit-limit")
    );
}

#[test]
fn the_usage_command_reports_from_a_running_tollgate_and_from_the_store() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (upstream, mut tollgate) = runtime.block_on(start(EMBEDDED));
    let config = tollgate.path("tollgate.yaml");
    for _ in 0..2 {
        runtime.block_on(get(tollgate.addr, "/x", &[("host", "metered.app.test")]));
    }
    let usage = |args: &[&str]| {
        let mut all = vec!["usage", "--config", config.to_str().unwrap()];
        all.extend(args);
        let run = crate::support::tollgate::cli(&all, &[]);
        assert!(run.ok, "{}", run.stderr);
        (run.stdout, run.stderr)
    };
    let (table, from) = usage(&["--tenant", "metered"]);
    assert!(
        from.contains(&format!(
            "the running Tollgate at http://{}",
            tollgate.admin
        )),
        "{from}"
    );
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("metered") && l.contains("api_calls") && l.contains(" 2 ")),
        "{table}"
    );
    tollgate.signal(libc::SIGTERM);
    assert!(tollgate.wait_exit().success());
    // Nothing runs now: the store is read directly.
    let (json, from) = usage(&["--tenant", "metered", "--format", "json"]);
    let store = tollgate.path("state/usage.redb");
    assert!(
        from.contains(&format!("the usage store {}", store.display())),
        "{from}"
    );
    let json: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(json[0]["quotas"][0]["used"], 2, "{json}");
    let (all, _) = usage(&[]);
    assert!(all.contains("tight") && all.contains("metered"), "{all}");
    drop(upstream);
}

pub fn redis_limits(redis: &crate::support::redis::RedisServer, timeout: &str) -> String {
    format!(
        "limits:\n  backend: redis\n  redis: {{ url: {}, timeout: {timeout}, replicas: 2, breaker_failures: 1, breaker_cooldown: 200ms }}\n",
        redis.url()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_sharing_redis_never_let_a_tenant_past_its_limits_together() {
    let redis = crate::support::redis::RedisServer::start();
    // A generous timeout: this test is about sharing, not about the fallback.
    let limits = redis_limits(&redis, "2s");
    let (_a_up, a) = start(&limits).await;
    let (_b_up, b) = start(&limits).await;
    let tasks: Vec<_> = (0..30)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            tokio::spawn(async move { get(addr, "/x", &[("host", "shared.app.test")]).await })
        })
        .collect();
    let mut allowed = 0;
    for task in tasks {
        let reply = task.await.unwrap();
        match reply.status.as_u16() {
            200 => allowed += 1,
            _ => reply.assert_problem(429, "quota-exceeded"),
        }
    }
    assert_eq!(allowed, 10, "one quota of 10 across both replicas");
    assert_eq!(used(&a, "shared", "api_calls"), 10);
    assert_eq!(
        used(&b, "shared", "api_calls"),
        10,
        "both read the same Redis counters"
    );
    // An exhausted quota is remembered until its period ends: refusals cost no Redis call.
    get(a.addr, "/x", &[("host", "shared.app.test")])
        .await
        .assert_problem(429, "quota-exceeded");
    let calls = "tollgate_limits_store_duration_seconds_count";
    let before = a.metric(calls);
    assert!(before >= 1.0);
    for _ in 0..3 {
        get(a.addr, "/x", &[("host", "shared.app.test")])
            .await
            .assert_problem(429, "quota-exceeded");
    }
    assert_eq!(a.metric(calls), before, "answered from the local cache");

    // The rate limit is shared too: a burst of 5 between the two.
    let tasks: Vec<_> = (0..16)
        .map(|i| {
            let addr = if i % 2 == 0 { a.addr } else { b.addr };
            tokio::spawn(async move {
                get(addr, "/x", &[("host", "tight.app.test")])
                    .await
                    .status
                    .as_u16()
            })
        })
        .collect();
    let mut passed = 0;
    for task in tasks {
        passed += u32::from(task.await.unwrap() == 200);
    }
    assert_eq!(passed, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_limits_fall_back_and_the_counts_are_reconciled_when_it_returns() {
    let mut redis = crate::support::redis::RedisServer::start();
    let (_upstream, tollgate) = start(&redis_limits(&redis, "200ms")).await;
    let shared = [("host", "shared.app.test")];
    for _ in 0..4 {
        assert_eq!(get(tollgate.addr, "/x", &shared).await.status, 200);
    }
    redis.stop();
    // Local fallback: the headroom Redis last reported (10 - 4) shared by 2 replicas = 3.
    let mut allowed = 0;
    for _ in 0..6 {
        let reply = get(tollgate.addr, "/x", &shared).await;
        match reply.status.as_u16() {
            200 => allowed += 1,
            _ => reply.assert_problem(429, "quota-exceeded"),
        }
    }
    assert_eq!(allowed, 3);
    assert!(tollgate.metric("tollgate_redis_errors_total") >= 1.0);
    assert_eq!(tollgate.metric("tollgate_redis_breaker_open"), 1.0);
    // A plan that refuses rather than fall back.
    get(tollgate.addr, "/x", &[("host", "strict.app.test")])
        .await
        .assert_problem(503, "limits-unavailable");

    redis.restart();
    let addr = tollgate.addr;
    eventually("requests reach Redis again", async || {
        get(addr, "/x", &[("host", "shared.app.test")]).await.status == 200
    })
    .await;
    assert!(tollgate.metric("tollgate_redis_reconciled_counters_total") >= 1.0);
    assert_eq!(tollgate.metric("tollgate_redis_breaker_open"), 0.0);
    // Redis restarted empty: it now holds the 3 outage counts plus the request that reached it.
    assert_eq!(used(&tollgate, "shared", "api_calls"), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_and_quota_metrics_go_through_the_tenant_label_cap() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut options = options(&keys, MEMORY);
    options.extra.push_str("metrics:\n  max_tenants: 1\n");
    let tollgate = Tollgate::start(upstream.addr, options);
    // `tight` takes the one label; `metered` and `paced` are past the cap.
    assert_eq!(
        get(tollgate.addr, "/x", &[("host", "tight.app.test")])
            .await
            .status,
        200
    );
    for _ in 0..4 {
        get(tollgate.addr, "/x", &[("host", "metered.app.test")]).await;
    }
    for _ in 0..3 {
        get(tollgate.addr, "/x", &[("host", "paced.app.test")]).await;
    }
    let (_, metrics) = tollgate.admin_get("/metrics");
    let tenants = |metric: &str| -> std::collections::BTreeSet<String> {
        metrics
            .lines()
            .filter(|l| l.starts_with(&format!("{metric}{{")))
            .filter_map(|l| Some(l.split("tenant=\"").nth(1)?.split('"').next()?.to_string()))
            .collect()
    };
    let other = std::collections::BTreeSet::from(["other".to_string()]);
    assert_eq!(tenants("tollgate_rate_limited_total"), other, "{metrics}");
    assert_eq!(tenants("tollgate_quota_exceeded_total"), other, "{metrics}");
    for gauge in ["tollgate_quota_usage", "tollgate_quota_limit"] {
        let labelled = tenants(gauge);
        assert!(
            labelled.iter().all(|t| t == "tight"),
            "{gauge}: {labelled:?}"
        );
    }
}

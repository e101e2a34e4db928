//! One behaviour suite for every limits backend: memory, embedded, Redis (plans that refuse when
//! it fails) and Redis with local fallback, each against a real Tollgate (and a real
//! redis-server), as limitador's `test_with_all_storage_impls!` does for its storages. The Redis
//! backends also go through each fault: Redis stopped (and restarted empty), paused, and slowed
//! (paused while calls are in flight, then going on by itself).

use std::time::Duration;

use crate::plan_limits::used;
use crate::support::fixture::{self, Keys};
use crate::support::redis::RedisServer;
use crate::support::{Tollgate, Upstream, eventually, get};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Store {
    Memory,
    Embedded,
    Redis,
    RedisWithLocalFallback,
}

#[derive(Clone, Copy, Debug)]
enum Fault {
    Stopped,
    Paused,
    Slowed,
}

fn plans(store: Store) -> String {
    let failure = if store == Store::RedisWithLocalFallback {
        "local"
    } else {
        "refuse"
    };
    format!(
        "plans:
  burst:
    on_store_failure: {failure}
    rate_limits: [{{ name: burst, limit: 20, window: 1h, burst: 5 }}]
  quota:
    on_store_failure: {failure}
    quotas: {{ api_calls: {{ limit: 7, period: month }} }}
  stacked:
    on_store_failure: {failure}
    rate_limits: [{{ name: stacked, limit: 60, window: 1h, burst: 3 }}]
    quotas: {{ api_calls: {{ limit: 100, period: month }} }}
  roomy:
    on_store_failure: refuse
    quotas: {{ api_calls: {{ limit: 1000000, period: month }} }}
"
    )
}

const TENANTS: &str = "tenants:
  - { id: burst, plan: burst, status: active }
  - { id: quota, plan: quota, status: active }
  - { id: stacked, plan: stacked, status: active }
  - { id: probe, plan: roomy, status: active }
";

struct Stack {
    tollgate: Tollgate,
    redis: Option<RedisServer>,
    _upstream: Upstream,
}

async fn start(store: Store) -> Stack {
    start_to(store, None).await
}

/// [`start`] with `upstream_url` in place of the running upstream's.
async fn start_to(store: Store, upstream_url: Option<String>) -> Stack {
    let redis =
        matches!(store, Store::Redis | Store::RedisWithLocalFallback).then(RedisServer::start);
    let limits = match &redis {
        None if store == Store::Memory => "limits:\n  backend: memory\n".to_string(),
        None => "limits:\n  backend: embedded\n  path: state/usage.redb\n  flush_interval: 100ms\n"
            .to_string(),
        Some(redis) => format!(
            "limits:\n  backend: redis\n  redis: {{ url: {}, timeout: 100ms, replicas: 2, breaker_failures: 1000, breaker_cooldown: 200ms }}\n",
            redis.url()
        ),
    };
    let keys = Keys::generate();
    let mut options = fixture::options(&keys, true, &["subdomain"], &[]);
    options
        .files
        .retain(|(name, _)| name != "plans.yaml" && name != "tenants.yaml");
    options.files.push(("plans.yaml".into(), plans(store)));
    options.files.push(("tenants.yaml".into(), TENANTS.into()));
    options.extra.push_str(&limits);
    options.upstream_url = upstream_url;
    let upstream = Upstream::start().await;
    Stack {
        tollgate: Tollgate::start(upstream.addr, options),
        redis,
        _upstream: upstream,
    }
}

fn host(tenant: &str) -> String {
    format!("{tenant}.app.test")
}

/// Sends `n` requests for `tenant` at once; their statuses.
async fn burst_of(tollgate: &Tollgate, tenant: &str, n: usize) -> Vec<u16> {
    let addr = tollgate.addr;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let host = host(tenant);
            tokio::spawn(async move { get(addr, "/x", &[("host", &host)]).await.status.as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    statuses
}

fn passed(statuses: &[u16]) -> usize {
    statuses.iter().filter(|s| **s == 200).count()
}

async fn a_burst_passes_then_refuses_with_an_honest_retry_after(store: Store) {
    let stack = start(store).await;
    let statuses = burst_of(&stack.tollgate, "burst", 16).await;
    assert_eq!(passed(&statuses), 5, "{statuses:?}");
    let reply = get(stack.tollgate.addr, "/x", &[("host", &host("burst"))]).await;
    reply.assert_problem(429, "rate-limited");
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    // One request every 3 minutes (20 an hour).
    assert!((1..=180).contains(&retry), "Retry-After: {retry}");
}

async fn a_quota_counts_exactly_its_limit_and_never_a_refusal(store: Store) {
    let stack = start(store).await;
    let t = &stack.tollgate;
    let mut allowed = 0;
    for _ in 0..10 {
        let reply = get(t.addr, "/x", &[("host", &host("quota"))]).await;
        match reply.status.as_u16() {
            200 => allowed += 1,
            _ => reply.assert_problem(429, "quota-exceeded"),
        }
    }
    assert_eq!(allowed, 7);
    assert_eq!(used(t, "quota", "api_calls"), 7);
}

async fn stacked_limits_count_all_or_nothing(store: Store) {
    let stack = start(store).await;
    let statuses = burst_of(&stack.tollgate, "stacked", 8).await;
    assert_eq!(passed(&statuses), 3, "{statuses:?}");
    assert_eq!(
        used(&stack.tollgate, "stacked", "api_calls"),
        3,
        "requests the rate limit refused are not counted by the quota"
    );
}

async fn counts_outlive_a_reload(store: Store) {
    let stack = start(store).await;
    let t = &stack.tollgate;
    assert_eq!(passed(&burst_of(t, "quota", 2).await), 2);
    // Any change reloads; here one that changes no limit.
    std::fs::write(t.path("tenants.yaml"), format!("{TENANTS}# edited\n")).unwrap();
    eventually("the reload", async || {
        t.metric("tollgate_config_reloads_total{result=\"ok\"}") >= 1.0
    })
    .await;
    let mut allowed = 0;
    for _ in 0..8 {
        allowed += usize::from(get(t.addr, "/x", &[("host", &host("quota"))]).await.status == 200);
    }
    assert_eq!(allowed, 5, "7 in all, across the reload");
}

/// A request whose upstream cannot be reached (502) is given back: the tenant is billed for
/// what its application served. With a quota of 7, nine such requests are all 502, never 429.
async fn a_request_that_never_reaches_the_upstream_is_not_counted(store: Store) {
    let closed = format!("http://127.0.0.1:{}", crate::support::tollgate::free_port());
    let stack = start_to(store, Some(closed)).await;
    let t = &stack.tollgate;
    for _ in 0..9 {
        get(t.addr, "/x", &[("host", &host("quota"))])
            .await
            .assert_problem(502, "upstream-unavailable");
    }
    assert_eq!(used(t, "quota", "api_calls"), 0);
}

/// A request the upstream answered counts, whatever it answered (its own 502 included).
async fn a_request_the_upstream_answered_counts_whatever_the_answer(store: Store) {
    let stack = start(store).await;
    let t = &stack.tollgate;
    for (path, status) in [("/status/502", 502), ("/status/500", 500), ("/x", 200)] {
        let reply = get(t.addr, path, &[("host", &host("quota"))]).await;
        assert_eq!(reply.status, status, "{:?}", reply.body);
    }
    assert_eq!(used(t, "quota", "api_calls"), 3);
}

macro_rules! every_backend {
    ($($behaviour:ident),* $(,)?) => {$(
        mod $behaviour {
            use super::Store;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$behaviour(Store::Memory).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                super::$behaviour(Store::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$behaviour(Store::Redis).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis_with_local_fallback() {
                super::$behaviour(Store::RedisWithLocalFallback).await;
            }
        }
    )*};
}

every_backend!(
    a_burst_passes_then_refuses_with_an_honest_retry_after,
    a_quota_counts_exactly_its_limit_and_never_a_refusal,
    stacked_limits_count_all_or_nothing,
    counts_outlive_a_reload,
    a_request_that_never_reaches_the_upstream_is_not_counted,
    a_request_the_upstream_answered_counts_whatever_the_answer,
);

/// During a fault a plan refuses (503) or enforces its local share; afterwards Redis holds
/// exactly what was counted: no refused request, no call Tollgate gave up on, and each local
/// count once.
async fn a_fault_never_counts_a_refusal_or_anything_twice(store: Store, fault: Fault) {
    let mut stack = start(store).await;
    let t = &stack.tollgate;
    let quota = [("host", host("quota"))];
    let quota: Vec<(&str, &str)> = quota.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(get(t.addr, "/x", &quota).await.status, 200);
    let redis = stack.redis.as_mut().unwrap();
    let slowed = match fault {
        Fault::Stopped => {
            redis.stop();
            None
        }
        Fault::Paused => {
            redis.pause();
            None
        }
        Fault::Slowed => {
            redis.pause();
            let pid = redis.pid();
            Some(std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(400));
                crate::support::tollgate::send_signal(pid, libc::SIGCONT);
            }))
        }
    };
    let statuses = burst_of(t, "quota", 4).await;
    let outage = if store == Store::RedisWithLocalFallback {
        // The headroom Redis last reported, (7 - 1), shared by 2 replicas.
        assert_eq!(passed(&statuses), 3, "{statuses:?}");
        3
    } else {
        assert_eq!(statuses, [503; 4]);
        0
    };
    match fault {
        Fault::Stopped => redis.restart(),
        Fault::Paused => redis.resume(),
        Fault::Slowed => slowed.unwrap().join().unwrap(),
    }
    let addr = t.addr;
    eventually("requests reach Redis again", async || {
        get(addr, "/x", &[("host", "probe.app.test")]).await.status == 200
    })
    .await;
    // A restarted Redis (no persistence here) lost the count made before.
    let before = if matches!(fault, Fault::Stopped) {
        0
    } else {
        1
    };
    assert_eq!(used(t, "quota", "api_calls"), before + outage);
}

macro_rules! every_fault {
    ($($name:ident => $store:ident),* $(,)?) => {$(
        mod $name {
            use super::{Fault, Store};

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn stopped() {
                super::a_fault_never_counts_a_refusal_or_anything_twice(Store::$store, Fault::Stopped).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn paused() {
                super::a_fault_never_counts_a_refusal_or_anything_twice(Store::$store, Fault::Paused).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn slowed() {
                super::a_fault_never_counts_a_refusal_or_anything_twice(Store::$store, Fault::Slowed).await;
            }
        }
    )*};
}

every_fault!(
    redis_faults => Redis,
    redis_with_local_fallback_faults => RedisWithLocalFallback,
);

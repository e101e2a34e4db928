//! Shared limits when Redis misbehaves, against a real redis-server that is paused (SIGSTOP),
//! stopped and restarted: requests never queue behind a connect, a call Tollgate gave up on is
//! never counted when Redis wakes, local fallback counts are added once, and Redis is used
//! again one cooldown after it returns.

use std::time::{Duration, Instant};

use crate::plan_limits::{start, used};
use crate::support::redis::RedisServer;
use crate::support::{Tollgate, eventually, get};

fn limits(redis: &RedisServer, timeout: &str, failures: u32, cooldown: &str) -> String {
    format!(
        "limits:\n  backend: redis\n  redis: {{ url: {}, timeout: {timeout}, replicas: 2, breaker_failures: {failures}, breaker_cooldown: {cooldown} }}\n",
        redis.url()
    )
}

/// Sends `n` requests for `host` at once; their statuses and the longest wait.
async fn burst(tollgate: &Tollgate, host: &'static str, n: usize) -> (Vec<u16>, Duration) {
    let addr = tollgate.addr;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            tokio::spawn(async move {
                let started = Instant::now();
                let status = get(addr, "/x", &[("host", host)]).await.status.as_u16();
                (status, started.elapsed())
            })
        })
        .collect();
    let mut statuses = Vec::new();
    let mut longest = Duration::ZERO;
    for task in tasks {
        let (status, waited) = task.await.unwrap();
        statuses.push(status);
        longest = longest.max(waited);
    }
    (statuses, longest)
}

/// Redis frozen before Tollgate ever connected: each request waits for Redis at most about its
/// own timeout, never for the connect attempts of the requests before it (which once made the
/// 16th wait 16 × 200 ms), and then falls back or refuses as its plan says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_at_start_up_never_queues_requests_behind_a_connect() {
    let redis = RedisServer::start();
    redis.pause();
    let (_upstream, tollgate) = start(&limits(&redis, "100ms", 1000, "10s")).await;
    let (statuses, longest) = burst(&tollgate, "shared.app.test", 16).await;
    // The local share of an unknown usage: 10 / 2 replicas.
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    // Each waits one timeout; 16 of them in a row would be 1.6 s.
    assert!(longest < Duration::from_secs(1), "waited {longest:?}");
    let (statuses, _) = burst(&tollgate, "strict.app.test", 4).await;
    assert_eq!(statuses, [503; 4], "a refusing plan refuses");
    redis.resume();
}

/// Once the breaker opens, requests already waiting on Redis go to the fallback at once rather
/// than each waiting out its own timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_waiting_on_redis_are_released_when_the_breaker_opens() {
    let redis = RedisServer::start();
    let (_upstream, tollgate) = start(&limits(&redis, "3s", 1, "10s")).await;
    let shared = [("host", "shared.app.test")];
    assert_eq!(get(tollgate.addr, "/x", &shared).await.status, 200);
    redis.pause();
    let addr = tollgate.addr;
    let first = tokio::spawn(async move { get(addr, "/x", &shared).await.status.as_u16() });
    tokio::time::sleep(Duration::from_secs(2)).await;
    // These wait until the first gives up, 1 s from now, and opens the breaker: not their own
    // 3 s.
    let (statuses, longest) = burst(&tollgate, "shared.app.test", 8).await;
    assert!(
        statuses.iter().all(|s| [200, 429].contains(s)),
        "{statuses:?}"
    );
    assert!(longest < Duration::from_millis(2500), "waited {longest:?}");
    // All nine fell back to the local share, (10 - 1) / 2 replicas, whichever got it.
    let first = first.await.unwrap();
    let passed = statuses
        .iter()
        .chain([&first])
        .filter(|s| **s == 200)
        .count();
    assert_eq!(passed, 4, "{statuses:?} and {first}");
    assert_eq!(tollgate.metric("tollgate_redis_breaker_open"), 1.0);
    redis.resume();
}

/// Requests refused because Redis was too slow are not counted when Redis wakes up and runs
/// the calls it had queued, and local-fallback counts are added to Redis exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_given_up_on_are_never_counted_when_redis_wakes() {
    let redis = RedisServer::start();
    // Many failures before the breaker opens: every request sends its call and gives up on it.
    let (_upstream, tollgate) = start(&limits(&redis, "50ms", 1000, "10s")).await;
    assert_eq!(
        get(tollgate.addr, "/x", &[("host", "strict.app.test")])
            .await
            .status,
        200
    );
    assert_eq!(
        get(tollgate.addr, "/x", &[("host", "shared.app.test")])
            .await
            .status,
        200
    );

    redis.pause();
    let (strict, _) = burst(&tollgate, "strict.app.test", 8).await;
    assert_eq!(strict, [503; 8], "refused: Redis did not answer in time");
    // Local fallback: (10 - 1) / 2 replicas = 4 allowed and counted here.
    let (shared, _) = burst(&tollgate, "shared.app.test", 6).await;
    assert_eq!(
        shared.iter().filter(|s| **s == 200).count(),
        4,
        "{shared:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    redis.resume();

    let addr = tollgate.addr;
    eventually("requests reach Redis again", async || {
        get(addr, "/x", &[("host", "strict.app.test")]).await.status == 200
    })
    .await;
    assert_eq!(
        used(&tollgate, "strict", "api_calls"),
        2,
        "the first request and the last; none of the 8 refused"
    );
    assert_eq!(
        get(addr, "/x", &[("host", "shared.app.test")]).await.status,
        200
    );
    assert_eq!(
        used(&tollgate, "shared", "api_calls"),
        1 + 4 + 1,
        "the outage's 4 added once, beside the calls made before and after"
    );
}

/// After Redis comes back, the first request past one cooldown uses it: recovery waits for no
/// reconnect backoff of the client library.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_is_used_again_one_cooldown_after_it_returns() {
    let mut redis = RedisServer::start();
    let (_upstream, tollgate) = start(&limits(&redis, "200ms", 1, "500ms")).await;
    let shared = [("host", "shared.app.test")];
    assert_eq!(get(tollgate.addr, "/x", &shared).await.status, 200);
    redis.stop();
    // Several failed probes, one per cooldown, so that any backoff would have grown.
    for _ in 0..4 {
        assert_eq!(get(tollgate.addr, "/x", &shared).await.status, 200);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    assert_eq!(tollgate.metric("tollgate_redis_breaker_open"), 1.0);
    redis.restart();
    tokio::time::sleep(Duration::from_millis(600)).await;
    // The probe.
    assert_eq!(get(tollgate.addr, "/x", &shared).await.status, 200);
    assert_eq!(
        tollgate.metric("tollgate_redis_breaker_open"),
        0.0,
        "the first probe after a cooldown reached Redis"
    );
}

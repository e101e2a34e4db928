//! Two (then three) real Tollgate replicas sharing tenants through one real redis-server: a
//! change made through either is served by the other shortly after, survives a Redis restart,
//! and a replica started later gets the whole set. The waits are liveness bounds only; the
//! propagation time is measured in benches/README.md.

use serde_json::json;

use crate::support::admin::admin;
use crate::support::fixture::{self, Keys};
use crate::support::redis::RedisServer;
use crate::support::{Options, Tollgate, Upstream, eventually, get};

fn options(keys: &Keys, redis: &RedisServer) -> Options {
    fixture::options(keys, true, &["header", "custom_domain"], &[])
        .with("tenancy.store", "redis")
        .with(
            "limits",
            json!({ "backend": "memory", "redis": { "url": redis.url(), "prefix": "tg:" } }),
        )
}

async fn status(tollgate: &Tollgate, tenant: &str) -> u16 {
    get(tollgate.addr, "/x", &[("x-tenant-id", tenant)])
        .await
        .status
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_through_one_replica_is_served_by_the_other() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let mut redis = RedisServer::start_persistent();
    let a = Tollgate::start(upstream.addr, options(&keys, &redis));
    let b = Tollgate::start(upstream.addr, options(&keys, &redis));

    let body = json!({ "plan": "basic", "status": "active", "domains": ["shared.example.com"] });
    let created = admin(a.admin, "PUT", "/tenants/newt", Some(&body));
    assert_eq!(created.status, 201, "{}", created.body);
    assert_eq!(
        status(&a, "newt").await,
        200,
        "read back from the replica that wrote it"
    );
    eventually("B serves the tenant created through A", async || {
        status(&b, "newt").await == 200
    })
    .await;

    // A suspension through A is refused by B.
    let suspended = admin(
        a.admin,
        "PATCH",
        "/tenants/newt",
        Some(&json!({"status": "suspended"})),
    );
    assert_eq!(suspended.status, 200, "{}", suspended.body);
    eventually("B refuses the tenant suspended through A", async || {
        let reply = get(b.addr, "/x", &[("x-tenant-id", "newt")]).await;
        reply.status == 403
            && reply.json()["type"] == "https://tollgate.dev/problems/tenant-suspended"
    })
    .await;

    // Both replicas hold the store's domain ownership: B cannot give another tenant A's domain.
    let taken = admin(
        b.admin,
        "PUT",
        "/tenants/other",
        Some(&json!({ "plan": "basic", "status": "active", "domains": ["shared.example.com"] })),
    );
    taken.assert_problem(422, "tenant-invalid");
    assert_eq!(
        taken.errors(),
        [r#"domains: "shared.example.com" already belongs to newt"#]
    );

    // Redis restarts (it persists): both reconnect and resync; a change through B reaches A.
    redis.stop();
    let refused = admin(
        b.admin,
        "PATCH",
        "/tenants/newt",
        Some(&json!({"status": "active"})),
    );
    refused.assert_problem(503, "tenant-store-unavailable");
    assert_eq!(
        status(&a, "newt").await,
        403,
        "the last known state is served meanwhile"
    );
    redis.restart();
    eventually("B writes again once Redis is back", async || {
        admin(
            b.admin,
            "PATCH",
            "/tenants/newt",
            Some(&json!({"status": "active"})),
        )
        .status
            == 200
    })
    .await;
    eventually(
        "A follows a change made through B after the Redis restart",
        async || status(&a, "newt").await == 200,
    )
    .await;
    let deleted = admin(b.admin, "DELETE", "/tenants/newt", None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    eventually("A stops serving the tenant deleted through B", async || {
        status(&a, "newt").await == 404
    })
    .await;

    // A replica started later gets the whole set at start.
    for i in 0..20 {
        let body =
            json!({ "plan": "basic", "status": if i % 2 == 0 { "active" } else { "suspended" } });
        let reply = admin(a.admin, "PUT", &format!("/tenants/late-{i}"), Some(&body));
        assert_eq!(reply.status, 201, "{}", reply.body);
    }
    let c = Tollgate::start(upstream.addr, options(&keys, &redis));
    for i in 0..20 {
        let want = if i % 2 == 0 { 200 } else { 403 };
        assert_eq!(
            status(&c, &format!("late-{i}")).await,
            want,
            "late-{i} on the late replica"
        );
    }
    let listed = admin(c.admin, "GET", "/tenants?origin=store&limit=1000", None).json();
    assert_eq!(listed["tenants"].as_array().unwrap().len(), 20);
    assert_eq!(
        c.metric("tollgate_tenant_store_revision"),
        a.metric("tollgate_tenant_store_revision")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_that_missed_changes_catches_up() {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let redis = RedisServer::start_persistent();
    let a = Tollgate::start(upstream.addr, options(&keys, &redis));
    let b = Tollgate::start(upstream.addr, options(&keys, &redis));
    // B is frozen while A makes changes: the notifications it was sent wait in its socket, or
    // are lost if Redis dropped the subscriber; either way B converges once it runs again.
    b.signal(libc::SIGSTOP);
    for i in 0..5 {
        let body = json!({ "plan": "basic", "status": "active" });
        assert_eq!(
            admin(a.admin, "PUT", &format!("/tenants/m-{i}"), Some(&body)).status,
            201
        );
    }
    // A change written to Redis behind every replica's back (no notification at all): the
    // revision poll notices it.
    let record = json!({ "revision": 6, "domains": [], "spec": { "id": "quiet", "plan": "basic", "status": "active" } });
    redis.command(&["HSET", "tg:tenants", "quiet", &record.to_string()]);
    redis.command(&["SET", "tg:tenants:revision", "6"]);
    b.signal(libc::SIGCONT);
    for id in ["m-0", "m-4", "quiet"] {
        eventually(&format!("B serves {id}"), async || {
            status(&b, id).await == 200
        })
        .await;
        eventually(&format!("A serves {id}"), async || {
            status(&a, id).await == 200
        })
        .await;
    }
}

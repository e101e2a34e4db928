//! Tenant resolution: every source, their agreement, host forms, path prefixes, tenant status.

use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::{Tollgate, Upstream, get};
use jsonwebtoken::Algorithm;

const ALL: &[&str] = &[
    "subdomain",
    "custom_domain",
    "header",
    "path_prefix",
    "claim",
];

async fn start(sources: &[&str]) -> (Upstream, Tollgate, Keys) {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, fixture::options(&keys, true, sources, &[]));
    (upstream, tollgate, keys)
}

async fn tenant_of(tollgate: &Tollgate, path: &str, headers: &[(&str, &str)]) -> String {
    let reply = get(tollgate.addr, path, headers).await;
    assert_eq!(reply.status, 200, "{path} {headers:?}: {:?}", reply.body);
    reply.upstream_header("x-tenant-id").unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_source_resolves_its_tenant() {
    let (_upstream, tollgate, keys) = start(ALL).await;
    assert_eq!(
        tenant_of(&tollgate, "/x", &[("host", "acme.app.test")]).await,
        "acme"
    );
    assert_eq!(
        tenant_of(&tollgate, "/x", &[("host", "acme.example.org")]).await,
        "acme"
    );
    assert_eq!(
        tenant_of(
            &tollgate,
            "/x",
            &[("host", "127.0.0.1"), ("x-tenant-id", "globex")]
        )
        .await,
        "globex"
    );
    assert_eq!(
        tenant_of(&tollgate, "/t/globex/x", &[("host", "127.0.0.1")]).await,
        "globex"
    );
    let token = sign(
        &keys,
        Algorithm::HS256,
        "hs",
        &claims("carol", "globex", &["user"]),
    );
    let auth = bearer(&token);
    assert_eq!(
        tenant_of(
            &tollgate,
            "/x",
            &[("host", "127.0.0.1"), ("authorization", &auth)]
        )
        .await,
        "globex"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosts_match_regardless_of_case_port_and_trailing_dot() {
    let (_upstream, tollgate, _keys) = start(ALL).await;
    for host in [
        "ACME.App.Test",
        "acme.app.test.",
        "acme.app.test:8443",
        "Acme.Example.Org.:80",
    ] {
        assert_eq!(
            tenant_of(&tollgate, "/x", &[("host", host)]).await,
            "acme",
            "{host}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_that_disagree_are_a_conflict_and_sources_that_agree_are_not() {
    let (_upstream, tollgate, _keys) = start(ALL).await;
    for (path, headers) in [
        (
            "/x",
            vec![("host", "acme.app.test"), ("x-tenant-id", "globex")],
        ),
        ("/t/globex/x", vec![("host", "acme.example.org")]),
        (
            "/t/acme/x",
            vec![("host", "127.0.0.1"), ("x-tenant-id", "globex")],
        ),
    ] {
        get(tollgate.addr, path, &headers)
            .await
            .assert_problem(400, "tenant-conflict");
    }
    let agreeing = [("host", "acme.app.test"), ("x-tenant-id", "acme")];
    assert_eq!(tenant_of(&tollgate, "/t/acme/x", &agreeing).await, "acme");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_claim_is_only_a_fallback_and_a_token_of_another_tenant_is_refused() {
    let (_upstream, tollgate, keys) = start(ALL).await;
    let globex_token = bearer(&sign(
        &keys,
        Algorithm::ES256,
        "es",
        &claims("carol", "globex", &["user"]),
    ));
    get(
        tollgate.addr,
        "/x",
        &[("host", "acme.app.test"), ("authorization", &globex_token)],
    )
    .await
    .assert_problem(403, "tenant-mismatch");
    // An operator may act on any tenant.
    let operator = bearer(&sign(
        &keys,
        Algorithm::ES256,
        "es",
        &claims("ops", "globex", &["super_admin"]),
    ));
    assert_eq!(
        tenant_of(
            &tollgate,
            "/x",
            &[("host", "acme.app.test"), ("authorization", &operator)]
        )
        .await,
        "acme"
    );
    // A token without a tenant claim is not a key to every tenant.
    let mut tenantless = claims("drifter", "x", &["user"]);
    tenantless.as_object_mut().unwrap().remove("tenant");
    let tenantless = bearer(&sign(&keys, Algorithm::ES256, "es", &tenantless));
    get(
        tollgate.addr,
        "/x",
        &[("host", "acme.app.test"), ("authorization", &tenantless)],
    )
    .await
    .assert_problem(403, "tenant-mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_path_prefix_is_stripped_unless_configured_otherwise() {
    let (_upstream, tollgate, _keys) = start(ALL).await;
    let reply = get(
        tollgate.addr,
        "/t/globex/api/v1?q=1",
        &[("host", "127.0.0.1")],
    )
    .await;
    assert_eq!(reply.json()["path"], "/api/v1");
    assert_eq!(reply.json()["query"], "q=1");
    let reply = get(tollgate.addr, "/t/globex", &[("host", "127.0.0.1")]).await;
    assert_eq!(reply.json()["path"], "/");

    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    let options = fixture::options(&keys, true, ALL, &[]).with("tenancy.strip_path_prefix", false);
    let keeping = Tollgate::start(upstream.addr, options);
    let reply = get(keeping.addr, "/t/globex/api/v1", &[("host", "127.0.0.1")]).await;
    assert_eq!(reply.json()["path"], "/t/globex/api/v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tenants_are_404_from_every_source() {
    let (upstream, tollgate, _keys) = start(ALL).await;
    for (path, headers) in [
        ("/x", vec![("host", "nobody.app.test")]),
        ("/x", vec![("host", "127.0.0.1"), ("x-tenant-id", "nobody")]),
        ("/t/nobody/x", vec![("host", "127.0.0.1")]),
        ("/x", vec![("host", "127.0.0.1")]),
        ("/x", vec![("host", "unknown.example")]),
    ] {
        get(tollgate.addr, path, &headers)
            .await
            .assert_problem(404, "unknown-tenant");
    }
    assert!(upstream.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspended_pending_archived_and_lapsed_trial_tenants_are_refused() {
    let (upstream, tollgate, _keys) = start(ALL).await;
    let host = |t: &str| format!("{t}.app.test");
    for (tenant, status, slug) in [
        ("initech", 403, "tenant-suspended"),
        ("soylent", 403, "tenant-pending"),
        ("oldco", 402, "subscription-inactive"),
        ("umbrella", 402, "subscription-inactive"),
    ] {
        get(tollgate.addr, "/x", &[("host", &host(tenant))])
            .await
            .assert_problem(status, slug);
    }
    assert!(upstream.seen().is_empty());
    assert_eq!(
        tenant_of(&tollgate, "/x", &[("host", &host("newco"))]).await,
        "newco",
        "a running trial is served"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_header_source_that_is_not_configured_is_ignored_and_stripped() {
    let (_upstream, tollgate, _keys) = start(&["subdomain", "custom_domain"]).await;
    let reply = get(
        tollgate.addr,
        "/x",
        &[("host", "acme.app.test"), ("x-tenant-id", "globex")],
    )
    .await;
    assert_eq!(
        reply.upstream_header("x-tenant-id").as_deref(),
        Some("acme")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_identity_headers_never_reach_the_upstream() {
    let (_upstream, tollgate, keys) = start(ALL).await;
    let spoofs = [
        ("x-tenant-plan", "enterprise"),
        ("x-tenant-features", "everything"),
        ("x-tenant-limit-max-users", "100000"),
        ("x-user-id", "admin"),
        ("x-user-roles", "super_admin"),
        ("x-user-scopes", "*"),
        ("x-user-mfa", "true"),
        ("x-auth-method", "jwt"),
        ("x-tollgate-decision", "allow"),
    ];
    let mut headers = vec![("host", "acme.app.test")];
    headers.extend(spoofs);
    let reply = get(tollgate.addr, "/x", &headers).await;
    assert_eq!(
        reply.upstream_header("x-tenant-plan").as_deref(),
        Some("professional")
    );
    assert_eq!(
        reply.upstream_header("x-tenant-features").as_deref(),
        Some("advanced_analytics,basic_analytics")
    );
    assert_eq!(
        reply.upstream_header("x-tenant-limit-max-users").as_deref(),
        Some("75")
    );
    assert_eq!(
        reply
            .upstream_header("x-tenant-limit-max-agents")
            .as_deref(),
        Some("25")
    );
    assert_eq!(
        reply.upstream_header("x-auth-method").as_deref(),
        Some("anonymous")
    );
    for name in [
        "x-user-id",
        "x-user-roles",
        "x-user-scopes",
        "x-user-mfa",
        "x-tollgate-decision",
    ] {
        assert_eq!(reply.upstream_header(name), None, "{name} was forwarded");
    }

    let token = bearer(&sign(
        &keys,
        Algorithm::RS256,
        "rs",
        &claims("alice", "acme", &["viewer"]),
    ));
    let mut headers = vec![("host", "acme.app.test"), ("authorization", token.as_str())];
    headers.extend(spoofs);
    let reply = get(tollgate.addr, "/x", &headers).await;
    assert_eq!(reply.upstream_header("x-user-id").as_deref(), Some("alice"));
    assert_eq!(
        reply.upstream_header("x-user-roles").as_deref(),
        Some("viewer")
    );
    assert_eq!(
        reply.upstream_header("x-user-mfa").as_deref(),
        Some("false")
    );
    assert_eq!(reply.upstream_header("x-tollgate-decision"), None);
}

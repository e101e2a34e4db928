//! What the upstream receives, and what the client gets back.

use crate::support::{Options, Tollgate, Upstream, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_and_connection_listed_headers_are_removed_both_ways() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let reply = get(
        tollgate.addr,
        "/echo",
        &[
            ("connection", "keep-alive, x-client-hop"),
            ("x-client-hop", "secret"),
            ("keep-alive", "timeout=5"),
            ("proxy-authorization", "Basic Zm9vOmJhcg=="),
            ("te", "gzip"),
            ("x-end-to-end", "kept"),
        ],
    )
    .await;
    assert_eq!(reply.status, 200);
    for name in [
        "x-client-hop",
        "keep-alive",
        "proxy-authorization",
        "te",
        "connection",
    ] {
        assert_eq!(
            reply.upstream_header(name),
            None,
            "{name} reached the upstream"
        );
    }
    assert_eq!(
        reply.upstream_header("x-end-to-end").as_deref(),
        Some("kept")
    );

    let reply = get(tollgate.addr, "/hop", &[]).await;
    assert_eq!(reply.status, 200);
    assert!(reply.headers.get("x-upstream-hop").is_none());
    assert!(reply.headers.get("keep-alive").is_none());
    assert_eq!(reply.headers["x-end-to-end"], "kept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_forwarding_headers_from_an_untrusted_peer_are_replaced() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let reply = get(
        tollgate.addr,
        "/echo",
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-forwarded-host", "evil.example"),
            ("forwarded", "for=6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(
        reply.upstream_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
    assert_eq!(
        reply.upstream_header("x-forwarded-proto").as_deref(),
        Some("http")
    );
    assert_eq!(
        reply.upstream_header("x-forwarded-host").as_deref(),
        Some("tollgate.test")
    );
    assert_eq!(reply.upstream_header("forwarded"), None);
    assert_eq!(reply.upstream_header("x-real-ip"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_from_a_trusted_proxy_are_appended_to() {
    let upstream = Upstream::start().await;
    let options = Options {
        forwarding: "trusted_proxies: [127.0.0.0/8]".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(
        tollgate.addr,
        "/echo",
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
    )
    .await;
    assert_eq!(
        reply.upstream_header("x-forwarded-for").as_deref(),
        Some("203.0.113.9, 127.0.0.1")
    );
    assert_eq!(
        reply.upstream_header("x-forwarded-proto").as_deref(),
        Some("https")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clients_request_id_is_replaced_and_a_trusted_proxys_is_kept() {
    let upstream = Upstream::start().await;
    // An untrusted client cannot choose the id its records carry.
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let reply = get(tollgate.addr, "/echo", &[("x-request-id", "trace-42")]).await;
    let generated = reply.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(reply.upstream_header("x-request-id"), Some(generated));

    let options = Options {
        forwarding: "trusted_proxies: [127.0.0.0/8]".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(tollgate.addr, "/echo", &[("x-request-id", "trace-42")]).await;
    assert_eq!(
        reply.upstream_header("x-request-id").as_deref(),
        Some("trace-42")
    );
    assert_eq!(reply.headers["x-request-id"], "trace-42");
    let reply = get(
        tollgate.addr,
        "/echo",
        &[("x-request-id", "not ok; <script>")],
    )
    .await;
    let generated = reply.headers["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(generated.len(), 36, "a UUID: {generated}");
    assert_eq!(reply.upstream_header("x-request-id"), Some(generated));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_is_preserved_by_default_and_replaced_when_configured() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let reply = get(tollgate.addr, "/echo", &[]).await;
    assert_eq!(
        reply.upstream_header("host").as_deref(),
        Some("tollgate.test")
    );

    let options = Options {
        forwarding: "preserve_host: false".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(tollgate.addr, "/echo", &[]).await;
    assert_eq!(
        reply.upstream_header("host"),
        Some(upstream.addr.to_string())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_receives_the_canonical_path_and_the_query_verbatim() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for (sent, received) in [
        ("/public/../admin", "/admin"),
        ("/public/%2e%2e/admin", "/admin"),
        ("//admin", "/admin"),
        ("/admin/.", "/admin/"),
        ("/%61pi/x", "/api/x"),
    ] {
        let reply = get(tollgate.addr, &format!("{sent}?q=%2F.."), &[]).await;
        assert_eq!(reply.json()["path"], received, "{sent}");
        assert_eq!(reply.json()["query"], "q=%2F..", "{sent}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ambiguous_paths_are_refused_before_reaching_the_upstream() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for path in [
        "/a%2Fb",
        "/a%5cb",
        "/..",
        "/x/../../etc/passwd",
        "/..;/admin",
        "/a%00",
    ] {
        get(tollgate.addr, path, &[])
            .await
            .assert_problem(400, "ambiguous-path");
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_an_identity_section_credentials_are_the_applications_and_pass_untouched() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for (name, value) in [
        ("authorization", "Bearer the-applications-own-token"),
        ("authorization", "Basic Zm9vOmJhcg=="),
    ] {
        let reply = get(tollgate.addr, "/echo", &[(name, value)]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.upstream_header(name).as_deref(), Some(value));
        assert_eq!(
            reply.upstream_header("x-auth-method").as_deref(),
            Some("anonymous")
        );
    }
}

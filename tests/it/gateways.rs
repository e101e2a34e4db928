//! What every gateway in deploy/ (nginx, Envoy) must do in front of Tollgate's authorizer, checked
//! the same way for each.

use std::net::SocketAddr;

use crate::authorizer::{Setup, request};
use crate::support::client::Reply;

/// The viewer's allowed request reaches the upstream with the trusted identity (spoofed values
/// replaced), and refusals (401, 403, 404, 402, 429) reach the client exactly as Tollgate
/// answered them. Two requests reach the upstream. Returns the viewer's bearer token.
pub async fn allows_and_refuses_like_tollgate(gateway: SocketAddr, s: &Setup) -> String {
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let allowed = request(
        gateway,
        "GET",
        "/api/v1/agents/7",
        &[
            ("host", "acme.app.test"),
            ("authorization", &viewer),
            ("x-user-roles", "super_admin"),
            ("x-tenant-id", "globex"),
        ],
    )
    .await;
    assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    let upstream = |name| allowed.upstream_header(name);
    assert_eq!(upstream("x-tenant-id").as_deref(), Some("acme"));
    assert_eq!(upstream("x-user-id").as_deref(), Some("alice"));
    assert_eq!(
        upstream("x-user-roles").as_deref(),
        Some("viewer"),
        "spoofed roles replaced"
    );
    assert_eq!(
        upstream("x-request-id"),
        allowed
            .headers
            .get("x-request-id")
            .map(|v| v.to_str().unwrap().to_string())
    );

    let acme = [("host", "acme.app.test")];
    let unauthenticated = request(gateway, "GET", "/api/v1/agents", &acme).await;
    unauthenticated.assert_problem(401, "unauthenticated");
    assert_eq!(
        unauthenticated.headers["www-authenticate"],
        "Bearer realm=\"tollgate\""
    );
    let viewing = [
        ("host", "acme.app.test"),
        ("authorization", viewer.as_str()),
    ];
    request(gateway, "DELETE", "/api/v1/agents/7", &viewing)
        .await
        .assert_problem(403, "forbidden");
    let nobody = [("host", "nobody.app.test")];
    request(gateway, "GET", "/api/v1/agents", &nobody)
        .await
        .assert_problem(404, "unknown-tenant");
    let umbrella = [("host", "umbrella.app.test")];
    request(gateway, "GET", "/public/x", &umbrella)
        .await
        .assert_problem(402, "subscription-inactive");

    let carol = s.token("carol", "globex", &["user"], false);
    let globex = [
        ("host", "globex.app.test"),
        ("authorization", carol.as_str()),
    ];
    let first = request(gateway, "GET", "/api/v1/agents", &globex).await;
    assert_eq!(first.status, 200);
    assert!(
        first.headers.contains_key("ratelimit-policy"),
        "the client learns its limits: {:?}",
        first.headers
    );
    let limited = request(gateway, "GET", "/api/v1/agents", &globex).await;
    limited.assert_problem(429, "rate-limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert!(
        limited.headers.contains_key("ratelimit")
            && limited.headers.contains_key("ratelimit-policy")
    );
    viewer
}

/// The gateway's answer when Tollgate cannot be reached: 503, a problem, nothing forwarded.
pub async fn closed_when_tollgate_is_unreachable(gateway: SocketAddr, s: &Setup) {
    let refused: Reply =
        request(gateway, "GET", "/public/docs", &[("host", "acme.app.test")]).await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.headers["content-type"], "application/problem+json");
    assert_eq!(
        refused.json()["type"],
        "https://tollgate.dev/problems/authorizer-unavailable"
    );
    assert!(s.upstream.seen().is_empty(), "closed, never open");
}

/// Through the gateway, an API key (in its header or as a bearer token) never reaches the
/// application, and neither does any header only Tollgate sets, an override or a client
/// address claim: each is removed, or the request is refused.
pub async fn keeps_secrets_and_reserved_headers_from_the_application(
    gateway: SocketAddr,
    s: &Setup,
) {
    let key = s.api_key("acme", "viewer").await;
    let as_bearer = format!("Bearer {key}");
    for auth in [
        ("x-api-key", key.as_str()),
        ("authorization", as_bearer.as_str()),
    ] {
        let reply = request(
            gateway,
            "GET",
            "/api/v1/agents/7",
            &[("host", "acme.app.test"), auth],
        )
        .await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(
            !String::from_utf8_lossy(&reply.body).contains(&key),
            "{:?}",
            reply.body
        );
        assert_eq!(
            reply.upstream_header("x-auth-method").as_deref(),
            Some("api_key")
        );
    }
    for forged in [
        ("x-user-email", "boss@example.com"),
        ("x-tenant-status", "active"),
        ("x-tollgate-decision", "allow"),
        ("x-http-method-override", "DELETE"),
        ("x-original-url", "/admin"),
        ("x-forwarded-prefix", "/admin"),
        ("x-real-ip", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
    ] {
        let reply = request(
            gateway,
            "GET",
            "/public/docs",
            &[("host", "acme.app.test"), forged],
        )
        .await;
        match reply.status.as_u16() {
            400 => reply.assert_problem(400, "malformed-request"),
            200 => assert_eq!(
                reply.upstream_header(forged.0),
                None,
                "{forged:?} reached the application"
            ),
            other => panic!("{forged:?}: {other} {:?}", reply.body),
        }
    }
}

/// Every client-sent identity header is gone, not only those Tollgate overwrites; the query
/// travels unchanged; path tricks are judged on the canonical path, which is the one forwarded.
/// `extra` headers go with the allowed request, whose reply comes back.
pub async fn forwards_what_was_judged(
    gateway: SocketAddr,
    viewer: &str,
    extra: &[(&str, &str)],
) -> Reply {
    let mut headers = vec![
        ("host", "acme.app.test"),
        ("x-user-id", "root"),
        ("x-tollgate-decision", "allow"),
    ];
    headers.extend_from_slice(extra);
    let public = request(gateway, "GET", "/public/docs?page=2", &headers).await;
    assert_eq!(public.status, 200, "{:?}", public.body);
    assert_eq!(public.json()["query"], "page=2");
    assert_eq!(public.upstream_header("x-user-id"), None);
    assert_eq!(public.upstream_header("x-tollgate-decision"), None);
    assert_eq!(
        public.upstream_header("x-auth-method").as_deref(),
        Some("anonymous")
    );
    let viewing = [("host", "acme.app.test"), ("authorization", viewer)];
    for trick in ["/public/../admin", "/public/%2e%2e/admin", "//admin"] {
        request(gateway, "GET", trick, &viewing)
            .await
            .assert_problem(403, "forbidden");
    }
    let acme = [("host", "acme.app.test")];
    request(gateway, "GET", "/public/a%2Fb", &acme)
        .await
        .assert_problem(400, "ambiguous-path");
    public
}

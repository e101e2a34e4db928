//! Authorizer mode under attack: each listener reads only its own gateway's hints, once; a
//! question carrying what the gateway would forward and Tollgate cannot remove is refused; each
//! gateway is told, in its own terms, that an API key stays behind and a token travels on.

use std::net::SocketAddr;

use crate::authorizer::{Setup, request, start};
use crate::support::client::Reply;

/// What Traefik's forwardAuth sends: the client's own headers, plus its hints (overwritten).
async fn traefik_asks(
    s: &Setup,
    method: &str,
    uri: &str,
    client_headers: &[(&str, &str)],
) -> Reply {
    let mut headers: Vec<(&str, &str)> = client_headers.to_vec();
    headers.retain(|(name, _)| !name.eq_ignore_ascii_case("host"));
    headers.extend([
        ("host", "tollgate-authorizer:8084"),
        ("x-forwarded-method", method),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "acme.app.test"),
        ("x-forwarded-uri", uri),
        ("x-forwarded-for", "203.0.113.9"),
    ]);
    request(s.traefik, "GET", "/", &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_traefik_a_clients_nginx_hints_never_choose_what_is_judged() {
    let s = start().await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    // The viewer's DELETE dressed up as a GET with nginx's hints.
    traefik_asks(
        &s,
        "DELETE",
        "/api/v1/agents/7",
        &[
            ("authorization", &viewer),
            ("x-original-uri", "/api/v1/agents/7"),
            ("x-original-method", "GET"),
        ],
    )
    .await
    .assert_problem(400, "malformed-request");
    // Anonymously, a harmless original URI for anything.
    traefik_asks(
        &s,
        "DELETE",
        "/api/v1/agents/7",
        &[("x-original-uri", "/public/harmless")],
    )
    .await
    .assert_problem(400, "malformed-request");
    // Without the trick the DELETE is judged as what it is.
    traefik_asks(
        &s,
        "DELETE",
        "/api/v1/agents/7",
        &[("authorization", &viewer)],
    )
    .await
    .assert_problem(403, "forbidden");
    let allowed = traefik_asks(&s, "GET", "/api/v1/agents/7", &[("authorization", &viewer)]).await;
    assert_eq!(allowed.status, 200, "{:?}", allowed.body);
    assert_eq!(
        allowed.headers["authorization"],
        viewer.as_str(),
        "the token travels on"
    );
}

/// A question to one authorizer listener: its address, the path and the headers.
type Question<'a> = (SocketAddr, &'a str, Vec<(&'a str, &'a str)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_listener_reads_only_its_gateways_hints_once() {
    let s = start().await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let auth = ("authorization", viewer.as_str());
    let host = ("host", "acme.app.test");
    let cases: Vec<Question> = vec![
        // nginx: Traefik's hints, a hint twice, a hint missing.
        (
            s.nginx,
            "/auth",
            vec![
                host,
                auth,
                ("x-original-uri", "/api/v1/agents/7"),
                ("x-original-method", "GET"),
                ("x-forwarded-uri", "/public/x"),
            ],
        ),
        (
            s.nginx,
            "/auth",
            vec![
                host,
                auth,
                ("x-original-uri", "/api/v1/agents/7"),
                ("x-original-uri", "/public/x"),
                ("x-original-method", "GET"),
            ],
        ),
        (
            s.nginx,
            "/auth",
            vec![
                host,
                auth,
                ("x-original-method", "GET"),
                ("x-original-method", "DELETE"),
                ("x-original-uri", "/api/v1/agents/7"),
            ],
        ),
        (
            s.nginx,
            "/auth",
            vec![host, auth, ("x-original-uri", "/api/v1/agents/7")],
        ),
        // Envoy: any hint header at all.
        (
            s.envoy,
            "/ext_authz/api/v1/agents/7",
            vec![host, auth, ("x-original-uri", "/public/x")],
        ),
        (
            s.envoy,
            "/ext_authz/api/v1/agents/7",
            vec![host, auth, ("x-forwarded-method", "GET")],
        ),
        (s.envoy, "/ext_authzx/api/v1/agents/7", vec![host, auth]),
        // Traefik: its own hints twice, or an unusable host.
        (
            s.traefik,
            "/",
            vec![
                auth,
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/api/v1/agents/7"),
                ("x-forwarded-uri", "/public/x"),
                ("x-forwarded-host", "acme.app.test"),
            ],
        ),
        (
            s.traefik,
            "/",
            vec![
                auth,
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/api/v1/agents/7"),
                ("x-forwarded-host", "acme.app.test, globex.app.test"),
            ],
        ),
        (
            s.traefik,
            "/",
            vec![
                auth,
                ("x-forwarded-method", "GET"),
                ("x-forwarded-uri", "/api/v1/agents/7"),
            ],
        ),
    ];
    for (addr, path, headers) in cases {
        request(addr, "GET", path, &headers)
            .await
            .assert_problem(400, "malformed-request");
    }
    // The same three gateways, asked properly, agree.
    let nginx = request(
        s.nginx,
        "GET",
        "/auth",
        &[
            host,
            auth,
            ("x-original-uri", "/api/v1/agents/7"),
            ("x-original-method", "GET"),
        ],
    )
    .await;
    let envoy = request(s.envoy, "GET", "/ext_authz/api/v1/agents/7", &[host, auth]).await;
    let traefik = traefik_asks(&s, "GET", "/api/v1/agents/7", &[auth]).await;
    for reply in [nginx, envoy, traefik] {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(reply.headers["x-user-id"], "alice");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_only_tollgate_sets_and_unjudged_upgrades_are_refused_in_the_question() {
    let s = start().await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let auth = ("authorization", viewer.as_str());
    for extra in [
        ("x-user-email", "boss@example.com"),
        ("x-tenant-status", "active"),
        ("x-auth-request-user", "root"),
        ("x-tollgate-decision", "allow"),
        ("x_user_id", "root"),
        ("x-http-method-override", "DELETE"),
        ("x-original-url", "/admin"),
        ("upgrade", "h2c"),
        ("upgrade", "websocket"),
    ] {
        traefik_asks(&s, "GET", "/api/v1/agents/7", &[auth, extra])
            .await
            .assert_problem(400, "malformed-request");
    }
    assert_eq!(
        traefik_asks(&s, "GET", "/api/v1/agents/7", &[auth])
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gateway_is_told_that_an_api_key_stays_behind_and_a_token_travels_on() {
    let s = start().await;
    let key = s.api_key("acme", "viewer").await;
    let bearer_key = format!("Bearer {key}");
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let host = ("host", "acme.app.test");
    let nginx = |auth: (&'static str, String)| {
        let addr = s.nginx;
        async move {
            request(
                addr,
                "GET",
                "/auth",
                &[
                    host,
                    (auth.0, &auth.1),
                    ("x-original-uri", "/api/v1/agents/7"),
                    ("x-original-method", "GET"),
                ],
            )
            .await
        }
    };
    let envoy = |auth: (&'static str, String)| {
        let addr = s.envoy;
        async move {
            request(
                addr,
                "GET",
                "/ext_authz/api/v1/agents/7",
                &[host, (auth.0, &auth.1)],
            )
            .await
        }
    };
    for auth in [
        ("x-api-key", key.clone()),
        ("authorization", bearer_key.clone()),
    ] {
        let reply = nginx(auth.clone()).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(!reply.headers.contains_key("x-tollgate-authorization"));
        let reply = traefik_asks(&s, "GET", "/api/v1/agents/7", &[(auth.0, &auth.1)]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(!reply.headers.contains_key("authorization"));
        let reply = envoy(auth).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let remove = reply.headers["x-envoy-auth-headers-to-remove"]
            .to_str()
            .unwrap();
        assert_eq!(remove, "authorization, x-api-key");
    }
    let reply = nginx(("authorization", viewer.clone())).await;
    assert_eq!(reply.headers["x-tollgate-authorization"], viewer.as_str());
    let reply = envoy(("authorization", viewer.clone())).await;
    assert_eq!(reply.headers["x-envoy-auth-headers-to-remove"], "x-api-key");
}

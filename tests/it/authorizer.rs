//! Authorizer mode: nginx `auth_request`, Traefik `forwardAuth` and Envoy `ext_authz` get the same
//! decisions as proxy mode, from the same pipeline.

use std::net::SocketAddr;

use jsonwebtoken::Algorithm;
use serde_json::json;

use crate::support::client::Reply;
use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::{Tollgate, Upstream, collect, send};

pub struct Setup {
    pub upstream: Upstream,
    pub tollgate: Tollgate,
    /// The authorizer listeners, one per gateway.
    pub nginx: SocketAddr,
    pub envoy: SocketAddr,
    pub traefik: SocketAddr,
    /// Envoy's gRPC ext_authz.
    pub grpc: SocketAddr,
    keys: Keys,
}

pub async fn start() -> Setup {
    start_with("").await
}

/// The full stack with one authorizer listener per gateway; `extra` is more top-level YAML.
pub async fn start_with(extra: &str) -> Setup {
    start_limited(extra, "").await
}

/// Like [`start_with`], with `server.limits` lines.
pub async fn start_limited(extra: &str, limits: &str) -> Setup {
    let keys = Keys::generate();
    let upstream = Upstream::start().await;
    // Port 0 each: Tollgate reports what it bound, in this order.
    let mut options = fixture::full_stack(&keys, extra).with(
        "authorizer",
        json!([
            { "listen": "127.0.0.1:0", "gateway": "nginx" },
            { "listen": "127.0.0.1:0", "gateway": "envoy", "envoy_path_prefix": "/ext_authz" },
            { "listen": "127.0.0.1:0", "gateway": "traefik" },
            { "listen": "127.0.0.1:0", "gateway": "envoy-grpc" },
        ]),
    );
    options.limits = limits.into();
    let tollgate = Tollgate::start(upstream.addr, options);
    let [nginx, envoy, traefik, grpc] = tollgate.authorizers[..] else {
        panic!("four authorizer listeners: {:?}", tollgate.authorizers);
    };
    Setup {
        upstream,
        tollgate,
        nginx,
        envoy,
        traefik,
        grpc,
        keys,
    }
}

impl Setup {
    pub fn token(&self, sub: &str, tenant: &str, roles: &[&str], mfa: bool) -> String {
        let mut body = claims(sub, tenant, roles);
        body["mfa"] = mfa.into();
        bearer(&sign(&self.keys, Algorithm::HS256, "hs", &body))
    }
}

pub async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    collect(
        send(
            addr,
            builder
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .unwrap(),
        )
        .await,
    )
    .await
}

/// The same request asked the nginx way.
async fn nginx(s: &Setup, method: &str, host: &str, path: &str, auth: Option<&str>) -> Reply {
    let mut headers = vec![
        ("host", host),
        ("x-original-uri", path),
        ("x-original-method", method),
    ];
    if let Some(auth) = auth {
        headers.push(("authorization", auth));
    }
    request(s.nginx, "GET", "/auth", &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proxy_and_authorizer_modes_agree_on_the_same_requests() {
    let s = start().await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let admin = s.token("bob", "acme", &["tenant_admin"], true);
    let cases: Vec<(&str, &str, &str, Option<&str>)> = vec![
        ("GET", "acme.app.test", "/api/v1/agents/7", Some(&viewer)),
        ("DELETE", "acme.app.test", "/api/v1/agents/7", Some(&viewer)),
        ("DELETE", "acme.app.test", "/api/v1/agents/7", Some(&admin)),
        ("GET", "acme.app.test", "/api/v1/agents", None),
        ("GET", "acme.app.test", "/nowhere", Some(&viewer)),
        ("GET", "nobody.app.test", "/api/v1/agents", None),
        ("GET", "initech.app.test", "/public/x", None),
        ("GET", "umbrella.app.test", "/public/x", None),
        ("GET", "acme.app.test", "/public/../admin", Some(&viewer)),
        ("GET", "acme.app.test", "/public/%2e%2e/admin", Some(&admin)),
        ("GET", "acme.app.test", "/a%2Fb", Some(&viewer)),
        ("GET", "globex.app.test", "/public/x", Some(&viewer)),
    ];
    for (method, host, path, auth) in cases {
        let mut headers = vec![("host", host)];
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let proxied = request(s.tollgate.addr, method, path, &headers).await;
        let decided = nginx(&s, method, host, path, auth).await;
        assert_eq!(
            decided.status, proxied.status,
            "{method} {host}{path}: {:?}",
            decided.body
        );
        if proxied.status != 200 {
            assert_eq!(
                decided.json()["type"],
                proxied.json()["type"],
                "{method} {host}{path}"
            );
            assert_eq!(decided.headers["content-type"], "application/problem+json");
        }
        if proxied.status == 401 {
            assert_eq!(
                decided.headers["www-authenticate"],
                proxied.headers["www-authenticate"]
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_allowed_request_gets_the_trusted_identity_headers_to_copy_upstream() {
    let s = start().await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let reply = nginx(
        &s,
        "GET",
        "acme.app.test",
        "/api/v1/agents/7",
        Some(&viewer),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.headers["x-tenant-id"], "acme");
    assert_eq!(reply.headers["x-tenant-plan"], "professional");
    assert_eq!(reply.headers["x-user-id"], "alice");
    assert_eq!(reply.headers["x-user-roles"], "viewer");
    assert!(reply.headers.contains_key("x-request-id"));
    assert!(
        s.upstream.seen().is_empty(),
        "the authorizer forwards nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traefik_and_envoy_header_sets_are_decided_the_same_way() {
    let s = start().await;
    let viewer = s.token("alice", "acme", &["viewer"], false);
    let traefik = |method: &'static str, uri: &'static str| {
        let viewer = viewer.clone();
        let addr = s.traefik;
        async move {
            let headers = [
                ("host", "tollgate-authorizer"),
                ("x-forwarded-method", method),
                ("x-forwarded-uri", uri),
                ("x-forwarded-host", "acme.app.test"),
                ("x-forwarded-proto", "https"),
                ("authorization", viewer.as_str()),
            ];
            request(addr, "GET", "/", &headers).await
        }
    };
    assert_eq!(traefik("GET", "/api/v1/agents/7").await.status, 200);
    traefik("DELETE", "/api/v1/agents/7")
        .await
        .assert_problem(403, "forbidden");
    traefik("GET", "/public/../admin")
        .await
        .assert_problem(403, "forbidden");

    let envoy = |method: &'static str, path: &'static str| {
        let viewer = viewer.clone();
        let addr = s.envoy;
        async move {
            request(
                addr,
                method,
                path,
                &[
                    ("host", "acme.app.test"),
                    ("authorization", viewer.as_str()),
                ],
            )
            .await
        }
    };
    let allowed = envoy("GET", "/ext_authz/api/v1/agents/7").await;
    assert_eq!(allowed.status, 200);
    assert_eq!(allowed.headers["x-user-id"], "alice");
    envoy("DELETE", "/ext_authz/api/v1/agents/7")
        .await
        .assert_problem(403, "forbidden");
    envoy("GET", "/ext_authz/a%2Fb")
        .await
        .assert_problem(400, "ambiguous-path");

    // A request that names no original request.
    request(s.envoy, "GET", "/whatever", &[("host", "acme.app.test")])
        .await
        .assert_problem(400, "malformed-request");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_their_headers_in_authorizer_mode() {
    let s = start().await;
    let carol = s.token("carol", "globex", &["user"], false);
    assert_eq!(
        nginx(&s, "GET", "globex.app.test", "/api/v1/agents", Some(&carol))
            .await
            .status,
        200
    );
    let limited = nginx(&s, "GET", "globex.app.test", "/api/v1/agents", Some(&carol)).await;
    limited.assert_problem(429, "rate-limited");
    assert!(limited.headers.contains_key("retry-after"));
    assert!(
        limited.headers.contains_key("ratelimit-policy")
            && limited.headers.contains_key("ratelimit")
    );
}

impl Setup {
    /// A new API key of `tenant` with `role`, once the running Tollgate accepts it.
    pub async fn api_key(&self, tenant: &str, role: &str) -> String {
        let key = crate::support::tollgate::create_key(&self.tollgate, tenant, role);
        let addr = self.tollgate.addr;
        let host = format!("{tenant}.app.test");
        crate::support::eventually("the new key is accepted", async || {
            request(
                addr,
                "GET",
                "/api/v1/agents",
                &[("host", &host), ("x-api-key", &key)],
            )
            .await
            .status
                != 401
        })
        .await;
        key
    }
}

/// Authorizer mode takes the same way in as proxy mode: the in-flight limit and the header
/// limits answer 503 and 431 there too, as problems the gateway can pass on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_limits_answer_431_and_503_in_authorizer_mode() {
    let s = start_limited("", "max_headers: 20\nmax_in_flight: 1").await;
    let names: Vec<String> = (0..30).map(|i| format!("x-h{i}")).collect();
    let mut many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    many.extend([
        ("host", "acme.app.test"),
        ("x-original-uri", "/public/x"),
        ("x-original-method", "GET"),
    ]);
    let reply = request(s.nginx, "GET", "/auth", &many).await;
    reply.assert_problem(431, "headers-too-large");
    assert!(reply.headers.contains_key("x-tollgate-problem"));
    assert!(reply.headers.contains_key("x-request-id"));

    // A slow proxied request holds the only permit; the gateway's question is refused meanwhile.
    let addr = s.tollgate.addr;
    let slow = tokio::spawn(async move {
        crate::support::get(addr, "/public/slow/1500", &[("host", "acme.app.test")]).await
    });
    while s.upstream.seen().is_empty() {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let busy = nginx(&s, "GET", "acme.app.test", "/public/x", None).await;
    busy.assert_problem(503, "overloaded");
    assert_eq!(busy.headers["retry-after"], "1");
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(
        nginx(&s, "GET", "acme.app.test", "/public/x", None)
            .await
            .status,
        200,
        "capacity returns"
    );
}

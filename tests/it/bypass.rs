//! Attacks on the promise that the request judged is the request the upstream receives, in
//! proxy mode, against an upstream that records the exact bytes it got (in the style of sozu's
//! `h1_security_tests.rs`). Each attack is followed by a check that the proxy still serves.

use std::time::Duration;

use jsonwebtoken::Algorithm;

use crate::support::fixture::{self, Keys, bearer, claims, sign};
use crate::support::recorder::{Answer, Recorder};
use crate::support::{Options, Tollgate, get, raw};

pub const ACME: (&str, &str) = ("host", "acme.app.test");

pub struct Stack {
    pub recorder: Recorder,
    pub tollgate: Tollgate,
    pub keys: Keys,
}

pub async fn stack(answer: Answer, extra: &str) -> Stack {
    stack_with_routes(answer, extra, "").await
}

/// The full stack with more routes (lines of `routes.yaml`).
async fn stack_with_routes(answer: Answer, extra: &str, routes: &str) -> Stack {
    stack_with(answer, |options| {
        options.extra.push_str(extra);
        for (name, text) in options.files.iter_mut() {
            if name == "routes.yaml" {
                text.push_str(routes);
            }
        }
    })
    .await
}

/// The full stack, its options changed by `change` before it starts.
pub async fn stack_with(answer: Answer, change: impl FnOnce(&mut Options)) -> Stack {
    let keys = Keys::generate();
    let recorder = Recorder::start(answer).await;
    let mut options = fixture::full_stack(&keys, "");
    change(&mut options);
    let tollgate = Tollgate::start(recorder.addr, options);
    Stack {
        recorder,
        tollgate,
        keys,
    }
}

impl Stack {
    pub fn token(&self, sub: &str, tenant: &str, roles: &[&str]) -> String {
        bearer(&sign(
            &self.keys,
            Algorithm::HS256,
            "hs",
            &claims(sub, tenant, roles),
        ))
    }

    /// A harmless request still gets through after an attack.
    pub async fn still_serves(&self) {
        let reply = get(self.tollgate.addr, "/public/still", &[ACME]).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert!(self.recorder.last().starts_with("get /public/still "));
    }

    async fn raw(&self, request: &str) -> String {
        raw(
            self.tollgate.addr,
            request.as_bytes(),
            Duration::from_secs(2),
        )
        .await
        .text
    }
}

/// The header block of a recorded request (request line and headers, lower-cased).
fn head(request: &str) -> &str {
    request.split("\r\n\r\n").next().unwrap_or_default()
}

pub fn has_header(request: &str, name: &str) -> bool {
    head(request)
        .lines()
        .skip(1)
        .any(|l| l.split(':').next().is_some_and(|n| n.trim() == name))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_h2c_is_removed_and_an_unasked_101_opens_no_tunnel() {
    let s = stack(Answer::Switch("h2c"), "").await;
    for token in ["h2c", "websocket", "tls/1.3", "foo"] {
        let request = format!(
            "GET /public/x HTTP/1.1\r\nHost: acme.app.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: {token}\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\nDELETE /api/v1/agents/7 HTTP/1.1\r\nHost: acme.app.test\r\n\r\n"
        );
        let answer = s.raw(&request).await;
        // The upstream answered 101 although nothing asked it to: no tunnel, a 502.
        assert!(answer.starts_with("HTTP/1.1 502"), "{token}: {answer}");
        // The pipelined DELETE was judged (no credentials), not tunnelled.
        assert!(answer.contains("HTTP/1.1 401"), "{token}: {answer}");
        let seen = s.recorder.all();
        assert!(
            !has_header(&s.recorder.last(), "upgrade"),
            "{token}: {seen}"
        );
        assert!(!has_header(&s.recorder.last(), "http2-settings"), "{token}");
        assert!(!seen.contains("delete /api"), "{token}: {seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_on_a_route_without_the_flag_is_forwarded_as_a_plain_request() {
    let s = stack(Answer::Ok, "").await;
    let answer = s
        .raw("GET /public/x HTTP/1.1\r\nHost: acme.app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = s.recorder.last();
    assert!(
        !has_header(&seen, "upgrade") && !has_header(&seen, "connection"),
        "{seen}"
    );
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_is_not_one_valid_authority_is_refused_never_resolved_elsewhere() {
    let s = stack(Answer::Ok, "").await;
    let carol = s.token("carol", "globex", &["user"]);
    for host in [
        "acme.app.test, globex.app.test",
        "acme.app.test:abc",
        "acme.app.test\u{ff}",
        "acme.app.test:",
        "user@acme.app.test",
    ] {
        let answer = s
            .raw(&format!(
                "GET /api/v1/agents HTTP/1.1\r\nHost: {host}\r\nAuthorization: {carol}\r\nConnection: close\r\n\r\n"
            ))
            .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{host:?}: {answer}");
        assert!(answer.contains("malformed-request"), "{host:?}: {answer}");
    }
    // HTTP/1.1 without Host.
    let answer = s
        .raw(&format!(
            "GET /api/v1/agents HTTP/1.1\r\nAuthorization: {carol}\r\nConnection: close\r\n\r\n"
        ))
        .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        s.recorder.requests().is_empty(),
        "{:?}",
        s.recorder.requests()
    );
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_overrides_underscores_and_untrusted_forwarding_headers_never_reach_the_upstream()
{
    let s = stack(Answer::Ok, "").await;
    let alice = s.token("alice", "acme", &["viewer"]);
    let sent = [
        ACME,
        ("authorization", alice.as_str()),
        ("x-user-email", "boss@example.com"),
        ("x-user-groups", "admins"),
        ("x-tenant-name", "globex"),
        ("x-tenant-status", "active"),
        ("x-auth-request-user", "root"),
        ("x-tollgate-decision", "allow"),
        ("x_user_id", "root"),
        ("x_tenant_id", "globex"),
        ("x-http-method-override", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-original-url", "/admin"),
        ("x-rewrite-url", "/admin"),
        ("x-original-method", "DELETE"),
        ("x-forwarded-prefix", "/admin"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-ssl", "on"),
        ("x-forwarded-server", "evil"),
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6;proto=https"),
        ("x-real-ip", "6.6.6.6"),
    ];
    let reply = get(s.tollgate.addr, "/api/v1/agents/7", &sent).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    let seen = s.recorder.last();
    for (name, _) in &sent[2..] {
        if *name == "x-forwarded-for" {
            continue;
        }
        assert!(
            !has_header(&seen, name),
            "{name} reached the upstream: {seen}"
        );
    }
    assert!(!seen.contains("6.6.6.6"), "{seen}");
    assert!(
        seen.contains("\r\nx-forwarded-for: 127.0.0.1\r\n"),
        "{seen}"
    );
    assert!(seen.contains("\r\nx-user-id: alice\r\n"), "{seen}");
    assert!(seen.starts_with("get /api/v1/agents/7 "), "{seen}");
    s.still_serves().await;
}

/// Anonymous POST routes: one that drops trailers, one that allows them.
const UPLOADS: &str = "  - { id: upload, methods: [POST], path: /upload, action: read_public, resource: { type: PublicPage, id: upload }, anonymous: true }
  - { id: upload-trailers, methods: [POST], path: /upload-trailers, action: read_public, resource: { type: PublicPage, id: upload }, anonymous: true, request_trailers: true }
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_are_dropped_unless_the_route_allows_them_and_then_cleaned() {
    let s = stack_with_routes(Answer::Ok, "", UPLOADS).await;
    let request = |path: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: acme.app.test\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\nTrailer: x-user-id, x-checksum\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\nx-user-id: admin\r\nx-tenant-id: globex\r\nx-user-roles: super_admin\r\nx_user_id: admin\r\nauthorization: Bearer forged\r\nx-checksum: abc\r\n\r\n"
        )
    };
    let answer = s.raw(&request("/upload")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = s.recorder.last();
    assert!(seen.contains("\r\nhello\r\n"), "{seen}");
    for forged in [
        "admin",
        "globex",
        "super_admin",
        "forged",
        "x-checksum: abc",
    ] {
        assert!(
            !seen[seen.find("hello").unwrap()..].contains(forged),
            "{forged}: {seen}"
        );
    }
    // A route that allows trailers gets them, without reserved names or credentials.
    let answer = s.raw(&request("/upload-trailers")).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let seen = s.recorder.last();
    let after_body = &seen[seen.find("hello").unwrap()..];
    assert!(after_body.contains("x-checksum: abc"), "{seen}");
    for forged in ["admin", "globex", "super_admin", "forged"] {
        assert!(!after_body.contains(forged), "{forged}: {seen}");
    }
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_chunked_framing_is_the_clients_400_not_an_upstream_error() {
    let s = stack_with_routes(Answer::Ok, "", UPLOADS).await;
    for body in [
        "zz\r\nhello\r\n0\r\n\r\n",
        "fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
        "5;name=\"a\r\nb\"\r\nhello\r\n0\r\n\r\n",
        "5\r\nhelloX0\r\n\r\n",
    ] {
        let answer = s
            .raw(&format!(
                "POST /upload HTTP/1.1\r\nHost: acme.app.test\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{body}"
            ))
            .await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{body:?}: {answer}");
        assert!(answer.contains("malformed-request"), "{body:?}: {answer}");
    }
    assert_eq!(
        s.tollgate
            .metric("tollgate_upstream_errors_total{kind=\"unavailable\"}"),
        0.0
    );
    s.still_serves().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_http2_the_same_rules_hold() {
    let s = stack_with(Answer::Ok, |options| options.server = "h2c: true".into()).await;
    let (tollgate, recorder) = (&s.tollgate, &s.recorder);
    let alice = s.token("alice", "acme", &["viewer"]);
    let url = "http://acme.app.test/api/v1/agents/7";
    let (status, body) = h2(
        tollgate.addr,
        "GET",
        url,
        &[
            ("authorization", &alice),
            ("x-user-email", "boss@example.com"),
            ("x_user_id", "root"),
            ("x-http-method-override", "DELETE"),
            ("x-forwarded-prefix", "/admin"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let seen = recorder.last();
    for name in [
        "x-user-email",
        "x_user_id",
        "x-http-method-override",
        "x-forwarded-prefix",
    ] {
        assert!(!has_header(&seen, name), "{name}: {seen}");
    }
    assert!(seen.contains("\r\nx-user-id: alice\r\n"), "{seen}");
    // Two Authorization headers, and a Host that disagrees with :authority.
    let (status, body) = h2(
        tollgate.addr,
        "GET",
        url,
        &[
            ("authorization", &alice),
            ("authorization", "Bearer forged"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let (status, body) = h2(
        tollgate.addr,
        "GET",
        url,
        &[("authorization", &alice), ("host", "globex.app.test")],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(recorder.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_is_tunnelled_only_on_a_route_that_allows_it() {
    use futures_util::{SinkExt, StreamExt};
    let keys = Keys::generate();
    let upstream = crate::support::Upstream::start().await;
    let mut options = fixture::full_stack(&keys, "");
    for (name, text) in options.files.iter_mut() {
        if name == "routes.yaml" {
            text.push_str("  - { id: ws, methods: [GET], path: /ws, action: read_public, resource: { type: PublicPage, id: ws }, anonymous: true, websocket: true }\n");
        }
    }
    let tollgate = Tollgate::start(upstream.addr, options);
    let stream = tokio::net::TcpStream::connect(tollgate.addr).await.unwrap();
    let (mut ws, response) = tokio_tungstenite::client_async("ws://acme.app.test/ws", stream)
        .await
        .expect("a WebSocket on a route that allows it");
    assert_eq!(response.status(), 101);
    ws.send(tokio_tungstenite::tungstenite::Message::text("hi"))
        .await
        .unwrap();
    assert_eq!(
        ws.next().await.unwrap().unwrap(),
        tokio_tungstenite::tungstenite::Message::text("hi")
    );
    // The same handshake to a route without the flag is a plain request: no 101.
    let stream = tokio::net::TcpStream::connect(tollgate.addr).await.unwrap();
    assert!(
        tokio_tungstenite::client_async("ws://acme.app.test/public/ws", stream)
            .await
            .is_err()
    );
}

/// One HTTP/2 (prior knowledge) request with `headers`; the status and the body.
async fn h2(
    addr: std::net::SocketAddr,
    method: &str,
    uri: &str,
    headers: &[(&str, &str)],
) -> (u16, String) {
    use http_body_util::BodyExt;
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(tcp),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let mut builder = http::Request::builder().method(method).uri(uri);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let body = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connect_is_refused_and_a_websocket_answered_with_another_protocol_opens_no_tunnel() {
    let ws_route = "  - { id: ws, methods: [GET], path: /ws, action: read_public, resource: { type: PublicPage, id: ws }, anonymous: true, websocket: true }\n";
    let s = stack_with_routes(Answer::Switch("h2c"), "", ws_route).await;
    let answer = s
        .raw("CONNECT acme.app.test:443 HTTP/1.1\r\nHost: acme.app.test:443\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    let answer = s
        .raw("CONNECT /public/x HTTP/1.1\r\nHost: acme.app.test\r\nConnection: close\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(
        s.recorder.requests().is_empty(),
        "{:?}",
        s.recorder.requests()
    );
    // A valid handshake on a route that allows it, answered by a switch to h2c: no tunnel.
    let answer = s
        .raw("GET /ws HTTP/1.1\r\nHost: acme.app.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nDELETE /api/v1/agents/7 HTTP/1.1\r\nHost: acme.app.test\r\n\r\n")
        .await;
    assert!(answer.starts_with("HTTP/1.1 502"), "{answer}");
    let seen = s.recorder.all();
    assert!(
        has_header(&s.recorder.last(), "upgrade"),
        "the handshake was forwarded: {seen}"
    );
    assert!(!seen.contains("delete /api"), "{seen}");
    assert!(
        answer.contains("HTTP/1.1 401"),
        "the DELETE was judged: {answer}"
    );
}

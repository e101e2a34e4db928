//! Envoy's gRPC ext_authz (deploy/envoy/envoy-grpc.yaml) run by a real Envoy in front of the echo
//! upstream and a real Tollgate: the same gateway scenarios as the HTTP service, the decision in
//! Envoy's dynamic metadata, the trace context in the audit record, closed when Tollgate is down;
//! and the gRPC service asked directly: what it refuses and how.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use prost::Message;
use serde_json::Value;
use tollgate::grpc::proto::{
    Address, AttributeContext, AttributeRequest, CheckRequest, CheckResponse, HttpRequest, Peer,
    SocketAddress,
};

use crate::authorizer::{request, start_with};
use crate::envoy::envoy;
use crate::gateways;
use crate::support::eventually;
use crate::support::gateway::{Gateway, free_addr};

const AUDIT: &str = "audit:\n  file: { path: audit/audit.jsonl, fsync: always }\n";

/// The shipped gRPC configuration asking `authorizer` about requests for `application`; its
/// access log goes to `log`.
fn start_envoy(authorizer: SocketAddr, application: SocketAddr, log: &Path) -> Gateway {
    let addr = free_addr();
    let port = |p: u16| format!("port_value: {p}");
    let replace = [
        ("port_value: 8089", port(addr.port())),
        ("port_value: 8081", port(application.port())),
        ("port_value: 8084", port(authorizer.port())),
        ("port_value: 9901", port(free_addr().port())),
        ("path: /dev/stdout", format!("path: {}", log.display())),
    ];
    Gateway::start("envoy/envoy-grpc.yaml", addr, &replace, envoy)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_grpc_answers_503_when_tollgate_cannot_be_reached() {
    let s = start_with("").await;
    let log = s.tollgate.path("envoy-access.log");
    let envoy = start_envoy(free_addr(), s.upstream.addr, &log);
    gateways::closed_when_tollgate_is_unreachable(envoy.addr, &s).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn envoy_over_grpc_forwards_allowed_requests_and_answers_refusals_like_tollgate() {
    let s = start_with(AUDIT).await;
    let log = s.tollgate.path("envoy-access.log");
    let envoy = start_envoy(s.grpc, s.upstream.addr, &log);
    let viewer = gateways::allows_and_refuses_like_tollgate(envoy.addr, &s).await;

    // No header-mutation filter: Tollgate's answer removes what the client may not send.
    let trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let public =
        gateways::forwards_what_was_judged(envoy.addr, &viewer, &[("traceparent", trace)]).await;
    let id = public.upstream_header("x-request-id").unwrap();
    // Two credentials are ambiguous: refused, never one picked.
    let twice = [
        ("host", "acme.app.test"),
        ("authorization", viewer.as_str()),
        ("authorization", "Bearer other"),
    ];
    request(envoy.addr, "GET", "/api/v1/agents", &twice)
        .await
        .assert_problem(400, "malformed-request");
    gateways::keeps_secrets_and_reserved_headers_from_the_application(envoy.addr, &s).await;

    // The trace context reaches the audit record; the decision, Envoy's access log.
    let record = eventually_record(&s.tollgate, &id).await;
    assert_eq!(record["traceparent"], trace);
    assert_eq!(record["tenant"], "acme");
    let path = log.clone();
    eventually("Envoy logs Tollgate's decision", async || {
        std::fs::read_to_string(&path).is_ok_and(|l| l.contains(&id))
    })
    .await;
    let logged: Value = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["request_id"] == id.as_str())
        .unwrap();
    assert_eq!(logged["tenant"], "acme");
    assert_eq!(logged["decision"], "allow");
    assert_eq!(logged["route"], "public");
    assert_eq!(logged["principal"], "anonymous");
    assert_eq!(logged["tollgate_request_id"], id.as_str());
}

async fn eventually_record(tollgate: &crate::support::Tollgate, id: &str) -> Value {
    let path = tollgate.path("audit/audit.jsonl");
    let find = || {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .find(|r| r["request_id"] == id && r["type"] == "decision")
    };
    eventually("the decision is on record", async || find().is_some()).await;
    find().unwrap()
}

/// What one call got: the HTTP status, the response's headers, its message (if any) and its
/// trailers.
pub type Called = (u16, http::HeaderMap, Option<CheckResponse>, http::HeaderMap);

/// One `Check` call over h2c.
async fn call(addr: SocketAddr, path: &str, body: Bytes) -> Called {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    call_over(stream, path, body).await
}

/// One call on a connection of its own over `io` (TCP, or TLS with ALPN h2).
pub async fn call_over<I>(io: I, path: &str, body: Bytes) -> Called
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    call_as(io, path, "application/grpc", body).await
}

/// [`call_over`] with another content type.
async fn call_as<I>(io: I, path: &str, content_type: &str, body: Bytes) -> Called
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        hyper_util::rt::TokioIo::new(io),
    )
    .await
    .unwrap();
    tokio::spawn(conn);
    let request = http::Request::post(format!("http://authorizer{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(Full::new(body))
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .unwrap()
        .unwrap();
    let (head, body) = response.into_parts();
    let collected = body.collect().await.unwrap();
    let trailers = collected.trailers().cloned().unwrap_or_default();
    let bytes = collected.to_bytes();
    let message = tollgate::grpc::message(&bytes)
        .ok()
        .map(|m| CheckResponse::decode(m).unwrap());
    (head.status.as_u16(), head.headers, message, trailers)
}

pub fn check_request(method: &str, path: &str, headers: &[(&str, &str)]) -> Bytes {
    let http = HttpRequest {
        id: String::new(),
        method: method.into(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<HashMap<_, _>>(),
        header_map: None,
        path: path.into(),
        host: "acme.app.test".into(),
        scheme: "http".into(),
        protocol: "HTTP/1.1".into(),
    };
    let message = CheckRequest {
        attributes: Some(AttributeContext {
            source: Some(Peer {
                address: Some(Address {
                    socket_address: Some(SocketAddress {
                        address: "203.0.113.9".into(),
                        port_value: 50000,
                    }),
                }),
                principal: String::new(),
            }),
            destination: None,
            request: Some(AttributeRequest { http: Some(http) }),
            context_extensions: HashMap::new(),
            tls_session: None,
        }),
    };
    tollgate::grpc::frame(&message.encode_to_vec())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_service_refuses_what_is_not_a_check_and_answers_like_proxy_mode() {
    let s = start_with(AUDIT).await;
    let status = |t: &http::HeaderMap| {
        t.get("grpc-status")
            .map(|v| v.to_str().unwrap().to_string())
    };
    // Another method, a message that is not one, a compressed one: gRPC errors, no decision.
    let ask = check_request("GET", "/public/docs", &[]);
    let (_, headers, message, _) = call(s.grpc, "/other.Service/Call", ask.clone()).await;
    assert_eq!((status(&headers).as_deref(), message), (Some("12"), None));
    let (_, headers, _, _) = call(
        s.grpc,
        tollgate::grpc::CHECK_PATH,
        Bytes::from_static(b"\0\0\0\0\x09garbage"),
    )
    .await;
    assert_eq!(status(&headers).as_deref(), Some("3"));
    // Not gRPC at all (415), and a message over 4 MiB: refused before any decision.
    let tcp = tokio::net::TcpStream::connect(s.grpc).await.unwrap();
    let (code, headers, _, _) = call_as(
        tcp,
        tollgate::grpc::CHECK_PATH,
        "application/json",
        ask.clone(),
    )
    .await;
    assert_eq!((code, status(&headers).as_deref()), (415, Some("3")));
    let huge = tollgate::grpc::frame(&vec![0u8; tollgate::grpc::MAX_MESSAGE + 1]);
    let (_, headers, message, _) = call(s.grpc, tollgate::grpc::CHECK_PATH, huge).await;
    assert_eq!((status(&headers).as_deref(), message), (Some("8"), None));
    let mut compressed = ask.to_vec();
    compressed[0] = 1;
    let (_, headers, _, _) = call(s.grpc, tollgate::grpc::CHECK_PATH, compressed.into()).await;
    assert_eq!(status(&headers).as_deref(), Some("12"));

    // Allowed: OK, the identity to set, the client's reserved headers to remove, metadata.
    let ask = check_request(
        "GET",
        "/public/docs",
        &[
            ("x-user-id", "root"),
            ("x-forwarded-host", "evil.example"),
            ("x-forwarded-for", "6.6.6.6"),
            ("user-agent", "t"),
        ],
    );
    let (code, _, message, trailers) = call(s.grpc, tollgate::grpc::CHECK_PATH, ask).await;
    assert_eq!((code, status(&trailers).as_deref()), (200, Some("0")));
    let message = message.unwrap();
    assert_eq!(message.status.unwrap().code, 0);
    let ok = message.ok_response.unwrap();
    let set: HashMap<String, String> = ok
        .headers
        .iter()
        .filter_map(|h| h.header.as_ref())
        .map(|h| (h.key.clone(), h.value.clone()))
        .collect();
    assert_eq!(set["x-tenant-id"], "acme");
    assert_eq!(set["x-auth-method"], "anonymous");
    // The client's address claim is replaced by the source address Envoy saw.
    assert_eq!(set["x-forwarded-for"], "203.0.113.9");
    assert_eq!(set["x-forwarded-proto"], "http");
    let mut removed = ok.headers_to_remove.clone();
    removed.sort();
    assert_eq!(removed, ["x-forwarded-host", "x-user-id"]);
    let metadata = message.dynamic_metadata.unwrap().fields;
    let text = |k: &str| match &metadata[k].kind {
        Some(prost_types::value::Kind::StringValue(v)) => v.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(
        (text("tenant"), text("route"), text("decision")),
        ("acme".into(), "public".into(), "allow".into())
    );
    // The client is the source address Envoy saw.
    let record = eventually_record(&s.tollgate, &text("request_id")).await;
    assert_eq!(record["client"]["ip"], "203.0.113.9");

    // Refused: exactly proxy mode's answer, whole.
    for (ask, status_code, slug) in [
        (
            check_request("GET", "/api/v1/agents", &[]),
            401,
            "unauthenticated",
        ),
        (
            check_request(
                "GET",
                "/api/v1/agents",
                &[("authorization", "Bearer a,Bearer b")],
            ),
            400,
            "malformed-request",
        ),
        (check_request("CONNECT", "/", &[]), 400, "malformed-request"),
    ] {
        let (_, _, message, _) = call(s.grpc, tollgate::grpc::CHECK_PATH, ask).await;
        let message = message.unwrap();
        assert_ne!(message.status.as_ref().unwrap().code, 0);
        let denied = message.denied_response.unwrap();
        assert_eq!(denied.status.unwrap().code, status_code);
        let body: Value = serde_json::from_str(&denied.body).unwrap();
        assert_eq!(
            body["type"],
            format!("https://tollgate.dev/problems/{slug}")
        );
        let names: Vec<&str> = denied
            .headers
            .iter()
            .filter_map(|h| h.header.as_ref().map(|h| h.key.as_str()))
            .collect();
        assert!(names.contains(&"content-type"), "{names:?}");
        if status_code == 401 {
            assert!(names.contains(&"www-authenticate"), "{names:?}");
            // The record has the status the client gets, not the gRPC call's 200.
            let metadata = message.dynamic_metadata.unwrap().fields;
            let Some(prost_types::value::Kind::StringValue(id)) = &metadata["request_id"].kind
            else {
                panic!("{metadata:?}")
            };
            let record = eventually_record(&s.tollgate, id).await;
            assert_eq!(
                (
                    record["decision"].as_str(),
                    record["http"]["status"].as_u64()
                ),
                (Some("deny"), Some(401))
            );
        }
    }
    assert!(
        s.upstream.seen().is_empty(),
        "the authorizer forwards nothing"
    );
}

//! Admission limits, timeouts and request framing (smuggling attempts).

use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Full;

use crate::support::{Options, Tollgate, Upstream, collect, get, raw, send};

const WAIT: Duration = Duration::from_secs(20);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_or_too_many_headers_are_431() {
    let upstream = Upstream::start().await;
    let options = Options {
        limits: "max_header_bytes: 16KiB\nmax_headers: 20".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let big = "x".repeat(20 * 1024);
    get(tollgate.addr, "/echo", &[("x-big", &big)])
        .await
        .assert_problem(431, "headers-too-large");

    let names: Vec<String> = (0..30).map(|i| format!("x-h{i}")).collect();
    let many: Vec<(&str, &str)> = names.iter().map(|n| (n.as_str(), "1")).collect();
    get(tollgate.addr, "/echo", &many)
        .await
        .assert_problem(431, "headers-too-large");

    // Far beyond any limit, hyper itself refuses before the pipeline runs.
    let huge = format!(
        "GET /echo HTTP/1.1\r\nHost: x\r\nx-huge: {}\r\n\r\n",
        "y".repeat(256 * 1024)
    );
    let reply = raw(tollgate.addr, huge.as_bytes(), WAIT).await;
    assert!(reply.text.starts_with("HTTP/1.1 431"), "{}", reply.text);
    assert!(upstream.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_are_413_whether_declared_or_streamed() {
    let upstream = Upstream::start().await;
    let options = Options {
        limits: "max_body_bytes: 1KiB".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let request = Request::post("/upload")
        .header("host", "t")
        .body(Full::new(Bytes::from(vec![b'a'; 2048])))
        .unwrap();
    collect(send(tollgate.addr, request).await)
        .await
        .assert_problem(413, "payload-too-large");
    assert!(
        upstream.seen().is_empty(),
        "declared length refused before forwarding"
    );

    let chunk = "a".repeat(1000);
    let chunked = format!(
        "POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e8\r\n{chunk}\r\n3e8\r\n{chunk}\r\n0\r\n\r\n"
    );
    let reply = raw(tollgate.addr, chunked.as_bytes(), WAIT).await;
    assert!(reply.text.starts_with("HTTP/1.1 413"), "{}", reply.text);
    assert!(reply.text.contains("payload-too-large"), "{}", reply.text);

    let request = Request::post("/upload")
        .header("host", "t")
        .body(Full::new(Bytes::from(vec![b'a'; 1000])))
        .unwrap();
    let reply = collect(send(tollgate.addr, request).await).await;
    assert_eq!(
        reply.json()["bytes"],
        1000,
        "a body within the limit passes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_header_sender_is_cut_off() {
    let upstream = Upstream::start().await;
    let options = Options {
        limits: "header_read_timeout: 500ms".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = raw(
        tollgate.addr,
        b"GET /echo HTTP/1.1\r\nHost: x\r\nX-Slow: 1",
        WAIT,
    )
    .await;
    assert!(reply.closed, "connection still open: {}", reply.text);
    assert!(!reply.text.contains("200 OK"), "{}", reply.text);
    assert!(upstream.seen().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout() {
    let upstream = Upstream::start().await;
    let options = Options {
        limits: "idle_timeout: 300ms\nheader_read_timeout: 1h".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = raw(
        tollgate.addr,
        b"GET /echo HTTP/1.1\r\nHost: x\r\n\r\n",
        WAIT,
    )
    .await;
    assert!(reply.text.starts_with("HTTP/1.1 200"), "{}", reply.text);
    assert!(reply.closed, "idle connection was kept open");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_never_smuggles_a_request() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let smuggle = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 40\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n";
    let reply = raw(tollgate.addr, smuggle.as_bytes(), WAIT).await;
    // RFC 9112 §6.1: Transfer-Encoding wins, Content-Length is dropped, and the connection is
    // closed after the response, so the bytes after the chunked body are never a request.
    assert!(reply.closed, "connection kept open after CL+TE");
    assert_eq!(reply.text.matches("HTTP/1.1 ").count(), 1, "{}", reply.text);
    assert!(
        !upstream.seen().iter().any(|p| p.contains("smuggled")),
        "{:?}",
        upstream.seen()
    );
    let echoed: serde_json::Value =
        serde_json::from_str(reply.text.split_once("\r\n\r\n").unwrap().1).unwrap();
    assert!(
        echoed["headers"]["content-length"].is_null(),
        "upstream saw both framings"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_or_obfuscated_framing_is_400_and_closes_the_connection() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for attack in [
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n",
        "POST /echo HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        "GET /echo HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
    ] {
        let reply = raw(tollgate.addr, attack.as_bytes(), WAIT).await;
        assert!(
            reply.text.starts_with("HTTP/1.1 400") || reply.text.starts_with("HTTP/1.0 400"),
            "{attack:?}: {}",
            reply.text
        );
        assert!(reply.closed, "{attack:?}: connection kept open");
    }
    assert!(upstream.seen().is_empty(), "{:?}", upstream.seen());
    // Still healthy afterwards.
    assert_eq!(get(tollgate.addr, "/echo", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_beyond_max_in_flight_are_503_overloaded() {
    let upstream = Upstream::start().await;
    let options = Options {
        limits: "max_in_flight: 1".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let addr = tollgate.addr;
    let slow = tokio::spawn(async move { get(addr, "/slow/1500", &[]).await });
    while upstream.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let refused = get(tollgate.addr, "/echo", &[]).await;
    refused.assert_problem(503, "overloaded");
    assert_eq!(refused.headers["retry-after"], "1");
    assert_eq!(slow.await.unwrap().status, 200);
    assert_eq!(
        get(tollgate.addr, "/echo", &[]).await.status,
        200,
        "capacity returns"
    );
}

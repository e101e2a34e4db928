//! Protocol choices on both sides: h2c downstream, HTTP/2 and TLS upstream, connect timeouts.

use std::time::Duration;

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpStream;

use crate::support::{Options, Tollgate, Upstream, get};

/// Sends one HTTP/2 prior-knowledge request over plaintext; `None` if the server refuses h2c.
async fn h2c_get(addr: std::net::SocketAddr) -> Option<serde_json::Value> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
            .await
            .ok()?;
    tokio::spawn(conn);
    let request = Request::get(format!("http://{addr}/echo"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = tokio::time::timeout(Duration::from_secs(10), sender.send_request(request))
        .await
        .ok()?
        .ok()?;
    assert_eq!(response.version(), Version::HTTP_2);
    let body = response.into_body().collect().await.ok()?.to_bytes();
    serde_json::from_slice(&body).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_is_served_only_when_enabled() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    assert!(
        h2c_get(tollgate.addr).await.is_none(),
        "h2c accepted while disabled"
    );

    let options = Options {
        server: "h2c: true".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let echoed = h2c_get(tollgate.addr).await.expect("h2c served");
    assert_eq!(echoed["path"], "/echo");
    // HTTP/1.1 still works on the same port.
    assert_eq!(get(tollgate.addr, "/echo", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upstream_can_be_spoken_to_in_http2() {
    let upstream = Upstream::start().await;
    let options = Options {
        upstream: "http2: true".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(tollgate.addr, "/echo", &[]).await;
    assert_eq!(reply.json()["version"], "HTTP/2.0");
    assert_eq!(
        reply.upstream_header("x-forwarded-for").as_deref(),
        Some("127.0.0.1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_upstream_with_a_private_ca_is_verified_and_negotiates_h2() {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
        generated.signing_key.serialize_der(),
    ));
    let upstream = Upstream::start_tls(generated.cert.der().clone(), key).await;
    let ca = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(ca.path(), generated.cert.pem()).unwrap();

    let options = Options {
        upstream_url: Some(format!("https://localhost:{}", upstream.addr.port())),
        upstream: format!("ca_file: {}", ca.path().display()),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let reply = get(tollgate.addr, "/echo", &[]).await;
    assert_eq!(reply.status, 200, "{:?}\n{}", reply.body, tollgate.log());
    assert_eq!(reply.json()["version"], "HTTP/2.0", "ALPN chose h2");

    // Without the CA the upstream is not trusted: 502, never a silent plaintext fallback.
    let options = Options {
        upstream_url: Some(format!("https://localhost:{}", upstream.addr.port())),
        ..Options::default()
    };
    let untrusting = Tollgate::start(upstream.addr, options);
    get(untrusting.addr, "/echo", &[])
        .await
        .assert_problem(502, "upstream-unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upstream_that_does_not_accept_connections_in_time_is_504() {
    // A listener with a full accept queue drops further SYNs, so connecting hangs: the
    // loopback stand-in for an unreachable host.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(0).unwrap();
    let addr = listener.local_addr().unwrap();
    let mut held = Vec::new();
    while let Ok(Ok(stream)) =
        tokio::time::timeout(Duration::from_millis(300), TcpStream::connect(addr)).await
    {
        held.push(stream);
        assert!(held.len() < 64, "the accept queue never filled");
    }

    let upstream = Upstream::start().await;
    let options = Options {
        upstream_url: Some(format!("http://{addr}")),
        upstream: "connect_timeout: 300ms".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    get(tollgate.addr, "/echo", &[])
        .await
        .assert_problem(504, "upstream-timeout");
    drop(listener);
}

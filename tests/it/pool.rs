//! The upstream keep-alive pool: connections are reused, and a connection that is closed,
//! closing, idle too long or still carrying an abandoned response never serves a request.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::Empty;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{Options, Tollgate, Upstream, eventually, get, send};

/// How the hand-written upstream ends its answers.
#[derive(Clone, Copy)]
enum Manner {
    /// Keep-alive, one answer after another.
    KeepAlive,
    /// One answer with `Connection: close`, then close.
    Announced,
    /// One keep-alive answer, then close without a word.
    Silent,
    /// Promise a megabyte and send a few bytes, then wait.
    Partial,
}

/// An HTTP/1.1 upstream written by hand, so that it can misbehave exactly as a test needs.
struct RawUpstream {
    addr: SocketAddr,
    accepted: Arc<AtomicUsize>,
    /// Connections the client (Tollgate) closed.
    closed_by_client: Arc<AtomicUsize>,
}

impl RawUpstream {
    async fn start(manner: Manner) -> RawUpstream {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let closed_by_client = Arc::new(AtomicUsize::new(0));
        let (count, closed) = (accepted.clone(), closed_by_client.clone());
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(answer(stream, manner, closed.clone()));
            }
        });
        RawUpstream {
            addr,
            accepted,
            closed_by_client,
        }
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

async fn answer(mut stream: TcpStream, manner: Manner, closed: Arc<AtomicUsize>) {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while !buffer.windows(4).any(|w| w == b"\r\n\r\n") {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => {
                    closed.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                Ok(n) => buffer.extend_from_slice(&chunk[..n]),
            }
        }
        buffer.clear();
        let reply: &[u8] = match manner {
            Manner::KeepAlive | Manner::Silent => b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok",
            Manner::Announced => {
                b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
            }
            Manner::Partial => b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\npartial",
        };
        if stream.write_all(reply).await.is_err() {
            return;
        }
        match manner {
            Manner::KeepAlive => {}
            Manner::Announced | Manner::Silent => return,
            Manner::Partial => {
                // Nothing more is sent, so the read ends only when Tollgate closes.
                let _ = stream.read(&mut chunk).await;
                closed.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
    }
}

async fn ok(tollgate: &Tollgate) {
    let reply = get(tollgate.addr, "/", &[]).await;
    assert_eq!(reply.status, 200, "{:?}", reply.body);
    assert_eq!(reply.body, "ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_connections_are_pooled_and_reused() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for _ in 0..10 {
        assert_eq!(get(tollgate.addr, "/echo", &[]).await.status, 200);
    }
    assert_eq!(
        upstream.connections(),
        1,
        "sequential requests reuse one upstream connection"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_the_upstream_closes_with_its_answer_is_not_reused() {
    let upstream = RawUpstream::start(Manner::Announced).await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for _ in 0..5 {
        ok(&tollgate).await;
    }
    assert_eq!(upstream.accepted(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_the_upstream_closed_is_not_reused() {
    let upstream = RawUpstream::start(Manner::Silent).await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    for _ in 0..5 {
        ok(&tollgate).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(upstream.accepted(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let upstream = RawUpstream::start(Manner::KeepAlive).await;
    let options = Options {
        upstream: "pool: { idle_timeout: 200ms }".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    ok(&tollgate).await;
    ok(&tollgate).await;
    assert_eq!(upstream.accepted(), 1);
    eventually("Tollgate closes the idle connection", async || {
        upstream.closed_by_client.load(Ordering::SeqCst) == 1
    })
    .await;
    ok(&tollgate).await;
    assert_eq!(
        upstream.accepted(),
        2,
        "a new connection after the old one was closed"
    );
}

/// Sends a GET and returns the response with its body unread.
async fn unread(tollgate: &Tollgate) -> http::Response<hyper::body::Incoming> {
    let request = Request::get("/").header("host", "tollgate.test");
    send(tollgate.addr, request.body(Empty::<Bytes>::new()).unwrap()).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_response_was_abandoned_is_not_reused() {
    let upstream = RawUpstream::start(Manner::Partial).await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    assert_eq!(unread(&tollgate).await.status(), 200);
    eventually(
        "Tollgate closes the connection of the abandoned response",
        async || upstream.closed_by_client.load(Ordering::SeqCst) == 1,
    )
    .await;
    assert_eq!(unread(&tollgate).await.status(), 200);
    assert_eq!(upstream.accepted(), 2);
}

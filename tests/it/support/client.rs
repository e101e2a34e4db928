//! Test clients: a hyper HTTP/1.1 client on a fresh connection, and a raw TCP client for
//! requests no well-behaved client would send.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A whole response.
#[derive(Debug)]
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// The echo upstream's view of one request header.
    pub fn upstream_header(&self, name: &str) -> Option<String> {
        self.json()["headers"][name].as_str().map(str::to_string)
    }

    /// Asserts a problem+json answer of the given status and type slug, with the request id.
    pub fn assert_problem(&self, status: u16, slug: &str) {
        assert_eq!(
            self.status.as_u16(),
            status,
            "body: {:?}",
            String::from_utf8_lossy(&self.body)
        );
        assert_eq!(self.headers["content-type"], "application/problem+json");
        let problem = self.json();
        assert_eq!(
            problem["type"],
            format!("https://tollgate.dev/problems/{slug}")
        );
        assert_eq!(problem["status"], status);
        assert_eq!(
            problem["request_id"],
            self.headers["x-request-id"].to_str().unwrap()
        );
    }
}

/// Sends one request on a new HTTP/1.1 connection and returns the streaming response.
pub async fn send<B>(addr: SocketAddr, request: Request<B>) -> http::Response<Incoming>
where
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn.with_upgrades());
    sender.send_request(request).await.unwrap()
}

/// Collects a response whole.
pub async fn collect(response: http::Response<Incoming>) -> Reply {
    let (parts, body) = response.into_parts();
    Reply {
        status: parts.status,
        headers: parts.headers,
        body: body.collect().await.unwrap().to_bytes(),
    }
}

/// GET with extra headers (`Host: tollgate.test` unless one is given), collected.
pub async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut builder = Request::get(path);
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        builder = builder.header("host", "tollgate.test");
    }
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    collect(send(addr, builder.body(Empty::<Bytes>::new()).unwrap()).await).await
}

/// What a raw exchange produced.
pub struct Raw {
    pub text: String,
    /// Whether the server closed the connection.
    pub closed: bool,
}

/// Writes `bytes` and reads until the server closes or `wait` passes without data.
pub async fn raw(addr: SocketAddr, bytes: &[u8], wait: Duration) -> Raw {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    read_until_close(&mut stream, wait).await
}

pub async fn read_until_close(stream: &mut TcpStream, wait: Duration) -> Raw {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let deadline = Instant::now() + wait;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                return Raw {
                    text: String::from_utf8_lossy(&out).into_owned(),
                    closed: true,
                };
            }
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {
                return Raw {
                    text: String::from_utf8_lossy(&out).into_owned(),
                    closed: false,
                };
            }
        }
    }
}

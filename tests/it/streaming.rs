//! Bodies stream through the proxy both ways; trailers pass.

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Empty, StreamBody};
use hyper::body::Frame;

use crate::support::{Options, Tollgate, Upstream, raw, send};

const SIZE: u64 = 50 * 1024 * 1024;
/// Generous headroom over the proxy's baseline; buffering 50 MB whole would blow through it.
const MAX_GROWTH_KIB: u64 = 24 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_megabytes_stream_up_and_down_with_proxy_memory_staying_small() {
    let upstream = Upstream::start().await;
    let options = Options {
        limits: "max_body_bytes: 0".into(),
        ..Options::default()
    };
    let tollgate = Tollgate::start(upstream.addr, options);
    let baseline = tollgate.peak_rss_kib();

    let chunk = Bytes::from(vec![b'u'; 64 * 1024]);
    let chunks = (0..SIZE / chunk.len() as u64)
        .map(move |_| Ok::<_, Infallible>(Frame::data(chunk.clone())));
    let upload = Request::post("/upload")
        .header("host", "t")
        .body(StreamBody::new(futures_util::stream::iter(chunks)))
        .unwrap();
    let response = send(tollgate.addr, upload).await;
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, format!("{{\"bytes\":{SIZE}}}"));

    let download = Request::get(format!("/download/{SIZE}"))
        .header("host", "t")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let mut body = send(tollgate.addr, download).await.into_body();
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        received += frame.unwrap().data_ref().map_or(0, |d| d.len() as u64);
    }
    assert_eq!(received, SIZE);

    let growth = tollgate.peak_rss_kib().saturating_sub(baseline);
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB moving {SIZE} bytes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_responses_and_their_trailers_pass_through() {
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, Options::default());
    let request = "GET /trailers HTTP/1.1\r\nHost: t\r\nTE: trailers\r\nConnection: close\r\n\r\n";
    let reply = raw(tollgate.addr, request.as_bytes(), Duration::from_secs(20)).await;
    let (head, body) = reply.text.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{head}"
    );
    assert!(body.contains("hello ") && body.contains("world"), "{body}");
    let trailer = body.split_once("0\r\n").map(|(_, t)| t).unwrap_or_default();
    assert!(
        trailer.contains("x-checksum: abc123"),
        "trailers lost: {body:?}"
    );
}

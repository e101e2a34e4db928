//! TLS termination: HTTP/2 by ALPN, and certificate rotation without a restart.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, Version};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::RootCertStore;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::support::{Options, Tollgate, Upstream};

fn write_cert(dir: &Path) -> CertificateDer<'static> {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    // Each file is replaced by a rename, as Kubernetes and cert-manager do.
    for (name, text) in [
        ("tls.key", generated.signing_key.serialize_pem()),
        ("tls.crt", generated.cert.pem()),
    ] {
        let tmp = dir.join(format!("{name}.tmp"));
        std::fs::write(&tmp, text).unwrap();
        std::fs::rename(&tmp, dir.join(name)).unwrap();
    }
    generated.cert.der().clone()
}

fn tls_options(dir: &Path) -> Options {
    Options {
        tls: Some(format!(
            "cert_file: {}\nkey_file: {}\nreload_interval: 100ms",
            dir.join("tls.crt").display(),
            dir.join("tls.key").display()
        )),
        ..Options::default()
    }
}

type Tls = tokio_rustls::client::TlsStream<TcpStream>;

/// Connects with TLS trusting only `root`, offering h2 and http/1.1.
async fn try_connect(
    addr: std::net::SocketAddr,
    root: &CertificateDer<'static>,
) -> std::io::Result<Tls> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let tcp = TcpStream::connect(addr).await.unwrap();
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
}

async fn connect(addr: std::net::SocketAddr, root: &CertificateDer<'static>) -> Tls {
    try_connect(addr, root).await.expect("TLS handshake")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_client_over_tls_is_served_with_alpn_h2() {
    let certs = tempfile::tempdir().unwrap();
    let cert = write_cert(certs.path());
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, tls_options(certs.path()));

    let tls = connect(tollgate.addr, &cert).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
            .await
            .unwrap();
    tokio::spawn(conn);

    let request = Request::get("https://localhost/echo?x=1")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.version(), Version::HTTP_2);
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let echoed: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(echoed["headers"]["x-forwarded-proto"], "https");
    assert_eq!(echoed["headers"]["host"], "localhost");
    assert_eq!(
        echoed["version"], "HTTP/1.1",
        "upstream is spoken to in HTTP/1.1"
    );
    assert_eq!(echoed["path"], "/echo");

    // Trailers reach an HTTP/2 client too.
    let request = Request::get("https://localhost/trailers")
        .header("te", "trailers")
        .body(Empty::<Bytes>::new())
        .unwrap();
    let collected = sender
        .send_request(request)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap();
    assert_eq!(collected.trailers().unwrap()["x-checksum"], "abc123");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_certificate_is_served_without_restart_and_a_broken_one_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let first = write_cert(certs.path());
    let upstream = Upstream::start().await;
    let tollgate = Tollgate::start(upstream.addr, tls_options(certs.path()));
    let served = |tls: &Tls| tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    assert_eq!(served(&connect(tollgate.addr, &first).await), first);

    let second = write_cert(certs.path());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(tls) = try_connect(tollgate.addr, &second).await {
            assert_eq!(served(&tls), second);
            break;
        }
        assert!(
            Instant::now() < deadline,
            "new certificate never served:\n{}",
            tollgate.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tollgate.metric("tollgate_tls_reloads_total{result=\"ok\"}") >= 1.0);

    let errors_before = tollgate.metric("tollgate_tls_reloads_total{result=\"error\"}");
    std::fs::write(
        certs.path().join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\ngarbage\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while tollgate.metric("tollgate_tls_reloads_total{result=\"error\"}") <= errors_before {
        assert!(
            Instant::now() < deadline,
            "broken certificate not noticed:\n{}",
            tollgate.log()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        served(&connect(tollgate.addr, &second).await),
        second,
        "old certificate keeps serving"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_authorizer_is_served_over_tls_with_alpn_h2() {
    let certs = tempfile::tempdir().unwrap();
    let cert = write_cert(certs.path());
    let upstream = Upstream::start().await;
    let options = tls_options(certs.path()).with(
        "authorizer",
        serde_json::json!([{ "listen": "127.0.0.1:0", "gateway": "envoy-grpc", "tls": true }]),
    );
    let tollgate = Tollgate::start(upstream.addr, options);
    let tls = connect(tollgate.authorizers[0], &cert).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let ask = crate::envoy_grpc::check_request("GET", "/public/docs", &[]);
    let (status, _, message, trailers) =
        crate::envoy_grpc::call_over(tls, tollgate::grpc::CHECK_PATH, ask).await;
    assert_eq!(
        (status, trailers["grpc-status"].to_str().unwrap()),
        (200, "0")
    );
    let message = message.unwrap();
    assert!(message.ok_response.is_some(), "{message:?}");
    // Plaintext on a TLS listener is no gRPC call at all.
    let plain = tokio::net::TcpStream::connect(tollgate.authorizers[0])
        .await
        .unwrap();
    let refused = tokio::time::timeout(
        Duration::from_secs(5),
        hyper::client::conn::http2::handshake::<_, _, http_body_util::Full<Bytes>>(
            TokioExecutor::new(),
            TokioIo::new(plain),
        ),
    )
    .await;
    let failed = match refused {
        Ok(Ok((mut sender, conn))) => {
            tokio::spawn(conn);
            let request = Request::post("http://authorizer/")
                .body(http_body_util::Full::new(Bytes::new()))
                .unwrap();
            sender.send_request(request).await.is_err()
        }
        _ => true,
    };
    assert!(failed, "a TLS listener answered plaintext");
}

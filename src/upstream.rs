//! The upstream connection pool: HTTP/1.1 keep-alive (HTTP/2 with `upstream.http2` or by ALPN
//! over TLS), plain or TLS with rustls.

use std::path::Path;
use std::sync::Arc;

use http_body_util::Limited;
use hyper::body::Incoming;
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use crate::audit::body::Counted;
use crate::config::Upstream;

/// The body Tollgate sends upstream: the client's body, streamed, with the size limit applied,
/// counted for the audit record.
pub type UpstreamBody = Counted<Limited<Incoming>>;
pub type UpstreamClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// Builds the pooled client for the configured upstream.
pub fn client(config: &Upstream) -> Result<UpstreamClient, String> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(config.connect_timeout));

    let roots = match &config.ca_file {
        Some(path) => load_roots(path)?,
        None => RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("upstream TLS: {e}"))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let https = HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .enable_http2()
        .wrap_connector(http);

    let mut builder = Client::builder(TokioExecutor::new());
    builder
        .pool_idle_timeout(config.pool_idle_timeout)
        .pool_max_idle_per_host(config.pool_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .http2_only(config.http2);
    Ok(builder.build(https))
}

/// Reads a PEM bundle of CA certificates.
pub fn load_roots(path: &Path) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("bad PEM in {}: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("bad CA certificate in {}: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("no certificates in {}", path.display()));
    }
    Ok(roots)
}

//! The upstream: where allowed requests go. A cleartext HTTP/1.1 upstream (the sidecar's case)
//! uses Tollgate's own keep-alive pool (`pool.rs`); TLS (HTTP/1.1 or HTTP/2 by ALPN) and
//! `upstream.http2` use hyper-util's pooled client with rustls.

pub mod body;
mod pool;

use std::error::Error as StdError;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::Arc;

use http::header::UPGRADE;
use http::uri::PathAndQuery;
use http::{Request, Response, Uri};
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

use body::Guarded;
pub use pool::Streamed;

/// The body Tollgate sends upstream: the client's body, streamed, trailers guarded, with the
/// size limit applied, counted for the audit record.
pub type UpstreamBody = Counted<Limited<Guarded<Incoming>>>;
type PooledClient = Client<HttpsConnector<HttpConnector>, UpstreamBody>;

/// The client for the configured upstream.
pub enum UpstreamClient {
    Http1(Arc<pool::Pool>),
    Pooled(Box<PooledClient>),
}

impl UpstreamClient {
    /// Builds the client; the HTTP/1.1 pool starts its idle reaper on the current runtime.
    pub fn new(config: &Upstream) -> Result<UpstreamClient, String> {
        if config.scheme == http::uri::Scheme::HTTP && !config.http2 {
            Ok(UpstreamClient::Http1(pool::Pool::start(config)))
        } else {
            client(config).map(|c| UpstreamClient::Pooled(Box::new(c)))
        }
    }

    /// The request target for `path_and_query` on this upstream.
    pub fn target(&self, config: &Upstream, path_and_query: PathAndQuery) -> Result<Uri, String> {
        match self {
            UpstreamClient::Http1(_) => Ok(pool::Pool::target(path_and_query)),
            UpstreamClient::Pooled(_) => Uri::builder()
                .scheme(config.scheme.clone())
                .authority(config.authority.clone())
                .path_and_query(path_and_query)
                .build()
                .map_err(|e| e.to_string()),
        }
    }

    /// Sends the request and returns the response head; the body streams after.
    pub async fn send(
        &self,
        request: Request<UpstreamBody>,
    ) -> Result<Response<Streamed>, UpstreamError> {
        match self {
            UpstreamClient::Http1(pool) => pool.send(request).await,
            UpstreamClient::Pooled(client) => client
                .request(request)
                .await
                .map(|response| response.map(Streamed::unpooled))
                .map_err(UpstreamError::Client),
        }
    }
}

/// Whether the request asks to switch protocols (its connection cannot be reused).
fn upgrades<B>(request: &Request<B>) -> bool {
    request.headers().contains_key(UPGRADE)
}

/// Why the upstream gave no response.
#[derive(Debug)]
pub enum UpstreamError {
    /// No connection could be opened.
    Connect(io::Error),
    /// The connection failed during the exchange.
    Request(hyper::Error),
    /// hyper-util's client failed (connecting or during the exchange).
    Client(hyper_util::client::legacy::Error),
}

impl UpstreamError {
    /// Whether no connection could be opened (refused, unreachable, timed out).
    pub fn is_connect(&self) -> bool {
        match self {
            UpstreamError::Connect(_) => true,
            UpstreamError::Request(_) => false,
            UpstreamError::Client(e) => e.is_connect(),
        }
    }
}

impl fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UpstreamError::Connect(_) => f.write_str("cannot connect to the upstream"),
            UpstreamError::Request(_) | UpstreamError::Client(_) => {
                f.write_str("the upstream exchange failed")
            }
        }
    }
}

impl StdError for UpstreamError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        match self {
            UpstreamError::Connect(e) => Some(e),
            UpstreamError::Request(e) => Some(e),
            UpstreamError::Client(e) => Some(e),
        }
    }
}

/// Builds hyper-util's pooled client for the configured upstream.
fn client(config: &Upstream) -> Result<PooledClient, String> {
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
